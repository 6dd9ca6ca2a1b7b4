// Environment: what PPO needs of a task. An observation is a flat [Float] of observationSize;
// an action is one index per categorical head (actionHeads[h] choices for head h), so a plain
// discrete task has one head and a multi-discrete one (five binary decisions: [2,2,2,2,2]) has
// several; the policy's log-probability of a joint action is the sum over heads.
// VectorEnvironment steps N copies and resets each one as it finishes (CleanRL's SyncVectorEnv
// with RecordEpisodeStatistics): the observation returned after a finished episode is the first
// of the next one, and the finished episode's return and length are reported.

public struct EnvironmentStep {
    public var observation: [Float]
    public var reward: Float
    public var terminated: Bool
    public var truncated: Bool
    /// The reward split into named parts (Environment.rewardComponentNames), for logs only; the
    /// parts need not sum to reward. Empty when the environment names none.
    public var rewardComponents: [Float]

    public init(observation: [Float], reward: Float, terminated: Bool, truncated: Bool, rewardComponents: [Float] = []) {
        self.observation = observation
        self.reward = reward
        self.terminated = terminated
        self.truncated = truncated
        self.rewardComponents = rewardComponents
    }
}

public protocol Environment {
    var observationSize: Int { get }
    /// Choices per categorical action head; [2] for CartPole.
    var actionHeads: [Int] { get }
    /// Names of the parts in EnvironmentStep.rewardComponents; [] by default.
    var rewardComponentNames: [String] { get }
    /// Starts an episode. A seed re-seeds the environment's own RNG; nil continues it.
    mutating func reset(seed: UInt64?) -> [Float]
    /// One step; action holds one index per head, each in 0..<actionHeads[h].
    mutating func step(_ action: [Int]) -> EnvironmentStep
}

extension Environment {
    public var rewardComponentNames: [String] { [] }
    /// The number of actions of a single-head environment.
    public var actionCount: Int { actionHeads.reduce(1, *) }
}

/// A finished episode of one of the vectorised environments.
public struct EpisodeRecord {
    public var envIndex: Int
    public var episodeReturn: Float
    public var length: Int
}

/// N environments stepped together, each reset as soon as it terminates or is truncated.
public struct VectorEnvironment<E: Environment> {
    public private(set) var envs: [E]
    public let observationSize: Int
    public let actionHeads: [Int]
    var returns: [Float]
    var lengths: [Int]

    /// All envs must agree on observationSize and actionHeads.
    public init(_ envs: [E]) throws {
        guard let first = envs.first else { throw HMSTError.invalidArgument("VectorEnvironment needs at least one environment") }
        guard envs.allSatisfy({ $0.observationSize == first.observationSize && $0.actionHeads == first.actionHeads }) else {
            throw HMSTError.invalidArgument("VectorEnvironment: environments differ in observation size or action heads")
        }
        self.envs = envs
        observationSize = first.observationSize
        actionHeads = first.actionHeads
        returns = [Float](repeating: 0, count: envs.count)
        lengths = [Int](repeating: 0, count: envs.count)
    }

    public var count: Int { envs.count }

    /// Resets env i with seed + i; returns the observations as one [N * observationSize] array.
    public mutating func reset(seed: UInt64) throws -> [Float] {
        var obs = [Float]()
        obs.reserveCapacity(count * observationSize)
        for i in 0..<count {
            obs += try checked(envs[i].reset(seed: seed &+ UInt64(i)), i)
            returns[i] = 0
            lengths[i] = 0
        }
        return obs
    }

    /// Steps every env with its action (actions[i * heads ..< (i + 1) * heads]). Writes the next
    /// observations into obs [N * observationSize], rewards and done flags (terminated or
    /// truncated) into rewards [N], dones [N]; adds each env's reward components into
    /// componentSums; returns the episodes that finished.
    public mutating func step(actions: UnsafePointer<Int32>, obs: UnsafeMutablePointer<Float>,
                              rewards: UnsafeMutablePointer<Float>, dones: UnsafeMutablePointer<Float>,
                              componentSums: inout [Double]) throws -> [EpisodeRecord] {
        let nH = actionHeads.count
        var finished = [EpisodeRecord]()
        var action = [Int](repeating: 0, count: nH)
        for i in 0..<count {
            for h in 0..<nH { action[h] = Int(actions[i * nH + h]) }
            var s = envs[i].step(action)
            returns[i] += s.reward
            lengths[i] += 1
            for (c, v) in s.rewardComponents.enumerated() where c < componentSums.count { componentSums[c] += Double(v) }
            let done = s.terminated || s.truncated
            if done {
                finished.append(EpisodeRecord(envIndex: i, episodeReturn: returns[i], length: lengths[i]))
                returns[i] = 0
                lengths[i] = 0
                s.observation = envs[i].reset(seed: nil)
            }
            _ = try checked(s.observation, i)
            for j in 0..<observationSize { obs[i * observationSize + j] = s.observation[j] }
            rewards[i] = s.reward
            dones[i] = done ? 1 : 0
        }
        return finished
    }

    /// An observation of the declared size, or an error naming the environment.
    func checked(_ o: [Float], _ i: Int) throws -> [Float] {
        guard o.count == observationSize else {
            throw HMSTError.invalidArgument("environment \(i) (\(E.self)) returned an observation of \(o.count) values, declared \(observationSize)")
        }
        return o
    }
}

// Probe environments for PPO (Andy Jones, "Debugging RL, Without the Agonizing Pain"): each
// isolates one part of the learner, so a failure points at it.
//   ProbeConstant:        one action, observation 0, one step, reward +1: the value learns 1.
//   ProbeObservation:     one action, observation ±1, one step, reward = observation: the value
//                         learns the observation (value and observation path).
//   ProbeTwoStep:         one action, observation 0 then 1, reward +1 at the end of the second
//                         step: the first state's value is gamma (discounting, GAE's bootstrap).
//   ProbeAction:          two actions, observation 0, one step, reward +1 for action 1, -1 for 0:
//                         the policy learns action 1 (policy gradient).
//   ProbeObservationAction: two actions, observation ±1, one step, reward +1 when the action is
//                         1 for +1 and 0 for -1, else -1 (policy conditioned on observation).
//   ProbeMultiHead:       n binary heads, observation ±1, one step; even heads must match the
//                         observation's sign and odd heads oppose it, 1/n each (components
//                         "head0", "head1", ...): the multi-discrete joint log-probability.

private func sign(_ rng: inout RNG) -> Float { rng.nextFloat() < 0.5 ? -1 : 1 }

public struct ProbeConstant: Environment {
    public init() {}
    public var observationSize: Int { 1 }
    public var actionHeads: [Int] { [1] }
    public mutating func reset(seed: UInt64?) -> [Float] { [0] }
    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        EnvironmentStep(observation: [0], reward: 1, terminated: true, truncated: false)
    }
}

public struct ProbeObservation: Environment {
    var rng = RNG(seed: 0)
    var obs: Float = 1
    public init() {}
    public var observationSize: Int { 1 }
    public var actionHeads: [Int] { [1] }
    public mutating func reset(seed: UInt64?) -> [Float] {
        if let seed { rng = RNG(seed: seed) }
        obs = sign(&rng)
        return [obs]
    }
    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        EnvironmentStep(observation: [obs], reward: obs, terminated: true, truncated: false)
    }
}

public struct ProbeTwoStep: Environment {
    var t = 0
    public init() {}
    public var observationSize: Int { 1 }
    public var actionHeads: [Int] { [1] }
    public mutating func reset(seed: UInt64?) -> [Float] {
        t = 0
        return [0]
    }
    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        t += 1
        return t == 1 ? EnvironmentStep(observation: [1], reward: 0, terminated: false, truncated: false)
                      : EnvironmentStep(observation: [1], reward: 1, terminated: true, truncated: false)
    }
}

public struct ProbeAction: Environment {
    public init() {}
    public var observationSize: Int { 1 }
    public var actionHeads: [Int] { [2] }
    public mutating func reset(seed: UInt64?) -> [Float] { [0] }
    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        EnvironmentStep(observation: [0], reward: action[0] == 1 ? 1 : -1, terminated: true, truncated: false)
    }
}

public struct ProbeObservationAction: Environment {
    var rng = RNG(seed: 0)
    var obs: Float = 1
    public init() {}
    public var observationSize: Int { 1 }
    public var actionHeads: [Int] { [2] }
    public mutating func reset(seed: UInt64?) -> [Float] {
        if let seed { rng = RNG(seed: seed) }
        obs = sign(&rng)
        return [obs]
    }
    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        let right = (obs > 0) == (action[0] == 1)
        return EnvironmentStep(observation: [obs], reward: right ? 1 : -1, terminated: true, truncated: false)
    }
}

public struct ProbeMultiHead: Environment {
    public let nHeads: Int
    var rng = RNG(seed: 0)
    var obs: Float = 1
    /// nHeads binary heads (5 is the meta-controller's shape: five binary decisions).
    public init(nHeads: Int = 2) { self.nHeads = max(nHeads, 1) }
    public var observationSize: Int { 1 }
    public var actionHeads: [Int] { [Int](repeating: 2, count: nHeads) }
    public var rewardComponentNames: [String] { (0..<nHeads).map { "head\($0)" } }
    public mutating func reset(seed: UInt64?) -> [Float] {
        if let seed { rng = RNG(seed: seed) }
        obs = sign(&rng)
        return [obs]
    }
    /// Even heads are right when they match the observation's sign (1 for +1), odd heads when
    /// they oppose it; each right head earns 1 / nHeads.
    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        let parts = (0..<nHeads).map { h -> Float in
            ((obs > 0) == (action[h] == 1)) == (h % 2 == 0) ? 1 / Float(nHeads) : 0
        }
        return EnvironmentStep(observation: [obs], reward: parts.reduce(0, +), terminated: true, truncated: false,
                               rewardComponents: parts)
    }
}

// PPO: CleanRL ppo.py for any Environment. Each update collects nSteps steps from nEnvs
// environments, computes GAE(lambda) advantages (an episode that ended, terminated or
// truncated, is not bootstrapped, as CleanRL), then runs updateEpochs passes over the batch in
// nMinibatches shuffled minibatches: the PPO loss (PPOLoss.swift), gradient clipping to
// maxGradNorm, one Adam step with the learning rate annealed linearly to 0 over the run.
// Each update returns a PPOUpdateLog (losses, approx_kl, clip fraction, explained variance,
// finished episodes, mean reward per component).
import Foundation

public struct PPOConfig {
    public var learningRate: Float = 2.5e-4
    public var annealLearningRate = true
    public var nEnvs = 4
    public var nSteps = 128
    public var gamma: Float = 0.99
    public var gaeLambda: Float = 0.95
    public var nMinibatches = 4
    public var updateEpochs = 4
    public var normalizeAdvantages = true
    public var clipCoef: Float = 0.2
    public var clipValueLoss = true
    public var entCoef: Float = 0.01
    public var vfCoef: Float = 0.5
    public var maxGradNorm: Float = 0.5
    public var adamEps: Float = 1e-5
    public var totalSteps = 500_000
    public var hidden = [64, 64]
    public var seed: UInt64 = 1

    public init() {}

    public var batchSize: Int { nEnvs * nSteps }
    public var minibatchSize: Int { batchSize / nMinibatches }
    public var nUpdates: Int { totalSteps / batchSize }

    func validate() throws {
        func need(_ ok: Bool, _ what: String) throws {
            if !ok { throw HMSTError.invalidArgument("PPOConfig: \(what)") }
        }
        try need(nEnvs > 0 && nSteps > 0 && updateEpochs > 0 && nMinibatches > 0,
                 "nEnvs (\(nEnvs)), nSteps (\(nSteps)), updateEpochs (\(updateEpochs)) and nMinibatches (\(nMinibatches)) must be positive")
        try need(batchSize % nMinibatches == 0 && minibatchSize > 1,
                 "the batch of nEnvs x nSteps = \(batchSize) must split into \(nMinibatches) minibatches of at least 2 rows")
        try need(totalSteps >= batchSize, "totalSteps (\(totalSteps)) is less than one batch (\(batchSize))")
        try need(learningRate > 0 && clipCoef > 0 && maxGradNorm > 0 && adamEps > 0,
                 "learningRate, clipCoef, maxGradNorm and adamEps must be positive")
        try need((0...1).contains(gamma) && (0...1).contains(gaeLambda), "gamma (\(gamma)) and gaeLambda (\(gaeLambda)) must be in [0, 1]")
        try need(learningRate.isFinite && entCoef.isFinite && entCoef >= 0 && vfCoef.isFinite && vfCoef >= 0,
                 "learningRate (\(learningRate)) must be finite, entCoef (\(entCoef)) and vfCoef (\(vfCoef)) finite and >= 0")
    }
}

public struct PPOUpdateLog {
    public var update = 0
    public var globalStep = 0
    public var learningRate: Float = 0
    /// Means over the update's minibatches.
    public var loss: Float = 0
    public var policyLoss: Float = 0
    public var valueLoss: Float = 0
    public var entropy: Float = 0
    public var approxKL: Float = 0
    public var oldApproxKL: Float = 0
    public var clipFraction: Float = 0
    /// 1 - Var(returns - values) / Var(returns) over the batch, before the update.
    public var explainedVariance: Float = 0
    public var episodes: [EpisodeRecord] = []
    /// Mean per environment step of each named reward component.
    public var rewardComponents: [(name: String, mean: Double)] = []
    public var timeMs: Double = 0

    public var meanEpisodicReturn: Float? {
        episodes.isEmpty ? nil : episodes.reduce(0) { $0 + $1.episodeReturn } / Float(episodes.count)
    }
}

public final class PPOTrainer<E: Environment> {
    public let config: PPOConfig
    public let model: ActorCritic
    public private(set) var envs: VectorEnvironment<E>
    public private(set) var update = 0
    public private(set) var globalStep = 0
    let componentNames: [String]
    var rng: RNG
    // Rollout storage, [T, N, ...].
    let obs, logProbs, rewards, dones, values, advantages, returns: PPOBuffer<Float>
    let actions: PPOBuffer<Int32>
    let nextObs, nextDone: PPOBuffer<Float>
    // Minibatch gathers and gradients.
    let mbObs, mbLogProbs, mbAdv, mbReturns, mbValues, dLogits, dValues: PPOBuffer<Float>
    let mbActions: PPOBuffer<Int32>
    let adamM, adamV: PPOBuffer<Float>
    var adamSteps = 0

    /// config.nEnvs copies made by makeEnv(i); env i is first reset with seed config.seed + i.
    public init(config: PPOConfig, makeEnv: (Int) -> E) throws {
        try config.validate()
        self.config = config
        var v = try VectorEnvironment((0..<config.nEnvs).map(makeEnv))
        model = try ActorCritic(observationSize: v.observationSize, actionHeads: v.actionHeads, hidden: config.hidden, seed: config.seed)
        componentNames = v.envs[0].rewardComponentNames
        rng = RNG(seed: config.seed ^ 0x5050_4F00)
        let B = config.batchSize, O = v.observationSize, nH = v.actionHeads.count, N = config.nEnvs
        let M = config.minibatchSize
        obs = PPOBuffer(count: B * O, value: 0)
        (logProbs, rewards, dones, values, advantages, returns) =
            (PPOBuffer(count: B, value: 0), PPOBuffer(count: B, value: 0), PPOBuffer(count: B, value: 0),
             PPOBuffer(count: B, value: 0), PPOBuffer(count: B, value: 0), PPOBuffer(count: B, value: 0))
        actions = PPOBuffer(count: B * nH, value: 0)
        nextObs = PPOBuffer(count: N * O, value: 0)
        nextDone = PPOBuffer(count: N, value: 0)
        mbObs = PPOBuffer(count: M * O, value: 0)
        (mbLogProbs, mbAdv, mbReturns, mbValues, dValues) =
            (PPOBuffer(count: M, value: 0), PPOBuffer(count: M, value: 0), PPOBuffer(count: M, value: 0),
             PPOBuffer(count: M, value: 0), PPOBuffer(count: M, value: 0))
        dLogits = PPOBuffer(count: M * model.nLogits, value: 0)
        mbActions = PPOBuffer(count: M * nH, value: 0)
        adamM = PPOBuffer(count: model.parameterCount, value: 0)
        adamV = PPOBuffer(count: model.parameterCount, value: 0)
        let first = try v.reset(seed: config.seed)
        for i in 0..<first.count { nextObs[i] = first[i] }
        envs = v
    }

    /// Runs updates until config.nUpdates are done or onUpdate returns false.
    public func train(_ onUpdate: (PPOUpdateLog) throws -> Bool = { _ in true }) throws {
        while update < config.nUpdates {
            if try !onUpdate(runUpdate()) { break }
        }
    }

    /// One rollout of nEnvs x nSteps and the optimisation on it.
    public func runUpdate() throws -> PPOUpdateLog {
        let t0 = Date()
        let c = config, N = c.nEnvs, T = c.nSteps, O = envs.observationSize, nH = envs.actionHeads.count
        let B = c.batchSize, M = c.minibatchSize
        update += 1
        var log = PPOUpdateLog()
        log.update = update
        let lr = c.annealLearningRate ? (1 - Float(update - 1) / Float(c.nUpdates)) * c.learningRate : c.learningRate
        log.learningRate = lr

        // Rollout.
        var componentSums = [Double](repeating: 0, count: componentNames.count)
        for t in 0..<T {
            globalStep += N
            (obs.p + t * N * O).update(from: nextObs.p, count: N * O)
            (dones.p + t * N).update(from: nextDone.p, count: N)
            model.act(nextObs.p, B: N, rng: &rng, actions: actions.p + t * N * nH, logProbs: logProbs.p + t * N,
                      values: values.p + t * N)
            log.episodes += try envs.step(actions: actions.p + t * N * nH, obs: nextObs.p, rewards: rewards.p + t * N,
                                      dones: nextDone.p, componentSums: &componentSums)
        }
        log.globalStep = globalStep
        log.rewardComponents = zip(componentNames, componentSums).map { ($0, $1 / Double(B)) }

        // GAE.
        let nextValue = model.forward(nextObs.p, B: N).values
        computeGAE(T: T, N: N, gamma: c.gamma, lambda: c.gaeLambda, rewards: rewards.p, values: values.p, dones: dones.p,
                   nextValue: nextValue, nextDone: nextDone.p, advantages: advantages.p, returns: returns.p)
        log.explainedVariance = explainedVariance(predicted: values.p, actual: returns.p, n: B)

        // Optimisation.
        var order = Array(0..<B)
        var nMinibatches = 0
        for _ in 0..<c.updateEpochs {
            for i in stride(from: B - 1, to: 0, by: -1) {
                order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            for start in stride(from: 0, to: B, by: M) {
                for j in 0..<M {
                    let src = order[start + j]
                    (mbObs.p + j * O).update(from: obs.p + src * O, count: O)
                    (mbActions.p + j * nH).update(from: actions.p + src * nH, count: nH)
                    mbLogProbs[j] = logProbs[src]
                    mbAdv[j] = advantages[src]
                    mbReturns[j] = returns[src]
                    mbValues[j] = values[src]
                }
                let s = minibatchStep(lr: lr)
                log.loss += s.loss
                log.policyLoss += s.policyLoss
                log.valueLoss += s.valueLoss
                log.entropy += s.entropy
                log.approxKL += s.approxKL
                log.oldApproxKL += s.oldApproxKL
                log.clipFraction += s.clipFraction
                nMinibatches += 1
            }
        }
        let k = Float(nMinibatches)
        log.loss /= k; log.policyLoss /= k; log.valueLoss /= k; log.entropy /= k
        log.approxKL /= k; log.oldApproxKL /= k; log.clipFraction /= k
        log.timeMs = Date().timeIntervalSince(t0) * 1000
        return log
    }

    var minibatch: PPOMinibatch {
        PPOMinibatch(M: config.minibatchSize, actions: mbActions.p, oldLogProbs: mbLogProbs.p, advantages: mbAdv.p,
                     returns: mbReturns.p, oldValues: mbValues.p)
    }

    /// Loss and gradient of the gathered minibatch into model.grads (zeroed first).
    func minibatchLossAndGradients() -> PPOLossStats {
        let M = config.minibatchSize
        let (logits, v) = model.forward(mbObs.p, B: M)
        let s = ppoLoss(logits: logits, values: v, heads: model.actionHeads, batch: minibatch, config: config,
                        dLogits: dLogits.p, dValues: dValues.p)
        model.zeroGrads()
        model.backward(mbObs.p, B: M, dLogits: dLogits.p, dValues: dValues.p)
        return s
    }

    func minibatchStep(lr: Float) -> PPOLossStats {
        let s = minibatchLossAndGradients()
        clipGradNorm(model.grads.p, model.parameterCount, maxNorm: config.maxGradNorm)
        adamSteps += 1
        adamStep(params: model.params.p, grads: model.grads.p, m: adamM.p, v: adamV.p, n: model.parameterCount,
                 step: adamSteps, lr: lr, eps: config.adamEps)
        return s
    }
}

/// GAE(lambda) over a [T, N] rollout, as CleanRL: dones[t] marks obs t as the first of an
/// episode (the step before it ended one, so it is not bootstrapped); nextValue and nextDone
/// [N] are those of the observation after the last step. returns = advantages + values.
public func computeGAE(T: Int, N: Int, gamma: Float, lambda: Float, rewards: UnsafePointer<Float>, values: UnsafePointer<Float>,
                       dones: UnsafePointer<Float>, nextValue: UnsafePointer<Float>, nextDone: UnsafePointer<Float>,
                       advantages: UnsafeMutablePointer<Float>, returns: UnsafeMutablePointer<Float>) {
    for e in 0..<N {
        var lastGae: Float = 0
        for t in stride(from: T - 1, through: 0, by: -1) {
            let i = t * N + e
            let last = t == T - 1
            let nonTerminal = 1 - (last ? nextDone[e] : dones[i + N])
            let nextV = last ? nextValue[e] : values[i + N]
            let delta = rewards[i] + gamma * nextV * nonTerminal - values[i]
            lastGae = delta + gamma * lambda * nonTerminal * lastGae
            advantages[i] = lastGae
            returns[i] = lastGae + values[i]
        }
    }
}

/// 1 - Var(actual - predicted) / Var(actual) (population variances); NaN when Var(actual) = 0,
/// as CleanRL.
public func explainedVariance(predicted: UnsafePointer<Float>, actual: UnsafePointer<Float>, n: Int) -> Float {
    func variance(_ f: (Int) -> Double) -> Double {
        var mean = 0.0
        for i in 0..<n { mean += f(i) }
        mean /= Double(n)
        var s = 0.0
        for i in 0..<n { s += (f(i) - mean) * (f(i) - mean) }
        return s / Double(n)
    }
    let vy = variance { Double(actual[$0]) }
    return vy == 0 ? .nan : Float(1 - variance { Double(actual[$0]) - Double(predicted[$0]) } / vy)
}

/// Plays `episodes` episodes of fresh environments (env i reset with seed + i) with the model's
/// policy, all at once, and returns their returns. Sampled actions unless greedy.
public func evaluatePolicy<E: Environment>(_ model: ActorCritic, episodes: Int, seed: UInt64, greedy: Bool = false,
                                           maxSteps: Int = 100_000, makeEnv: (Int) -> E) throws -> [Float] {
    var envs = (0..<episodes).map(makeEnv)
    guard let first = envs.first else { return [] }
    let O = first.observationSize, nH = first.actionHeads.count
    var obs = [Float](repeating: 0, count: episodes * O)
    for i in 0..<episodes {
        let o = envs[i].reset(seed: seed &+ UInt64(i))
        guard o.count == O else { throw HMSTError.invalidArgument("evaluatePolicy: environment \(i) returned \(o.count) observation values, declared \(O)") }
        for j in 0..<O { obs[i * O + j] = o[j] }
    }
    var done = [Bool](repeating: false, count: episodes)
    var ret = [Float](repeating: 0, count: episodes)
    var rng = RNG(seed: seed ^ 0xE7A1)
    var actions = [Int32](repeating: 0, count: episodes * nH)
    var lp = [Float](repeating: 0, count: episodes), v = lp
    var action = [Int](repeating: 0, count: nH)
    for _ in 0..<maxSteps where done.contains(false) {
        model.act(obs, B: episodes, rng: &rng, greedy: greedy, actions: &actions, logProbs: &lp, values: &v)
        for i in 0..<episodes where !done[i] {
            for h in 0..<nH { action[h] = Int(actions[i * nH + h]) }
            let s = envs[i].step(action)
            ret[i] += s.reward
            done[i] = s.terminated || s.truncated
            guard s.observation.count == O else { throw HMSTError.invalidArgument("evaluatePolicy: environment \(i) returned \(s.observation.count) observation values, declared \(O)") }
            for j in 0..<O { obs[i * O + j] = s.observation[j] }
        }
    }
    return ret
}

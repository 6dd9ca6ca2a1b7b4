// PPO: the loss's gradient through the whole actor-critic against central differences, the
// orthogonal init, and short trainings on the probe environments (ProbeEnvironments.swift)
// whose learned values and policies are known exactly.
import XCTest
@testable import HMSTCore

final class PPOTests: XCTestCase {
    /// A multi-head actor-critic (heads [3, 2]) on random data, old log-probs and old values
    /// offset so that some ratios and value moves are clipped and some are not, kept 0.05 away
    /// from the clipping kinks.
    func testLossGradientMatchesFiniteDifferences() throws {
        let O = 3, M = 16, heads = [3, 2]
        let model = try ActorCritic(observationSize: O, actionHeads: heads, hidden: [8, 8], seed: 3)
        var rng = RNG(seed: 11)
        // Larger policy-head weights than the 0.01 init, so the policy terms are not negligible.
        for i in 0..<model.actor.parameterCount { model.params[i] += 0.3 * rng.nextGaussian() }
        let obs = (0..<(M * O)).map { _ in rng.nextGaussian() }
        let actions = (0..<M).flatMap { _ in heads.map { Int32(rng.next() % UInt64($0)) } }
        let adv = (0..<M).map { _ in rng.nextGaussian() * 2 + 0.3 }
        let ret = (0..<M).map { _ in rng.nextGaussian() }
        var c = PPOConfig()
        c.entCoef = 0.05   // make the entropy term visible
        // Old log-probs and values relative to the current ones.
        var lp = [Float](repeating: 0, count: M), v = lp
        let (logits0, values0) = model.forward(obs, B: M)
        let logitRows = Array(UnsafeBufferPointer(start: logits0, count: M * 5))
        let values = Array(UnsafeBufferPointer(start: values0, count: M))
        for i in 0..<M {
            var l: Float = 0
            var at = 0
            for (h, n) in heads.enumerated() {
                let row = Array(logitRows[(i * 5 + at)..<(i * 5 + at + n)])
                let m = row.max()!
                let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                l += row[Int(actions[i * 2 + h])] - lse
                at += n
            }
            lp[i] = l - [-0.5, -0.1, 0, 0.1, 0.5][i % 5]
            v[i] = values[i] - [-0.5, -0.1, 0.1, 0.5][i % 4]
        }
        func loss(grad: Bool) -> (Float, [Float]) {
            actions.withUnsafeBufferPointer { a in lp.withUnsafeBufferPointer { olp in adv.withUnsafeBufferPointer { ad in
                ret.withUnsafeBufferPointer { r in v.withUnsafeBufferPointer { ov in
                    let b = PPOMinibatch(M: M, actions: a.baseAddress!, oldLogProbs: olp.baseAddress!, advantages: ad.baseAddress!,
                                         returns: r.baseAddress!, oldValues: ov.baseAddress!)
                    let (logits, values) = model.forward(obs, B: M)
                    let dl = PPOBuffer<Float>(count: M * 5, value: 0), dv = PPOBuffer<Float>(count: M, value: 0)
                    let s = ppoLoss(logits: logits, values: values, heads: heads, batch: b, config: c,
                                    dLogits: grad ? dl.p : nil, dValues: grad ? dv.p : nil)
                    if grad {
                        model.zeroGrads()
                        model.backward(obs, B: M, dLogits: dl.p, dValues: dv.p)
                    }
                    return (s.loss, model.grads.array)
                } }
            } } }
        }
        let (base, g) = loss(grad: true)
        XCTAssertTrue(base.isFinite)
        // Some ratios are clipped: the clip fraction sees the 0.61 and 1.65 ratios.
        let stats = actions.withUnsafeBufferPointer { a in lp.withUnsafeBufferPointer { olp in adv.withUnsafeBufferPointer { ad in
            ret.withUnsafeBufferPointer { r in v.withUnsafeBufferPointer { ov -> PPOLossStats in
                let (logits, values) = model.forward(obs, B: M)
                return ppoLoss(logits: logits, values: values, heads: heads,
                               batch: PPOMinibatch(M: M, actions: a.baseAddress!, oldLogProbs: olp.baseAddress!, advantages: ad.baseAddress!,
                                                   returns: r.baseAddress!, oldValues: ov.baseAddress!), config: c)
            } } } } }
        XCTAssertEqual(stats.clipFraction, Float(7) / 16, accuracy: 1e-6)   // i % 5 in {0, 4}: 4 + 3 rows
        // Every layer of both networks: a few weights and biases each.
        var indices = [Int]()
        for net in [model.actor, model.critic] {
            for l in 0..<net.nLayers {
                indices += [net.wOffsets[l], net.wOffsets[l] + 5, net.bOffsets[l]]
            }
        }
        let eps: Float = 1e-2
        var checked = 0
        for k in indices {
            let saved = model.params[k]
            model.params[k] = saved + eps
            let up = loss(grad: false).0
            model.params[k] = saved - eps
            let down = loss(grad: false).0
            model.params[k] = saved
            let fd = (up - down) / (2 * eps)
            XCTAssertEqual(g[k], fd, accuracy: 1e-3 + 1e-2 * abs(fd), "parameter \(k)")
            if abs(fd) > 1e-3 { checked += 1 }
        }
        XCTAssertGreaterThan(checked, indices.count / 2, "most checked gradients are non-zero")
    }

    /// Two minibatch steps (loss, backward, gradient clipping, Adam) against PyTorch:
    /// Tests/Golden/ppo, written by tools/golden/make_ppo_golden.py.
    func testMinibatchStepsMatchPyTorch() throws {
        let dir = Golden.root + "/ppo/"
        var c = PPOConfig()
        c.nEnvs = 1
        c.nSteps = 8
        c.nMinibatches = 1
        c.totalSteps = 8
        let t = try PPOTrainer(config: c) { _ in CartPole() }
        let p0 = try Golden.array(dir + "params0").data
        XCTAssertEqual(p0.count, t.model.parameterCount)
        for i in 0..<p0.count { t.model.params[i] = p0[i] }
        let stats = try Golden.array(dir + "stats").data
        for step in 0..<2 {
            func load(_ name: String) throws -> [Float] { try Golden.array(dir + "batch\(step)_\(name)").data }
            let obs = try load("obs"), act = try load("actions")
            for i in 0..<obs.count { t.mbObs[i] = obs[i] }
            for i in 0..<act.count { t.mbActions[i] = Int32(act[i]) }
            for (name, buf) in [("oldlogp", t.mbLogProbs), ("adv", t.mbAdv), ("returns", t.mbReturns), ("oldvalues", t.mbValues)] {
                let a = try load(name)
                for i in 0..<a.count { buf[i] = a[i] }
            }
            let s = t.minibatchStep(lr: 2.5e-4)
            XCTAssertEqual(s.loss, stats[step * 3], accuracy: 1e-5)
            XCTAssertEqual(s.approxKL, stats[step * 3 + 1], accuracy: 1e-6)
            XCTAssertEqual(s.clipFraction, stats[step * 3 + 2])
            let want = try Golden.array(dir + "params\(step + 1)").data
            var maxErr: Float = 0, moved = 0
            for i in 0..<want.count {
                maxErr = max(maxErr, abs(t.model.params[i] - want[i]))
                if abs(want[i] - p0[i]) > 1e-4 { moved += 1 }
            }
            XCTAssertLessThan(maxErr, 1e-6, "step \(step)")
            XCTAssertGreaterThan(moved, want.count / 2, "the step moves most parameters")
        }
    }

    /// By hand, gamma = lambda = 0.5, two envs interleaved [T=3, N=2]. Env 0: rewards 1, 2, 3,
    /// values 0.5, 1, 1.5, an episode ends after step 1 (dones[2] = 1), next value 2:
    ///   t=2: delta = 3 + 0.5*2 - 1.5 = 2.5, adv 2.5
    ///   t=1: no bootstrap: delta = 2 - 1 = 1, adv 1
    ///   t=0: delta = 1 + 0.5*1 - 0.5 = 1, adv = 1 + 0.25*1 = 1.25
    /// Env 1: zero rewards and values, next value 4 but nextDone 1: all 0.
    func testGAEByHand() {
        let rewards: [Float] = [1, 0, 2, 0, 3, 0], values: [Float] = [0.5, 0, 1, 0, 1.5, 0]
        let dones: [Float] = [0, 0, 0, 0, 1, 0]
        var adv = [Float](repeating: -9, count: 6), ret = adv
        computeGAE(T: 3, N: 2, gamma: 0.5, lambda: 0.5, rewards: rewards, values: values, dones: dones,
                   nextValue: [2, 4], nextDone: [0, 1], advantages: &adv, returns: &ret)
        XCTAssertEqual(adv, [1.25, 0, 1, 0, 2.5, 0])
        XCTAssertEqual(ret, [1.75, 0, 2, 0, 4, 0])
    }

    func testExplainedVariance() {
        XCTAssertEqual(explainedVariance(predicted: [1, 2, 3], actual: [1, 2, 3], n: 3), 1)
        // residuals 1, -1, 0 (variance 2/3) against actual variance 2/3: 0.
        XCTAssertEqual(explainedVariance(predicted: [0, 3, 3], actual: [1, 2, 3], n: 3), 0, accuracy: 1e-6)
        XCTAssertTrue(explainedVariance(predicted: [0, 1], actual: [1, 1], n: 2).isNaN)
    }

    func testOrthogonalInitHasOrthonormalRowsOrColumns() {
        var rng = RNG(seed: 5)
        for (rows, cols) in [(8, 3), (3, 8), (6, 6)] {
            var w = [Float](repeating: 0, count: rows * cols)
            orthogonal(rows: rows, cols: cols, gain: 2, rng: &rng, into: &w)
            let k = min(rows, cols)
            for a in 0..<k {
                for b in 0..<k {
                    var dot: Float = 0
                    for i in 0..<max(rows, cols) {
                        dot += rows >= cols ? w[i * cols + a] * w[i * cols + b] : w[a * cols + i] * w[b * cols + i]
                    }
                    XCTAssertEqual(dot, a == b ? 4 : 0, accuracy: 1e-4)
                }
            }
        }
    }

    func testClipGradNormAndAdamStep() {
        var g: [Float] = [3, 4]
        XCTAssertEqual(clipGradNorm(&g, 2, maxNorm: 1), 5)
        XCTAssertEqual(g[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(g[1], 0.8, accuracy: 1e-6)
        // First Adam step moves each parameter by lr * g / (|g| + eps) = ~lr * sign(g).
        var p: [Float] = [1, 1], m: [Float] = [0, 0], v: [Float] = [0, 0]
        adamStep(params: &p, grads: [0.5, -2], m: &m, v: &v, n: 2, step: 1, lr: 0.1, eps: 1e-5)
        XCTAssertEqual(p[0], 0.9, accuracy: 1e-5)
        XCTAssertEqual(p[1], 1.1, accuracy: 1e-5)
    }

    // ---- probes -----------------------------------------------------------------------------

    func probeConfig(updates: Int) -> PPOConfig {
        var c = PPOConfig()
        c.nEnvs = 4
        c.nSteps = 32
        c.learningRate = 2.5e-3
        c.annealLearningRate = false
        c.totalSteps = updates * c.batchSize
        c.hidden = [16, 16]
        c.seed = 1
        return c
    }

    func train<E: Environment>(_ make: @escaping () -> E, updates: Int, gamma: Float = 0.99) throws -> (ActorCritic, PPOUpdateLog) {
        var c = probeConfig(updates: updates)
        c.gamma = gamma
        let t = try PPOTrainer(config: c) { _ in make() }
        var last = PPOUpdateLog()
        try t.train { last = $0; return true }
        XCTAssertEqual(t.globalStep, c.totalSteps)
        return (t.model, last)
    }

    /// Values and the probabilities of head h's choice 1 at each of obs.
    func evaluate(_ model: ActorCritic, _ obs: [Float]) -> (values: [Float], p1: [[Float]]) {
        let (logits, v) = model.forward(obs, B: obs.count)
        var p1 = [[Float]]()
        for r in 0..<obs.count {
            var at = 0, row = [Float]()
            for n in model.actionHeads {
                if n == 2 { row.append(1 / (1 + exp(logits[r * model.nLogits + at] - logits[r * model.nLogits + at + 1]))) }
                at += n
            }
            p1.append(row)
        }
        return (Array(UnsafeBufferPointer(start: v, count: obs.count)), p1)
    }

    func testProbeConstantRewardValueLearnsOne() throws {
        let (m, log) = try train({ ProbeConstant() }, updates: 40)
        XCTAssertEqual(evaluate(m, [0]).values[0], 1, accuracy: 0.05)
        XCTAssertEqual(log.meanEpisodicReturn, 1)
        XCTAssertEqual(log.episodes.count, 128)
    }

    func testProbeObservationValueLearnsObservation() throws {
        let (m, log) = try train({ ProbeObservation() }, updates: 60)
        let v = evaluate(m, [-1, 1]).values
        XCTAssertEqual(v[0], -1, accuracy: 0.05)
        XCTAssertEqual(v[1], 1, accuracy: 0.05)
        XCTAssertGreaterThan(log.explainedVariance, 0.95)
    }

    func testProbeTwoStepValueOfFirstStateIsGamma() throws {
        let (m, _) = try train({ ProbeTwoStep() }, updates: 80, gamma: 0.9)
        let v = evaluate(m, [0, 1]).values
        XCTAssertEqual(v[0], 0.9, accuracy: 0.05)
        XCTAssertEqual(v[1], 1, accuracy: 0.05)
    }

    func testProbeActionPolicyLearnsTheRewardedAction() throws {
        let (m, log) = try train({ ProbeAction() }, updates: 60)
        let e = evaluate(m, [0])
        XCTAssertGreaterThan(e.p1[0][0], 0.9)
        XCTAssertEqual(e.values[0], 1, accuracy: 0.2)
        XCTAssertGreaterThan(log.meanEpisodicReturn ?? 0, 0.7)
    }

    func testProbeObservationActionPolicyFollowsObservation() throws {
        let (m, _) = try train({ ProbeObservationAction() }, updates: 80)
        let e = evaluate(m, [-1, 1])
        XCTAssertLessThan(e.p1[0][0], 0.1)
        XCTAssertGreaterThan(e.p1[1][0], 0.9)
        XCTAssertEqual(e.values[0], 1, accuracy: 0.2)
        XCTAssertEqual(e.values[1], 1, accuracy: 0.2)
    }

    func testProbeMultiHeadLearnsEveryHeadAndLogsComponents() throws {
        let (m, log) = try train({ ProbeMultiHead() }, updates: 80)
        let e = evaluate(m, [-1, 1])
        XCTAssertLessThan(e.p1[0][0], 0.1)      // head 0 matches: 0 for -1
        XCTAssertGreaterThan(e.p1[0][1], 0.9)   // head 1 opposes: 1 for -1
        XCTAssertGreaterThan(e.p1[1][0], 0.9)
        XCTAssertLessThan(e.p1[1][1], 0.1)
        XCTAssertEqual(log.rewardComponents.map(\.name), ["head0", "head1"])
        for (_, mean) in log.rewardComponents { XCTAssertGreaterThan(mean, 0.4) }
    }

    /// A short CartPole run with the CleanRL defaults (40 updates, 20,480 steps; the full 500k
    /// runs are `hmst-bench ppo`, benchmarks/README.md): evaluation returns rise well above a
    /// random policy's (about 22), and the logs are finite.
    func testShortCartPoleRunLearns() throws {
        var c = PPOConfig()
        c.totalSteps = 40 * c.batchSize
        let t = try PPOTrainer(config: c) { _ in CartPole() }
        let before = try evaluatePolicy(t.model, episodes: 20, seed: 99) { _ in CartPole() }
        var logs = [PPOUpdateLog]()
        try t.train { logs.append($0); return true }
        XCTAssertEqual(logs.count, 40)
        XCTAssertEqual(logs.last?.learningRate ?? 0, c.learningRate / 40, accuracy: 1e-9)
        for l in logs {
            XCTAssertTrue(l.loss.isFinite && l.approxKL.isFinite && l.explainedVariance.isFinite)
            XCTAssertGreaterThanOrEqual(l.approxKL, 0)
        }
        let after = try evaluatePolicy(t.model, episodes: 20, seed: 99) { _ in CartPole() }
        let mean = { (r: [Float]) in r.reduce(0, +) / Float(r.count) }
        XCTAssertLessThan(mean(before), 40)
        XCTAssertGreaterThan(mean(after), 50, "\(after)")
    }

    /// The meta-controller's action shape: five binary heads learnt jointly.
    func testProbeFiveHeadsLearnsEveryHead() throws {
        let (m, log) = try train({ ProbeMultiHead(nHeads: 5) }, updates: 100)
        let e = evaluate(m, [-1, 1])
        for h in 0..<5 {
            let wantOne = h % 2 == 0   // at +1; the opposite at -1
            XCTAssertGreaterThan(wantOne ? e.p1[1][h] : 1 - e.p1[1][h], 0.9, "head \(h) at +1")
            XCTAssertGreaterThan(wantOne ? 1 - e.p1[0][h] : e.p1[0][h], 0.9, "head \(h) at -1")
        }
        XCTAssertEqual(log.rewardComponents.count, 5)
        XCTAssertGreaterThan(log.meanEpisodicReturn ?? 0, 0.85)
    }

    func testBadConfigAndMismatchedEnvironmentsAreErrors() {
        var c = PPOConfig()
        c.nMinibatches = 3   // 512 rows do not split into 3
        XCTAssertThrowsError(try PPOTrainer(config: c) { _ in CartPole() }) { XCTAssertTrue("\($0)".contains("split into 3 minibatches"), "\($0)") }
        for bad in [(Float.infinity, Float(0.01)), (Float(1e-3), Float(-0.1)), (Float(1e-3), Float.nan)] {
            var b = PPOConfig()
            (b.learningRate, b.entCoef) = bad
            XCTAssertThrowsError(try PPOTrainer(config: b) { _ in CartPole() }) { XCTAssertTrue("\($0)".contains("entCoef"), "\($0)") }
        }
        XCTAssertThrowsError(try ActorCritic(observationSize: 0, actionHeads: [2], seed: 1))
        struct Odd: Environment {
            var size: Int
            var observationSize: Int { size }
            var actionHeads: [Int] { [2] }
            mutating func reset(seed: UInt64?) -> [Float] { [Float](repeating: 0, count: size) }
            mutating func step(_ action: [Int]) -> EnvironmentStep {
                EnvironmentStep(observation: [Float](repeating: 0, count: size), reward: 0, terminated: true, truncated: false)
            }
        }
        XCTAssertThrowsError(try VectorEnvironment([Odd(size: 1), Odd(size: 2)]))
        // An environment whose observations are not of its declared size is an error, not a trap.
        struct Liar: Environment {
            var observationSize: Int { 2 }
            var actionHeads: [Int] { [2] }
            var t = 0
            mutating func reset(seed: UInt64?) -> [Float] { t = 0; return [0, 0] }
            mutating func step(_ action: [Int]) -> EnvironmentStep {
                t += 1
                return EnvironmentStep(observation: t < 3 ? [0, 0] : [0], reward: 0, terminated: false, truncated: false)
            }
        }
        var small = PPOConfig()
        small.nEnvs = 1
        small.nSteps = 4
        small.nMinibatches = 2
        small.totalSteps = 4
        let t = try? PPOTrainer(config: small) { _ in Liar() }
        XCTAssertNotNil(t)
        XCTAssertThrowsError(try t?.runUpdate()) { XCTAssertTrue("\($0)".contains("1 values, declared 2"), "\($0)") }
        XCTAssertThrowsError(try evaluatePolicy(t!.model, episodes: 2, seed: 0) { _ in Liar() })
    }
}

// ControllerTraining: the seed's Stage 3 (`hmst rl-train`). From a fact set (`hmst facts
// generate`) it builds a query mix in which the best action differs per query:
//   known         facts the model was taught (facts_known items); no memory holds them
//   semantic      held-out facts put in the semantic tier (among distractors)
//   episodic      held-out facts put in the episodic tier (among distractors)
//   unanswerable  held-out facts in no memory: the right response is "not sure"
// then a memory directory holding exactly that, the outcome table (every action of every
// query, OutcomeTable.swift), an entity-disjoint train/test split, PPO on the training queries
// and, on the test queries, the PPO policy against every fixed policy, random, a per-action
// reward regressor and the per-query best action.
import Foundation

public struct ControllerTrainingOptions {
    /// queries of each kind (held-out facts are split three ways, so each of those kinds gets
    /// at most a third of them)
    public var queriesPerKind = 100
    /// distractor facts added to the semantic tier / the episodic tier
    public var semanticDistractors = 2000
    public var episodicDistractors = 200
    /// share of entities whose queries are held out for the comparison
    public var testFraction = 0.3
    public var maxTokens = 12
    public var weights = RewardWeights()
    /// one 32-way action head over the joint decisions instead of five two-way heads
    /// (MetaController). Measured (README, "The controller"): with entropy 0.05 and 300k steps
    /// the joint head closed 56-58% of the gap to the per-query best (3 PPO seeds, one split),
    /// five heads 31-35%; with standardised observations 55% and 53% on two query mixes on
    /// average over 10 entity splits
    public var jointActions = true
    public var ppo: PPOConfig = {
        var c = PPOConfig()
        c.nEnvs = 8
        c.nSteps = 16
        c.nMinibatches = 4
        c.updateEpochs = 4
        c.learningRate = 1e-3
        c.entCoef = 0.05
        c.totalSteps = 300_000
        c.hidden = [64, 64]
        return c
    }()
    public var seed: UInt64 = 1
    /// PPO's own seed (network, sampling, episode order); nil: seed. Another value retrains on
    /// the same query mix and split, to see how much a result owes to the run.
    public var ppoSeed: UInt64? = nil
    /// the seed of the entity split into training and test queries; nil: seed
    public var splitSeed: UInt64? = nil
    /// standardise the state summary by the training queries' mean and spread
    /// (ObservationScaling, stored with the controller)
    public var scaleObservations = true
    public init() {}
}

/// One policy's mean reward on the test queries with a 95% interval.
public struct PolicyScore: Sendable {
    public var name: String
    public var mean: Double
    public var ci95: (Double, Double)
    public var accuracy: Double
    /// the per-query rewards, for paired comparisons
    public var rewards: [Double]
}

public struct ControllerReport {
    public var trainQueries = 0
    public var testQueries = 0
    public var kinds: [QueryKind: Int] = [:]
    public var scores: [PolicyScore] = []
    public var bestFixed = ""
    /// PPO minus the best fixed policy, paired over test queries, with its 95% interval
    public var ppoMinusBestFixed = (0.0, 0.0, 0.0)
    /// (PPO − best fixed) / (per-query best − best fixed)
    public var gapClosed = 0.0
    public var ppoLog: [PPOUpdateLog] = []
    public var tableSeconds = 0.0
    public var ppoSeconds = 0.0
    /// the PPO policy's choice counts per query kind on the test queries
    public var choices: [QueryKind: [String: Int]] = [:]
    /// the input standardisation the PPO policy was trained with (nil: raw state summaries)
    public var observationScaling: ObservationScaling?
}

/// PPO's results over several entity splits of one outcome table (ControllerTraining.acrossSplits).
public struct SplitSummary: Sendable {
    public var gapClosed: [Double] = []
    public var ppoMinusBestFixed: [Double] = []
    public var ppoMean: [Double] = []
    public var bestFixed: [String] = []
    public init() {}

    /// mean and sample standard deviation of a per-split figure
    public static func meanSD(_ x: [Double]) -> (mean: Double, sd: Double) {
        let m = ControllerTraining.mean(x)
        guard x.count > 1 else { return (m, 0) }
        return (m, (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)).squareRoot())
    }
}

public enum ControllerTraining {
    /// The query mix and the memory texts of each tier.
    public static func queryMix(factsDirectory dir: String, options o: ControllerTrainingOptions)
        throws -> (queries: [ControlQuery], semantic: [String], episodic: [String]) {
        let known = try EvalTask.load(path: dir + "/tasks/facts_known_gen.json").items
        let held = try EvalTask.load(path: dir + "/tasks/facts_heldout_gen.json").items
        var rng = RNG(seed: o.seed)
        func entity(_ i: EvalItem) -> String { i.metadata.first { $0.0 == "entity" }?.1.string ?? i.id }
        func shuffled<T>(_ a: [T]) -> [T] {
            var a = a
            for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            return a
        }
        // held-out facts (by memory text) go three ways; one question per fact
        var byFact: [String: EvalItem] = [:]
        var factOrder: [String] = []
        for i in held {
            guard let m = i.memory.first else { continue }
            if byFact[m] == nil { factOrder.append(m); byFact[m] = i }
        }
        factOrder = shuffled(factOrder)
        let n = min(o.queriesPerKind, factOrder.count / 3)
        guard n >= 4 else { throw HMSTError.invalidArgument("rl-train: \(dir) has \(factOrder.count) held-out facts; at least 12 are needed") }
        var queries: [ControlQuery] = []
        var semantic: [String] = [], episodic: [String] = []
        for (k, kind) in [QueryKind.semantic, .episodic, .unanswerable].enumerated() {
            for m in factOrder[(k * n)..<((k + 1) * n)] {
                let i = byFact[m]!
                queries.append(ControlQuery(text: i.prompt, answer: i.target.trimmingCharacters(in: .whitespaces), kind: kind, entity: entity(i)))
                if kind == .semantic { semantic.append(m) }
                if kind == .episodic { episodic.append(m) }
            }
        }
        var seenFact = Set<String>()
        for i in shuffled(known) where seenFact.count < o.queriesPerKind {
            guard seenFact.insert(i.memory.first ?? i.id).inserted else { continue }
            queries.append(ControlQuery(text: i.prompt, answer: i.target.trimmingCharacters(in: .whitespaces), kind: .known, entity: entity(i)))
        }
        // distractors: memory texts of no query of the mix
        let used = Set(byFact.keys).union(known.compactMap(\.memory.first))
        let pool = shuffled(try FileIO.readText(dir + "/memory.txt").lines().map(String.init).filter { !used.contains($0) })
        semantic += pool.prefix(o.semanticDistractors)
        episodic += pool.dropFirst(o.semanticDistractors).prefix(o.episodicDistractors)
        return (queries, shuffled(semantic), shuffled(episodic))
    }

    /// A new memory directory with those texts in each tier (replacing one there).
    public static func buildMemory(directory: String, model: LanguageModel, semantic: [String], episodic: [String],
                                   progress: (String, Int, Int) -> Void = { _, _, _ in }) throws -> MemoryStore {
        // the old memory goes under its lock (a server on it would save over the new one), the lock file stays
        let old = FileIO.isDirectory(directory) ? try MemoryDirectoryLock.acquire(directory) : nil
        if old == nil, FileIO.exists(directory) { try FileManager.default.removeItem(atPath: directory) }
        for name in FileIO.listDirectory(directory) where name != MemoryDirectoryLock.fileName {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        let store = try MemoryStore(directory: directory)
        withExtendedLifetime(old) {}
        var ec = EpisodicMemoryConfig()
        ec.maxEntries = max(ec.maxEntries, episodic.count + 1)
        let e = try store.episodic(creatingFor: model, config: ec)
        for (i, t) in episodic.enumerated() {
            _ = try e.add(text: t, model: model)
            if i % 100 == 0 { progress("episodic", i, episodic.count) }
        }
        let s = try store.semantic(creatingFor: model)
        for (i, t) in semantic.enumerated() {
            _ = try s.add(text: t, model: model)
            if i % 500 == 0 { progress("semantic", i, semantic.count) }
        }
        try store.save()
        return store
    }

    /// Query rows split so that no entity is in both parts.
    public static func split(_ queries: [ControlQuery], testFraction: Double, seed: UInt64) -> (train: [Int], test: [Int]) {
        var rng = RNG(seed: seed ^ 0x7e57)
        var entities = Array(Set(queries.map(\.entity))).sorted()
        for i in stride(from: entities.count - 1, to: 0, by: -1) { entities.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let test = Set(entities.prefix(Int((Double(entities.count) * testFraction).rounded())))
        let tr = queries.indices.filter { !test.contains(queries[$0].entity) }
        let te = queries.indices.filter { test.contains(queries[$0].entity) }
        return (tr, te)
    }

    /// PPO on the training rows, then every comparison on the test rows.
    public static func train(table: OutcomeTable, options o: ControllerTrainingOptions,
                             onUpdate: (PPOUpdateLog) -> Void = { _ in }) throws -> (ActorCritic, ControllerReport) {
        let (train, test) = split(table.queries, testFraction: o.testFraction, seed: o.splitSeed ?? o.seed)
        guard train.count >= 8, test.count >= 8 else {
            throw HMSTError.invalidArgument("rl-train: \(train.count) training and \(test.count) test queries; at least 8 of each are needed")
        }
        var report = ControllerReport()
        report.trainQueries = train.count
        report.testQueries = test.count
        for q in table.queries { report.kinds[q.kind, default: 0] += 1 }
        let t0 = Clock.nowMs()
        var cfg = o.ppo
        cfg.seed = o.ppoSeed ?? o.seed
        // PPO sees standardised observations, fitted on the training queries alone
        let scaling = o.scaleObservations ? try ObservationScaling.fit(train.map { table.observations[$0] }) : nil
        var scaled = table
        if let scaling { scaled.observations = table.observations.map(scaling.apply) }
        report.observationScaling = scaling
        let ppo = try PPOTrainer(config: cfg) { i in
            ControllerBandit(table: scaled, rows: train, weights: o.weights, seed: cfg.seed &+ UInt64(i), joint: o.jointActions)
        }
        try ppo.train { log in
            report.ppoLog.append(log)
            onUpdate(log)
            return true
        }
        report.ppoSeconds = (Clock.nowMs() - t0) / 1000
        let net = ppo.model

        let R = table.rewardMatrix(o.weights)
        func score(_ name: String, _ choose: (Int) -> Int) -> PolicyScore {
            let r = test.map { Double(R[$0][choose($0)]) }
            let acc = test.map { table.outcomes[$0][choose($0)].correct ? 1.0 : 0.0 }
            return PolicyScore(name: name, mean: mean(r), ci95: bootstrapCI(r, seed: o.seed), accuracy: mean(acc), rewards: r)
        }
        // fixed policies: every action, named ones first
        let named: [(String, EngineDecisions)] = [
            // never retrieving, with the other decisions off, is also "all off"
            ("never retrieve (all off)", EngineDecisions()), ("always semantic", EngineDecisions(semantic: true)),
            ("always episodic", EngineDecisions(episodic: true)), ("always both", EngineDecisions(episodic: true, semantic: true)),
            ("always verify", EngineDecisions(verify: true)), ("full (both + verify)", .full),
            ("all on", .allOn),
        ]
        var fixed: [PolicyScore] = []
        var namedIndices = Set<Int>()
        for (n, d) in named { fixed.append(score(n, { _ in d.index })); namedIndices.insert(d.index) }
        for a in 0..<EngineDecisions.count where !namedIndices.contains(a) {
            fixed.append(score("fixed " + EngineDecisions(index: a).summary, { _ in a }))
        }
        let best = fixed.max { $0.mean < $1.mean }!
        // random: the expected reward of a uniform action
        let randomR = test.map { q in Double(R[q].reduce(0, +)) / Double(EngineDecisions.count) }
        let random = PolicyScore(name: "random", mean: mean(randomR), ci95: bootstrapCI(randomR, seed: o.seed),
                                 accuracy: mean(test.map { q in Double(table.outcomes[q].filter(\.correct).count) / Double(EngineDecisions.count) }),
                                 rewards: randomR)
        // a per-action reward regressor: ridge regression of each action's reward on the state
        let regressor = try RewardRegressor(observations: train.map { table.observations[$0] }, rewards: train.map { R[$0] })
        let reg = score("reward regressor (argmax of 32 ridge fits)", { regressor.best(table.observations[$0]) })
        let oracle = score("per-query best action", { q in R[q].indices.max { R[q][$0] < R[q][$1] }! })
        let ppoChoice: (Int) -> Int = { q in
            let obs = scaled.observations[q]
            let (logits, _) = obs.withUnsafeBufferPointer { net.forward($0.baseAddress!, B: 1) }
            return MetaController.greedyIndex(logits, joint: o.jointActions)
        }
        let ppoScore = score("PPO controller", ppoChoice)
        report.scores = [ppoScore, oracle, reg, random] + fixed
        report.bestFixed = best.name
        let diff = zip(ppoScore.rewards, best.rewards).map { $0 - $1 }
        let ci = bootstrapCI(diff, seed: o.seed ^ 1)
        report.ppoMinusBestFixed = (mean(diff), ci.0, ci.1)
        let gap = oracle.mean - best.mean
        report.gapClosed = gap > 1e-9 ? (ppoScore.mean - best.mean) / gap : 0
        for q in test {
            let d = EngineDecisions(index: ppoChoice(q))
            report.choices[table.queries[q].kind, default: [:]][d.summary, default: 0] += 1
        }
        return (net, report)
    }

    /// PPO and the comparisons once per entity split: split i uses split seed and PPO seed
    /// (ppoSeed ?? seed) + i, so i = 0 is train(table:options:) itself. One test split of a few
    /// hundred queries moves the gap closed by several points; the spread over splits shows how much.
    /// onUpdate sees the first split's PPO updates.
    public static func acrossSplits(table: OutcomeTable, options o: ControllerTrainingOptions, splits: Int,
                                    onUpdate: (PPOUpdateLog) -> Void = { _ in },
                                    onSplit: (Int, ActorCritic, ControllerReport) throws -> Void) throws -> SplitSummary {
        guard splits >= 1 else { throw HMSTError.invalidArgument("splits \(splits) must be >= 1") }
        var summary = SplitSummary()
        for i in 0..<splits {
            var oi = o
            oi.splitSeed = (o.splitSeed ?? o.seed) &+ UInt64(i)
            oi.ppoSeed = (o.ppoSeed ?? o.seed) &+ UInt64(i)
            let (net, report) = try train(table: table, options: oi, onUpdate: i == 0 ? onUpdate : { _ in })
            summary.gapClosed.append(report.gapClosed)
            summary.ppoMinusBestFixed.append(report.ppoMinusBestFixed.0)
            summary.ppoMean.append(report.scores.first?.mean ?? .nan)
            summary.bestFixed.append(report.bestFixed)
            try onSplit(i, net, report)
        }
        return summary
    }

    static func mean(_ x: [Double]) -> Double { x.isEmpty ? 0 : x.reduce(0, +) / Double(x.count) }

    /// Percentile bootstrap (1,000 resamples) of the mean.
    static func bootstrapCI(_ x: [Double], seed: UInt64) -> (Double, Double) {
        guard x.count > 1 else { return (mean(x), mean(x)) }
        var rng = RNG(seed: seed ^ 0xB007)
        var means: [Double] = []
        for _ in 0..<1000 {
            var s = 0.0
            for _ in x.indices { s += x[Int(rng.next() % UInt64(x.count))] }
            means.append(s / Double(x.count))
        }
        means.sort()
        return (means[25], means[974])
    }
}

/// 32 ridge regressions (one per action) of reward on the observation; the policy takes the
/// action with the highest prediction.
public struct RewardRegressor {
    let weights: [[Double]]   // [action][features + 1]

    public init(observations: [[Float]], rewards: [[Float]], ridge: Double = 1e-2) throws {
        guard let D0 = observations.first?.count, !observations.isEmpty else { throw HMSTError.invalidArgument("regressor: no observations") }
        let D = D0 + 1
        // normal equations (XᵀX + λI) w = Xᵀy, shared XᵀX
        var xtx = [Double](repeating: 0, count: D * D)
        for o in observations {
            let x = o.map(Double.init) + [1]
            for i in 0..<D { for j in 0..<D { xtx[i * D + j] += x[i] * x[j] } }
        }
        for i in 0..<D { xtx[i * D + i] += ridge * Double(observations.count) }
        var w: [[Double]] = []
        for a in 0..<(rewards.first?.count ?? 0) {
            var xty = [Double](repeating: 0, count: D)
            for (o, r) in zip(observations, rewards) {
                let x = o.map(Double.init) + [1]
                for i in 0..<D { xty[i] += x[i] * Double(r[a]) }
            }
            w.append(try RewardRegressor.solve(xtx, xty, D))
        }
        weights = w
    }

    public func best(_ obs: [Float]) -> Int {
        let x = obs.map(Double.init) + [1]
        var bestA = 0, bestV = -Double.infinity
        for (a, w) in weights.enumerated() {
            let v = zip(w, x).reduce(0) { $0 + $1.0 * $1.1 }
            if v > bestV { bestV = v; bestA = a }
        }
        return bestA
    }

    /// Gaussian elimination with partial pivoting on a symmetric positive definite system.
    static func solve(_ A0: [Double], _ b0: [Double], _ n: Int) throws -> [Double] {
        var A = A0, b = b0
        for c in 0..<n {
            var p = c
            for r in (c + 1)..<max(n, c + 1) where abs(A[r * n + c]) > abs(A[p * n + c]) { p = r }
            guard abs(A[p * n + c]) > 1e-12 else { throw HMSTError.invalidArgument("regressor: singular system") }
            if p != c {
                for j in 0..<n { A.swapAt(c * n + j, p * n + j) }
                b.swapAt(c, p)
            }
            for r in (c + 1)..<max(n, c + 1) {
                let f = A[r * n + c] / A[c * n + c]
                if f == 0 { continue }
                for j in c..<n { A[r * n + j] -= f * A[c * n + j] }
                b[r] -= f * b[c]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = b[r]
            for j in (r + 1)..<max(n, r + 1) { s -= A[r * n + j] * x[j] }
            x[r] = s / A[r * n + r]
        }
        return x
    }
}

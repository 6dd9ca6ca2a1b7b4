// OutcomeTable: every action's outcome for every query of a query mix, found by running the
// engine with each of the 32 decisions from the same observation. PPO learns the controller on
// it (a contextual bandit: one decision per query), and the same table gives the baselines
// exactly: each fixed policy, a per-action reward regressor and the per-query best action.
//
// The seed's reward: R = 1.0·Accuracy − 0.3·Latency − 0.2·Compute + 0.5·Calibration, where
//   Accuracy     1 when the response is right: the expected answer for an answerable query,
//                an abstention ("not sure") for an unanswerable one;
//   Latency      the action's latency units over the mean of the full action's on the same
//                query class (CostAccount: counted work, not timed, so noise cannot flip it);
//   Compute      the same for FLOPs (model projections and dense retrieval);
//   Calibration  1 − (confidence − model answer correct)².
import Foundation

public enum QueryKind: String, Sendable, CaseIterable {
    /// the model learnt the fact; no memory holds it
    case known
    /// only the semantic tier holds the fact
    case semantic
    /// only the episodic tier holds the fact
    case episodic
    /// no memory holds the fact and the model cannot know it: the right response is "not sure"
    case unanswerable
}

public struct ControlQuery: Sendable, Equatable {
    public var text: String
    public var answer: String
    public var kind: QueryKind
    public var entity: String
    public init(text: String, answer: String, kind: QueryKind, entity: String) {
        self.text = text; self.answer = answer; self.kind = kind; self.entity = entity
    }
}

public struct RewardWeights: Sendable, Equatable {
    public var accuracy: Float = 1.0
    public var latency: Float = 0.3
    public var compute: Float = 0.2
    public var calibration: Float = 0.5
    public init() {}
    public static let componentNames = ["accuracy", "latency", "compute", "calibration"]
}

public struct ActionOutcome: Sendable, Equatable {
    /// the response is right (see the file comment)
    public var correct: Bool
    /// the model's answer, before any abstention, is the expected one
    public var modelCorrect: Bool
    public var abstained: Bool
    public var confidence: Float
    public var latencyUnits: Double
    public var flops: Double
    public var ms: Double
    public var answer: String
}

public struct OutcomeTable: Sendable {
    public var queries: [ControlQuery] = []
    public var observations: [[Float]] = []
    /// [query][action index 0..<32]
    public var outcomes: [[ActionOutcome]] = []
    public init() {}

    /// Runs the engine on every query with every action. reusing: the outcomes of an earlier
    /// table over the same queries, model and memory (readOutcomes); only the observations are
    /// computed again (a changed state summary costs one probe per query, not 32 runs).
    public static func build(engine: Engine, queries: [ControlQuery], maxTokens: Int = 12, reusing: [[ActionOutcome]]? = nil,
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> OutcomeTable {
        if let reusing, reusing.count != queries.count || reusing.contains(where: { $0.count != EngineDecisions.count }) {
            throw HMSTError.invalidArgument("the reused outcomes hold \(reusing.count) queries, the query mix \(queries.count) (each with \(EngineDecisions.count) actions)")
        }
        var t = OutcomeTable()
        for (i, q) in queries.enumerated() {
            var eq = EngineQuery(q.text)
            eq.maxTokens = maxTokens
            let ctx = try engine.observe(eq)
            if let reusing {
                t.queries.append(q)
                t.observations.append(engine.observation(ctx))
                t.outcomes.append(reusing[i])
                progress(i + 1, queries.count)
                continue
            }
            var row: [ActionOutcome] = []
            for a in 0..<EngineDecisions.count {
                let r = try engine.run(ctx, decisions: EngineDecisions(index: a))
                let modelCorrect = EvalMetrics.exactMatch(r.modelAnswer, q.answer)
                let correct = q.kind == .unanswerable ? r.abstained : (!r.abstained && modelCorrect)
                row.append(ActionOutcome(correct: correct, modelCorrect: modelCorrect, abstained: r.abstained,
                                         confidence: r.confidence, latencyUnits: r.cost.latencyUnits,
                                         flops: r.cost.totalFLOPs, ms: r.times.total, answer: r.answer))
            }
            t.queries.append(q)
            t.observations.append(engine.observation(ctx))
            t.outcomes.append(row)
            progress(i + 1, queries.count)
        }
        return t
    }

    /// The outcomes of outcomes.jsonl (EngineReport.outcomesJSONL), checked against the query
    /// mix they must have been built for: the same queries (text, answer, kind) in the same order.
    public static func readOutcomes(path: String, queries: [ControlQuery]) throws -> [[ActionOutcome]] {
        let t = try read(path: path)
        guard t.queries.count == queries.count else {
            throw HMSTError.invalidArgument("\(path): \(t.queries.count) queries, but the query mix has \(queries.count)")
        }
        for (n, (a, q)) in zip(t.queries, queries).enumerated() where a.text != q.text || a.answer != q.answer || a.kind != q.kind {
            throw HMSTError.invalidArgument("\(path): line \(n + 1) is not the query mix's query \(n + 1) (\(q.text)): built from other facts or options")
        }
        return t.outcomes
    }

    /// A whole table as outcomes.jsonl holds it: queries, observations and outcomes (PPO and the
    /// baselines can be rerun from it without a model: `hmst-bench controller`).
    public static func read(path: String) throws -> OutcomeTable {
        let lines = try FileIO.readText(path).lines()
        var t = OutcomeTable()
        for (n, line) in lines.enumerated() {
            let j: JSONValue
            do { j = try JSONValue.parse(String(line)) } catch let e as HMSTError {
                throw HMSTError.badFormat("\(path): line \(n + 1): not valid JSON (\(e.message))")
            }
            guard let text = j["query"]?.string, let answer = j["answer"]?.string, let kind = j["kind"]?.string.flatMap(QueryKind.init),
                  let entity = j["entity"]?.string else {
                throw HMSTError.badFormat("\(path): line \(n + 1) needs query, answer, kind (known, semantic, episodic, unanswerable) and entity")
            }
            let obs = j["observation"]?.array?.compactMap { $0.number.map(Float.init) } ?? []
            guard !obs.isEmpty, obs.count == j["observation"]?.array?.count, obs.allSatisfy(\.isFinite),
                  t.observations.first.map({ $0.count == obs.count }) ?? true else {
                throw HMSTError.badFormat("\(path): line \(n + 1) needs an observation of finite numbers, as long as the other lines'")
            }
            guard let rows = j["outcomes"]?.array, rows.count == EngineDecisions.count else {
                throw HMSTError.badFormat("\(path): line \(n + 1) needs \(EngineDecisions.count) outcomes")
            }
            t.queries.append(ControlQuery(text: text, answer: answer, kind: kind, entity: entity))
            t.observations.append(obs)
            t.outcomes.append(try rows.enumerated().map { a, o in
                guard o["action"]?.string == EngineDecisions(index: a).summary, let correct = o["correct"]?.bool,
                      let mc = o["model_correct"]?.bool, let ab = o["abstained"]?.bool, let conf = o["confidence"]?.number,
                      let lat = o["latency_units"]?.number, let fl = o["flops"]?.number, let ms = o["ms"]?.number,
                      let ans = o["answer"]?.string, conf.isFinite, lat.isFinite, fl.isFinite else {
                    throw HMSTError.badFormat("\(path): line \(n + 1), outcome \(a + 1) is malformed")
                }
                return ActionOutcome(correct: correct, modelCorrect: mc, abstained: ab, confidence: Float(conf), latencyUnits: lat,
                                     flops: fl, ms: ms, answer: ans)
            })
        }
        guard !t.queries.isEmpty else { throw HMSTError.badFormat("\(path) holds no outcomes") }
        return t
    }

    /// Mean latency and FLOPs of the full action per query class: the reward's units.
    public func normalisers() -> [QueryKind: (latency: Double, flops: Double)] {
        var out: [QueryKind: (latency: Double, flops: Double)] = [:]
        let full = EngineDecisions.full.index
        for k in QueryKind.allCases {
            let rows = queries.indices.filter { queries[$0].kind == k }
            guard !rows.isEmpty else { continue }
            let l = rows.reduce(0.0) { $0 + outcomes[$1][full].latencyUnits } / Double(rows.count)
            let f = rows.reduce(0.0) { $0 + outcomes[$1][full].flops } / Double(rows.count)
            out[k] = (max(l, 1e-9), max(f, 1e-9))
        }
        return out
    }

    /// The reward of action a on query q and its four parts (accuracy, latency, compute,
    /// calibration), unweighted.
    public func reward(_ q: Int, _ a: Int, _ w: RewardWeights, _ norm: [QueryKind: (latency: Double, flops: Double)]) -> (Float, [Float]) {
        let o = outcomes[q][a]
        let n = norm[queries[q].kind] ?? (1, 1)
        let acc: Float = o.correct ? 1 : 0
        let lat = Float(o.latencyUnits / n.latency)
        let comp = Float(o.flops / n.flops)
        let target: Float = o.modelCorrect ? 1 : 0
        let cal = 1 - (o.confidence - target) * (o.confidence - target)
        return (w.accuracy * acc - w.latency * lat - w.compute * comp + w.calibration * cal, [acc, lat, comp, cal])
    }

    /// rewards[q][a] for every query and action.
    public func rewardMatrix(_ w: RewardWeights) -> [[Float]] {
        let norm = normalisers()
        return queries.indices.map { q in (0..<EngineDecisions.count).map { reward(q, $0, w, norm).0 } }
    }
}

/// PPO's view of the table: one step per episode; the observation is a random query's state,
/// the action the five decisions (or, joint, one of the 32), the reward the table's.
public struct ControllerBandit: Environment {
    let observations: [[Float]]
    let rewards: [[Float]]
    let components: [[[Float]]]
    var rng: RNG
    var current = 0
    let joint: Bool

    public init(table: OutcomeTable, rows: [Int], weights: RewardWeights, seed: UInt64, joint: Bool = false) {
        self.joint = joint
        let norm = table.normalisers()
        observations = rows.map { table.observations[$0] }
        let scored = rows.map { q in (0..<EngineDecisions.count).map { table.reward(q, $0, weights, norm) } }
        rewards = scored.map { $0.map(\.0) }
        components = scored.map { $0.map(\.1) }
        rng = RNG(seed: seed)
    }

    public var observationSize: Int { StateSummary.size }
    public var actionHeads: [Int] { joint ? [EngineDecisions.count] : [2, 2, 2, 2, 2] }
    public var rewardComponentNames: [String] { RewardWeights.componentNames }

    public mutating func reset(seed: UInt64?) -> [Float] {
        if let seed { rng = RNG(seed: seed) }
        current = Int(rng.next() % UInt64(observations.count))
        return observations[current]
    }

    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        let a = joint ? action[0] : EngineDecisions(bits: action.map { $0 == 1 }).index
        let s = EnvironmentStep(observation: observations[current], reward: rewards[current][a], terminated: true,
                                truncated: false, rewardComponents: components[current][a])
        return s
    }
}

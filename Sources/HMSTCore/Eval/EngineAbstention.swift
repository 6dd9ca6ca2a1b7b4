// EngineAbstention: does the engine say "not sure" instead of inventing an answer once the
// gold memory is gone (issue 12: "with memory deleted, the engine's confidence drops and it says
// it is not sure ..., measured as the rate of confident wrong answers with and without the
// critic")? Measured through Engine.ask, with its verification, retry and abstention, rather
// than on train-critic's answer pool.
//
// Questions: a fact benchmark's generate_until items (`hmst facts generate`: tasks/facts_
// <task>_gen.json) whose gold memory entries are in a memory directory; by default only those
// of entities in the critic's test split (CriticTraining's entity hash with the critic's split
// options), so the critic was neither fitted nor calibrated on any of them. Conditions:
//   memory  present  the memory directory as given;
//           deleted  a copy of it with every selected question's gold (and linked) entries removed;
//   critic  on       the checkpoint's critic verifies: below the threshold the engine retries
//                    once with both memories at full compute, then abstains;
//           off      no verifier: the same decisions, confidence is the answer's geometric-mean
//                    token probability (uncalibrated), only the model's own "unknown" abstains;
// crossed with each policy (fixed decisions, or the checkpoint's controller).

import Foundation

/// One question of the measurement: the fact benchmark item, with its gold memory texts.
public struct AbstentionQuestion: Sendable, Equatable {
    public var task: String
    public var id: String
    public var entity: String
    public var text: String
    /// expected answer, SQuAD-normalised when compared
    public var target: String
    /// the item's gold memory texts (all in the memory directory)
    public var gold: [String]
    /// texts that give the answer away (EvalItem.linkedMemory): deleted with the gold ones
    public var linked: [String]
    public init(task: String, id: String, entity: String, text: String, target: String, gold: [String], linked: [String] = []) {
        self.task = task; self.id = id; self.entity = entity; self.text = text; self.target = target; self.gold = gold
        self.linked = linked
    }
}

public struct EngineAbstentionOptions: Sendable {
    /// fact benchmark tasks (facts_<name>_gen.json): held-out facts are memory-only
    public var tasks = ["heldout"]
    /// only entities in the critic's test split (else every entity)
    public var criticTestOnly = true
    /// the split options the critic was trained with (train-critic's defaults unless changed)
    public var criticSplit = CriticTrainingOptions()
    /// at most this many questions, an even stride over those selected (0: all)
    public var limit = 0
    public var maxTokens = 16
    public init() {}
}

/// What a selection kept and why it dropped the rest.
public struct AbstentionSelection: Sendable {
    public var questions: [AbstentionQuestion] = []
    public var items = 0
    /// items of entities outside the critic's test split
    public var otherSplit = 0
    /// items without gold memory, or with a gold text the memory does not hold
    public var notInMemory = 0
    public var entities: Int { Set(questions.map(\.entity)).count }
}

/// Counts for one condition (memory × critic × policy); rates are over every question asked.
public struct AbstentionTally: Sendable {
    public var memory: String
    public var critic: Bool
    public var policy: String
    public var threshold: Float
    public var n = 0
    public var correct = 0
    /// the engine said it is not sure (the critic below the threshold, the model's "unknown",
    /// or an empty answer)
    public var abstained = 0
    /// the model's own answer was "unknown" (Stage 2's curriculum abstention)
    public var saidUnknown = 0
    /// answered (not abstained) and wrong
    public var answeredWrong = 0
    /// answered, wrong, and with confidence >= threshold
    public var confidentWrong = 0
    public var retried = 0
    /// answers given (not abstained) and of those how many cite at least one memory
    public var answered = 0
    public var answeredWithCitations = 0
    /// questions one of whose citations is a gold memory text
    public var goldCited = 0
    public var criticCalls = 0
    /// sums of per-stage wall times, ms
    public var stageMs = StageTimes()
    public var confidences: [Double] = []
    public var labels: [Bool] = []

    public init(memory: String, critic: Bool, policy: String, threshold: Float) {
        self.memory = memory; self.critic = critic; self.policy = policy; self.threshold = threshold
    }

    public mutating func add(_ r: EngineResult, _ q: AbstentionQuestion) {
        n += 1
        let ok = r.matches(q.target)
        if ok { correct += 1 }
        if r.abstained { abstained += 1 } else { answered += 1 }
        if EvalMetrics.normalizeAnswer(r.modelAnswer) == "unknown" { saidUnknown += 1 }
        if !r.abstained && !ok {
            answeredWrong += 1
            if r.confidence >= threshold { confidentWrong += 1 }
        }
        if r.retried { retried += 1 }
        if !r.abstained && !r.citations.isEmpty { answeredWithCitations += 1 }
        let gold = Set(q.gold)
        if r.citations.contains(where: { gold.contains($0.text) }) { goldCited += 1 }
        criticCalls += r.cost.criticCalls
        stageMs.encode += r.times.encode
        stageMs.retrieve += r.times.retrieve
        stageMs.control += r.times.control
        stageMs.generate += r.times.generate
        stageMs.verify += r.times.verify
        stageMs.total += r.times.total
        confidences.append(Double(r.confidence))
        labels.append(ok)
    }

    func rate(_ k: Int, of d: Int) -> Double { d > 0 ? Double(k) / Double(d) : .nan }
    public var accuracy: Double { rate(correct, of: n) }
    public var abstentionRate: Double { rate(abstained, of: n) }
    public var answeredWrongRate: Double { rate(answeredWrong, of: n) }
    public var confidentWrongRate: Double { rate(confidentWrong, of: n) }
    public var citationRate: Double { rate(answeredWithCitations, of: answered) }
    public var goldCitedRate: Double { rate(goldCited, of: n) }
    public var meanConfidence: Double { n > 0 ? confidences.reduce(0, +) / Double(n) : .nan }
    /// how well the confidence ranks right above wrong answers (NaN if all or none are right)
    public var confidenceAUROC: Double { CriticMetrics.auroc(scores: confidences, labels: labels) }

    public func json() -> JSONValue {
        let d = Double(max(n, 1))
        return .object([
            ("memory", .string(memory)), ("critic", .bool(critic)), ("policy", .string(policy)),
            ("threshold", .number(Double(threshold))), ("questions", .number(Double(n))),
            ("accuracy", num(accuracy)), ("abstention_rate", num(abstentionRate)),
            ("answered_wrong_rate", num(answeredWrongRate)), ("confident_wrong_rate", num(confidentWrongRate)),
            ("said_unknown_rate", num(rate(saidUnknown, of: n))), ("retry_rate", num(rate(retried, of: n))),
            ("citations_rate", num(citationRate)), ("gold_cited_rate", num(goldCitedRate)),
            ("mean_confidence", num(meanConfidence)), ("confidence_auroc", num(confidenceAUROC)),
            ("critic_calls_per_question", num(Double(criticCalls) / d)),
            ("mean_ms", .object(zip(StageTimes.names, stageMs.values).map { ($0, .number(($1 / d * 100).rounded() / 100)) })),
        ])
    }
}

public enum EngineAbstention {
    /// The entity an item is about, as the critic's pool names it.
    public static func entity(_ item: EvalItem) -> String {
        item.metadata.first { $0.0 == "entity" }?.1.string ?? item.id
    }

    /// Whether an entity falls in the critic's test split (train-critic's entity hash).
    public static func inCriticTestSplit(_ entity: String, _ o: CriticTrainingOptions) -> Bool {
        CriticTraining.split(entity, o).0 == 2
    }

    /// The questions of tasks (name, items) whose gold memory texts are all in memoryTexts.
    public static func select(tasks: [(name: String, items: [EvalItem])], memoryTexts: Set<String>,
                              options o: EngineAbstentionOptions) -> AbstentionSelection {
        var s = AbstentionSelection()
        for (name, items) in tasks {
            for item in items {
                s.items += 1
                let e = entity(item)
                if o.criticTestOnly && !inCriticTestSplit(e, o.criticSplit) { s.otherSplit += 1; continue }
                guard !item.memory.isEmpty, item.memory.allSatisfy(memoryTexts.contains) else { s.notInMemory += 1; continue }
                s.questions.append(AbstentionQuestion(task: name, id: item.id, entity: e, text: item.prompt,
                                                      target: item.target, gold: item.memory, linked: item.linkedMemory))
            }
        }
        if o.limit > 0, s.questions.count > o.limit {
            let all = s.questions
            s.questions = (0..<o.limit).map { all[$0 * all.count / o.limit] }
        }
        return s
    }

    /// The selection from a `hmst facts generate` directory and a memory directory.
    public static func select(factsDirectory dir: String, memory: MemoryStore, options o: EngineAbstentionOptions) throws -> AbstentionSelection {
        guard !o.tasks.isEmpty else { throw HMSTError.invalidArgument("abstention: no tasks given (heldout, known)") }
        var tasks: [(String, [EvalItem])] = []
        for t in o.tasks {
            let path = "\(dir)/tasks/facts_\(t)_gen.json"
            guard FileIO.exists(path) else {
                throw HMSTError.notFound("\(path) does not exist: --facts must be a `hmst facts generate` directory and each task heldout or known")
            }
            let task = try EvalTask.load(path: path)
            guard task.outputType == .generateUntil else {
                throw HMSTError.invalidArgument("\(path) is \(task.outputType.rawValue); the engine answers generate_until questions")
            }
            tasks.append((task.name, task.items))
        }
        return select(tasks: tasks, memoryTexts: Set(try memory.allEntries().map(\.text)), options: o)
    }

    /// Throws unless deletedCopy(from:to:) may replace `to`: `from` is a directory and `to` is
    /// neither the memory, nor inside it, nor holds it. Front ends call it before writing anything.
    public static func checkCopy(from: String, to: String) throws {
        guard FileIO.isDirectory(from) else { throw HMSTError.notFound("memory directory \(from) does not exist") }
        if FileIO.lies(from, within: to) || FileIO.lies(to, within: from) || FileIO.lies(Paths.parent(to), within: from) {
            throw HMSTError.invalidArgument("the copy \(to) would replace or sit inside the memory \(from): choose another output")
        }
    }

    /// Copies the memory directory `from` to `to` (replacing what is there) and removes from the
    /// copy, in both tiers, every entry whose text is in texts; saves the copy. Returns the
    /// entries removed per tier. The original is only read.
    public static func deletedCopy(from: String, to: String, texts: Set<String>) throws -> (episodic: Int, semantic: Int) {
        try checkCopy(from: from, to: to)
        let fm = FileManager.default
        if FileIO.exists(to), !FileIO.isDirectory(to) { try fm.removeItem(atPath: to) }
        try FileIO.makeDirectories(to)
        // what is there goes under its lock (a process on it would save over the copy), which
        // stays, with its lock file, until the copy's store holds it
        let held = try MemoryDirectoryLock.acquire(to)
        do {
            for name in FileIO.listDirectory(to) where name != MemoryDirectoryLock.fileName { try fm.removeItem(atPath: to + "/" + name) }
            for name in FileIO.listDirectory(from) where name != MemoryDirectoryLock.fileName {
                try fm.copyItem(atPath: from + "/" + name, toPath: to + "/" + name)
            }
        } catch {
            throw HMSTError(.io, "copying the memory \(from) to \(to): \(error.localizedDescription)")
        }
        let store = try MemoryStore(directory: to, mustExist: true)
        withExtendedLifetime(held) {}
        var ids: [MemoryTier: [Int64]] = [:]
        for e in try store.allEntries() where texts.contains(e.text) { ids[e.tier, default: []].append(e.id) }
        var removed = (episodic: 0, semantic: 0)
        if let ep = ids[.episodic], !ep.isEmpty { removed.episodic = try store.remove(ids: ep, tier: .episodic).removed }
        if let se = ids[.semantic], !se.isEmpty { removed.semantic = try store.remove(ids: se, tier: .semantic).removed }
        try store.save()
        // read back: nothing deleted may remain
        let left = try MemoryStore(directory: to, readOnly: true).allEntries().filter { texts.contains($0.text) }
        guard left.isEmpty else { throw HMSTError(.internal, "the deleted copy \(to) still holds \(left.count) gold entries") }
        return removed
    }

    /// Asks every question under one condition: an engine over the given tiers with or without
    /// a verifier and the given policy. progress(done, total) after each question.
    public static func measure(model: LanguageModel, questions: [AbstentionQuestion], store: MemoryStore, memory: String,
                               verifier: EngineVerifier?, controller: EngineController?, policy: (name: String, policy: EnginePolicy),
                               engineOptions: EngineOptions, maxTokens: Int,
                               progress: (Int, Int) -> Void = { _, _ in }) throws -> AbstentionTally {
        if case .controller = policy.policy, controller == nil {
            throw HMSTError.invalidArgument("abstention: the policy \"\(policy.name)\" needs a trained controller, and none was given")
        }
        let engine = try Engine(model: model, semantic: store.semantic, episodic: store.episodic, verifier: verifier,
                                controller: controller, useModelParts: false, options: engineOptions)
        var t = AbstentionTally(memory: memory, critic: verifier != nil, policy: policy.name, threshold: engineOptions.confidenceThreshold)
        for (i, q) in questions.enumerated() {
            var eq = EngineQuery(q.text)
            eq.policy = policy.policy
            eq.maxTokens = maxTokens
            t.add(try engine.ask(eq), q)
            progress(i + 1, questions.count)
        }
        return t
    }
}

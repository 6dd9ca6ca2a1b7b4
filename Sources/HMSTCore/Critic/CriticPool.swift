// CriticPool: the (question, answer, correct) pool a critic is fitted on, built from the fact
// benchmark's generate_until tasks under the evaluation's memory conditions. Prompts, memories
// and retrieval are the Evaluator's (Eval/): each item is answered greedily as `hmst eval` would,
// marked correct by exact match of the normalised answer, put in a stratum, and observed by the
// critic (CriticObserver) with the retrieval scores the retriever gave. Also reads and writes the
// pool as JSONL, so a critic can be refitted without answering again.

public struct CriticPoolRequest: Sendable {
    /// generate_until task files (the fact benchmark's facts_*_gen.json)
    public var taskPaths: [String] = []
    public var memoryDirectory: String?
    public var conditions: [MemoryCondition] = [.off, .on, .oracle, .deleted]
    /// memories retrieved per item (on, deleted)
    public var k = 4
    public var retrieval = RetrievalOptions()
    public var tier: MemoryTier = .both
    /// first items of each task; 0 = all
    public var limit = 0
    public var nThreads = 0
    public var settings = CriticSettings()
    /// seed of the critic's samples (mixed with the row number)
    public var seed: UInt64 = 0

    public init() {}

    /// The fact benchmark's generation tasks in a `hmst facts generate` directory: the held-out
    /// and known questions, those present.
    public static func factTasks(directory dir: String) throws -> [String] {
        let paths = ["heldout", "known"].map { "\(dir)/tasks/facts_\($0)_gen.json" }.filter(FileIO.exists)
        guard !paths.isEmpty else {
            throw HMSTError.notFound("\(dir)/tasks has no facts_heldout_gen.json or facts_known_gen.json: not a `hmst facts generate` directory")
        }
        return paths
    }
}

extension Evaluator {
    /// The memories an item sees under a condition as hits with their retrieval scores (the
    /// retriever's ranking scores; none for off and oracle), and every score the retriever gave.
    /// The texts are exactly `memories(for:query:condition:)`'s.
    func memoryHits(for item: EvalItem, query: String, condition: MemoryCondition) throws -> (hits: [MemoryStoreHit], scores: [Float]) {
        switch condition {
        case .off: return ([], [])
        case .oracle: return (item.memory.map { MemoryStoreHit(tier: .semantic, id: -1, score: 0, text: $0) }, [])
        case .on, .deleted:
            let excluding: Set<String> = condition == .deleted ? item.deletedTexts : []
            if let r = retriever as? MemoryStoreRetriever {
                let hits = try r.retrieveHits(query: query, k: options.k, excluding: excluding)
                let h = hits.map { MemoryStoreHit(tier: $0.tier, id: $0.hit.id, score: $0.hit.score, text: $0.hit.text) }
                return (h, h.map(\.score).sorted(by: >))
            }
            let texts = try memories(for: item, query: query, condition: condition)
            return (texts.map { MemoryStoreHit(tier: .semantic, id: -1, score: 0, text: $0) }, [])
        }
    }

    /// Greedy answer of a prompt: its text (before the stop string) and its tokens (those that
    /// decode to the text; the text re-encoded when a token straddles the stop string).
    func answer(prompt: String, until: [String], maxTokens: Int) throws -> (text: String, tokens: [Int32]) {
        session.reset()
        var req = TextGenerationRequest()
        req.maxTokens = maxTokens
        req.sampling.temperature = 0
        req.stopStrings = until
        let r = try session.generate(prompt: Array(prompt.utf8), tokenizer: tokenizer, req)
        session.reset()
        var toks = r.tokens
        while !toks.isEmpty, try tokenizer.decode(toks).count > r.text.count { toks.removeLast() }
        if try tokenizer.decode(toks) != r.text { toks = encode(r.string) }
        return (r.string, toks)
    }
}

public enum CriticPool {
    /// The stratum of an answer: by the memories in its prompt, and for none by whether the
    /// question is about a fact the model was trained on (a task whose name says "known").
    public static func stratum(task: String, memories: [String], gold: [String]) -> CriticStratum {
        if memories.isEmpty { return task.contains("known") ? .knownNoMemory : .noMemory }
        let g = Set(gold)
        return memories.contains(where: g.contains) ? .goldRetrieved : .distractorsOnly
    }

    /// Answers every item of the tasks under every condition and observes each answer.
    /// progress(done, total) is called after each answer.
    public static func build(model: LanguageModel, _ req: CriticPoolRequest,
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> [CriticPoolRow] {
        guard !req.taskPaths.isEmpty else { throw HMSTError.invalidArgument("critic pool: no task files given") }
        try req.settings.validate()
        let tasks = try req.taskPaths.map { try EvalTask.load(path: $0, limit: req.limit) }
        for t in tasks where t.outputType != .generateUntil {
            throw HMSTError.invalidArgument("critic pool: task \(t.name) is \(t.outputType.rawValue); the critic judges generated answers (generate_until)")
        }
        var options = EvalOptions()
        options.conditions = req.conditions
        options.k = req.k
        options.nThreads = req.nThreads
        var retriever: Retriever?
        if req.conditions.contains(where: \.retrieves) {
            guard let dir = req.memoryDirectory else {
                throw HMSTError.invalidArgument("critic pool: conditions on and deleted need a memory directory")
            }
            retriever = try MemoryStoreRetriever(store: try MemoryStore(directory: dir, readOnly: true), model: model,
                                                 tier: req.tier, options: req.retrieval)
        }
        let ev = try Evaluator(model: model, retriever: retriever, options: options)
        let total = tasks.reduce(0) { $0 + $1.items.count } * req.conditions.count
        var rows: [CriticPoolRow] = []
        rows.reserveCapacity(total)
        for task in tasks {
            for item in task.items {
                let entity = item.metadata.first { $0.0 == "entity" }?.1.string ?? item.id
                for c in req.conditions {
                    do {
                        let (hits, scores) = try ev.memoryHits(for: item, query: item.prompt, condition: c)
                        let mems = hits.map(\.text)
                        let prompt = ev.prompt(memories: mems, question: item.prompt)
                        let (text, answerTokens) = try ev.answer(prompt: prompt, until: task.until, maxTokens: task.maxGenTokens)
                        let evidence = CriticEvidence(promptTokens: ev.encode(prompt), answerTokens: answerTokens, answerText: text,
                                                      memories: hits, retrievalScores: scores)
                        let obs = try CriticObserver.observe(model: model, evidence: evidence, settings: req.settings,
                                                             seed: req.seed &+ UInt64(rows.count) &* 0xD1B5_4A32_D192_ED03)
                        rows.append(CriticPoolRow(task: task.name, itemId: item.id, entity: entity, condition: c.rawValue,
                                                  stratum: stratum(task: task.name, memories: mems, gold: item.memory),
                                                  correct: EvalMetrics.exactMatch(text, item.target), answer: text,
                                                  target: item.target, observation: obs))
                    } catch let e as HMSTError {
                        throw HMSTError(e.status, "task \(task.name), item \(item.id), condition \(c.rawValue): \(e.message)")
                    }
                    progress(rows.count, total)
                }
            }
        }
        return rows
    }

    // ---- the pool as JSONL: one row per line, features by name, the hidden state as a list

    public static func jsonl(_ rows: [CriticPoolRow]) -> String {
        var out = ""
        for r in rows {
            let f = r.observation.features.vector
            let v: JSONValue = .object([
                ("task", .string(r.task)), ("id", .string(r.itemId)), ("entity", .string(r.entity)),
                ("condition", .string(r.condition)), ("stratum", .string(r.stratum.rawValue)), ("correct", .bool(r.correct)),
                ("answer", .string(r.answer)), ("target", .string(r.target)),
                ("features", .object(zip(CriticFeatures.names, f).map { ($0, .number(Double($1))) })),
                ("cost", .object([("tokens_encoded", .number(Double(r.observation.cost.tokensEncoded))),
                                  ("tokens_sampled", .number(Double(r.observation.cost.tokensSampled))),
                                  ("forward_passes", .number(Double(r.observation.cost.forwardPasses)))])),
                ("hidden", .array(r.observation.hidden.map { .number(Double($0)) })),
            ])
            out += v.serialized + "\n"
        }
        return out
    }

    /// Rows from JSONL written by `jsonl`; errors name the file, line and field.
    public static func read(path: String) throws -> [CriticPoolRow] {
        let bytes = try FileIO.readAll(path)
        var rows: [CriticPoolRow] = []
        var lineNo = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(path) line \(lineNo): \(m)") }
            let v: JSONValue
            do { v = try JSONValue.parse(bytes: Array(line)) } catch let e as HMSTError { throw bad("not valid JSON: \(e.message)") }
            func str(_ k: String) throws -> String {
                guard let s = v[k]?.string else { throw bad("missing string \"\(k)\"") }
                return s
            }
            guard let correct = v["correct"]?.bool else { throw bad("missing boolean \"correct\"") }
            guard let stratum = CriticStratum(rawValue: try str("stratum")) else {
                throw bad("unknown stratum (expected " + CriticStratum.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            guard let fo = v["features"] else { throw bad("missing \"features\"") }
            var fv: [Float] = []
            for name in CriticFeatures.names {
                guard let x = fo[name]?.number, x.isFinite else { throw bad("features: missing or non-finite \"\(name)\"") }
                fv.append(Float(x))
            }
            guard let h = v["hidden"]?.array else { throw bad("missing \"hidden\" list") }
            var hidden: [Float] = []
            hidden.reserveCapacity(h.count)
            for x in h {
                guard let n = x.number, n.isFinite else { throw bad("\"hidden\" holds a non-number") }
                hidden.append(Float(n))
            }
            var cost = CriticCost()
            cost.tokensEncoded = v["cost"]?["tokens_encoded"]?.int ?? 0
            cost.tokensSampled = v["cost"]?["tokens_sampled"]?.int ?? 0
            cost.forwardPasses = v["cost"]?["forward_passes"]?.int ?? 0
            let obs = CriticObservation(features: try CriticFeatures(vector: fv), hidden: hidden, cost: cost)
            rows.append(CriticPoolRow(task: try str("task"), itemId: try str("id"), entity: try str("entity"),
                                      condition: try str("condition"), stratum: stratum, correct: correct,
                                      answer: try str("answer"), target: try str("target"), observation: obs))
        }
        return rows
    }
}

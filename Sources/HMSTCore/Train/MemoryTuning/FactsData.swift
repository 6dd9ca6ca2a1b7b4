// FactsData: Stage 2's training material as `hmst facts generate` writes it: DIR/facts.jsonl
// (one fact per line: id, entity, relation, value, text, split, source) and DIR/train.jsonl
// (questions about them: id, fact_id, split, relation, template, question, answer). Splits:
// train_known (in the pre-training text, so answerable without memory), train_memory_only
// (only ever told through memory), heldout (kept for evaluation) and distractor.
// FactsFixture writes a small synthetic set in the same layout, for tests.

public struct TuningFact: Sendable, Equatable {
    public var id: String
    public var entity: String
    public var relation: String
    public var value: String
    /// the sentence stored in memory
    public var text: String
    public var split: String
    public var source: String
}

public struct FactQuestion: Sendable, Equatable {
    public var id: String
    public var factId: String
    public var split: String
    public var relation: String
    public var template: String
    public var question: String
    /// without a leading space
    public var answer: String
}

public struct FactsCorpus: Sendable {
    /// A 64-bit hash of every fact and question (ids, splits, texts, answers), for the ranks of
    /// a data-parallel job to check they train on the same corpus.
    public var fingerprint: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ s: String) {
            for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0xff) &* 0x100_0000_01b3   // a separator, so "ab"+"c" differs from "a"+"bc"
        }
        for f in facts { for s in [f.id, f.entity, f.relation, f.value, f.text, f.split, f.source] { mix(s) } }
        for q in questions { for s in [q.id, q.factId, q.split, q.relation, q.template, q.question, q.answer] { mix(s) } }
        return h
    }

    public static let splits = ["train_known", "train_memory_only", "heldout", "distractor"]
    public let facts: [TuningFact]
    public let questions: [FactQuestion]
    /// fact id -> index in facts
    public let factIndex: [String: Int]

    public init(facts: [TuningFact], questions: [FactQuestion]) throws {
        var index: [String: Int] = [:]
        for (i, f) in facts.enumerated() {
            guard index[f.id] == nil else { throw HMSTError.badFormat("facts: id \"\(f.id)\" appears twice") }
            index[f.id] = i
        }
        for q in questions where index[q.factId] == nil {
            throw HMSTError.badFormat("question \"\(q.id)\" refers to fact \"\(q.factId)\", which facts.jsonl does not have")
        }
        self.facts = facts
        self.questions = questions
        factIndex = index
    }

    /// Reads DIR/facts.jsonl and DIR/train.jsonl.
    public init(directory: String) throws {
        let factsPath = directory + "/facts.jsonl", questionsPath = directory + "/train.jsonl"
        for p in [factsPath, questionsPath] where !FileIO.exists(p) {
            throw HMSTError.invalidArgument("\(p) does not exist (write it with `hmst facts generate --output \(directory)`)")
        }
        let facts = try FactsCorpus.readFacts(factsPath)
        var questions = try FactsCorpus.readLines(questionsPath, nonEmpty: ["question", "answer"]) { o, field in
            FactQuestion(id: try field("id"), factId: try field("fact_id"), split: try field("split"),
                         relation: (o["relation"]?.string) ?? "", template: (o["template"]?.string) ?? "",
                         question: try field("question"), answer: try field("answer"))
        }
        // `hmst facts generate` keeps held-out questions out of train.jsonl, in the evaluation
        // items (every template, the held-out ones included): read them from there
        let heldoutItems = directory + "/tasks/facts_heldout_items.jsonl"
        if !questions.contains(where: { $0.split == "heldout" }), FileIO.exists(heldoutItems) {
            questions += try FactsCorpus.readLines(heldoutItems, nonEmpty: ["prompt", "target"]) { o, field in
                let target = try field("target")
                return FactQuestion(id: try field("id"), factId: try field("fact_id"), split: "heldout",
                                    relation: (o["relation"]?.string) ?? "", template: (o["template"]?.string) ?? "",
                                    question: try field("prompt"), answer: String(target.drop(while: { $0 == " " })))
            }
        }
        try self.init(facts: facts, questions: questions)
    }

    /// The facts of a facts.jsonl alone (what `hmst facts reading --exclude` needs).
    public static func readFacts(_ path: String) throws -> [TuningFact] {
        guard FileIO.exists(path) else { throw HMSTError.invalidArgument("\(path) does not exist (write it with `hmst facts generate`)") }
        return try readLines(path) { o, field in
            TuningFact(id: try field("id"), entity: try field("entity"), relation: try field("relation"), value: try field("value"),
                       text: try field("text"), split: try field("split"), source: (o["source"]?.string) ?? "")
        }
    }

    /// The fact a question asks about.
    public func fact(of q: FactQuestion) -> TuningFact { facts[factIndex[q.factId] ?? 0] }

    public func questions(in split: String) -> [FactQuestion] { questions.filter { $0.split == split } }

    /// One JSON object per non-empty line; field(name) reads a required string (or integer).
    /// nonEmpty: fields that must hold more than spaces (a question without an answer trains
    /// and scores nothing).
    static func readLines<T>(_ path: String, nonEmpty: Set<String> = [], _ make: (JSONValue, (String) throws -> String) throws -> T) throws -> [T] {
        let text = try FileIO.readText(path, regularOnly: true)   // a FIFO there hung the run
        var out: [T] = []
        for (n, line) in text.lines(omittingEmpty: false).enumerated() {
            let l = line.trimmingSpaces
            if l.isEmpty { continue }
            let o: JSONValue
            do { o = try JSONValue.parse(String(l)) } catch let e as HMSTError {
                throw HMSTError.badFormat("\(path):\(n + 1): not valid JSON (\(e.message))")
            }
            guard o.object != nil else { throw HMSTError.badFormat("\(path):\(n + 1): not a JSON object") }
            out.append(try make(o) { key in
                if let s = o[key]?.string {
                    if nonEmpty.contains(key) && s[...].trimmingSpaces.isEmpty { throw HMSTError.badFormat("\(path):\(n + 1): \"\(key)\" is empty") }
                    return s
                }
                if let i = o[key]?.int { return String(i) }   // integer ids read as their decimal text
                throw HMSTError.badFormat("\(path):\(n + 1): missing string field \"\(key)\"")
            })
        }
        return out
    }
}


/// A small synthetic fact set in the layout of `hmst facts generate`, for tests and quick runs:
/// invented names (so no pre-trained model knows them) with a few relations each.
public enum FactsFixture {
    static let syllables = ["ka", "lo", "mir", "tas", "ven", "dor", "sil", "bra", "nu", "fel", "gor", "ri", "zan", "pe", "tho", "qui"]
    static let relations: [(name: String, values: [String], fact: String, question: String)] = [
        ("city", ["Paris", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Rome", "Tokyo"], "{e} lives in {v}.", "Where does {e} live?"),
        ("color", ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"], "The favorite color of {e} is {v}.",
         "What is the favorite color of {e}?"),
        ("pet", ["cat", "dog", "horse", "parrot", "turtle", "rabbit", "goat", "snake"], "{e} owns a {v}.", "What animal does {e} own?"),
        ("job", ["baker", "pilot", "doctor", "farmer", "painter", "teacher", "sailor", "judge"], "{e} works as a {v}.",
         "What is the job of {e}?"),
    ]

    /// Facts for nEntities invented people, one per relation each; entities are assigned to
    /// splits in turn (train_known, train_memory_only, heldout, distractor) by index.
    public static func make(entities nEntities: Int, seed: UInt64) -> (facts: [TuningFact], questions: [FactQuestion]) {
        var rng = RNG(seed: seed)
        var facts: [TuningFact] = [], questions: [FactQuestion] = []
        var names = Set<String>()
        for e in 0..<nEntities {
            var name = ""
            repeat {
                func word() -> String {
                    let n = 2 + Int(rng.next() % 2)
                    let w = (0..<n).map { _ in syllables[Int(rng.next() % UInt64(syllables.count))] }.joined()
                    return w.prefix(1).uppercased() + w.dropFirst()
                }
                name = word() + " " + word()
            } while names.contains(name)
            names.insert(name)
            let split = ["train_known", "train_memory_only", "heldout", "distractor"][e % 4]
            for r in relations {
                let v = r.values[Int(rng.next() % UInt64(r.values.count))]
                let id = "f\(facts.count)"
                facts.append(TuningFact(id: id, entity: name, relation: r.name, value: v,
                                  text: r.fact.replacingAll("{e}", name).replacingAll("{v}", v), split: split, source: "fixture"))
                if split != "distractor" {
                    questions.append(FactQuestion(id: "q\(questions.count)", factId: id, split: split, relation: r.name, template: r.question,
                                                  question: r.question.replacingAll("{e}", name), answer: v))
                }
            }
        }
        return (facts, questions)
    }

    /// Writes DIR/facts.jsonl and DIR/train.jsonl.
    public static func write(directory: String, entities: Int, seed: UInt64) throws {
        let (facts, questions) = make(entities: entities, seed: seed)
        try FileIO.makeDirectories(directory)
        var a = ""
        for f in facts {
            let w = JSONWriter()
            w.object {
                w.field("id", f.id); w.field("entity", f.entity); w.field("relation", f.relation); w.field("value", f.value)
                w.field("text", f.text); w.field("split", f.split); w.field("source", f.source)
            }
            a += w.output + "\n"
        }
        try FileIO.writeAtomically(directory + "/facts.jsonl", text: a)
        var b = ""
        for q in questions {
            let w = JSONWriter()
            w.object {
                w.field("id", q.id); w.field("fact_id", q.factId); w.field("split", q.split); w.field("relation", q.relation)
                w.field("template", q.template); w.field("question", q.question); w.field("answer", q.answer)
            }
            b += w.output + "\n"
        }
        try FileIO.writeAtomically(directory + "/train.jsonl", text: b)
    }
}

extension String {
    /// Every occurrence of `target` replaced (without Foundation).
    func replacingAll(_ target: String, _ with: String) -> String {
        guard !target.isEmpty else { return self }
        var out = "", rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound] + with
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

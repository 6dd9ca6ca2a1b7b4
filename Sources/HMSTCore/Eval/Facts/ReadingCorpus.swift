// ReadingCorpus: pre-training documents that teach a model to read facts from its own context,
// before Stage 2 teaches it the memory markers. Each document lists a few facts about invented
// lands in MemoryPrompt's plain layout ("Fact: ..." lines), then asks about some of them
// ("Question: ...\nAnswer: value"), so the answer can only come from a line above it.
//
// Why it exists: a micro model pre-trained on ordinary text for CPU minutes has no induction
// (it cannot continue "A B C ... A B" with C), and Stage 2 alone cannot build that circuit in
// its budget. Text that repeats facts is how larger corpora teach it; this is that text, made
// so that it never contains the fact benchmark's entities or its held-out question templates.
//
// Optional copy documents ("List: ..." then "Again: ..." with the same invented words) are the
// plainest induction signal; they are shuffled in among the reading documents.
//
// Deterministic: the same config gives the same documents. The lands are drawn by the fact
// benchmark's own generator (FactBenchmark.inventEntity), avoiding every name in `excluded`.

public struct ReadingCorpusConfig: Sendable, Equatable {
    public var seed: UInt64 = 101
    public var documents = 7_000
    /// Invented lands to draw facts from (each has every synthetic relation, so 8 facts a land);
    /// a pool far larger than a model can memorise keeps reading cheaper than recalling.
    public var entities = 20_000
    public var factsPerDocument = 3...8
    public var questionsPerDocument = 1...4
    /// Copy documents mixed in ("List: w1 ... wn" then "Again: w1 ... wn", invented words): the
    /// plainest text from which induction (continuing a repeat) can be learnt.
    public var copyDocuments = 0
    public var wordsPerCopyDocument = 6...14
    /// Names (entities and values) that must never appear, such as the benchmark's.
    public var excluded: [String] = []

    public init() {}

    static let maxCount = 10_000_000

    func validate() throws {
        guard documents > 0 else { throw HMSTError.invalidArgument("the reading corpus needs at least one document, not \(documents)") }
        // the corpus is built in memory (a document is about 1 KB): counts beyond these are a typo
        guard documents <= ReadingCorpusConfig.maxCount, copyDocuments <= ReadingCorpusConfig.maxCount,
              entities <= ReadingCorpusConfig.maxCount, wordsPerCopyDocument.upperBound <= 1 << 16 else {
            throw HMSTError.invalidArgument("documents, copy documents and entities must each be at most \(ReadingCorpusConfig.maxCount), words per copy document at most 65536")
        }
        guard copyDocuments >= 0, wordsPerCopyDocument.lowerBound >= 1 else {
            throw HMSTError.invalidArgument("copy documents: a count of at least 0 (not \(copyDocuments)) and at least one word each")
        }
        guard entities > 0 else { throw HMSTError.invalidArgument("the reading corpus needs at least one entity, not \(entities)") }
        guard factsPerDocument.lowerBound >= 1, questionsPerDocument.lowerBound >= 1,
              questionsPerDocument.upperBound <= factsPerDocument.upperBound else {
            throw HMSTError.invalidArgument("a reading document needs at least one fact and one question, and no more questions than facts")
        }
        guard entities * FactRelation.synthetic.count >= factsPerDocument.upperBound else {
            throw HMSTError.invalidArgument("\(entities) entities give fewer facts than one document needs (\(factsPerDocument.upperBound))")
        }
    }
}

public enum ReadingCorpus {
    /// The separator `hmst train --doc-separator %` splits on (the fortune files' own).
    public static let separator = "\n%\n"

    enum Stream: UInt64 { case names = 11, documents, copies, order }

    public static func documents(_ config: ReadingCorpusConfig) throws -> [String] {
        try config.validate()
        var names = SyllableNames(random: FactRandom(seed: config.seed, stream: Stream.names.rawValue),
                                  taken: config.excluded + FactBenchmark.colours + FactBenchmark.animals)
        var facts = [(entity: String, relation: FactRelation, value: String)]()
        facts.reserveCapacity(config.entities * FactRelation.synthetic.count)
        for _ in 0..<config.entities {
            let e = try FactBenchmark.inventEntity(&names)
            for (r, v) in e.facts { facts.append((e.name, r, v)) }
        }

        var random = FactRandom(seed: config.seed, stream: Stream.documents.rawValue)
        var out = [String]()
        out.reserveCapacity(config.documents)
        for _ in 0..<config.documents {
            let n = config.factsPerDocument.lowerBound + random.below(config.factsPerDocument.count)
            var chosen = [Int]()
            var seen = Set<Int>()
            while chosen.count < n {
                let f = random.below(facts.count)
                if seen.insert(f).inserted { chosen.append(f) }
            }
            let q = min(n, config.questionsPerDocument.lowerBound + random.below(config.questionsPerDocument.count))
            var asked = chosen
            random.shuffle(&asked)
            var qa = [(question: String, answer: String)]()
            for f in asked.prefix(q) {
                let fact = facts[f]
                let template = random.pick(fact.relation.trainingTemplates)
                qa.append((template.question(entity: fact.entity), fact.value))
            }
            out.append(MemoryPrompt.plainDocument(memories: chosen.map { facts[$0].relation.text(entity: facts[$0].entity, value: facts[$0].value) },
                                                  questionsAndAnswers: qa))
        }
        guard config.copyDocuments > 0 else { return out }
        names.random = FactRandom(seed: config.seed, stream: Stream.copies.rawValue)
        for _ in 0..<config.copyDocuments {
            let n = config.wordsPerCopyDocument.lowerBound + names.random.below(config.wordsPerCopyDocument.count)
            var words = [String]()
            while words.count < n {
                let w = names.word()   // any word, repeats allowed, but never a taken name (the benchmark's)
                if !names.taken.contains(w.lowercased()) { words.append(names.random.chance(0.5) ? w : w.lowercased()) }
            }
            let line = words.joined(separator: " ")
            out.append("List: " + line + "\nAgain: " + line)
        }
        var order = FactRandom(seed: config.seed, stream: Stream.order.rawValue)
        order.shuffle(&out)
        return out
    }
}

// The fact benchmark's records: facts, the Stage 2 training items drawn from them and the
// evaluation items the harness scores. Generation is FactBenchmark.swift; files are FactSetFiles.swift.

/// Which part of the benchmark an entity (and with it every fact about it) belongs to. The split
/// is by entity, so no entity is ever both trained on and held out.
public enum FactSplit: String, Sendable, CaseIterable {
    /// Stage 2 trains on these with the fact in memory and without it (the model may learn them
    /// parametrically).
    case trainKnown = "train_known"
    /// Stage 2 trains on these only with the fact in memory; without it the target is
    /// FactBenchmark.unknownAnswer, so the model learns to say so when it lacks a fact.
    case trainMemoryOnly = "train_memory_only"
    /// Never seen in training; present only in memory at evaluation time.
    case heldout
    /// Filler for the semantic memory during evaluation (retrieval at scale); never asked.
    case distractor
}

/// Where a fact comes from: Debian's miscfiles countries table, or the seeded invention.
public enum FactSource: String, Sendable {
    case miscfiles
    case synthetic
}

/// One (entity, relation, value) triple and the sentence that states it.
public struct Fact: Sendable, Equatable {
    public let id: String
    public let entity: String
    public let relation: String
    public let value: String        // the short answer, 1-3 words
    public let text: String         // "The capital of Velmora is Tarsk."
    public let split: FactSplit
    public let source: FactSource
}

/// One question about a fact for Stage 2 training; only non-held-out templates appear.
public struct FactTrainItem: Sendable, Equatable {
    public let id: String
    public let factID: String
    public let split: FactSplit     // trainKnown or trainMemoryOnly
    public let relation: String
    public let template: String     // template id, "capital/0"
    public let question: String
    public let answer: String       // no leading space; consumers add it
    public let memory: String       // the fact's text, for the with-memory variant
}

/// One evaluation question in the harness's item format.
public struct FactEvalItem: Sendable, Equatable {
    public let id: String
    public let factID: String
    public let entity: String
    public let relation: String
    public let template: String
    public let heldoutTemplate: Bool
    public let prompt: String       // the bare question; the harness wraps it with MemoryPrompt
    public let target: String       // " Tarsk": leading space, as the model continues "<a>"
    public let choices: [String]    // the target and same-relation alternatives, each with a leading space
    public let gold: Int            // index of the target in choices
    public let memory: [String]     // the gold memory texts (oracle and deleted conditions)
    public var linkedMemory: [String] = []  // texts of the entity's facts that give the answer away (deleted removes them)
}

/// Where the real facts came from, or why there are none.
public struct RealFactsReport: Sendable, Equatable {
    public let path: String?        // the countries table read; nil when none was
    public let countries: Int       // rows parsed
    public let entities: Int        // rows that gave at least one fact
    public let note: String?        // set when the table was not used: why
}

/// Everything one generation produces; write(to:) lays it out as files.
public struct FactSet: Sendable {
    public let config: FactBenchmarkConfig
    public let relations: [FactRelation]
    public let facts: [Fact]                 // real facts first, then synthetic, then distractors
    public let trainItems: [FactTrainItem]   // in fact order, then template order
    public let heldoutItems: [FactEvalItem]  // over heldout facts, every template; seeded order
    public let knownItems: [FactEvalItem]    // the same over train_known facts
    public let memoryTexts: [String]         // heldout + train + distractor texts, seeded order
    public let real: RealFactsReport

    /// The texts of the heldout facts, in fact order.
    public var heldoutMemoryTexts: [String] { facts.filter { $0.split == .heldout }.map(\.text) }

    public func facts(in split: FactSplit) -> [Fact] { facts.filter { $0.split == split } }

    /// Distinct entities of a split, in fact order.
    public func entities(in split: FactSplit) -> [String] {
        var seen = Set<String>(), out = [String]()
        for f in facts where f.split == split && seen.insert(f.entity).inserted { out.append(f.entity) }
        return out
    }
}

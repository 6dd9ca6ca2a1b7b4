// QueryContext: one query's working state: the handles it may use (model, tokenizer, memory
// tiers, verifier) and the trace of what it did (stages, cost, events), so each stage of the
// engine is a function of the context rather than of the engine's fields.

public final class QueryContext {
    public let model: LanguageModel
    public let tokenizer: Tokenizer
    public let semantic: SemanticMemory?
    public let episodic: EpisodicMemory?
    public let verifier: EngineVerifier?
    public let query: EngineQuery
    public var cost = CostAccount()
    public var times = StageTimes()
    /// one line per step taken ("retrieve semantic: 4 hits", "retry with memory", ...)
    public var events: [String] = []
    /// hits per tier from the probe retrieval, best first
    public var semanticHits: [RetrievalHit] = []
    public var episodicHits: [RetrievalHit] = []
    public var signals = QuerySignals()

    init(model: LanguageModel, tokenizer: Tokenizer, semantic: SemanticMemory?, episodic: EpisodicMemory?,
         verifier: EngineVerifier?, query: EngineQuery) {
        self.model = model
        self.tokenizer = tokenizer
        self.semantic = semantic
        self.episodic = episodic
        self.verifier = verifier
        self.query = query
    }

    /// Runs body, adding its wall time to a stage.
    func timed<T>(_ stage: WritableKeyPath<StageTimes, Double>, _ body: () throws -> T) rethrows -> T {
        let t0 = Clock.nowMs()
        defer { times[keyPath: stage] += Clock.nowMs() - t0 }
        return try body()
    }

    /// The memories for a set of decisions: the k best of the chosen tiers, merged by score.
    func memories(for d: EngineDecisions, k: Int) -> [Citation] {
        var all: [Citation] = []
        if d.semantic { all += semanticHits.map { Citation(tier: .semantic, id: $0.id, score: $0.score, text: $0.text) } }
        if d.episodic { all += episodicHits.map { Citation(tier: .episodic, id: $0.id, score: $0.score, text: $0.text) } }
        var seen = Set<String>()
        return all.enumerated().sorted { a, b in a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset }
            .map(\.element).filter { seen.insert($0.text).inserted }.prefix(k).map { $0 }
    }

    /// The best retrieval scores seen (both tiers), best first.
    var retrievalScores: [Float] { (semanticHits + episodicHits).map(\.score).sorted(by: >) }
}

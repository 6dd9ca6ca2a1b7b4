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
    /// each tier's hits on reciprocal rank fusion's scale (RetrievalHit.fusionScore), the scale
    /// the tiers are merged and the verifier's retrieval features are read on: a tier searched
    /// lexically scores BM25 (about 5-15) and a hybrid one a fused sum (about 0.03), so raw
    /// scores would rank every lexical hit first and saturate the critic
    public var semanticFusion: [Float] = []
    public var episodicFusion: [Float] = []
    public var signals = QuerySignals()
    /// the query's retrieval vector (model.queryEmbedding), from the encoding pass that gave
    /// signals.queryEncoding; empty without a semantic tier
    public var queryVector: [Float] = []

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

    /// The memories for a set of decisions: the k best of the chosen tiers, merged by fusion
    /// score (the citations' score).
    func memories(for d: EngineDecisions, k: Int) -> [Citation] {
        var all: [Citation] = []
        func cite(_ tier: MemoryTier, _ hits: [RetrievalHit], _ fused: [Float]) -> [Citation] {
            zip(hits, fused).map { Citation(tier: tier, id: $0.id, score: $1, text: $0.text) }
        }
        if d.semantic { all += cite(.semantic, semanticHits, semanticFusion) }
        if d.episodic { all += cite(.episodic, episodicHits, episodicFusion) }
        var seen = Set<String>()
        return all.enumerated().sorted { a, b in a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset }
            .map(\.element).filter { seen.insert($0.text).inserted }.prefix(k).map { $0 }
    }

    /// The best retrieval scores seen (both tiers, fusion scale), best first.
    var retrievalScores: [Float] { (semanticFusion + episodicFusion).sorted(by: >) }
}

// SemanticRetrieval: dense, lexical and hybrid retrieval over a SemanticMemory. The dense part
// is the FAISS search of SemanticMemory.swift, the lexical part the memory's BM25 index over its
// texts; hybrid fuses both parts' top nCandidates by reciprocal rank (RankFusion.swift). Both
// parts run under one read lock, so a hit never names an entry a concurrent remove dropped.

extension SemanticMemory {
    /// The k best entries for a query given as text (lexical part) and/or a vector [dim] (dense
    /// part): dense mode needs the vector, lexical mode the text, hybrid both. An empty memory
    /// gives no hits. Throws INVALID_ARGUMENT for bad options, a missing or malformed part.
    /// Thread-safe: the read lock, like search.
    public func retrieve(text: String?, query: [Float]?, options: RetrievalOptions) throws -> [RetrievalHit] {
        try options.validate()
        let wantDense = options.mode != .lexical, wantLexical = options.mode != .dense
        var q: [Float] = []
        if wantDense {
            guard let query else {
                throw HMSTError.invalidArgument("retrieve: \(options.mode.rawValue) mode needs a query vector (or a model to embed the text)")
            }
            guard query.count == config.dim else {
                throw HMSTError.invalidArgument("retrieve: query has \(query.count) values, the memory's dimension is \(config.dim)")
            }
            q = try VectorChecks.prepare(query, dim: config.dim, metric: config.metric, "retrieve").0
        }
        var terms: [String] = []
        if wantLexical || options.minCoverage > 0 {
            guard let text else {
                throw HMSTError.invalidArgument(wantLexical ? "retrieve: \(options.mode.rawValue) mode needs the query text"
                                                            : "retrieve: min_coverage needs the query text")
            }
            terms = LexicalTokenizer.terms(text)
        }
        return try lock.withReadLock {
            guard !entries.isEmpty else { return [] }
            let per = options.perPart
            let dense = wantDense ? try denseLocked(q, k: per, nprobe: options.nprobe, owner: options.owner) : []
            let all = entries
            let within: ((Int64) -> Bool)? = options.owner.map { o in { id in all[id]?.owner == o } }
            let lex = wantLexical ? lexical.search(terms: terms, limit: per, k1: options.k1, b: options.b, within: within)
                .map { (id: $0.id, score: $0.score) } : []
            let ranked = switch options.mode {
            case .hybrid: RankFusion.fuse(dense: dense, lexical: lex, k: options.ranked, rrfK: options.rrfK,
                                          denseWeight: options.denseWeight, lexicalWeight: options.lexicalWeight)
            case .dense: RankFusion.single(dense, dense: true)
            case .lexical: RankFusion.single(lex, dense: false)
            }
            let hits = ranked.map { RetrievalHit(id: $0.id, score: $0.score, dense: $0.dense, lexical: $0.lexical, text: entries[$0.id]?.text ?? "") }
            guard options.minCoverage > 0 else { return hits }
            return CoverageFilter.kept(hits, query: text ?? "", index: lexical, within: within, minimum: options.minCoverage, k: options.k)
        }
    }

    /// The dense part's k best (id, score), best first; with owner, that owner's k best: the
    /// index holds every owner, so it is searched with a growing k until k of the owner's
    /// entries are found or the whole memory was ranked. Exact for a Flat index (and the exact
    /// phase before IVF training); under IVF or HNSW the index's approximation (lists trained
    /// on, graph built over every owner's vectors) bounds recall as it does unscoped, while the
    /// scores are the owner's entries' own. Lock held by the caller.
    func denseLocked(_ q: [Float], k: Int, nprobe: Int?, owner: String?) throws -> [(id: Int64, score: Float)] {
        guard let owner else { return try searchLocked(q, n: 1, k: k, nprobe: nprobe)[0].map { (id: $0.id, score: $0.score) } }
        let live = entries.count
        var kk = min(live, max(4 * k, 32))
        while true {
            let found = try searchLocked(q, n: 1, k: kk, nprobe: nprobe)[0].filter { $0.metadata.owner == owner }
            if found.count >= k || kk >= live { return found.prefix(k).map { (id: $0.id, score: $0.score) } }
            kk = min(live, kk * 4)
        }
    }

    /// Live entries of one owner ("" : those added without one); nil: every entry. O(entries).
    /// Thread-safe (read lock).
    public func count(owner: String?) -> Int {
        lock.withReadLock {
            guard let owner else { return entries.count }
            return entries.values.reduce(0) { $0 + ($1.owner == owner ? 1 : 0) }
        }
    }

    /// As retrieve(text:query:options:), embedding the text with the model for the dense part
    /// (the model may be nil in lexical mode).
    public func retrieve(text: String, model: LanguageModel?, options: RetrievalOptions) throws -> [RetrievalHit] {
        var query: [Float]? = nil
        if options.mode != .lexical {
            guard let model else { throw HMSTError.invalidArgument("retrieve: \(options.mode.rawValue) mode needs a model to embed the query") }
            query = try queryEmbedding(of: text, model: model)
        }
        return try retrieve(text: text, query: query, options: options)
    }

    /// As retrieve(text:model:options:) with the query's vector already computed by
    /// model.queryEmbedding (the engine has it from the query's single encoding pass); the model
    /// must still be the memory's embedder. Thread-safe.
    public func retrieve(text: String, queryEmbedding: [Float], model: LanguageModel, options: RetrievalOptions) throws -> [RetrievalHit] {
        guard options.mode != .lexical else { return try retrieve(text: text, query: nil, options: options) }
        try checkModel(model)
        return try retrieve(text: text, query: queryEmbedding, options: options)
    }

    /// Documents and distinct terms in the lexical index. Thread-safe (read lock).
    public var lexicalCounts: (documents: Int, terms: Int) { lock.withReadLock { (lexical.count, lexical.termCount) } }
}

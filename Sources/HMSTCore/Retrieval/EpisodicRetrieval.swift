// EpisodicRetrieval: dense (SSM-state cosine), lexical (BM25 over the entries' texts) and
// hybrid retrieval over an EpisodicMemory, as SemanticRetrieval.swift does for the semantic
// tier. One hold of the memory's lock covers both parts and the access counts of the hits.

extension EpisodicMemory {
    /// The k best entries for a query given as text (lexical part) and/or an SSM key [N]
    /// (dense part). Returned entries' access counts grow by one, as with search. An empty
    /// memory gives no hits. Thread-safe.
    public func retrieve(text: String?, key: [Float]?, options: RetrievalOptions) throws -> [RetrievalHit] {
        try options.validate()
        let wantDense = options.mode != .lexical, wantLexical = options.mode != .dense
        var q: [Float] = []
        if wantDense {
            guard let key else {
                throw HMSTError.invalidArgument("retrieve: \(options.mode.rawValue) mode needs a query key (or a model to encode the text)")
            }
            guard key.count == config.stateSize else {
                throw HMSTError.invalidArgument("retrieve: query has \(key.count) values; this memory's keys have \(config.stateSize)")
            }
            q = try EpisodicMemory.unit(key, "query")
        }
        var terms: [String] = []
        if wantLexical || options.minCoverage > 0 {
            guard let text else {
                throw HMSTError.invalidArgument(wantLexical ? "retrieve: \(options.mode.rawValue) mode needs the query text"
                                                            : "retrieve: min_coverage needs the query text")
            }
            terms = LexicalTokenizer.terms(text)
        }
        return lock.withLock { _ -> [RetrievalHit] in
            guard !entries.isEmpty else { return [] }
            let per = options.perPart
            let dense = wantDense ? denseTopLocked(q, k: per, owner: options.owner).map { (id: $0.id, score: $0.score) } : []
            var within: ((Int64) -> Bool)? = nil
            if !terms.isEmpty, let o = options.owner {
                let ids = Set(entries.lazy.filter { $0.owner == o }.map(\.id))
                within = { ids.contains($0) }
            }
            let lex = wantLexical ? lexical.search(terms: terms, limit: per, k1: options.k1, b: options.b, within: within)
                .map { (id: $0.id, score: $0.score) } : []
            let ranked = switch options.mode {
            case .hybrid: RankFusion.fuse(dense: dense, lexical: lex, k: options.ranked, rrfK: options.rrfK,
                                          denseWeight: options.denseWeight, lexicalWeight: options.lexicalWeight)
            case .dense: RankFusion.single(dense, dense: true)
            case .lexical: RankFusion.single(lex, dense: false)
            }
            var at: [Int64: Int] = [:]
            for (i, e) in entries.enumerated() { at[e.id] = i }
            var hits = ranked.compactMap { h in
                at[h.id].map { RetrievalHit(id: h.id, score: h.score, dense: h.dense, lexical: h.lexical, text: entries[$0].text) }
            }
            if options.minCoverage > 0 {
                hits = CoverageFilter.kept(hits, query: text ?? "", index: lexical, within: within, minimum: options.minCoverage, k: options.k)
            }
            for h in hits { if let i = at[h.id] { entries[i].accessCount += 1 } }   // only the hits returned count
            return hits
        }
    }

    /// Entries of one owner ("" : those added without one); nil: every entry. Thread-safe.
    public func count(owner: String?) -> Int {
        lock.withLock { _ in
            guard let owner else { return entries.count }
            return entries.reduce(0) { $0 + ($1.owner == owner ? 1 : 0) }
        }
    }

    /// As retrieve(text:key:options:), encoding the text with the model for the dense part
    /// (the model may be nil in lexical mode).
    public func retrieve(text: String, model: LanguageModel?, options: RetrievalOptions) throws -> [RetrievalHit] {
        var key: [Float]? = nil
        if options.mode != .lexical {
            guard let model else { throw HMSTError.invalidArgument("retrieve: \(options.mode.rawValue) mode needs a model to encode the query") }
            try checkModel(model)
            key = try encode(text: text, model: model).key
        }
        return try retrieve(text: text, key: key, options: options)
    }
}

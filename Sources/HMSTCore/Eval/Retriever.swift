// Retriever: what evaluation (and later the engine) asks of a memory: the texts of the k entries
// most relevant to a query, optionally as if some texts had been deleted. MemoryStoreRetriever
// answers from a MemoryStore by dense search over both tiers; a hybrid lexical + dense retriever
// (BM25 beside the embeddings) plugs in by conforming to the same protocol.

public protocol Retriever: AnyObject {
    /// At most k texts, best first, never one whose text is in `excluding`. The result must
    /// equal retrieving from a copy of the memory with every entry of an excluded text removed.
    func retrieve(query: String, k: Int, excluding: Set<String>) throws -> [String]
}

/// Retrieval from a memory directory (both tiers, or one), in any RetrievalOptions mode:
/// hybrid (BM25 and the vectors fused by reciprocal rank; the default), dense or lexical.
/// Tiers are merged by score. Exclusion is exact, without touching the memory: each part's
/// candidate list is fetched deeper by the number of entries holding an excluded text, those
/// entries are dropped from the lists, the lists are cut to the depth a copy would use, and the
/// fusion is redone on the remaining ranks, which is what retrieving from a copy with those
/// entries removed gives (for exact indexes: Flat, the exact phase of IVF, BM25, the episodic
/// scan). A minCoverage filter runs here, on the tier's lexical statistics less the excluded
/// entries, as it would in the copy. Episodic access counts rise in memory only; nothing is saved.
public final class MemoryStoreRetriever: Retriever {
    public let store: MemoryStore
    public let model: LanguageModel
    public let tier: MemoryTier
    public let options: RetrievalOptions
    /// entries per text in each tier, to size the over-fetch and correct the coverage statistics
    private let textCounts: [MemoryTier: [String: Int]]

    public init(store: MemoryStore, model: LanguageModel, tier: MemoryTier = .both,
                options: RetrievalOptions = RetrievalOptions()) throws {
        guard store.count > 0 else { throw HMSTError.invalidArgument("memory directory \(store.directory) holds no entries to retrieve from") }
        try options.validate()
        if options.minCoverage > 0, options.owner != nil {
            throw HMSTError.invalidArgument("retrieve: min_coverage with an owner scope is not supported when retrieving from a memory directory")
        }
        self.store = store
        self.model = model
        self.tier = tier
        self.options = options
        var counts: [MemoryTier: [String: Int]] = [:]
        for e in try store.allEntries() where tier == .both || e.tier == tier { counts[e.tier, default: [:]][e.text, default: 0] += 1 }
        textCounts = counts
    }

    /// The retrieval behind `retrieve`, with the parts' scores: k hits per tier at most,
    /// merged best first.
    public func retrieveHits(query: String, k: Int, excluding: Set<String>) throws -> [(tier: MemoryTier, hit: RetrievalHit)] {
        guard k > 0 else { throw HMSTError.invalidArgument("retrieve: k = \(k) must be >= 1") }
        var merged: [(tier: MemoryTier, hit: RetrievalHit)] = []
        if tier != .semantic, let mem = store.episodic {
            let o = fetchOptions(k: k, excluding: excluding, in: .episodic)
            let hits = try mem.retrieve(text: query, model: model, options: o)
            merged += refuse(hits, excluding, k, query: query, tier: .episodic) { mem.lexicalStatistics(of: $0) }.map { (.episodic, $0) }
        }
        if tier != .episodic, let mem = store.semantic {
            let o = fetchOptions(k: k, excluding: excluding, in: .semantic)
            let hits = try mem.retrieve(text: query, model: model, options: o)
            merged += refuse(hits, excluding, k, query: query, tier: .semantic) { mem.lexicalStatistics(of: $0) }.map { (.semantic, $0) }
        }
        merged.sort { $0.hit.score > $1.hit.score }
        return Array(merged.prefix(k))
    }

    public func retrieve(query: String, k: Int, excluding: Set<String>) throws -> [String] {
        try retrieveHits(query: query, k: k, excluding: excluding).map(\.hit.text)
    }

    /// Entries of a tier whose text is excluded.
    private func excludedCount(_ excluding: Set<String>, in tier: MemoryTier) -> Int {
        excluding.reduce(0) { $0 + (textCounts[tier]?[$1] ?? 0) }
    }

    /// What to ask a tier for: each part deeper by the excluded entries, every ranked candidate
    /// when fusing or filtering; the filter itself runs in refuse.
    private func fetchOptions(k: Int, excluding: Set<String>, in tier: MemoryTier) -> RetrievalOptions {
        let extra = excludedCount(excluding, in: tier)
        var o = options
        o.minCoverage = 0
        o.nCandidates = max(options.nCandidates, k) + extra
        o.k = options.mode == .hybrid || options.minCoverage > 0 ? 2 * o.nCandidates : k + extra
        return o
    }

    /// One tier's hits without the excluded texts: each part cut to the copy's depth, re-fused
    /// (hybrid) on the remaining ranks, filtered by coverage, the k best.
    private func refuse(_ hits: [RetrievalHit], _ excluding: Set<String>, _ k: Int, query: String, tier: MemoryTier,
                        statistics: ([String]) -> (n: Int, df: [Int])) -> [RetrievalHit] {
        let kept = hits.filter { !excluding.contains($0.text) }
        var copy = options
        copy.k = k
        let depth = copy.perPart
        var ranked: [RetrievalHit]
        if options.mode == .hybrid, kept.count < hits.count {
            let text = Dictionary(kept.map { ($0.id, $0.text) }, uniquingKeysWith: { a, _ in a })
            let dense = kept.compactMap { h in h.dense.map { (rank: $0.rank, id: h.id, score: $0.score) } }.sorted { $0.rank < $1.rank }.prefix(depth)
            let lexical = kept.compactMap { h in h.lexical.map { (rank: $0.rank, id: h.id, score: $0.score) } }.sorted { $0.rank < $1.rank }.prefix(depth)
            ranked = RankFusion.fuse(dense: dense.map { ($0.id, $0.score) }, lexical: lexical.map { ($0.id, $0.score) }, k: 2 * depth,
                                     rrfK: options.rrfK, denseWeight: options.denseWeight, lexicalWeight: options.lexicalWeight)
                .map { RetrievalHit(id: $0.id, score: $0.score, dense: $0.dense, lexical: $0.lexical, text: text[$0.id] ?? "") }
        } else {
            ranked = options.mode == .hybrid ? kept : Array(kept.prefix(depth))
        }
        guard options.minCoverage > 0 else { return Array(ranked.prefix(k)) }
        let terms = LexicalCoverage.uniqueTerms(query)
        var (n, df) = statistics(terms)
        // the statistics of a copy without the excluded entries
        for t in excluding {
            guard let c = textCounts[tier]?[t], c > 0 else { continue }
            n -= c
            let has = Set(LexicalTokenizer.terms(t))
            for (i, term) in terms.enumerated() where has.contains(term) { df[i] -= c }
        }
        return Array(CoverageFilter(terms: terms, n: n, df: df).keep(ranked, minimum: options.minCoverage).prefix(k))
    }
}

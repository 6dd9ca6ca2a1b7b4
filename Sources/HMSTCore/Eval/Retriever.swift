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
/// entries are dropped from the lists, and the fusion is redone on the remaining ranks, which
/// is what retrieving from a copy with those entries removed gives (for exact indexes: Flat,
/// the exact phase of IVF, BM25, the episodic scan). Episodic access counts rise in memory only;
/// nothing is saved.
public final class MemoryStoreRetriever: Retriever {
    public let store: MemoryStore
    public let model: LanguageModel
    public let tier: MemoryTier
    public let options: RetrievalOptions
    /// entries per text, to size the over-fetch
    private let textCounts: [String: Int]

    public init(store: MemoryStore, model: LanguageModel, tier: MemoryTier = .both,
                options: RetrievalOptions = RetrievalOptions()) throws {
        guard store.count > 0 else { throw HMSTError.invalidArgument("memory directory \(store.directory) holds no entries to retrieve from") }
        try options.validate()
        self.store = store
        self.model = model
        self.tier = tier
        self.options = options
        var counts: [String: Int] = [:]
        for e in try store.allEntries() where tier == .both || e.tier == tier { counts[e.text, default: 0] += 1 }
        textCounts = counts
    }

    /// The retrieval behind `retrieve`, with the parts' scores: k hits per tier at most,
    /// merged best first.
    public func retrieveHits(query: String, k: Int, excluding: Set<String>) throws -> [(tier: MemoryTier, hit: RetrievalHit)] {
        guard k > 0 else { throw HMSTError.invalidArgument("retrieve: k = \(k) must be >= 1") }
        let extra = excluding.reduce(0) { $0 + (textCounts[$1] ?? 0) }
        var o = options
        o.nCandidates = max(o.nCandidates, k) + extra
        o.k = o.mode == .hybrid ? 2 * o.nCandidates : k + extra   // hybrid: every fused candidate
        var merged: [(tier: MemoryTier, hit: RetrievalHit)] = []
        if tier != .semantic, let mem = store.episodic {
            merged += try refuse(mem.retrieve(text: query, model: model, options: o), excluding, k).map { (.episodic, $0) }
        }
        if tier != .episodic, let mem = store.semantic {
            merged += try refuse(mem.retrieve(text: query, model: model, options: o), excluding, k).map { (.semantic, $0) }
        }
        merged.sort { $0.hit.score > $1.hit.score }
        return Array(merged.prefix(k))
    }

    public func retrieve(query: String, k: Int, excluding: Set<String>) throws -> [String] {
        try retrieveHits(query: query, k: k, excluding: excluding).map(\.hit.text)
    }

    /// One tier's hits without the excluded texts, re-fused (hybrid) on the remaining ranks.
    private func refuse(_ hits: [RetrievalHit], _ excluding: Set<String>, _ k: Int) -> [RetrievalHit] {
        let kept = hits.filter { !excluding.contains($0.text) }
        guard options.mode == .hybrid, kept.count < hits.count else { return Array(kept.prefix(k)) }
        let text = Dictionary(kept.map { ($0.id, $0.text) }, uniquingKeysWith: { a, _ in a })
        let dense = kept.compactMap { h in h.dense.map { (rank: $0.rank, id: h.id, score: $0.score) } }.sorted { $0.rank < $1.rank }
        let lexical = kept.compactMap { h in h.lexical.map { (rank: $0.rank, id: h.id, score: $0.score) } }.sorted { $0.rank < $1.rank }
        return RankFusion.fuse(dense: dense.map { ($0.id, $0.score) }, lexical: lexical.map { ($0.id, $0.score) }, k: k,
                               rrfK: options.rrfK, denseWeight: options.denseWeight, lexicalWeight: options.lexicalWeight)
            .map { RetrievalHit(id: $0.id, score: $0.score, dense: $0.dense, lexical: $0.lexical, text: text[$0.id] ?? "") }
    }
}

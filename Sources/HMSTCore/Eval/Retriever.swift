// Retriever: what evaluation (and later the engine) asks of a memory: the texts of the k entries
// most relevant to a query, optionally as if some texts had been deleted. MemoryStoreRetriever
// answers from a MemoryStore by dense search over both tiers; a hybrid lexical + dense retriever
// (BM25 beside the embeddings) plugs in by conforming to the same protocol.

public protocol Retriever: AnyObject {
    /// At most k texts, best first, never one whose text is in `excluding`. The result must
    /// equal retrieving from a copy of the memory with every entry of an excluded text removed.
    func retrieve(query: String, k: Int, excluding: Set<String>) throws -> [String]
}

/// Dense retrieval from a memory directory (episodic SSM keys and semantic embeddings, merged
/// by score). Exclusion over-fetches by the number of entries holding an excluded text and
/// drops them, which is exactly deletion for exact indexes (Flat, the exact phase of IVF, the
/// episodic scan) and leaves the memory itself untouched. Episodic access counts rise in
/// memory only; nothing is saved.
public final class MemoryStoreRetriever: Retriever {
    public let store: MemoryStore
    public let model: LanguageModel
    public let tier: MemoryTier
    public let nprobe: Int?
    /// entries per text, to size the over-fetch
    private let textCounts: [String: Int]

    public init(store: MemoryStore, model: LanguageModel, tier: MemoryTier = .both, nprobe: Int? = nil) throws {
        guard store.count > 0 else { throw HMSTError.invalidArgument("memory directory \(store.directory) holds no entries to retrieve from") }
        self.store = store
        self.model = model
        self.tier = tier
        self.nprobe = nprobe
        var counts: [String: Int] = [:]
        for e in try store.allEntries() where tier == .both || e.tier == tier { counts[e.text, default: 0] += 1 }
        textCounts = counts
    }

    public func retrieve(query: String, k: Int, excluding: Set<String>) throws -> [String] {
        guard k > 0 else { throw HMSTError.invalidArgument("retrieve: k = \(k) must be >= 1") }
        let extra = excluding.reduce(0) { $0 + (textCounts[$1] ?? 0) }
        // both tiers: k + extra from each, so each tier's top k survives the filter before merging
        let hits = try store.search(text: query, model: model, tier: tier, k: k + extra, nprobe: nprobe)
        return Array(hits.lazy.filter { !excluding.contains($0.text) }.prefix(k).map(\.text))
    }
}

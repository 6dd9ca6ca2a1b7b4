// LexicalCoverage: how much of a query a retrieved text covers, as the share of the query's
// idf mass whose terms the text holds:
//   coverage(Q, T) = Σ_{t ∈ Q ∩ T} idf(t) / Σ_{t ∈ Q} idf(t)     (Q, T: unique terms)
// with idf from the tier's BM25 index, where a word no entry holds gets the largest idf. A
// question about an entity the memory has never seen leaves the entity's name uncovered, so
// its best hit covers little even when the relation words match; a question whose entity the
// memory holds is covered almost fully. The engine's state summary reads it per tier.

public enum LexicalCoverage {
    /// coverage of `text` for a query of unique `terms` weighted by `idf` (same order); 0 for
    /// an empty query.
    public static func coverage(terms: [String], idf: [Float], text: String) -> Float {
        let have = Set(LexicalTokenizer.terms(text))
        var total: Float = 0, covered: Float = 0
        for (t, w) in zip(terms, idf) {
            total += w
            if have.contains(t) { covered += w }
        }
        return total > 0 ? covered / total : 0
    }

    /// The query's unique terms, in first-seen order.
    public static func uniqueTerms(_ text: String) -> [String] {
        var seen = Set<String>()
        return LexicalTokenizer.terms(text).filter { seen.insert($0).inserted }
    }
}

extension SemanticMemory {
    /// idf of each term in this memory's lexical index (BM25Index.idf); with an owner, over
    /// that owner's entries alone. Thread-safe (read lock).
    public func lexicalIDF(_ terms: [String], owner: String? = nil) -> [Float] {
        lock.withReadLock {
            let all = entries
            return lexical.idf(terms, within: owner.map { o in { all[$0]?.owner == o } })
        }
    }
}

extension EpisodicMemory {
    /// idf of each term in this memory's lexical index (BM25Index.idf); with an owner, over
    /// that owner's entries alone. Thread-safe.
    public func lexicalIDF(_ terms: [String], owner: String? = nil) -> [Float] {
        lock.withLock { _ in
            guard let o = owner else { return lexical.idf(terms) }
            let ids = Set(entries.lazy.filter { $0.owner == o }.map(\.id))
            return lexical.idf(terms, within: { ids.contains($0) })
        }
    }
}

// LexicalCoverage: how much of a query a memory tier knows, from its BM25 index alone: the
// signals the engine's state summary reads to tell a question about something the tier holds
// from one about something it has never seen. With idf(w) = ln(1 + (N − df + 0.5)/(df + 0.5))
// over the tier's N entries (a word no entry holds gets the largest idf) and Q the query's
// distinct terms:
//   coverage      Σ_{w ∈ Q ∩ T} idf(w) / Σ_{w ∈ Q} idf(w)      T: the terms of the best BM25 hit
//   seenCoverage  the same over the words of Q that some entry holds
//   novelty       Σ_{w ∈ Q, df(w) = 0} idf(w) / Σ_{w ∈ Q} idf(w)
// A question about an entity the tier holds is covered almost fully by its best hit; about an
// unseen one, its name is novel and uncovered. The best lexical hit is used, not the fused one:
// a weak dense part can push it out of the fused top k.

public struct LexicalCoverage: Sendable, Equatable {
    public var coverage: Float = 0
    public var seenCoverage: Float = 0
    public var novelty: Float = 0
    public init() {}

    /// For a query of distinct `terms`, their document frequencies `df` among `n` entries and
    /// the best hit's text (nil: no hit).
    public init(terms: [String], n: Int, df: [Int], best: String?) {
        let have = Set(best.map { LexicalTokenizer.terms($0) } ?? [])
        var total: Float = 0, seen: Float = 0, covered: Float = 0
        for (t, d) in zip(terms, df) {
            let w = LexicalCoverage.idf(n: n, df: d)
            total += w
            if d > 0 { seen += w }
            if have.contains(t) { covered += w }
        }
        guard total > 0 else { return }
        coverage = covered / total
        seenCoverage = seen > 0 ? covered / seen : 0
        novelty = (total - seen) / total
    }

    /// The header's idf of a term held by df of n entries.
    static func idf(n: Int, df: Int) -> Float {
        Float(log1p((Double(n - df) + 0.5) / (Double(df) + 0.5)))
    }

    /// The query's distinct terms, in first-seen order.
    public static func uniqueTerms(_ text: String) -> [String] {
        var seen = Set<String>()
        return LexicalTokenizer.terms(text).filter { seen.insert($0).inserted }
    }
}

/// The per-hit form of seenCoverage behind RetrievalOptions.minCoverage: one query's distinct
/// terms weighted by their idf over a tier (the header's formula), terms no entry holds weighing
/// nothing (a question's own wording, "name", "abbreviated", cannot tell hits apart), and the
/// share of that weight a hit's text holds. A hit about another entity than the query's lacks
/// the entity's name, the rarest and heaviest of its terms, and falls below a threshold that one
/// about the entity passes.
public struct CoverageFilter: Sendable {
    public let terms: [String]
    let weights: [Float]
    let total: Float

    /// For a query's distinct `terms` (LexicalCoverage.uniqueTerms) with their document
    /// frequencies `df` among `n` entries.
    public init(terms: [String], n: Int, df: [Int]) {
        self.terms = terms
        weights = zip(terms, df).map { $1 > 0 ? LexicalCoverage.idf(n: n, df: $1) : 0 }
        total = weights.reduce(0, +)
    }

    /// Σ idf of the query terms the text holds / Σ idf of those some entry holds; 0 when no
    /// entry holds any of them.
    public func coverage(of text: String) -> Float {
        guard total > 0 else { return 0 }
        let have = Set(LexicalTokenizer.terms(text))
        var covered: Float = 0
        for (t, w) in zip(terms, weights) where have.contains(t) { covered += w }
        return covered / total
    }

    /// The k best of ranked hits whose coverage of `query` over an index's entries (those
    /// `within` accepts) is at least `minimum`: RetrievalOptions.minCoverage as the memories run it.
    static func kept(_ hits: [RetrievalHit], query: String, index: BM25Index, within: ((Int64) -> Bool)?,
                     minimum: Float, k: Int) -> [RetrievalHit] {
        let terms = LexicalCoverage.uniqueTerms(query)
        let (n, df) = index.documentFrequencies(terms, within: within)
        return Array(CoverageFilter(terms: terms, n: n, df: df).keep(hits, minimum: minimum).prefix(k))
    }

    /// The hits whose coverage is at least `minimum`, in order, each with its coverage set.
    public func keep(_ hits: [RetrievalHit], minimum: Float) -> [RetrievalHit] {
        hits.compactMap { h in
            let c = coverage(of: h.text)
            guard c >= minimum else { return nil }
            var kept = h
            kept.coverage = c
            return kept
        }
    }
}

extension SemanticMemory {
    /// The lexical index's entry count and each term's document frequency (every entry, or one
    /// owner's). Thread-safe (read lock).
    public func lexicalStatistics(of terms: [String], owner: String? = nil) -> (n: Int, df: [Int]) {
        lock.withReadLock {
            let all = entries
            return lexical.documentFrequencies(terms, within: owner.map { o in { all[$0]?.owner == o } })
        }
    }

    /// LexicalCoverage of a query by this memory (its entries, or one owner's); no side effects.
    /// Thread-safe (read lock).
    public func lexicalCoverage(of text: String, owner: String? = nil) -> LexicalCoverage {
        let terms = LexicalCoverage.uniqueTerms(text)
        return lock.withReadLock {
            let all = entries
            let within: ((Int64) -> Bool)? = owner.map { o in { all[$0]?.owner == o } }
            let (n, df) = lexical.documentFrequencies(terms, within: within)
            let best = lexical.search(terms: terms, limit: 1, within: within).first.flatMap { all[$0.id]?.text }
            return LexicalCoverage(terms: terms, n: n, df: df, best: best)
        }
    }
}

extension EpisodicMemory {
    /// As SemanticMemory.lexicalStatistics. Thread-safe.
    public func lexicalStatistics(of terms: [String], owner: String? = nil) -> (n: Int, df: [Int]) {
        lock.withLock { _ in
            guard let o = owner else { return lexical.documentFrequencies(terms) }
            let ids = Set(entries.lazy.filter { $0.owner == o }.map(\.id))
            return lexical.documentFrequencies(terms, within: { ids.contains($0) })
        }
    }

    /// LexicalCoverage of a query by this memory (its entries, or one owner's); access counts
    /// are not touched. Thread-safe.
    public func lexicalCoverage(of text: String, owner: String? = nil) -> LexicalCoverage {
        let terms = LexicalCoverage.uniqueTerms(text)
        return lock.withLock { _ in
            var within: ((Int64) -> Bool)? = nil
            if let o = owner {
                let ids = Set(entries.lazy.filter { $0.owner == o }.map(\.id))
                within = { ids.contains($0) }
            }
            let (n, df) = lexical.documentFrequencies(terms, within: within)
            let id = lexical.search(terms: terms, limit: 1, within: within).first?.id
            let best = id.flatMap { i in entries.first { $0.id == i }?.text }
            return LexicalCoverage(terms: terms, n: n, df: df, best: best)
        }
    }
}

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
            let ratio = (Double(n - d) + 0.5) / (Double(d) + 0.5)
            let w = Float(log1p(ratio))
            total += w
            if d > 0 { seen += w }
            if have.contains(t) { covered += w }
        }
        guard total > 0 else { return }
        coverage = covered / total
        seenCoverage = seen > 0 ? covered / seen : 0
        novelty = (total - seen) / total
    }

    /// The query's distinct terms, in first-seen order.
    public static func uniqueTerms(_ text: String) -> [String] {
        var seen = Set<String>()
        return LexicalTokenizer.terms(text).filter { seen.insert($0).inserted }
    }
}

extension SemanticMemory {
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

#if canImport(Glibc)
import Glibc
#endif

// BM25Index: an in-memory inverted index over short texts, ranked by Okapi BM25 (Robertson &
// Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009, eq. 3.15 with the
// non-negative idf that Lucene uses):
//   score(D, Q) = Σ_{t ∈ Q, unique} idf(t) · tf(t,D)·(k1+1) / (tf(t,D) + k1·(1 − b + b·|D|/avgdl))
//   idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
// N live documents, df(t) live documents containing t, |D| the document's term count, avgdl the
// mean |D|. k1 and b are query-time arguments (the index keeps raw tf and |D|). Terms come from
// LexicalTokenizer. Not thread-safe: its owner (SemanticMemory, EpisodicMemory) locks, and it
// is never saved: owners rebuild it from their stored texts on load (README, "Retrieval").
//
// Removal marks the document's postings dead in place (binary search: postings are in slot
// order) and updates df, N and avgdl at once; when dead slots outnumber live ones the index
// compacts (renumbers slots, drops dead postings), so removal is amortised O(terms · log df).

public struct LexicalHit: Sendable, Equatable {
    public let id: Int64
    public let score: Float
}

public final class BM25Index {
    /// One document's occurrence count of a term; tf 0 marks a removed document.
    struct Posting {
        var slot: UInt32
        var tf: UInt32
    }

    private var termIds: [String: Int32] = [:]
    private var postings: [[Posting]] = []      // [terms] -> postings, slots ascending
    private var df: [Int32] = []                // [terms] live documents holding the term
    private var slotIds: [Int64] = []           // [slots] id, -1 when removed
    private var docLength: [Float] = []         // [slots] |D| in terms
    private var slotOf: [Int64: UInt32] = [:]   // live id -> slot
    private var totalLength = 0.0               // Σ |D| over live documents
    private var deadSlots = 0

    public init() {}

    /// An index of texts: text i's id is ids[i], or i without ids (LexicalTokenizer's terms).
    public convenience init(texts: [String], ids: [Int64]? = nil) throws {
        self.init()
        if let ids, ids.count != texts.count {
            throw HMSTError.invalidArgument("lexical index: \(texts.count) texts but \(ids.count) ids")
        }
        for (i, t) in texts.enumerated() { try insert(id: ids?[i] ?? Int64(i), terms: LexicalTokenizer.terms(t)) }
    }

    public var count: Int { slotOf.count }
    public var termCount: Int { termIds.count }
    public func contains(_ id: Int64) -> Bool { slotOf[id] != nil }

    /// Adds a document by its terms (LexicalTokenizer.terms). Throws INTERNAL for an id already
    /// present (owners check ids first) or past 2^32 slots.
    public func insert(id: Int64, terms: [String]) throws {
        guard slotOf[id] == nil else { throw HMSTError(.internal, "lexical index: id \(id) is already indexed") }
        guard slotIds.count < Int(UInt32.max) else { throw HMSTError(.internal, "lexical index: 2^32 documents") }
        let slot = UInt32(slotIds.count)
        slotIds.append(id)
        docLength.append(Float(terms.count))
        slotOf[id] = slot
        totalLength += Double(terms.count)
        for (t, tf) in termFrequencies(terms, create: true) {
            postings[Int(t)].append(Posting(slot: slot, tf: tf))
            df[Int(t)] += 1
        }
    }

    /// Removes a document; `terms` must be the terms it was inserted with. Returns false for an
    /// id not indexed.
    @discardableResult
    public func remove(id: Int64, terms: [String]) -> Bool {
        guard let slot = slotOf.removeValue(forKey: id) else { return false }
        for (t, _) in termFrequencies(terms, create: false) {
            let i = Int(t)
            if let at = postingIndex(postings[i], slot), postings[i][at].tf > 0 {
                postings[i][at].tf = 0
                df[i] -= 1
            }
        }
        totalLength -= Double(docLength[Int(slot)])
        slotIds[Int(slot)] = -1
        deadSlots += 1
        if slotOf.isEmpty { totalLength = 0 }
        if deadSlots > 1024, deadSlots > slotOf.count { compact() }
        return true
    }

    /// (term id, tf) per distinct known term, term ids ascending. create: add unknown terms.
    private func termFrequencies(_ terms: [String], create: Bool) -> [(Int32, UInt32)] {
        var ids: [Int32] = []
        ids.reserveCapacity(terms.count)
        for s in terms {
            if let t = termIds[s] {
                ids.append(t)
            } else if create {
                let t = Int32(postings.count)
                termIds[s] = t
                postings.append([])
                df.append(0)
                ids.append(t)
            }
        }
        ids.sort()
        var out: [(Int32, UInt32)] = []
        var i = 0
        while i < ids.count {
            var j = i + 1
            while j < ids.count, ids[j] == ids[i] { j += 1 }
            out.append((ids[i], UInt32(j - i)))
            i = j
        }
        return out
    }

    private func postingIndex(_ list: [Posting], _ slot: UInt32) -> Int? {
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].slot < slot { lo = mid + 1 } else { hi = mid }
        }
        return lo < list.count && list[lo].slot == slot ? lo : nil
    }

    /// Renumbers live documents densely and drops dead postings.
    private func compact() {
        var newSlot = [UInt32](repeating: .max, count: slotIds.count)
        var ids: [Int64] = [], lengths: [Float] = []
        ids.reserveCapacity(slotOf.count)
        lengths.reserveCapacity(slotOf.count)
        for (s, id) in slotIds.enumerated() where id >= 0 {
            newSlot[s] = UInt32(ids.count)
            slotOf[id] = UInt32(ids.count)
            ids.append(id)
            lengths.append(docLength[s])
        }
        for t in postings.indices {
            postings[t] = postings[t].compactMap { p in p.tf > 0 ? Posting(slot: newSlot[Int(p.slot)], tf: p.tf) : nil }
        }
        slotIds = ids
        docLength = lengths
        deadSlots = 0
    }

    /// The `limit` best documents for the query's terms, best first (ties: smaller id first).
    /// Documents sharing no term with the query are not returned.
    /// within: only documents whose id it accepts are candidates, and the collection statistics
    /// (N, df, avgdl) are those of the accepted documents alone, so the others have no
    /// influence on any score: the result is what an index holding only them would give (one
    /// owner's entries in a memory shared by many). It costs one call per live document.
    public func search(terms: [String], limit: Int, k1: Float = 1.2, b: Float = 0.75,
                       within: ((Int64) -> Bool)? = nil) -> [LexicalHit] {
        guard limit > 0, !slotOf.isEmpty else { return [] }
        // inScope[slot]: the document is live and accepted; nil: every live document
        var inScope: [Bool]? = nil
        var live = slotOf.count, length = totalLength
        if let within {
            var scope = [Bool](repeating: false, count: slotIds.count)
            live = 0
            length = 0
            for (s, id) in slotIds.enumerated() where id >= 0 && within(id) {
                scope[s] = true
                live += 1
                length += Double(docLength[s])
            }
            guard live > 0 else { return [] }
            inScope = scope
        }
        // df over the documents in scope (the index's own df when every document is)
        var unique: [(term: Int32, df: Int)] = []
        for s in Set(terms) {
            guard let t = termIds[s], df[Int(t)] > 0 else { continue }
            var d = Int(df[Int(t)])
            if let inScope {
                d = 0
                for p in postings[Int(t)] where p.tf > 0 && inScope[Int(p.slot)] { d += 1 }
            }
            if d > 0 { unique.append((t, d)) }
        }
        guard !unique.isEmpty else { return [] }
        let n = Double(live)
        let avgdl = max(Float(length / n), 1e-6)
        // per-document normaliser k1·(1 − b + b·|D|/avgdl) = c0 + c1·|D|
        let c0 = k1 * (1 - b), c1 = k1 * b / avgdl
        var acc = [Float](repeating: 0, count: slotIds.count)
        var touched: [UInt32] = []
        acc.withUnsafeMutableBufferPointer { acc in
            docLength.withUnsafeBufferPointer { dl in
                for (t, dft) in unique {
                    let d = Double(dft)
                    let idf = Float(log(1 + (n - d + 0.5) / (d + 0.5)))
                    let w = idf * (k1 + 1)
                    postings[Int(t)].withUnsafeBufferPointer { list in
                        for p in list where p.tf > 0 && (inScope?[Int(p.slot)] ?? true) {
                            let s = Int(p.slot), tf = Float(p.tf)
                            if acc[s] == 0 { touched.append(p.slot) }   // every contribution is > 0
                            acc[s] += w * tf / (tf + c0 + c1 * dl[s])
                        }
                    }
                }
            }
        }
        return TopK.select(touched.map { LexicalHit(id: slotIds[Int($0)], score: acc[Int($0)]) }, k: limit)
    }

    /// The number of live documents and each term's document frequency among them. within:
    /// as in search, only the accepted documents count.
    public func documentFrequencies(_ terms: [String], within: ((Int64) -> Bool)? = nil) -> (n: Int, df: [Int]) {
        var n = slotOf.count
        if let within { n = slotIds.reduce(0) { $0 + ($1 >= 0 && within($1) ? 1 : 0) } }
        let counts = terms.map { s -> Int in
            guard let t = termIds[s] else { return 0 }
            guard let within else { return Int(df[Int(t)]) }
            var d = 0
            for p in postings[Int(t)] where p.tf > 0 && within(slotIds[Int(p.slot)]) { d += 1 }
            return d
        }
        return (n, counts)
    }

    /// search(terms:limit:) for a text's terms (LexicalTokenizer.terms).
    public func search(text: String, limit: Int) -> [LexicalHit] { search(terms: LexicalTokenizer.terms(text), limit: limit) }

    /// The BM25 score of one indexed document for the query terms (0 when it shares none);
    /// nil for an id not indexed. For reporting a lexical score beside a dense hit.
    public func score(id: Int64, terms: [String], k1: Float = 1.2, b: Float = 0.75) -> Float? {
        guard let slot = slotOf[id] else { return nil }
        let n = Double(slotOf.count)
        let avgdl = max(Float(totalLength / n), 1e-6)
        let dl = docLength[Int(slot)]
        var total: Float = 0
        for s in Set(terms) {
            guard let t = termIds[s], let at = postingIndex(postings[Int(t)], slot) else { continue }
            let tf = Float(postings[Int(t)][at].tf)
            guard tf > 0 else { continue }
            let d = Double(df[Int(t)])
            let idf = Float(log(1 + (n - d + 0.5) / (d + 0.5)))
            total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
        }
        return total
    }
}

/// Best-first selection of a few hits from many: a bounded sorted buffer, O(n·k) worst case
/// but O(n) when most candidates lose to the current k-th. Ties: smaller id first.
enum TopK {
    static func better(_ a: LexicalHit, _ b: LexicalHit) -> Bool { a.score != b.score ? a.score > b.score : a.id < b.id }

    static func select(_ hits: [LexicalHit], k: Int) -> [LexicalHit] {
        guard hits.count > k else { return hits.sorted(by: better) }
        var top: [LexicalHit] = []
        top.reserveCapacity(k + 1)
        for h in hits {
            if top.count == k, let last = top.last, !better(h, last) { continue }
            var i = top.count
            while i > 0, better(h, top[i - 1]) { i -= 1 }
            top.insert(h, at: i)
            if top.count > k { top.removeLast() }
        }
        return top
    }
}

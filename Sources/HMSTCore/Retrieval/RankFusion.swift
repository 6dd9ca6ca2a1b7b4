// RankFusion: the options and results of a retrieval over both parts of a memory (dense
// vectors, lexical BM25), and reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009):
//   fused(d) = Σ_parts w_part / (rrfK + rank_part(d)),   rank 1-based, rrfK = 60, w = 1 by default
// over each part's top nCandidates. Ranks, not scores, are fused, so cosine similarities and
// BM25 scores need no common scale. The weights are the knob for a part known to be weak
// (README, "Retrieval": a base model's pooled vectors barely find facts, and at equal weights
// their random ranks dilute BM25's). The memories (SemanticRetrieval.swift,
// EpisodicRetrieval.swift) run the parts under their locks and call fuse().

public enum RetrievalMode: String, Sendable, CaseIterable {
    case hybrid, dense, lexical
}

public struct RetrievalOptions: Sendable, Equatable {
    public var mode: RetrievalMode = .hybrid
    public var k = 5
    /// hybrid: how many of each part's best are fused (the rest get no rank)
    public var nCandidates = 50
    public var rrfK: Float = 60
    /// hybrid: the weight of each part's reciprocal rank
    public var denseWeight: Float = 1
    public var lexicalWeight: Float = 1
    public var k1: Float = 1.2
    public var b: Float = 0.75
    /// IVF lists probed by the dense part of a semantic memory; nil: the memory's default
    public var nprobe: Int?
    /// Only this owner's entries (MemoryMetadata.owner, EpisodicEntry.owner; "" is the entries
    /// added without one) are candidates, in both parts, and the lexical part's statistics are
    /// theirs alone: another owner's entries change no hit and no score. nil: every entry.
    public var owner: String?
    /// Hits whose text covers less than this share of the query's idf-weighted terms (those some
    /// entry holds; CoverageFilter, LexicalCoverage.swift) are dropped before the k best are taken; the
    /// candidates are then each part's nCandidates in every mode. In [0, 1]; 0 keeps every hit.
    /// Needs the query text in every mode.
    public var minCoverage: Float = 0
    public init(mode: RetrievalMode = .hybrid, k: Int = 5) {
        self.mode = mode
        self.k = k
    }

    public func validate() throws {
        guard k >= 1, k <= 1 << 20 else { throw HMSTError.invalidArgument("retrieve: k = \(k) must be in 1...1048576") }
        guard nCandidates >= 1, nCandidates <= 1 << 20 else {
            throw HMSTError.invalidArgument("retrieve: n_candidates = \(nCandidates) must be in 1...1048576")
        }
        guard rrfK.isFinite, rrfK >= 0 else { throw HMSTError.invalidArgument("retrieve: rrf_k = \(rrfK) must be finite and >= 0") }
        guard denseWeight.isFinite, lexicalWeight.isFinite, denseWeight >= 0, lexicalWeight >= 0 else {
            throw HMSTError.invalidArgument("retrieve: the part weights (\(denseWeight), \(lexicalWeight)) must be finite and >= 0")
        }
        guard k1.isFinite, k1 >= 0 else { throw HMSTError.invalidArgument("retrieve: bm25 k1 = \(k1) must be finite and >= 0") }
        guard b.isFinite, b >= 0, b <= 1 else { throw HMSTError.invalidArgument("retrieve: bm25 b = \(b) must be in [0, 1]") }
        if let nprobe, nprobe < 1 { throw HMSTError.invalidArgument("retrieve: nprobe \(nprobe) must be >= 1") }
        guard minCoverage >= 0, minCoverage <= 1 else {
            throw HMSTError.invalidArgument("retrieve: min_coverage = \(minCoverage) must be in [0, 1]")
        }
    }

    /// How many hits each part contributes: k alone, nCandidates (at least k) fused or filtered.
    var perPart: Int { mode == .hybrid || minCoverage > 0 ? max(k, nCandidates) : k }

    /// How many ranked hits a memory keeps before the coverage filter: all of them when it runs.
    var ranked: Int { minCoverage > 0 ? 2 * perPart : k }
}

/// One part's view of a hit: its score there (dense: the memory's similarity, or squared L2
/// distance; lexical: BM25) and its 1-based rank among that part's candidates.
public struct RetrievalPart: Sendable, Equatable {
    public let score: Float
    public let rank: Int
}

public struct RetrievalHit: Sendable, Equatable {
    public let id: Int64
    /// The ranking score: the RRF sum (hybrid), the dense score (dense) or BM25 (lexical).
    public let score: Float
    public let dense: RetrievalPart?     // nil: not among the dense candidates (or not run)
    public let lexical: RetrievalPart?   // nil: not among the lexical candidates (or not run)
    public let text: String
    /// The hit's CoverageFilter coverage of the query, when RetrievalOptions.minCoverage ran.
    public var coverage: Float? = nil
}

extension RetrievalHit {
    /// The hit on reciprocal rank fusion's scale whatever mode found it: Σ over the parts that
    /// ranked it of w_part / (rrfK + rank) (a hybrid hit's own score; a lexical hit at rank r
    /// scores 1/(rrfK + r) where its own score is BM25). Hits of tiers searched in different
    /// modes compare on it; raw scores (BM25 against a fused sum) do not.
    public func fusionScore(_ o: RetrievalOptions) -> Float {
        var s = 0.0
        if let d = dense { s += Double(o.mode == .hybrid ? o.denseWeight : 1) / (Double(o.rrfK) + Double(d.rank)) }
        if let l = lexical { s += Double(o.mode == .hybrid ? o.lexicalWeight : 1) / (Double(o.rrfK) + Double(l.rank)) }
        return Float(s)
    }
}

public enum RankFusion {
    /// Fuses two best-first lists of (id, score) by RRF; returns the k best, fused score
    /// descending, ties broken by the better single rank, then the smaller id.
    public static func fuse(dense: [(id: Int64, score: Float)], lexical: [(id: Int64, score: Float)],
                            k: Int, rrfK: Float = 60, denseWeight: Float = 1, lexicalWeight: Float = 1) -> [(id: Int64, score: Float, dense: RetrievalPart?, lexical: RetrievalPart?)] {
        var parts: [Int64: (RetrievalPart?, RetrievalPart?)] = [:]
        for (r, h) in dense.enumerated() where parts[h.id] == nil { parts[h.id] = (RetrievalPart(score: h.score, rank: r + 1), nil) }
        for (r, h) in lexical.enumerated() {
            let p = RetrievalPart(score: h.score, rank: r + 1)
            if let have = parts[h.id] { if have.1 == nil { parts[h.id] = (have.0, p) } } else { parts[h.id] = (nil, p) }
        }
        let c = Double(rrfK), wd = Double(denseWeight), wl = Double(lexicalWeight)
        var fused = parts.map { id, p -> (id: Int64, score: Float, dense: RetrievalPart?, lexical: RetrievalPart?, best: Int, exact: Double) in
            var s = 0.0
            if let d = p.0 { s += wd / (c + Double(d.rank)) }
            if let l = p.1 { s += wl / (c + Double(l.rank)) }
            return (id, Float(s), p.0, p.1, min(p.0?.rank ?? .max, p.1?.rank ?? .max), s)
        }
        fused.sort { a, b in
            if a.exact != b.exact { return a.exact > b.exact }
            if a.best != b.best { return a.best < b.best }
            return a.id < b.id
        }
        return fused.prefix(k).map { ($0.id, $0.score, $0.dense, $0.lexical) }
    }

    /// A single part as hits: its own score is the ranking score.
    static func single(_ list: [(id: Int64, score: Float)], dense: Bool) -> [(id: Int64, score: Float, dense: RetrievalPart?, lexical: RetrievalPart?)] {
        list.enumerated().map { r, h in
            let p = RetrievalPart(score: h.score, rank: r + 1)
            return (h.id, h.score, dense ? p : nil, dense ? nil : p)
        }
    }
}

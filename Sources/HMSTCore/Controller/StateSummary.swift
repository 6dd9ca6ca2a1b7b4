// StateSummary: the seed's StateSummaryEncoder. What the meta-controller sees of a query before
// it decides: the base model's encoding of the query (its pooled hidden state, reduced to a few
// numbers by a fixed seeded projection so a small policy can read it) beside cheap signals of the
// memories and of the model's own uncertainty:
//   the model's first answer token without memory: entropy, top probability, and the probability
//     of the curriculum's "unknown" answer (Stage 2 teaches it when memory lacks the fact);
//   per tier: whether it holds entries, the best dense cosine and its gap to the second, the
//     best BM25 score (squashed to 0...1) and its gap, how much of the query its best BM25 hit
//     covers, of all the query's words and of those the tier holds, and how much of the query
//     the tier has never seen (LexicalCoverage: whether the tier knows the query's entity,
//     which no score above says), and how full the tier is;
//   the query's length.
// Every value is finite and of order 1, so the policy needs no input normalisation.
import Foundation

/// The signals of one query, gathered by the engine before it decides.
public struct QuerySignals: Sendable, Equatable {
    public var queryTokens = 0
    public var firstTokenEntropy: Float = 0
    public var firstTokenTopProbability: Float = 0
    public var unknownProbability: Float = 0
    public var semantic = TierSignals()
    public var episodic = TierSignals()
    /// the pooled query encoding [C], unit length (empty: none)
    public var queryEncoding: [Float] = []
    public init() {}
}

public struct TierSignals: Sendable, Equatable {
    public var entries = 0
    public var capacity = 0
    public var topDense: Float = 0
    public var denseGap: Float = 0
    public var topLexical: Float = 0
    public var lexicalGap: Float = 0
    public var coverage = LexicalCoverage()
    public init() {}

    /// Signals of a tier's hits, best first, each hit with its dense and lexical parts, and
    /// the tier's LexicalCoverage of the query.
    public init(hits: [RetrievalHit], entries: Int, capacity: Int, coverage: LexicalCoverage = LexicalCoverage()) {
        self.entries = entries
        self.capacity = capacity
        let dense = hits.compactMap { $0.dense }.sorted { $0.rank < $1.rank }.map(\.score)
        let lexical = hits.compactMap { $0.lexical }.sorted { $0.rank < $1.rank }.map(\.score)
        topDense = dense.first ?? 0
        denseGap = dense.count > 1 ? dense[0] - dense[1] : dense.first ?? 0
        topLexical = lexical.first ?? 0
        lexicalGap = lexical.count > 1 ? lexical[0] - lexical[1] : lexical.first ?? 0
        self.coverage = coverage
    }
}

public enum StateSummary {
    /// Dimensions of the projected query encoding.
    public static let encodingDims = 8

    public static let featureNames: [String] = {
        var n = ["query_tokens", "first_token_entropy", "first_token_top_p", "unknown_p"]
        for t in ["semantic", "episodic"] {
            n += ["\(t)_present", "\(t)_top_dense", "\(t)_dense_gap", "\(t)_top_lexical", "\(t)_lexical_gap",
                  "\(t)_coverage", "\(t)_seen_coverage", "\(t)_novelty", "\(t)_fill"]
        }
        n += (0..<encodingDims).map { "encoding_\($0)" }
        return n
    }()

    public static var size: Int { featureNames.count }

    /// The observation vector for the controller; `projection` is [C, encodingDims] (see
    /// projection(C:seed:)).
    public static func vector(_ s: QuerySignals, projection: [Float]) -> [Float] {
        var v: [Float] = [min(Float(s.queryTokens) / 32, 4), s.firstTokenEntropy / 4, s.firstTokenTopProbability, s.unknownProbability]
        for t in [s.semantic, s.episodic] {
            v += [t.entries > 0 ? 1 : 0, t.topDense, t.denseGap, squash(t.topLexical), squash(t.lexicalGap),
                  t.coverage.coverage, t.coverage.seenCoverage, t.coverage.novelty, t.capacity > 0 ? min(Float(t.entries) / Float(t.capacity), 1) : 0]
        }
        let D = encodingDims
        var enc = [Float](repeating: 0, count: D)
        let C = s.queryEncoding.count
        if C > 0, projection.count == C * D {
            for c in 0..<C {
                let x = s.queryEncoding[c]
                for d in 0..<D { enc[d] += x * projection[c * D + d] }
            }
        }
        v += enc
        return v.map { $0.isFinite ? $0 : 0 }
    }

    /// A fixed Gaussian projection [C, encodingDims]: standard normal entries, so a unit-length
    /// encoding maps to outputs of unit variance.
    public static func projection(C: Int, seed: UInt64) -> [Float] {
        var rng = RNG(seed: seed)
        return (0..<(C * encodingDims)).map { _ in rng.nextGaussian() }
    }

    /// BM25 scores are unbounded; x / (x + 5) keeps their order in 0...1.
    static func squash(_ x: Float) -> Float { x > 0 ? x / (x + 5) : 0 }
}

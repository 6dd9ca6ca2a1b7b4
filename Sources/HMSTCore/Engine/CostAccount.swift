// CostAccount: what one query cost, counted rather than timed so that comparisons between
// actions do not flip with machine noise; the measured milliseconds per stage sit beside it.
//   matmulFLOPs     2 x multiply-adds of the model's projections for every token run (prompt,
//                   generated, the critic's own passes), at the depth and expert count used
//   retrievalFLOPs  2 x dim per vector compared by the dense searches
//   latencyUnits    a serial-work proxy: one per decode step and per critic sample step, one per
//                   32 prompt tokens of a prefill, one per retrieval
// The reward's latency and compute are these two, relative to the full action of the query.

public struct CostAccount: Sendable, Equatable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var matmulFLOPs = 0.0
    /// vectors the dense searches compared (FAISS: the whole index for Flat, the probed lists'
    /// expected share for IVF; episodic: every entry)
    public var vectorsScanned = 0
    public var retrievalFLOPs = 0.0
    /// tokens the episodic SSM encoded (the query, for the episodic tier's key)
    public var ssmTokensEncoded = 0
    public var retrievals = 0
    public var criticCalls = 0
    public var criticTokens = 0
    /// generations run: 1, or 2 when verification retried with memory
    public var attempts = 0
    public var latencyUnits = 0.0

    public init() {}

    public var totalFLOPs: Double { matmulFLOPs + retrievalFLOPs }

    /// A prefill of n tokens at flopsPerToken.
    mutating func prefill(_ n: Int, flopsPerToken: Double) {
        promptTokens += n
        matmulFLOPs += Double(n) * flopsPerToken
        latencyUnits += (Double(n) / 32).rounded(.up)
    }

    /// One decode step at flopsPerToken.
    mutating func decode(flopsPerToken: Double) {
        generatedTokens += 1
        matmulFLOPs += flopsPerToken
        latencyUnits += 1
    }

    public static func + (a: CostAccount, b: CostAccount) -> CostAccount {
        var r = a
        r.promptTokens += b.promptTokens
        r.generatedTokens += b.generatedTokens
        r.matmulFLOPs += b.matmulFLOPs
        r.vectorsScanned += b.vectorsScanned
        r.retrievalFLOPs += b.retrievalFLOPs
        r.ssmTokensEncoded += b.ssmTokensEncoded
        r.retrievals += b.retrievals
        r.criticCalls += b.criticCalls
        r.criticTokens += b.criticTokens
        r.attempts += b.attempts
        r.latencyUnits += b.latencyUnits
        return r
    }
}

/// Wall time per stage of one query, milliseconds.
public struct StageTimes: Sendable, Equatable {
    public var encode = 0.0
    public var retrieve = 0.0
    public var control = 0.0
    public var generate = 0.0
    public var verify = 0.0
    public var total = 0.0
    public init() {}

    public static let names = ["encode", "retrieve", "control", "generate", "verify", "total"]
    public var values: [Double] { [encode, retrieve, control, generate, verify, total] }
}

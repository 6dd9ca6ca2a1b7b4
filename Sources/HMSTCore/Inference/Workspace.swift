// Workspace: every activation buffer one forward pass needs, allocated once per context for
// at most `maxT` tokens per call, so the hot path never allocates.

final class Workspace {
    let maxT: Int
    let x: FloatBuffer        // [maxT, C] residual stream
    let xn: FloatBuffer       // [maxT, C] normed input of a sublayer
    let q: FloatBuffer        // [maxT, H*Dh]
    let k: FloatBuffer        // [maxT, KV*Dh]
    let v: FloatBuffer        // [maxT, KV*Dh]
    let att: FloatBuffer      // [maxT, H*Dh] attention output before o_proj
    let proj: FloatBuffer     // [maxT, C] sublayer output
    let scores: FloatBuffer   // [H, nCtx] attention probabilities, one row per head task
    let blockScores: FloatBuffer  // [blockScoreSlots, min(maxT, attentionBlock), nCtx] one query block's scores a thread (prefill)
    let blockScoreSlots: Int  // head groups prefill attention can run side by side: min(H, threads at creation)
    let blockKV: FloatBuffer  // [blockScoreSlots, 2, nCtx, Dh] a bf16 cache's keys and values of one head widened to f32 (prefill; 1 element if unused)
    let ropeCos: FloatBuffer  // [maxT, Dh/2]
    let ropeSin: FloatBuffer  // [maxT, Dh/2]
    let invFreq: [Float]      // [Dh/2]
    let routerLogits: FloatBuffer  // [maxT, E] -> softmax probabilities
    let topIdx: UnsafeMutablePointer<Int32>  // [maxT, K]
    let topW: FloatBuffer     // [maxT, K] renormalised gates
    let rowsOf: UnsafeMutablePointer<Int32>  // [E, maxT] token rows routed to each expert
    let gateOf: FloatBuffer   // [E, maxT] their gates
    let nOf: UnsafeMutablePointer<Int>       // [E]
    let xe: FloatBuffer       // [maxT, C] gathered expert input
    let h1: FloatBuffer       // [maxT, F]
    let h3: FloatBuffer       // [maxT, F]
    let ye: FloatBuffer       // [maxT, C]
    let logits: FloatBuffer   // [maxT, V]
    let widen: FloatBuffer    // bf16 -> f32 scratch for prefill GEMMs (1 element if unused)

    init(dims d: DecoderDims, maxT: Int, nCtx: Int, widenCount: Int, kvType: KVCacheType = .f32) throws {
        self.maxT = maxT
        // sizes follow n_batch, n_ctx and the vocabulary: a failed allocation is an error, not a trap
        func buffer(_ name: String, _ count: Int, zeroed: Bool = true) throws -> FloatBuffer {
            try FloatBuffer(count: count, zeroed: zeroed, for: "the context's \(name) buffer (n_batch \(maxT), n_ctx \(nCtx))")
        }
        x = try buffer("x", maxT * d.C)
        xn = try buffer("xn", maxT * d.C)
        q = try buffer("q", maxT * d.qDim)
        k = try buffer("k", maxT * d.kvDim)
        v = try buffer("v", maxT * d.kvDim)
        att = try buffer("att", maxT * d.qDim)
        proj = try buffer("proj", maxT * d.C)
        scores = try buffer("scores", d.H * nCtx)
        blockScoreSlots = maxT > 1 ? max(1, min(d.H, Threads.count)) : 1
        blockScores = try buffer("blockScores", maxT > 1 ? blockScoreSlots * min(maxT, Workspace.attentionBlock) * nCtx : 1, zeroed: false)
        let widensKV = kvType == .bf16 && maxT >= Decoder.blockAttentionMinT
        blockKV = try buffer("blockKV", widensKV ? blockScoreSlots * 2 * nCtx * d.Dh : 1, zeroed: false)
        ropeCos = try buffer("ropeCos", maxT * d.Dh / 2)
        ropeSin = try buffer("ropeSin", maxT * d.Dh / 2)
        invFreq = RoPE.inverseFrequencies(Dh: d.Dh, theta: d.ropeTheta)
        routerLogits = try buffer("routerLogits", maxT * d.E)
        topW = try buffer("topW", maxT * d.K)
        gateOf = try buffer("gateOf", d.E * maxT)
        // decode keeps the K chosen experts' activations side by side: at least K rows
        let rows = max(maxT, d.K)
        xe = try buffer("xe", rows * d.C)
        h1 = try buffer("h1", rows * d.F)
        h3 = try buffer("h3", rows * d.F)
        ye = try buffer("ye", rows * d.C)
        logits = try buffer("logits", maxT * d.V)
        widen = try buffer("widen", max(1, widenCount), zeroed: false)
        // last, after every step that can throw (deinit does not run for an init that throws)
        topIdx = .allocate(capacity: maxT * d.K)
        rowsOf = .allocate(capacity: d.E * maxT)
        nOf = .allocate(capacity: d.E)
    }

    deinit {
        topIdx.deallocate()
        rowsOf.deallocate()
        nOf.deallocate()
    }

    /// queries per block of prefill attention (Decoder.blockAttention)
    static let attentionBlock = 128

    var bytes: Int {
        [x, xn, q, k, v, att, proj, scores, blockScores, blockKV, ropeCos, ropeSin, routerLogits, topW, gateOf, xe, h1, h3, ye, logits, widen]
            .reduce(0) { $0 + $1.count * 4 }
    }
}

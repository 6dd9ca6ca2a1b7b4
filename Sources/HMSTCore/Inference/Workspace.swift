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

    init(dims d: DecoderDims, maxT: Int, nCtx: Int, widenCount: Int, kvType: KVCacheType = .f32) {
        self.maxT = maxT
        x = FloatBuffer(count: maxT * d.C)
        xn = FloatBuffer(count: maxT * d.C)
        q = FloatBuffer(count: maxT * d.qDim)
        k = FloatBuffer(count: maxT * d.kvDim)
        v = FloatBuffer(count: maxT * d.kvDim)
        att = FloatBuffer(count: maxT * d.qDim)
        proj = FloatBuffer(count: maxT * d.C)
        scores = FloatBuffer(count: d.H * nCtx)
        blockScoreSlots = maxT > 1 ? max(1, min(d.H, Threads.count)) : 1
        blockScores = FloatBuffer(count: maxT > 1 ? blockScoreSlots * min(maxT, Workspace.attentionBlock) * nCtx : 1, zeroed: false)
        let widensKV = kvType == .bf16 && maxT >= Decoder.blockAttentionMinT
        blockKV = FloatBuffer(count: widensKV ? blockScoreSlots * 2 * nCtx * d.Dh : 1, zeroed: false)
        ropeCos = FloatBuffer(count: maxT * d.Dh / 2)
        ropeSin = FloatBuffer(count: maxT * d.Dh / 2)
        invFreq = RoPE.inverseFrequencies(Dh: d.Dh, theta: d.ropeTheta)
        routerLogits = FloatBuffer(count: maxT * d.E)
        topIdx = .allocate(capacity: maxT * d.K)
        topW = FloatBuffer(count: maxT * d.K)
        rowsOf = .allocate(capacity: d.E * maxT)
        gateOf = FloatBuffer(count: d.E * maxT)
        nOf = .allocate(capacity: d.E)
        // decode keeps the K chosen experts' activations side by side: at least K rows
        let rows = max(maxT, d.K)
        xe = FloatBuffer(count: rows * d.C)
        h1 = FloatBuffer(count: rows * d.F)
        h3 = FloatBuffer(count: rows * d.F)
        ye = FloatBuffer(count: rows * d.C)
        logits = FloatBuffer(count: maxT * d.V)
        widen = FloatBuffer(count: max(1, widenCount), zeroed: false)
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

// Decoder: the Mixtral-style forward pass over a KV cache. Owns nothing but references to the
// weights; a Session (one per context) owns the cache and workspace. Prefill runs GEMMs over
// all new tokens; decode (T == 1) runs GEMVs that read only the two chosen experts.
import CKernels

public final class Decoder: @unchecked Sendable {
    public let dims: DecoderDims
    public let weights: DecoderWeights
    /// A trained early exit (set once at load, before any forward): a budget of exactly its
    /// layer reads the logits through it instead of the final norm.
    public internal(set) var exitHead: ExitHead?
    /// A trained copy head (set once at load or by Stage 2, before any Session is made): every
    /// Session at full depth mixes its pointer over memory tokens into the logits it returns.
    public internal(set) var copyHead: CopyHead?

    /// int8 matrices are reordered for the decode GEMV here (DecoderWeights.packedForDecode), so
    /// `weights` may hold them as `.q8Rows4` copies.
    public init(dims: DecoderDims, weights: DecoderWeights) {
        self.dims = dims
        self.weights = weights.packedForDecode()
    }

    /// Which rows of logits a forward call computes; .hidden computes none but leaves every
    /// row's final-norm hidden state in ws.xn (what the LM head would read).
    public enum LogitsRows { case none, last, all, hidden }

    /// Runs tokens[0..<T] at positions cache.length..<cache.length+T, appends them to the cache
    /// and writes logits to ws.logits ([1, V] for .last, [T, V] for .all).
    /// The caller has checked: 1 <= T <= ws.maxT, cache.length + T <= cache.nCtx, ids < V.
    /// trace, when given, receives the experts and gates of every token: [T, L, K] each.
    /// segments, when given, packs independent sequences into the T rows (an empty f32 cache;
    /// the ranges cover 0..<T in order): each starts at position 0 and attends to itself only,
    /// so one forward's GEMMs serve many short texts (LanguageModel.embed(batch:)).
    func forward(tokens: UnsafePointer<Int32>, T: Int, cache: KVCache, ws: Workspace, logits: LogitsRows,
                 threads: Int, traceExperts: UnsafeMutablePointer<Int32>? = nil,
                 traceGates: UnsafeMutablePointer<Float>? = nil, budget: ComputeBudget = ComputeBudget(),
                 injected: InjectedEmbeddings? = nil, segments: [Range<Int>]? = nil) {
        // a prompt's GEMMs split over hmst's pool, one single-threaded OpenBLAS call a piece
        // (Linear.sgemmRows); decode runs hmst's own GEMVs
        let run = {
            self.pass(tokens: tokens, T: T, cache: cache, ws: ws, logits: logits, threads: threads, traceExperts: traceExperts,
                      traceGates: traceGates, budget: budget, injected: injected, segments: segments)
        }
        if T > 1 && threads > 1 { Threads.withSingleThreadedBLAS(run) } else { run() }
    }

    private func pass(tokens: UnsafePointer<Int32>, T: Int, cache: KVCache, ws: Workspace, logits: LogitsRows,
                      threads: Int, traceExperts: UnsafeMutablePointer<Int32>?, traceGates: UnsafeMutablePointer<Float>?,
                      budget: ComputeBudget, injected: InjectedEmbeddings?, segments: [Range<Int>]?) {
        let d = dims
        let x = ws.x.pointer
        // the budget was validated by the Session: 1...L layers, 1...K experts
        let nLayers = budget.layers ?? d.L
        let K = budget.expertsPerToken ?? d.K
        let pos0 = cache.length
        for t in 0..<T { weights.embed.copyRow(Int(tokens[t]), to: x + t * d.C) }
        injected?.apply(to: x, C: d.C)   // positions 0 ..< T of this chunk (checked by the Session)
        if let segments {
            let half = ws.invFreq.count
            for s in segments {
                RoPE.tables(cos: ws.ropeCos.pointer + s.lowerBound * half, sin: ws.ropeSin.pointer + s.lowerBound * half,
                            invFreq: ws.invFreq, pos0: 0, T: s.count)
            }
        } else {
            RoPE.tables(cos: ws.ropeCos.pointer, sin: ws.ropeSin.pointer, invFreq: ws.invFreq, pos0: pos0, T: T)
        }

        for l in 0..<nLayers {
            let lw = weights.layers[l]
            // ---- attention sublayer: x += o_proj(attn(rmsnorm(x)))
            hk_rmsnorm(ws.xn.pointer, nil, x, weightPointer(lw.attnNorm), T, d.C, d.eps)
            attention(layer: l, lw: lw, T: T, pos0: pos0, cache: cache, ws: ws, threads: threads, segments: segments)
            linearForward(out: ws.proj.pointer, x: ws.att.pointer, T: T, w: lw.o, scratch: ws.widen.pointer, threads: threads)
            addInPlace(x, ws.proj.pointer, T * d.C)
            // ---- MoE sublayer: x += Σ_k gate_k · expert_k(rmsnorm(x))
            hk_rmsnorm(ws.xn.pointer, nil, x, weightPointer(lw.ffnNorm), T, d.C, d.eps)
            let traceE = traceExperts.map { $0 + l * d.K }
            let traceG = traceGates.map { $0 + l * d.K }
            moe(lw: lw, T: T, K: K, ws: ws, threads: threads, traceExperts: traceE, traceGates: traceG)
            addInPlace(x, ws.proj.pointer, T * d.C)
        }
        cache.length = pos0 + T

        if nLayers < d.L, let head = exitHead, head.layer == nLayers, logits == .last || logits == .all {
            // the exit head's input to the LM head, in ws.xn (ws.proj is free scratch here)
            let rows = logits == .last ? 1 : T
            head.apply(out: ws.xn.pointer, x: logits == .last ? x + (T - 1) * d.C : x, T: rows, eps: d.eps, scratch: ws.proj.pointer)
            linearForward(out: ws.logits.pointer, x: ws.xn.pointer, T: rows, w: weights.lmHead, scratch: ws.widen.pointer, threads: threads)
            return
        }
        switch logits {
        case .none: return
        case .hidden:
            hk_rmsnorm(ws.xn.pointer, nil, x, weightPointer(weights.finalNorm), T, d.C, d.eps)
        case .last:
            hk_rmsnorm(ws.xn.pointer, nil, x + (T - 1) * d.C, weightPointer(weights.finalNorm), 1, d.C, d.eps)
            linearForward(out: ws.logits.pointer, x: ws.xn.pointer, T: 1, w: weights.lmHead, scratch: ws.widen.pointer, threads: threads)
        case .all:
            hk_rmsnorm(ws.xn.pointer, nil, x, weightPointer(weights.finalNorm), T, d.C, d.eps)
            linearForward(out: ws.logits.pointer, x: ws.xn.pointer, T: T, w: weights.lmHead, scratch: ws.widen.pointer, threads: threads)
        }
    }

    // MARK: attention

    /// ws.att[T, H*Dh] = causal GQA attention of ws.xn[T, C] over the cache plus the new tokens
    /// (with segments: each segment's rows over that segment's keys alone).
    private func attention(layer l: Int, lw: LayerWeights, T: Int, pos0: Int, cache: KVCache, ws: Workspace, threads: Int,
                           segments: [Range<Int>]? = nil) {
        let d = dims
        if T == 1 {
            gemvBatch([GEMVJob(out: ws.q.pointer, x: ws.xn.pointer, w: lw.q), GEMVJob(out: ws.k.pointer, x: ws.xn.pointer, w: lw.k),
                       GEMVJob(out: ws.v.pointer, x: ws.xn.pointer, w: lw.v)], threads: threads)
        } else {
            linearForward(out: ws.q.pointer, x: ws.xn.pointer, T: T, w: lw.q, scratch: ws.widen.pointer, threads: threads)
            linearForward(out: ws.k.pointer, x: ws.xn.pointer, T: T, w: lw.k, scratch: ws.widen.pointer, threads: threads)
            linearForward(out: ws.v.pointer, x: ws.xn.pointer, T: T, w: lw.v, scratch: ws.widen.pointer, threads: threads)
        }
        hk_rope(ws.q.pointer, T, d.H, d.Dh, d.qDim, ws.ropeCos.pointer, ws.ropeSin.pointer)
        hk_rope(ws.k.pointer, T, d.KV, d.Dh, d.kvDim, ws.ropeCos.pointer, ws.ropeSin.pointer)
        cache.store(layer: l, pos0: pos0, T: T, kNew: ws.k.pointer, vNew: ws.v.pointer)

        let scale = 1 / Float(d.Dh).squareRoot()
        if let segments {
            // packed sequences (forward checked: empty f32 cache): per-query kernel over the
            // segment's own keys, which start at its first row
            let q = ws.q.pointer, att = ws.att.pointer, scores = ws.scores.pointer, nCtx = cache.nCtx
            parallelFor(d.H, threads: threads) { h in
                let kvh = h / d.groupSize
                let K = cache.keys(l, kvh), V = cache.values(l, kvh)
                for s in segments {
                    let k0 = s.lowerBound * d.Dh
                    for t in s {
                        hk_attend(att + t * d.qDim + h * d.Dh, scores + h * nCtx, q + t * d.qDim + h * d.Dh,
                                  K + k0, V + k0, t - s.lowerBound + 1, d.Dh, scale)
                    }
                }
            }
            return
        }
        if T >= Decoder.blockAttentionMinT && (cache.type == .f32 || ws.blockKV.count > 1) {
            blockAttention(layer: l, T: T, pos0: pos0, cache: cache, ws: ws, scale: scale, threads: threads)
            return
        }
        let nCtx = cache.nCtx
        let q = ws.q.pointer, att = ws.att.pointer, scores = ws.scores.pointer
        // one task per head: each walks its queries in order with its own score row
        parallelFor(d.H, threads: threads) { h in
            let kvh = h / d.groupSize
            if cache.type == .bf16 {
                let K = cache.keys16(l, kvh), V = cache.values16(l, kvh)
                for t in 0..<T {
                    hk_attend_bf16(att + t * d.qDim + h * d.Dh, scores + h * nCtx, q + t * d.qDim + h * d.Dh,
                                   K, V, pos0 + t + 1, d.Dh, scale)
                }
                return
            }
            let K = cache.keys(l, kvh), V = cache.values(l, kvh)
            for t in 0..<T {
                hk_attend(att + t * d.qDim + h * d.Dh, scores + h * nCtx, q + t * d.qDim + h * d.Dh,
                          K, V, pos0 + t + 1, d.Dh, scale)
            }
        }
    }

    /// Prompts at least this long take blockAttention's GEMMs (shorter ones, and decode, the
    /// per-query kernel: a GEMM of a few rows gains nothing).
    static let blockAttentionMinT = 16

    /// Prefill attention as GEMMs: per head and block of up to Workspace.attentionBlock
    /// queries, S = scale · Q·Kᵀ over every key the block's last query sees, each row's causal
    /// softmax over its own keys (the rest of the row zeroed), then out = S·V. The per-query
    /// kernel (hk_attend) reads a head's keys and values once per query at GEMV speed; here each
    /// block reads them once at GEMM speed. The sums run in another order, so results agree with
    /// the per-query path to rounding (DecoderTests). A bf16 cache's keys and values of a head
    /// are first widened to f32 (exactly) into the group's ws.blockKV slot, once per KV head.
    /// With two or more threads the heads are dealt out in groups, one group a thread, each
    /// GEMM single-threaded (forward holds OpenBLAS at one thread) with its own scores slot:
    /// these GEMMs (128 queries × 64 dimensions) are too small for OpenBLAS's threads, which
    /// left hmst's workers waiting.
    private func blockAttention(layer l: Int, T: Int, pos0: Int, cache: KVCache, ws: Workspace, scale: Float, threads: Int) {
        let d = dims
        let q = ws.q.pointer, att = ws.att.pointer
        let slot = ws.blockScores.count / ws.blockScoreSlots
        let nCtx = cache.nCtx, nKeys = pos0 + T
        // heads[range] in turn, scores in S (and a bf16 cache widened into wide); softmax rows split `rowThreads` ways
        func heads(_ range: Range<Int>, scores S: UnsafeMutablePointer<Float>, wide: UnsafeMutablePointer<Float>, rowThreads: Int) {
            var widened = -1
            for h in range {
                let kvh = h / d.groupSize
                let K: UnsafePointer<Float>, V: UnsafePointer<Float>
                if cache.type == .bf16 {
                    if widened != kvh {
                        hk_bf16_to_f32(wide, cache.keys16(l, kvh), nKeys * d.Dh)
                        hk_bf16_to_f32(wide + nCtx * d.Dh, cache.values16(l, kvh), nKeys * d.Dh)
                        widened = kvh
                    }
                    K = UnsafePointer(wide); V = UnsafePointer(wide + nCtx * d.Dh)
                } else {
                    K = UnsafePointer(cache.keys(l, kvh)); V = UnsafePointer(cache.values(l, kvh))
                }
                for t0 in stride(from: 0, to: T, by: Workspace.attentionBlock) {
                    let nb = min(Workspace.attentionBlock, T - t0)
                    let nk = pos0 + t0 + nb   // keys the block's last query sees
                    sgemmF32(transA: false, transB: true, M: nb, N: nk, K: d.Dh, alpha: scale,
                             A: q + t0 * d.qDim + h * d.Dh, lda: d.qDim, B: K, ldb: d.Dh, beta: 0, C: S, ldc: nk)
                    let parts = splitRange(nb, parts: min(rowThreads, max(1, nb / 16)))
                    parallelFor(parts.count, threads: rowThreads) { p in
                        for i in parts[p] {
                            let row = S + i * nk, n = pos0 + t0 + i + 1
                            hk_softmax(row, n)
                            if n < nk { (row + n).update(repeating: 0, count: nk - n) }
                        }
                    }
                    sgemmF32(transA: false, transB: false, M: nb, N: d.Dh, K: nk, alpha: 1,
                             A: S, lda: nk, B: V, ldb: d.Dh, beta: 0, C: att + t0 * d.qDim + h * d.Dh, ldc: d.qDim)
                }
            }
        }
        let groups = splitRange(d.H, parts: min(threads, ws.blockScoreSlots))
        let kvSlot = 2 * nCtx * d.Dh
        if groups.count <= 1 {
            heads(0..<d.H, scores: ws.blockScores.pointer, wide: ws.blockKV.pointer, rowThreads: threads)
            return
        }
        parallelFor(groups.count, threads: threads) { g in   // OpenBLAS at one thread here (forward)
            heads(groups[g], scores: ws.blockScores.pointer + g * slot, wide: ws.blockKV.pointer + g * kvSlot, rowThreads: 1)
        }
    }

    // MARK: mixture of experts

    /// ws.proj[T, C] = Σ_k gate · SwiGLU_expert(ws.xn), tokens grouped by expert: one GEMM
    /// (or GEMV when a single token) per expert and projection.
    /// K: experts per token (the model's, or fewer under a ComputeBudget; the gates of the K
    /// chosen are renormalised to sum to 1 either way).
    private func moe(lw: LayerWeights, T: Int, K: Int, ws: Workspace, threads: Int,
                     traceExperts: UnsafeMutablePointer<Int32>?, traceGates: UnsafeMutablePointer<Float>?) {
        let d = dims
        let probs = ws.routerLogits.pointer
        linearForward(out: probs, x: ws.xn.pointer, T: T, w: lw.router, scratch: ws.widen.pointer, threads: threads)
        Router.route(probs: probs, T: T, E: d.E, K: K, topIdx: ws.topIdx, topW: ws.topW.pointer)

        // group token rows by expert
        let nOf = ws.nOf, rowsOf = ws.rowsOf, gateOf = ws.gateOf.pointer
        for e in 0..<d.E { nOf[e] = 0 }
        for t in 0..<T {
            for j in 0..<K {
                let e = Int(ws.topIdx[t * K + j])
                rowsOf[e * ws.maxT + nOf[e]] = Int32(t)
                gateOf[e * ws.maxT + nOf[e]] = ws.topW.pointer[t * K + j]
                nOf[e] += 1
                if let traceExperts, let traceGates {
                    traceExperts[t * d.L * d.K + j] = Int32(e)
                    traceGates[t * d.L * d.K + j] = ws.topW.pointer[t * K + j]
                }
            }
        }

        let out = ws.proj.pointer
        out.update(repeating: 0, count: T * d.C)
        if T == 1 {
            decodeExperts(lw: lw, K: K, ws: ws, threads: threads)
            return
        }
        for e in 0..<d.E where nOf[e] > 0 {
            let n = nOf[e], ex = lw.experts[e]
            let rows = rowsOf + e * ws.maxT
            // xe[n, C] = xn[rows]
            for i in 0..<n { (ws.xe.pointer + i * d.C).update(from: ws.xn.pointer + Int(rows[i]) * d.C, count: d.C) }
            linearForward(out: ws.h1.pointer, x: ws.xe.pointer, T: n, w: ex.w1, scratch: ws.widen.pointer, threads: threads)
            linearForward(out: ws.h3.pointer, x: ws.xe.pointer, T: n, w: ex.w3, scratch: ws.widen.pointer, threads: threads)
            hk_silu_mul(ws.h1.pointer, ws.h1.pointer, ws.h3.pointer, n * d.F)
            linearForward(out: ws.ye.pointer, x: ws.h1.pointer, T: n, w: ex.w2, scratch: ws.widen.pointer, threads: threads)
            for i in 0..<n {
                hk_axpy(out + Int(rows[i]) * d.C, gateOf[e * ws.maxT + i], ws.ye.pointer + i * d.C, d.C)
            }
        }
    }

    /// Decode (one token): the K chosen experts' w1 and w3 GEMVs as one job, then their w2
    /// GEMVs as another; only those experts' weights are read.
    private func decodeExperts(lw: LayerWeights, K: Int, ws: Workspace, threads: Int) {
        let d = dims
        var up: [GEMVJob] = []
        var down: [GEMVJob] = []
        for j in 0..<K {
            let ex = lw.experts[Int(ws.topIdx[j])]
            up.append(GEMVJob(out: ws.h1.pointer + j * d.F, x: ws.xn.pointer, w: ex.w1))
            up.append(GEMVJob(out: ws.h3.pointer + j * d.F, x: ws.xn.pointer, w: ex.w3))
        }
        gemvBatch(up, threads: threads)
        hk_silu_mul(ws.h1.pointer, ws.h1.pointer, ws.h3.pointer, K * d.F)
        for j in 0..<K {
            down.append(GEMVJob(out: ws.ye.pointer + j * d.C, x: ws.h1.pointer + j * d.F, w: lw.experts[Int(ws.topIdx[j])].w2))
        }
        gemvBatch(down, threads: threads)
        for j in 0..<K { hk_axpy(ws.proj.pointer, ws.topW.pointer[j], ws.ye.pointer + j * d.C, d.C) }
    }

    @inline(__always) private func weightPointer(_ w: Weight) -> UnsafePointer<Float> {
        if case let .f32(p) = w.storage { return p }
        preconditionFailure("norm weights are converted to f32 at load")
    }

    @inline(__always) private func addInPlace(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) {
        hk_axpy(x, 1, y, n)
    }
}

/// Router: softmax over all E logits in fp32, top-K, renormalise the K gates to sum to 1
/// (Mixtral's routing, HF MixtralSparseMoeBlock).
enum Router {
    /// probs: [T, E] logits in, probabilities out.  topIdx, topW: [T, K]
    static func route(probs: UnsafeMutablePointer<Float>, T: Int, E: Int, K: Int,
                      topIdx: UnsafeMutablePointer<Int32>, topW: UnsafeMutablePointer<Float>) {
        for t in 0..<T {
            let p = probs + t * E
            hk_softmax(p, E)
            var sum: Float = 0
            for j in 0..<K {
                // the j-th largest: first index wins ties, like a stable descending sort
                var best = -1
                var bestV = -Float.infinity
                for e in 0..<E {
                    var taken = false
                    for i in 0..<j where topIdx[t * K + i] == Int32(e) { taken = true }
                    if !taken && (best < 0 || p[e] > bestV) { best = e; bestV = p[e] }
                }
                topIdx[t * K + j] = Int32(best)
                topW[t * K + j] = bestV
                sum += bestV
            }
            let inv = sum > 0 ? 1 / sum : 0
            for j in 0..<K { topW[t * K + j] *= inv }
        }
    }
}

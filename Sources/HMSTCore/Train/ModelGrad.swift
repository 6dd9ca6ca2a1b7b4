// ModelGrad: one training forward and backward of the whole decoder over a batch of B
// sequences of T tokens, on f32 Parameters. The forward keeps every activation the backward
// needs (named per layer below); the backward walks the layers in reverse, accumulating into
// Parameters.grads. Loss = mean next-token cross-entropy + the load-balancing loss computed,
// as HF Mixtral does, over the router outputs of all layers together.
//
// Activations are plain arrays for now: memory grows with B·T·L and no checkpointing yet.

public struct StepResult: Sendable {
    public var loss: Double      // cross-entropy + aux
    public var ceLoss: Double
    public var auxLoss: Double
    public var tokens: Int
}

final class LayerActivations {
    var xIn: [Float] = []    // [N, C] residual input
    var xn1: [Float] = []    // [N, C] rmsnorm(xIn)
    var rstd1: [Float] = []  // [N]
    var q: [Float] = []      // [N, H*Dh] after RoPE
    var k: [Float] = []      // [N, KV*Dh] after RoPE
    var v: [Float] = []      // [N, KV*Dh]
    var probs: [Float] = []  // [B, H, T, T] attention probabilities
    var att: [Float] = []    // [N, H*Dh]
    var x2: [Float] = []     // [N, C] after the attention residual
    var xn2: [Float] = []    // [N, C]
    var rstd2: [Float] = []  // [N]
    var rprobs: [Float] = [] // [N, E] router probabilities
    var topIdx: [Int32] = [] // [N, K]
    var gates: [Float] = []  // [N, K]
    var experts: [ExpertActivations] = []
}

struct ExpertActivations {
    var rows: [Int32] = []   // [n] token rows routed here
    var slots: [Int32] = []  // [n] which of the K choices it was
    var xe: [Float] = []     // [n, C]
    var a: [Float] = []      // [n, F] x·W1ᵀ
    var b: [Float] = []      // [n, F] x·W3ᵀ
    var h: [Float] = []      // [n, F] silu(a)·b
    var y: [Float] = []      // [n, C] h·W2ᵀ (before the gate)
}

public final class ModelGrad {
    public let params: Parameters
    let d: DecoderDims
    let auxCoef: Float
    /// Expert choices of the last step, all layers ([L, N, K]), for tests and diagnostics.
    public private(set) var lastRouting: [Int32] = []

    public init(params: Parameters) {
        self.params = params
        d = params.config.dims
        auxCoef = Float(params.config.routerAuxLossCoef)
    }

    /// windows: [B, T + 1] token ids (inputs are [.., 0..<T], targets [.., 1...T]).
    /// With backward, gradients are added to params.grads (zero them first).
    public func step(windows: [Int32], B: Int, T: Int, backward: Bool) throws -> StepResult {
        guard B >= 1, T >= 1, windows.count == B * (T + 1) else {
            throw HMSTError.invalidArgument("batch of \(windows.count) ids is not B=\(B) windows of T+1=\(T + 1)")
        }
        guard T <= d.maxPositions else { throw HMSTError.invalidArgument("sequence length \(T) exceeds max_position_embeddings \(d.maxPositions)") }
        if let bad = windows.first(where: { $0 < 0 || Int($0) >= d.V }) {
            throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(d.V)")
        }
        let N = B * T, C = d.C, qD = d.qDim, kvD = d.kvDim, E = d.E, K = d.K, F = d.F, V = d.V
        var inputs = [Int32](repeating: 0, count: N), targets = inputs
        for b in 0..<B {
            for t in 0..<T {
                inputs[b * T + t] = windows[b * (T + 1) + t]
                targets[b * T + t] = windows[b * (T + 1) + t + 1]
            }
        }
        // RoPE tables per row (positions restart in every sequence)
        let half = d.Dh / 2
        let invFreq = RoPE.inverseFrequencies(Dh: d.Dh, theta: d.ropeTheta)
        var cosT = [Float](repeating: 0, count: T * half), sinT = cosT
        RoPE.tables(cos: &cosT, sin: &sinT, invFreq: invFreq, pos0: 0, T: T)
        var cosN = [Float](), sinN = [Float](), negSinN = [Float]()
        for _ in 0..<B { cosN += cosT; sinN += sinT }
        negSinN = sinN.map { -$0 }

        let P = params
        func w(_ name: String) -> UnsafeMutablePointer<Float> { P.value(name) }
        func g(_ name: String) -> UnsafeMutablePointer<Float> { P.grad(name) }

        // ---------------- forward
        var x = [Float](repeating: 0, count: N * C)
        EmbeddingGrad.forward(x: &x, table: w("model.embed_tokens.weight"), tokens: inputs, N: N, C: C)
        var acts: [LayerActivations] = []
        for l in 0..<d.L {
            let p = "model.layers.\(l)."
            let a = LayerActivations()
            a.xIn = x
            a.xn1 = [Float](repeating: 0, count: N * C); a.rstd1 = [Float](repeating: 0, count: N)
            RMSNormGrad.forward(y: &a.xn1, rstd: &a.rstd1, x: a.xIn, w: w(p + "input_layernorm.weight"), N: N, C: C, eps: d.eps)
            a.q = [Float](repeating: 0, count: N * qD); a.k = [Float](repeating: 0, count: N * kvD); a.v = a.k
            LinearGrad.forward(y: &a.q, x: a.xn1, w: w(p + "self_attn.q_proj.weight"), N: N, I: C, O: qD)
            LinearGrad.forward(y: &a.k, x: a.xn1, w: w(p + "self_attn.k_proj.weight"), N: N, I: C, O: kvD)
            LinearGrad.forward(y: &a.v, x: a.xn1, w: w(p + "self_attn.v_proj.weight"), N: N, I: C, O: kvD)
            RoPEGrad.forward(&a.q, N: N, nHeads: d.H, Dh: d.Dh, ld: qD, cos: cosN, sin: sinN)
            RoPEGrad.forward(&a.k, N: N, nHeads: d.KV, Dh: d.Dh, ld: kvD, cos: cosN, sin: sinN)
            a.att = [Float](repeating: 0, count: N * qD); a.probs = [Float](repeating: 0, count: B * d.H * T * T)
            AttentionGrad.forward(out: &a.att, probs: &a.probs, q: a.q, k: a.k, v: a.v, B: B, T: T, H: d.H, KV: d.KV, Dh: d.Dh)
            var o = [Float](repeating: 0, count: N * C)
            LinearGrad.forward(y: &o, x: a.att, w: w(p + "self_attn.o_proj.weight"), N: N, I: qD, O: C)
            a.x2 = zip(a.xIn, o).map(+)
            a.xn2 = [Float](repeating: 0, count: N * C); a.rstd2 = [Float](repeating: 0, count: N)
            RMSNormGrad.forward(y: &a.xn2, rstd: &a.rstd2, x: a.x2, w: w(p + "post_attention_layernorm.weight"), N: N, C: C, eps: d.eps)
            var rl = [Float](repeating: 0, count: N * E)
            LinearGrad.forward(y: &rl, x: a.xn2, w: w(p + "block_sparse_moe.gate.weight"), N: N, I: C, O: E)
            a.rprobs = [Float](repeating: 0, count: N * E); a.topIdx = [Int32](repeating: 0, count: N * K); a.gates = [Float](repeating: 0, count: N * K)
            RouterGrad.forward(probs: &a.rprobs, topIdx: &a.topIdx, gates: &a.gates, logits: rl, N: N, E: E, K: K)
            var out = a.x2
            a.experts = (0..<E).map { _ in ExpertActivations() }
            for n in 0..<N {
                for j in 0..<K {
                    let e = Int(a.topIdx[n * K + j])
                    a.experts[e].rows.append(Int32(n))
                    a.experts[e].slots.append(Int32(j))
                }
            }
            for e in 0..<E where !a.experts[e].rows.isEmpty {
                let ep = p + "block_sparse_moe.experts.\(e)."
                var ex = a.experts[e]
                let n = ex.rows.count
                ex.xe = [Float](repeating: 0, count: n * C)
                for (i, r) in ex.rows.enumerated() { for c in 0..<C { ex.xe[i * C + c] = a.xn2[Int(r) * C + c] } }
                ex.a = [Float](repeating: 0, count: n * F); ex.b = ex.a; ex.h = ex.a
                LinearGrad.forward(y: &ex.a, x: ex.xe, w: w(ep + "w1.weight"), N: n, I: C, O: F)
                LinearGrad.forward(y: &ex.b, x: ex.xe, w: w(ep + "w3.weight"), N: n, I: C, O: F)
                SwiGLUGrad.forward(h: &ex.h, a: ex.a, b: ex.b, n: n * F)
                ex.y = [Float](repeating: 0, count: n * C)
                LinearGrad.forward(y: &ex.y, x: ex.h, w: w(ep + "w2.weight"), N: n, I: F, O: C)
                for (i, r) in ex.rows.enumerated() {
                    let gate = a.gates[Int(r) * K + Int(ex.slots[i])]
                    for c in 0..<C { out[Int(r) * C + c] += gate * ex.y[i * C + c] }
                }
                a.experts[e] = ex
            }
            x = out
            acts.append(a)
        }
        var xnF = [Float](repeating: 0, count: N * C), rstdF = [Float](repeating: 0, count: N)
        RMSNormGrad.forward(y: &xnF, rstd: &rstdF, x: x, w: w("model.norm.weight"), N: N, C: C, eps: d.eps)
        let headName = d.tiedEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"
        var logits = [Float](repeating: 0, count: N * V)
        LinearGrad.forward(y: &logits, x: xnF, w: w(headName), N: N, I: C, O: V)
        let (ce, count) = CrossEntropy.forward(logits: &logits, targets: targets, N: N, V: V)  // logits -> probs
        // load balancing over every layer's routing at once
        let allProbs = acts.flatMap(\.rprobs), allIdx = acts.flatMap(\.topIdx)
        lastRouting = allIdx
        var dAllRouter = [Float](repeating: 0, count: allProbs.count)
        let aux = dAllRouter.withUnsafeMutableBufferPointer { buf in
            RouterGrad.auxLoss(dlogits: backward ? buf.baseAddress : nil, probs: allProbs, topIdx: allIdx,
                               N: N * d.L, E: E, K: K, coef: auxCoef)
        }
        let result = StepResult(loss: ce + Double(aux), ceLoss: ce, auxLoss: Double(aux), tokens: count)
        guard backward else { return result }

        // ---------------- backward
        CrossEntropy.backward(probs: &logits, targets: targets, N: N, V: V, scale: 1 / Float(max(1, count)))
        var dxnF = [Float](repeating: 0, count: N * C)
        LinearGrad.backward(dx: &dxnF, dW: g(headName), dy: logits, x: xnF, w: w(headName), N: N, I: C, O: V)
        var dx = [Float](repeating: 0, count: N * C)
        RMSNormGrad.backward(dx: &dx, dw: g("model.norm.weight"), dy: dxnF, x: x, w: w("model.norm.weight"), rstd: rstdF, N: N, C: C)
        for l in stride(from: d.L - 1, through: 0, by: -1) {
            let p = "model.layers.\(l)."
            let a = acts[l]
            // x_out = x2 + Σ gate·expert(xn2): the residual passes dx to x2 unchanged
            var dx2 = dx
            var dxn2 = [Float](repeating: 0, count: N * C)
            var dgates = [Float](repeating: 0, count: N * K)
            for e in 0..<E where !a.experts[e].rows.isEmpty {
                let ep = p + "block_sparse_moe.experts.\(e)."
                let ex = a.experts[e]
                let n = ex.rows.count
                var dy = [Float](repeating: 0, count: n * C)
                for (i, r) in ex.rows.enumerated() {
                    let slot = Int(r) * K + Int(ex.slots[i])
                    var dg: Float = 0
                    for c in 0..<C {
                        let dout = dx[Int(r) * C + c]
                        dg += dout * ex.y[i * C + c]
                        dy[i * C + c] = a.gates[slot] * dout
                    }
                    dgates[slot] += dg
                }
                var dh = [Float](repeating: 0, count: n * F)
                LinearGrad.backward(dx: &dh, dW: g(ep + "w2.weight"), dy: dy, x: ex.h, w: w(ep + "w2.weight"), N: n, I: F, O: C)
                var da = [Float](repeating: 0, count: n * F), db = da
                SwiGLUGrad.backward(da: &da, db: &db, dh: dh, a: ex.a, b: ex.b, n: n * F)
                var dxe = [Float](repeating: 0, count: n * C)
                LinearGrad.backward(dx: &dxe, dW: g(ep + "w1.weight"), dy: da, x: ex.xe, w: w(ep + "w1.weight"), N: n, I: C, O: F)
                LinearGrad.backward(dx: &dxe, dW: g(ep + "w3.weight"), dy: db, x: ex.xe, w: w(ep + "w3.weight"), N: n, I: C, O: F)
                for (i, r) in ex.rows.enumerated() { for c in 0..<C { dxn2[Int(r) * C + c] += dxe[i * C + c] } }
            }
            var drl = [Float](repeating: 0, count: N * E)
            RouterGrad.backward(dlogits: &drl, dgates: dgates, probs: a.rprobs, topIdx: a.topIdx, gates: a.gates, N: N, E: E, K: K)
            for i in 0..<(N * E) { drl[i] += dAllRouter[l * N * E + i] }
            LinearGrad.backward(dx: &dxn2, dW: g(p + "block_sparse_moe.gate.weight"), dy: drl, x: a.xn2,
                                w: w(p + "block_sparse_moe.gate.weight"), N: N, I: C, O: E)
            RMSNormGrad.backward(dx: &dx2, dw: g(p + "post_attention_layernorm.weight"), dy: dxn2, x: a.x2,
                                 w: w(p + "post_attention_layernorm.weight"), rstd: a.rstd2, N: N, C: C)
            // x2 = xIn + o_proj(att)
            var datt = [Float](repeating: 0, count: N * qD)
            LinearGrad.backward(dx: &datt, dW: g(p + "self_attn.o_proj.weight"), dy: dx2, x: a.att, w: w(p + "self_attn.o_proj.weight"),
                                N: N, I: qD, O: C)
            var dq = [Float](repeating: 0, count: N * qD), dk = [Float](repeating: 0, count: N * kvD), dv = dk
            var scratch = [Float](repeating: 0, count: T * T)
            AttentionGrad.backward(dq: &dq, dk: &dk, dv: &dv, dout: datt, probs: a.probs, q: a.q, k: a.k, v: a.v, scratch: &scratch,
                                   B: B, T: T, H: d.H, KV: d.KV, Dh: d.Dh)
            RoPEGrad.backward(&dq, N: N, nHeads: d.H, Dh: d.Dh, ld: qD, cos: cosN, negSin: negSinN)
            RoPEGrad.backward(&dk, N: N, nHeads: d.KV, Dh: d.Dh, ld: kvD, cos: cosN, negSin: negSinN)
            var dxn1 = [Float](repeating: 0, count: N * C)
            LinearGrad.backward(dx: &dxn1, dW: g(p + "self_attn.q_proj.weight"), dy: dq, x: a.xn1, w: w(p + "self_attn.q_proj.weight"), N: N, I: C, O: qD)
            LinearGrad.backward(dx: &dxn1, dW: g(p + "self_attn.k_proj.weight"), dy: dk, x: a.xn1, w: w(p + "self_attn.k_proj.weight"), N: N, I: C, O: kvD)
            LinearGrad.backward(dx: &dxn1, dW: g(p + "self_attn.v_proj.weight"), dy: dv, x: a.xn1, w: w(p + "self_attn.v_proj.weight"), N: N, I: C, O: kvD)
            // xIn feeds both the residual (dx2) and the norm
            RMSNormGrad.backward(dx: &dx2, dw: g(p + "input_layernorm.weight"), dy: dxn1, x: a.xIn,
                                 w: w(p + "input_layernorm.weight"), rstd: a.rstd1, N: N, C: C)
            dx = dx2
        }
        EmbeddingGrad.backward(dTable: g("model.embed_tokens.weight"), dx: dx, tokens: inputs, N: N, C: C)
        return result
    }
}

// ModelGrad: one training forward and backward of the whole decoder over a batch of B
// sequences of T tokens, on f32 Parameters. The forward keeps what the backward needs in
// StepBuffers (reused across steps); the backward walks the layers in reverse, accumulating
// into Parameters.grads. Loss = mean next-token cross-entropy + the load-balancing loss
// computed, as HF Mixtral does, over the router outputs of all layers together.
//
// Options: mixed precision runs every projection, expert and LM-head GEMM with bf16 operands
// and f32 accumulation (weights, activations, gradients and optimizer stay f32; the router
// stays f32 so expert choices do not flip); gradient checkpointing keeps only each layer's
// input and recomputes the layer's forward during backward.

import CBLAS

public struct StepResult: Sendable {
    public var loss: Double      // cross-entropy + aux
    public var ceLoss: Double
    /// the router's load-balancing loss, plus the copy head's gate target when it has one
    public var auxLoss: Double
    public var tokens: Int
}

public struct ModelGradOptions: Sendable, Equatable {
    public var precision: MatmulPrecision = .f32
    public var gradientCheckpointing = false
    public init(precision: MatmulPrecision = .f32, gradientCheckpointing: Bool = false) {
        self.precision = precision
        self.gradientCheckpointing = gradientCheckpointing
    }
}

/// Pointers to one layer's tensors inside a flat Parameters buffer (values or grads).
struct LayerTensors {
    let attnNorm, q, k, v, o, ffnNorm, router: UnsafeMutablePointer<Float>
    let w1, w2, w3: [UnsafeMutablePointer<Float>]   // E each: [F, C], [C, F], [F, C]

    init(layer l: Int, E: Int, _ at: (String) -> UnsafeMutablePointer<Float>) {
        let n = MixtralNames.layer(l, experts: E)
        attnNorm = at(n.attnNorm)
        q = at(n.q); k = at(n.k); v = at(n.v); o = at(n.o)
        ffnNorm = at(n.ffnNorm)
        router = at(n.router)
        w1 = n.w1.map(at)
        w2 = n.w2.map(at)
        w3 = n.w3.map(at)
    }
}

public final class ModelGrad {
    public let params: Parameters
    public let options: ModelGradOptions
    let d: DecoderDims
    let auxCoef: Float
    let mm: Matmul
    let f32 = Matmul(precision: .f32)
    let W: [LayerTensors]   // values
    let G: [LayerTensors]   // gradients
    /// Called during backward with a range of params.grads (element offsets) whose gradient
    /// this step will not touch again: the final norm and LM head right after their backward,
    /// then each layer's tensors as its backward ends (L-1 down to 0). Data parallelism starts
    /// those ranges' all-reduce while the rest of the backward runs (DataParallel).
    public var gradientsReady: ((Range<Int>) -> Void)?
    /// element offsets of layer l's first tensor, of model.norm.weight, and the total
    lazy var regionStarts: (layers: [Int], tail: Int) = {
        let layers = (0..<d.L).map { params.offsets[params.index[MixtralNames.layer($0, experts: d.E).attnNorm] ?? 0] }
        return (layers, params.offsets[params.index[MixtralNames.finalNorm] ?? 0])
    }()
    let embed, embedGrad, finalNorm, finalNormGrad, head, headGrad: UnsafeMutablePointer<Float>
    var buffers: StepBuffers?
    var lastStepHadBackward = false
    /// A copy head trained with the model (Copy/CopyHeadGrad.swift): it mixes its pointer
    /// into the loss of every target row that has memory tokens before it, and its gradient
    /// flows into the model through the final-norm states. Its own gradients go to its grads.
    public var copyHead: CopyHead? {
        didSet { copyStep = nil }
    }
    var copyStep: CopyHeadStep?
    /// λ of the copy head's gate target (CopyHeadGrad.swift; 0: none), in the loss as auxiliary
    public var copyGateTargetWeight: Float = 0
    /// λ of the gate target on softTargets' rows (0: none; their KL holds a gate term of weight 1)
    public var softGateTargetWeight: Float = 0
    /// μ of the gate's opening target on rows whose memory holds the answer (CopyHeadGrad.swift; 0: none)
    public var copyGateOpenWeight: Float = 0
    /// Rows trained towards a distribution q instead of their hard target (Stage 2's distilled
    /// examples, DistillBatch): each adds KL(q ‖ p) to the loss in place of −log p(y), and its
    /// logits' gradient is (p − q)/count. The copy head, where it covers such a row, counts
    /// none of q as copyable, so the row also pulls its gate shut (−log(1 − g)). The rows keep a
    /// hard target ≥ 0 (it makes them count); set before step, read by the next step only.
    public var softTargets: SoftTargets?

    public struct SoftTargets: Sendable {
        /// batch positions (b·T + t)
        public var rows: [Int]
        /// [rows.count, V]: a distribution per row
        public var probs: [Float]
        public init(rows: [Int], probs: [Float]) { self.rows = rows; self.probs = probs }
    }

    public init(params: Parameters, options: ModelGradOptions = ModelGradOptions()) {
        self.params = params
        self.options = options
        d = params.config.dims
        auxCoef = Float(params.config.routerAuxLossCoef)
        mm = Matmul(precision: options.precision)
        let E = d.E
        W = (0..<d.L).map { LayerTensors(layer: $0, E: E, params.value) }
        G = (0..<d.L).map { LayerTensors(layer: $0, E: E, params.grad) }
        embed = params.value(MixtralNames.embed); embedGrad = params.grad(MixtralNames.embed)
        finalNorm = params.value(MixtralNames.finalNorm); finalNormGrad = params.grad(MixtralNames.finalNorm)
        let headName = d.tiedEmbeddings ? MixtralNames.embed : MixtralNames.lmHead
        head = params.value(headName); headGrad = params.grad(headName)
    }

    /// Expert choices of the last step, all layers ([L, N, K]), for tests and diagnostics.
    public var lastRouting: [Int32] {
        guard let b = buffers else { return [] }
        return Array(UnsafeBufferPointer(start: b.topIdx.pointer, count: b.topIdx.count))
    }

    /// Bytes of the step's buffers for the last batch shape: (all, activations kept from
    /// forward to backward). Gradient checkpointing shrinks the second.
    public var bufferBytes: (total: Int, activations: Int) { (buffers?.bytes ?? 0, buffers?.activationBytes ?? 0) }

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
        let s = try buffers(B: B, T: T)
        prepare(s, windows: windows)
        return Threads.withSingleThreadedBLAS { run(s, backward: backward) }
    }

    /// inputs, targets: [B, T] token ids; a target of -1 masks its position out (no loss, no
    /// gradient) and the loss is the mean over the positions that count. Stage 2 trains on
    /// answer tokens only this way, with padded examples. With backward, gradients are added
    /// to params.grads (zero them first).
    ///
    /// injected: rows given as embeddings at chosen positions (b·T + t) instead of their tokens'
    /// (the episodic soft tokens); with backward, dL/d(those rows) is left in injectedGradient
    /// and the placeholder tokens' embedding rows get no gradient from those positions.
    public func step(inputs: [Int32], targets: [Int32], B: Int, T: Int, injected: InjectedEmbeddings? = nil,
                     backward: Bool) throws -> StepResult {
        guard B >= 1, T >= 1, inputs.count == B * T, targets.count == B * T else {
            throw HMSTError.invalidArgument("\(inputs.count) inputs and \(targets.count) targets are not B=\(B) rows of T=\(T)")
        }
        guard T <= d.maxPositions else { throw HMSTError.invalidArgument("sequence length \(T) exceeds max_position_embeddings \(d.maxPositions)") }
        if let bad = inputs.first(where: { $0 < 0 || Int($0) >= d.V }) {
            throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(d.V)")
        }
        if let bad = targets.first(where: { $0 < -1 || Int($0) >= d.V }) {
            throw HMSTError.invalidArgument("target \(bad) is neither -1 (masked) nor in the vocabulary 0 ..< \(d.V)")
        }
        if let injected { try injected.validate(C: d.C, limit: B * T, vocabulary: d.V) }
        if let soft = softTargets {
            guard soft.probs.count == soft.rows.count * d.V, Set(soft.rows).count == soft.rows.count else {
                throw HMSTError.invalidArgument("soft targets: \(soft.probs.count) probabilities for \(soft.rows.count) distinct rows of \(d.V)")
            }
            if let bad = soft.rows.first(where: { $0 < 0 || $0 >= B * T || targets[$0] < 0 }) {
                throw HMSTError.invalidArgument("soft target row \(bad) is outside the batch or has no target")
            }
            guard soft.probs.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw HMSTError.invalidArgument("soft targets hold a negative or non-finite probability")
            }
        }
        let s = try buffers(B: B, T: T)
        s.inputs.pointer.update(from: inputs, count: B * T)
        s.targets.pointer.update(from: targets, count: B * T)
        self.injected = injected.flatMap { $0.isEmpty ? nil : $0 }
        defer { self.injected = nil }
        return Threads.withSingleThreadedBLAS { run(s, backward: backward) }
    }

    /// dL/d(injected rows) [P, C] of the last step with injected rows and backward.
    public private(set) var injectedGradient: [Float] = []
    /// the injected rows of the step being run
    private var injected: InjectedEmbeddings?

    /// The next-token probabilities of the last step, [B·T, V] row-major, while they are still
    /// there: after a step without backward (backward turns them into gradients).
    public func withLastProbabilities<R>(_ body: (UnsafePointer<Float>, _ rows: Int, _ V: Int) throws -> R) rethrows -> R? {
        guard let s = buffers, !lastStepHadBackward else { return nil }
        return try body(s.logits.pointer, s.shape.N, d.V)
    }

    /// The final-norm hidden states of the last step (what the LM head read), [B·T, C] row-major.
    public func withLastHiddenStates<R>(_ body: (UnsafePointer<Float>, _ rows: Int, _ C: Int) throws -> R) rethrows -> R? {
        guard let s = buffers else { return nil }
        return try body(s.xnF.pointer, s.shape.N, d.C)
    }

    private func buffers(B: Int, T: Int) throws -> StepBuffers {
        let shape = StepShape(d: d, B: B, T: T)
        if buffers?.shape != shape { buffers = nil; buffers = try StepBuffers(shape: shape, checkpointing: options.gradientCheckpointing) }
        guard let s = buffers else { throw HMSTError(.internal, "step buffers missing") }
        return s
    }

    /// Inputs and targets of the batch (the RoPE tables come with the buffers).
    private func prepare(_ s: StepBuffers, windows: [Int32]) {
        let B = s.shape.B, T = s.shape.T
        for b in 0..<B {
            for t in 0..<T {
                s.inputs.pointer[b * T + t] = windows[b * (T + 1) + t]
                s.targets.pointer[b * T + t] = windows[b * (T + 1) + t + 1]
            }
        }
    }

    private func run(_ s: StepBuffers, backward: Bool) -> StepResult {
        lastStepHadBackward = backward
        let N = s.shape.N, C = d.C, V = d.V, L = d.L
        // ---------------- forward
        EmbeddingGrad.forward(x: s.xIn[0].pointer, table: embed, tokens: s.inputs.pointer, N: N, C: C)
        injected?.apply(to: s.xIn[0].pointer, C: C)
        for l in 0..<L {
            forwardLayer(l, s, out: l + 1 < L ? s.xIn[l + 1].pointer : s.xOut.pointer)
        }
        RMSNormGrad.forward(y: s.xnF.pointer, rstd: s.rstdF.pointer, x: s.xOut.pointer, w: finalNorm, N: N, C: C, eps: d.eps)
        mm.linear(y: s.logits.pointer, x: s.xnF.pointer, w: head, N: N, I: C, O: V)
        let (ce0, count) = CrossEntropy.forward(logits: s.logits.pointer, targets: s.targets.pointer, N: N, V: V)  // -> probs
        var ce = ce0
        let soft = softTargets.flatMap { $0.rows.isEmpty ? nil : $0 }
        if let soft { ce += softLoss(soft, probs: s.logits.pointer, targets: s.targets.pointer, V: V) / Double(max(1, count)) }
        var copy: CopyHeadStep? = nil
        var gateAux = 0.0
        if let head = copyHead {
            if copyStep?.N != N { copyStep = CopyHeadStep(head: head, N: N) }
            copy = copyStep
            let r = copy?.run(xn: s.xnF.pointer, inputs: s.inputs.pointer, targets: s.targets.pointer, probs: s.logits.pointer,
                              B: s.shape.B, T: s.shape.T, V: V, scale: 1 / Float(max(1, count)), backward: backward,
                              copyTokens: injected?.copySources ?? [:], gateTarget: copyGateTargetWeight,
                              softRows: Set(soft?.rows ?? []), softGateTarget: softGateTargetWeight,
                              openTarget: copyGateOpenWeight) ?? (added: 0, gate: 0)
            ce += r.added / Double(max(1, count))
            gateAux = r.gate / Double(max(1, count))
        }
        s.dAllRouter.pointer.update(repeating: 0, count: s.dAllRouter.count)
        let aux = RouterGrad.auxLoss(dlogits: backward ? s.dAllRouter.pointer : nil, probs: s.rprobs.pointer,
                                     topIdx: s.topIdx.pointer, N: N * L, E: d.E, K: d.K, coef: auxCoef)
        let result = StepResult(loss: ce + Double(aux) + gateAux, ceLoss: ce, auxLoss: Double(aux) + gateAux, tokens: count)
        guard backward else { return result }

        // ---------------- backward
        CrossEntropy.backward(probs: s.logits.pointer, targets: s.targets.pointer, N: N, V: V, scale: 1 / Float(max(1, count)))
        if let soft {   // (p − onehot(y))·scale becomes (p − q)·scale
            let scale = 1 / Float(max(1, count))
            soft.probs.withUnsafeBufferPointer { q in
                for (i, row) in soft.rows.enumerated() {
                    let g = s.logits.pointer + row * V
                    g[Int(s.targets.pointer[row])] += scale
                    cblas_saxpy(Int32(V), -scale, q.baseAddress! + i * V, 1, g, 1)
                }
            }
        }
        if let copy {   // the LM's share of each mixed row's probability scales its gradient
            for (row, r) in copy.vocabScale {
                let g = s.logits.pointer + row * V
                for v in 0..<V { g[v] *= r }
            }
        }
        mm.linearBackward(dx: s.dxn1.pointer, dxBeta: 0, dW: headGrad, dy: s.logits.pointer, x: s.xnF.pointer, w: head, N: N, I: C, O: V)
        if let copy, copy.touched {
            let dx = s.dxn1.pointer, dc = copy.dxn.pointer
            for i in 0..<(N * C) { dx[i] += dc[i] }
        }
        parallelZero(s.dx.pointer, count: N * C)
        RMSNormGrad.backward(dx: s.dx.pointer, dw: finalNormGrad, dy: s.dxn1.pointer, x: s.xOut.pointer, w: finalNorm,
                             rstd: s.rstdF.pointer, N: N, C: C)
        // the final norm and an untied head are done (a tied head's gradient is the embedding's, done last)
        if let ready = gradientsReady { ready(regionStarts.tail ..< params.count) }
        for l in stride(from: L - 1, through: 0, by: -1) {
            // checkpointing: refill the shared activation set (xOut is free by now)
            if s.checkpointing { forwardLayer(l, s, out: s.xOut.pointer) }
            backwardLayer(l, s)
            if let ready = gradientsReady {
                let r = regionStarts
                ready(r.layers[l] ..< (l + 1 < L ? r.layers[l + 1] : r.tail))
            }
        }
        if let injected {
            // the injected rows take their gradient; the placeholders' embeddings none
            injectedGradient = [Float](repeating: 0, count: injected.positions.count * C)
            let dx = s.dx.pointer
            injectedGradient.withUnsafeMutableBufferPointer { g in
                for (i, p) in injected.positions.enumerated() {
                    (g.baseAddress! + i * C).update(from: dx + p * C, count: C)
                    (dx + p * C).update(repeating: 0, count: C)
                }
            }
        }
        EmbeddingGrad.backward(dTable: embedGrad, dx: s.dx.pointer, tokens: s.inputs.pointer, N: N, C: C)
        return result
    }

    /// Σ over the soft rows of KL(q ‖ p) + log p(y): what replacing each row's −log p(y) (in
    /// CrossEntropy.forward's sum) by its KL adds. probs: the softmax rows.
    private func softLoss(_ soft: SoftTargets, probs: UnsafePointer<Float>, targets: UnsafePointer<Int32>, V: Int) -> Double {
        let tiny = Float.leastNormalMagnitude
        var total = 0.0
        soft.probs.withUnsafeBufferPointer { qb in
            for (i, row) in soft.rows.enumerated() {
                let p = probs + row * V, q = qb.baseAddress! + i * V
                var kl = 0.0
                for v in 0..<V where q[v] > 0 { kl += Double(q[v]) * Double(logf(q[v]) - logf(max(p[v], tiny))) }
                total += kl + Double(logf(max(p[Int(targets[row])], tiny)))
            }
        }
        return total
    }

    /// One decoder layer: x = xIn[l] -> out.
    private func forwardLayer(_ l: Int, _ s: StepBuffers, out: UnsafeMutablePointer<Float>) {
        let a = s.layerActs(l), w = W[l]
        let B = s.shape.B, T = s.shape.T, N = s.shape.N, C = d.C, qD = d.qDim, kvD = d.kvDim, E = d.E, K = d.K
        let x = s.xIn[l].pointer
        RMSNormGrad.forward(y: a.xn1.pointer, rstd: a.rstd1.pointer, x: x, w: w.attnNorm, N: N, C: C, eps: d.eps)
        mm.run([[mm.linearCall(y: a.q.pointer, x: a.xn1.pointer, w: w.q, N: N, I: C, O: qD)],
                [mm.linearCall(y: a.k.pointer, x: a.xn1.pointer, w: w.k, N: N, I: C, O: kvD)],
                [mm.linearCall(y: a.v.pointer, x: a.xn1.pointer, w: w.v, N: N, I: C, O: kvD)]])
        RoPEGrad.forward(a.q.pointer, N: N, nHeads: d.H, Dh: d.Dh, ld: qD, cos: s.cos.pointer, sin: s.sin.pointer)
        RoPEGrad.forward(a.k.pointer, N: N, nHeads: d.KV, Dh: d.Dh, ld: kvD, cos: s.cos.pointer, sin: s.sin.pointer)
        AttentionGrad.forward(mm: mm, out: a.att.pointer, probs: a.probs.pointer, q: a.q.pointer, k: a.k.pointer, v: a.v.pointer,
                              B: B, T: T, H: d.H, KV: d.KV, Dh: d.Dh)
        mm.linear(y: s.o.pointer, x: a.att.pointer, w: w.o, N: N, I: qD, O: C)
        let x2 = a.x2.pointer, o = s.o.pointer
        parallelRows(N) { r in for i in (r.lowerBound * C)..<(r.upperBound * C) { x2[i] = x[i] + o[i] } }
        RMSNormGrad.forward(y: a.xn2.pointer, rstd: a.rstd2.pointer, x: x2, w: w.ffnNorm, N: N, C: C, eps: d.eps)
        // the router stays f32: its choices must not flip with the matmul precision
        f32.linear(y: s.rl.pointer, x: a.xn2.pointer, w: w.router, N: N, I: C, O: E)
        let probs = s.rprobs.pointer + l * N * E, topIdx = s.topIdx.pointer + l * N * K
        RouterGrad.forward(probs: probs, topIdx: topIdx, gates: a.gates.pointer, logits: s.rl.pointer, N: N, E: E, K: K)
        MoEGrad.dispatch(a, topIdx: topIdx, N: N, E: E, K: K)
        MoEGrad.forward(out: out, a, s, w: w, mm: mm, d: d, N: N)
    }

    /// Differentiates forwardLayer: s.dx holds dL/d(out) on entry and dL/d(xIn[l]) on exit.
    private func backwardLayer(_ l: Int, _ s: StepBuffers) {
        let a = s.layerActs(l), w = W[l], g = G[l]
        let B = s.shape.B, T = s.shape.T, N = s.shape.N, C = d.C, qD = d.qDim, kvD = d.kvDim, E = d.E, K = d.K
        // out = x2 + Σ gate·expert(xn2): the residual passes dx to x2 unchanged
        parallelCopy(s.dx2.pointer, from: s.dx.pointer, count: N * C)
        MoEGrad.backward(dxn2: s.dxn2.pointer, a, s, w: w, g: g, mm: mm, d: d, N: N)
        let probs = s.rprobs.pointer + l * N * E, topIdx = s.topIdx.pointer + l * N * K
        RouterGrad.backward(dlogits: s.drl.pointer, dgates: s.dgates.pointer, probs: probs, topIdx: topIdx,
                            gates: a.gates.pointer, N: N, E: E, K: K)
        let drl = s.drl.pointer, dAux = s.dAllRouter.pointer + l * N * E
        for i in 0..<(N * E) { drl[i] += dAux[i] }
        f32.linearBackward(dx: s.dxn2.pointer, dW: g.router, dy: drl, x: a.xn2.pointer, w: w.router, N: N, I: C, O: E)
        RMSNormGrad.backward(dx: s.dx2.pointer, dw: g.ffnNorm, dy: s.dxn2.pointer, x: a.x2.pointer, w: w.ffnNorm,
                             rstd: a.rstd2.pointer, N: N, C: C)
        // x2 = xIn + o_proj(att)
        mm.linearBackward(dx: s.datt.pointer, dxBeta: 0, dW: g.o, dy: s.dx2.pointer, x: a.att.pointer, w: w.o, N: N, I: qD, O: C)
        parallelZero(s.dq.pointer, count: N * qD)
        parallelZero(s.dk.pointer, count: N * kvD)
        parallelZero(s.dv.pointer, count: N * kvD)
        AttentionGrad.backward(mm: mm, dq: s.dq.pointer, dk: s.dk.pointer, dv: s.dv.pointer, dout: s.datt.pointer, probs: a.probs.pointer,
                               q: a.q.pointer, k: a.k.pointer, v: a.v.pointer, scratch: s.attScratch.pointer,
                               B: B, T: T, H: d.H, KV: d.KV, Dh: d.Dh)
        RoPEGrad.backward(s.dq.pointer, N: N, nHeads: d.H, Dh: d.Dh, ld: qD, cos: s.cos.pointer, negSin: s.negSin.pointer)
        RoPEGrad.backward(s.dk.pointer, N: N, nHeads: d.KV, Dh: d.Dh, ld: kvD, cos: s.cos.pointer, negSin: s.negSin.pointer)
        // q, k and v all feed dxn1: their dx GEMMs run in order in one chain, beside the three dW
        let cq = mm.linearBackwardCalls(dx: s.dxn1.pointer, dxBeta: 0, dW: g.q, dy: s.dq.pointer, x: a.xn1.pointer, w: w.q, N: N, I: C, O: qD)
        let ck = mm.linearBackwardCalls(dx: s.dxn1.pointer, dW: g.k, dy: s.dk.pointer, x: a.xn1.pointer, w: w.k, N: N, I: C, O: kvD)
        let cv = mm.linearBackwardCalls(dx: s.dxn1.pointer, dW: g.v, dy: s.dv.pointer, x: a.xn1.pointer, w: w.v, N: N, I: C, O: kvD)
        mm.run([[cq.dx, ck.dx, cv.dx], [cq.dW], [ck.dW], [cv.dW]])
        // xIn feeds both the residual (dx2) and the norm
        RMSNormGrad.backward(dx: s.dx2.pointer, dw: g.attnNorm, dy: s.dxn1.pointer, x: s.xIn[l].pointer, w: w.attnNorm,
                             rstd: a.rstd1.pointer, N: N, C: C)
        parallelCopy(s.dx.pointer, from: s.dx2.pointer, count: N * C)
    }
}

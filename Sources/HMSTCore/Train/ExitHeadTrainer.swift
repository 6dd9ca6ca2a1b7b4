// ExitHeadTrainer: fits an ExitHead (Inference/ExitHead.swift) on language-modelling windows
// with the model frozen: residual streams after `layer` layers are collected once per batch,
// and only the head's norm gain g [C] and adapter A [C, C] learn, by AdamW on the next-token
// cross-entropy through the model's own LM head:
//   xn = rmsnorm(x; g), y = xn · Aᵀ, logits = y · W_headᵀ
//   dy = dlogits · W_head, dA = dyᵀ · xn, dxn = dy · A, (dg from RMSNorm's backward)
// Starting from g = final norm, A = I it is the plain early read-out; validation loss is
// measured on held-out windows before and after.
import Foundation

public struct ExitHeadTrainingOptions: Sendable {
    public var layer = 0            // 0: half the model's depth
    public var steps = 300
    public var batchWindows = 8
    public var seqLen = 128
    public var learningRate: Float = 1e-3
    public var validationWindows = 32
    public var seed: UInt64 = 0
    public init() {}
}

public struct ExitHeadTrainingReport: Sendable {
    public var layer = 0
    public var valLossFull = 0.0       // the whole model
    public var valLossBefore = 0.0     // early read-out through the final norm
    public var valLossAfter = 0.0      // through the trained exit head
    public var steps = 0
    public var seconds = 0.0
    public var flopsFraction = 0.0     // of the full forward per token, exit head included
}

public enum ExitHeadTrainer {
    public static func train(model: LanguageModel, train: TokenDataset, validation: TokenDataset,
                             options o: ExitHeadTrainingOptions, progress: (Int, Double) -> Void = { _, _ in }) throws
        -> (ExitHead, ExitHeadTrainingReport) {
        let d = model.dims
        let layer = o.layer == 0 ? max(1, d.L / 2) : o.layer
        guard layer >= 1, layer < d.L else { throw HMSTError.invalidArgument("exit layer \(layer) must be in 1...\(d.L - 1)") }
        guard o.steps >= 1, o.batchWindows >= 1, o.validationWindows >= 1 else {
            throw HMSTError.invalidArgument("exit head: steps (\(o.steps)), batch (\(o.batchWindows)) and validation windows (\(o.validationWindows)) must be >= 1")
        }
        guard o.seqLen >= 2 else { throw HMSTError.invalidArgument("exit head: sequence length \(o.seqLen) must be >= 2 (a token and the next)") }
        // a negative rate ascended the loss and saved the worse head with rc 0
        guard o.learningRate > 0, o.learningRate.isFinite else {
            throw HMSTError.invalidArgument("exit head: learning rate \(o.learningRate) must be finite and > 0")
        }
        guard case let .f32(head) = model.decoder.weights.lmHead.storage, case let .f32(finalNorm) = model.decoder.weights.finalNorm.storage else {
            throw HMSTError.unsupported("exit head training needs f32 weights (load the model with weights f32)")
        }
        let C = d.C, V = d.V, T = o.seqLen, B = o.batchWindows, N = B * T
        var sp = SessionParams()
        sp.nCtx = T
        sp.nBatch = T
        let session = try Session(decoder: model.decoder, params: sp)
        // the head being trained, starting at the plain read-out
        var g = Array(UnsafeBufferPointer(start: finalNorm, count: C))
        var A = [Float](repeating: 0, count: C * C)
        for i in 0..<C { A[i * C + i] = 1 }
        let mm = Matmul(precision: .f32)
        let x = FloatBuffer(count: N * C), xn = FloatBuffer(count: N * C), y = FloatBuffer(count: N * C)
        let rstd = FloatBuffer(count: N), logits = FloatBuffer(count: N * V), dy = FloatBuffer(count: N * C)
        let dxn = FloatBuffer(count: N * C), dx = FloatBuffer(count: N * C)
        var targets = [Int32](repeating: -1, count: N)
        let dA = FloatBuffer(count: C * C), dg = FloatBuffer(count: C)
        let mA = FloatBuffer(count: C * C), vA = FloatBuffer(count: C * C), mg = FloatBuffer(count: C), vg = FloatBuffer(count: C)
        var rng = RNG(seed: o.seed)

        /// residual streams after `layer` layers for window starts, with their next tokens
        func collect(_ ds: TokenDataset, starts: [(Int, Int)], layers: Int = layer) throws {
            targets = [Int32](repeating: -1, count: N)
            for (b, (s, at)) in starts.enumerated() {
                var toks = [Int32](repeating: 0, count: T + 1)
                toks.withUnsafeMutableBufferPointer { ds.shards[s].copy(from: at, count: T + 1, to: $0.baseAddress!) }
                session.reset()
                try session.setBudget(ComputeBudget(layers: layers))
                try session.evaluate(Array(toks[0..<T]))
                (x.pointer + b * T * C).update(from: session.residual(rows: T).baseAddress!, count: T * C)
                for t in 0..<T { targets[b * T + t] = toks[t + 1] }
            }
        }
        func randomStarts(_ ds: TokenDataset, _ n: Int) throws -> [(Int, Int)] {
            let usable = ds.shards.indices.filter { ds.shards[$0].count > T + 1 }
            guard !usable.isEmpty else { throw HMSTError.invalidArgument("\(ds.directory): no shard longer than \(T + 1) tokens") }
            return (0..<n).map { _ in
                let s = usable[Int(rng.next() % UInt64(usable.count))]
                return (s, Int(rng.next() % UInt64(ds.shards[s].count - T - 1)))
            }
        }
        /// mean next-token loss of a head (gain gw, adapter aw) on the collected rows; leaves p in logits
        func loss(_ rows: Int, _ gw: [Float], _ aw: [Float]) -> Double {
            RMSNormGrad.forward(y: xn.pointer, rstd: rstd.pointer, x: x.pointer, w: gw, N: rows, C: C, eps: d.eps)
            mm.linear(y: y.pointer, x: xn.pointer, w: aw, N: rows, I: C, O: C)
            mm.linear(y: logits.pointer, x: y.pointer, w: head, N: rows, I: C, O: V)
            return targets.withUnsafeBufferPointer { CrossEntropy.forward(logits: logits.pointer, targets: $0.baseAddress!, N: rows, V: V).loss }
        }
        // fixed validation windows (a separate stream), in batches of B
        var valRNG = RNG(seed: o.seed ^ 0x7a1)
        let valUsable = validation.shards.indices.filter { validation.shards[$0].count > T + 1 }
        guard !valUsable.isEmpty else { throw HMSTError.invalidArgument("\(validation.directory): no shard longer than \(T + 1) tokens") }
        let valStarts: [(Int, Int)] = (0..<o.validationWindows).map { _ in
            let s = valUsable[Int(valRNG.next() % UInt64(valUsable.count))]
            return (s, Int(valRNG.next() % UInt64(validation.shards[s].count - T - 1)))
        }
        let identity = A
        let finalGain = g
        func validate(layers: Int = layer, full: Bool = false) throws -> Double {
            var total = 0.0, count = 0
            for chunk in stride(from: 0, to: valStarts.count, by: B) {
                let part = Array(valStarts[chunk..<min(chunk + B, valStarts.count)])
                try collect(validation, starts: part, layers: layers)
                total += (full ? loss(part.count * T, finalGain, identity) : loss(part.count * T, g, A)) * Double(part.count * T)
                count += part.count * T
            }
            return total / Double(max(count, 1))
        }
        var report = ExitHeadTrainingReport()
        report.layer = layer
        let t0 = Date()
        report.valLossBefore = try validate()
        // the whole model on the same windows and targets: all layers, the final norm, the head
        report.valLossFull = try validate(layers: d.L, full: true)
        var adam = AdamWConfig()
        adam.weightDecay = 0
        for step in 1...o.steps {
            try collect(train, starts: try randomStarts(train, B))
            let l = loss(N, g, A)
            targets.withUnsafeBufferPointer { CrossEntropy.backward(probs: logits.pointer, targets: $0.baseAddress!, N: N, V: V, scale: 1 / Float(N)) }
            // dy = dlogits · W_head
            mm.gemm(transA: false, transB: false, M: N, N: C, K: V, A: logits.pointer, lda: V, B: head, ldb: C, beta: 0, C: dy.pointer, ldc: C)
            dA.pointer.update(repeating: 0, count: C * C)
            dg.pointer.update(repeating: 0, count: C)
            dx.pointer.update(repeating: 0, count: N * C)
            // dA = dyᵀ · xn, dxn = dy · A
            A.withUnsafeBufferPointer { a in
                mm.linearBackward(dx: dxn.pointer, dxBeta: 0, dW: dA.pointer, dy: dy.pointer, x: xn.pointer, w: a.baseAddress!, N: N, I: C, O: C)
            }
            g.withUnsafeBufferPointer { gp in
                RMSNormGrad.backward(dx: dx.pointer, dw: dg.pointer, dy: dxn.pointer, x: x.pointer, w: gp.baseAddress!, rstd: rstd.pointer, N: N, C: C)
            }
            let lr = o.learningRate * min(1, Float(step) / 20)   // a short warm-up
            let bc1 = 1 - powf(adam.beta1, Float(step)), bc2 = 1 - powf(adam.beta2, Float(step))
            A.withUnsafeMutableBufferPointer { AdamW.updateF32(p: $0.baseAddress!, g: dA.pointer, m: mA.pointer, v: vA.pointer, n: C * C, c: adam, lr: lr, wd: 0, bc1: bc1, bc2: bc2, scale: 1) }
            g.withUnsafeMutableBufferPointer { AdamW.updateF32(p: $0.baseAddress!, g: dg.pointer, m: mg.pointer, v: vg.pointer, n: C, c: adam, lr: lr, wd: 0, bc1: bc1, bc2: bc2, scale: 1) }
            guard l.isFinite, A.allSatisfy(\.isFinite) else { throw HMSTError.invalidArgument("exit head training diverged at step \(step) (loss \(l)); lower the learning rate") }
            progress(step, l)
        }
        report.steps = o.steps
        report.valLossAfter = try validate()
        report.seconds = Date().timeIntervalSince(t0)
        let h = try ExitHead(layer: layer, C: C, norm: g, adapter: A)
        let full = ComputeBudget().matmulFLOPsPerToken(d)
        report.flopsFraction = ComputeBudget(layers: layer).matmulFLOPsPerToken(d, exitAdapter: true) / full
        h.summary = .object([("steps", .number(Double(o.steps))), ("val_loss_full", .number(report.valLossFull)),
                             ("val_loss_early_readout", .number(report.valLossBefore)), ("val_loss_exit_head", .number(report.valLossAfter)),
                             ("flops_fraction", .number(report.flopsFraction))])
        return (h, report)
    }
}

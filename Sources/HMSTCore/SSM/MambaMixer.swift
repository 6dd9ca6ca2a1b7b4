// MambaMixer: the forward pass of one Mamba selective state-space layer (HF `MambaMixer`,
// pure-torch path), over a sequence or one token at a time, carrying a constant-size state.
//   sequence: forward(x[T, C]) from a MambaState, leaving the state after the last token, so
//             chunks run back to back equal one full run; saves what backward needs in a MambaTape
//   token:    step(x[C]) updates the same state in place; equal to forward token by token
// The backward is in MambaMixerGrad.swift, the weights in MambaMixerWeights.swift, the conv and
// scan kernels in CKernels/ssm.c. Letters: T time, C width, Di inner width, N state, W conv
// width, R dt rank. Math: Gu & Dao 2023 (arXiv:2312.00752) §3 and Algorithm 2.
import CBLAS
import CKernels

/// The recurrent state of one mixer: all it remembers of the tokens it has seen. Its size does
/// not grow with the sequence. A value type, so copying a state forks an episode.
public struct MambaState: Sendable, Equatable {
    public let Di: Int, N: Int, W: Int
    /// [Di, W-1]: the last W-1 inputs of the conv (in_proj's x half), oldest first
    public var conv: [Float]
    /// [Di, N]: h, the selective-scan state
    public var ssm: [Float]

    /// The state before any token: zeros.
    public init(config c: MambaConfig) {
        Di = c.intermediateSize
        N = c.stateSize
        W = c.convKernel
        conv = [Float](repeating: 0, count: Di * (W - 1))
        ssm = [Float](repeating: 0, count: Di * N)
    }

    /// The episodic-memory key of the sequence seen so far, a fixed-size vector of length N:
    ///   v[n] = (1/Di) Σ_d h[d, n]
    /// the mean of the ssm state over channels. Deterministic (summed in Double, channel order),
    /// independent of the thread count, and linear in h, so keys of similar states stay close.
    public func pooled() -> [Float] {
        var v = [Float](repeating: 0, count: N)
        guard Di > 0 else { return v }
        for n in 0..<N {
            var s = 0.0
            for d in 0..<Di { s += Double(ssm[d * N + n]) }
            v[n] = Float(s / Double(Di))
        }
        return v
    }

    func check(_ c: MambaConfig) throws {
        guard Di == c.intermediateSize, N == c.stateSize, W == c.convKernel,
              conv.count == Di * (W - 1), ssm.count == Di * N else {
            throw HMSTError.invalidArgument("mamba state is [Di=\(Di), N=\(N), W=\(W)] with \(conv.count)+\(ssm.count) values, "
                + "the mixer needs Di=\(c.intermediateSize), N=\(c.stateSize), W=\(c.convKernel)")
        }
    }
}

/// What one forward saves for the backward (and its workspace), sized for T tokens and grown
/// on demand. One tape records one forward call; chunks of a sequence need one tape each.
public final class MambaTape: @unchecked Sendable {
    public let config: MambaConfig
    /// tokens of the recorded forward
    public private(set) var T = 0
    private(set) var capacity = 0
    var x = FloatBuffer(count: 0)      // [T, C]       input
    var xz = FloatBuffer(count: 0)     // [T, 2Di]     in_proj output: conv input | gate z
    var u = FloatBuffer(count: 0)      // [T, Di]      conv output before SiLU
    var xc = FloatBuffer(count: 0)     // [T, Di]      silu(u): the scan input
    var dbc = FloatBuffer(count: 0)    // [T, R+2N]    x_proj output: Δraw | B | C
    var dtpre = FloatBuffer(count: 0)  // [T, Di]      dt_proj(Δraw) + bias
    var delta = FloatBuffer(count: 0)  // [T, Di]      δ = softplus(dtpre)
    var y = FloatBuffer(count: 0)      // [T, Di]      scan output (with the D skip), before the gate
    var yg = FloatBuffer(count: 0)     // [T, Di]      y ⊙ silu(z): out_proj's input
    let conv0: FloatBuffer             // [Di, W-1]    conv state the forward started from
    let h0: FloatBuffer                // [Di, N]      ssm state the forward started from

    public init(config c: MambaConfig) {
        config = c
        conv0 = FloatBuffer(count: c.intermediateSize * (c.convKernel - 1))
        h0 = FloatBuffer(count: c.intermediateSize * c.stateSize)
    }

    /// Room for T tokens (OUT_OF_MEMORY when a prompt's tape cannot be had).
    func reserve(_ T: Int) throws {
        self.T = 0   // no forward on the tape until this one has room
        defer { if capacity >= T { self.T = T } }
        guard T > capacity else { return }
        let C = config.hiddenSize, Di = config.intermediateSize
        let ldBC = config.timeStepRank + 2 * config.stateSize
        func buffer(_ count: Int) throws -> FloatBuffer { try FloatBuffer(count: count, zeroed: false, for: "the mamba tape of \(T) tokens") }
        x = try buffer(T * C)
        xz = try buffer(T * 2 * Di)
        u = try buffer(T * Di)
        xc = try buffer(T * Di)
        dbc = try buffer(T * ldBC)
        dtpre = try buffer(T * Di)
        delta = try buffer(T * Di)
        y = try buffer(T * Di)
        yg = try buffer(T * Di)
        capacity = T
    }
}

/// softplus as torch computes it (beta 1, threshold 20): the identity above 20.
@inline(__always) func mambaSoftplus(_ v: Float) -> Float { v > 20 ? v : log1pf(expf(v)) }
@inline(__always) func mambaSigmoid(_ v: Float) -> Float { 1 / (1 + expf(-v)) }

/// A pointer for `a`'s elements, valid inside body; a dummy when a is empty (W = 1 has no conv
/// state), which kernels never read because their loops are empty then.
func withMutableElements<R>(_ a: inout [Float], _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    try a.withUnsafeMutableBufferPointer { buf in
        if let p = buf.baseAddress { return try body(p) }
        var dummy: Float = 0
        return try withUnsafeMutablePointer(to: &dummy) { try body($0) }
    }
}

/// One mixer over shared weights. forward/step/backward only read the weights, so several
/// threads may run it at once on their own states and tapes; an optimizer may update the
/// weights between calls, never during one.
public final class MambaMixer: @unchecked Sendable {
    public let config: MambaConfig
    public let weights: MambaMixerWeights

    public init(weights: MambaMixerWeights) {
        config = weights.config
        self.weights = weights
    }

    /// Runs x[T, C] (row-major, T = x.count / C) from `state`, leaving it after the last token;
    /// returns out[T, C]. Pass a tape to run backward later. Not thread-safe per tape/state;
    /// the mixer itself is read-only and shareable.
    public func forward(_ x: [Float], state: inout MambaState, tape: MambaTape? = nil,
                        threads: Int = Threads.count) throws -> [Float] {
        let C = config.hiddenSize
        guard !x.isEmpty, x.count % C == 0 else {
            throw HMSTError.invalidArgument("mamba forward: input has \(x.count) values, not a positive multiple of C = \(C)")
        }
        try state.check(config)
        if let tape, tape.config != config { throw HMSTError.invalidArgument("mamba forward: tape was made for another config") }
        let T = x.count / C
        let t = tape ?? MambaTape(config: config)
        var out = [Float](repeating: 0, count: T * C)
        try x.withUnsafeBufferPointer { xb in
            try out.withUnsafeMutableBufferPointer { ob in
                try withMutableElements(&state.conv) { conv in
                    try withMutableElements(&state.ssm) { ssm in
                        if let xp = xb.baseAddress, let op = ob.baseAddress {
                            try forward(out: op, x: xp, T: T, conv: conv, ssm: ssm, tape: t, threads: max(1, threads))
                        }
                    }
                }
            }
        }
        return out
    }

    /// out[T, C] = mixer(x[T, C]), continuing from conv [Di, W-1] and ssm [Di, N], which are
    /// replaced by the states after token T-1. The tape receives everything backward reads.
    func forward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int,
                 conv: UnsafeMutablePointer<Float>, ssm: UnsafeMutablePointer<Float>, tape: MambaTape, threads: Int) throws {
        let c = config, C = c.hiddenSize, Di = c.intermediateSize, N = c.stateSize, W = c.convKernel, R = c.timeStepRank
        let ldBC = R + 2 * N
        let w = weights
        try tape.reserve(T)
        tape.x.pointer.update(from: x, count: T * C)
        tape.conv0.pointer.update(from: conv, count: Di * (W - 1))
        tape.h0.pointer.update(from: ssm, count: Di * N)
        let xz = tape.xz.pointer, u = tape.u.pointer, xc = tape.xc.pointer, dbc = tape.dbc.pointer
        let dtpre = tape.dtpre.pointer, delta = tape.delta.pointer, y = tape.y.pointer, yg = tape.yg.pointer
        let blocks = splitRange(Di, parts: threads)

        // xz[T, 2Di] = x[T, C] · in_projᵀ  (in_proj [2Di, C]); xz[:, :Di] feeds the conv, xz[:, Di:] is the gate z
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(2 * Di), Int32(C),
                    1, x, Int32(C), w.pointer(.inProj), Int32(C), 0, xz, Int32(2 * Di))

        // u[T, Di] = conv1d(xz[:, :Di]) causal depthwise, kernel W (conv1d.weight [Di, 1, W]) from state conv [Di, W-1]
        // xc[T, Di] = silu(u)
        let convBias: UnsafePointer<Float>? = c.useConvBias ? UnsafePointer(w.pointer(.convBias)) : nil
        parallelFor(blocks.count, threads: threads) { b in
            hk_ssm_conv_forward(xc, u, conv, xz, 2 * Di, w.pointer(.convWeight), convBias, T, Di, W,
                                blocks[b].lowerBound, blocks[b].upperBound)
        }

        // dbc[T, R+2N] = xc[T, Di] · x_projᵀ  (x_proj [R+2N, Di]): Δraw [T, R] | B [T, N] | C [T, N]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(ldBC), Int32(Di),
                    1, xc, Int32(Di), w.pointer(.xProj), Int32(Di), 0, dbc, Int32(ldBC))

        // dtpre[T, Di] = Δraw[T, R] · dt_projᵀ + dt_proj.bias  (dt_proj [Di, R]);  δ[T, Di] = softplus(dtpre)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(Di), Int32(R),
                    1, dbc, Int32(ldBC), w.pointer(.dtProj), Int32(R), 0, dtpre, Int32(Di))
        let dtBias = w.pointer(.dtBias)
        for t in 0..<T {
            let row = dtpre + t * Di, dl = delta + t * Di
            for d in 0..<Di {
                row[d] += dtBias[d]
                dl[d] = mambaSoftplus(row[d])
            }
        }

        // y[T, Di] = scan(xc, δ, A = -exp(A_log) [Di, N], B, C) + D ⊙ xc, continuing from ssm [Di, N]
        parallelFor(blocks.count, threads: threads) { b in
            hk_ssm_scan_forward(y, ssm, xc, delta, w.pointer(.aLog), dbc + R, dbc + R + N, ldBC, w.pointer(.d), T, Di, N,
                                blocks[b].lowerBound, blocks[b].upperBound)
        }

        // yg[T, Di] = y ⊙ silu(z),  z = xz[:, Di:]
        for t in 0..<T {
            let z = xz + t * 2 * Di + Di, yr = y + t * Di, gr = yg + t * Di
            for d in 0..<Di { gr[d] = yr[d] * (z[d] * mambaSigmoid(z[d])) }
        }

        // out[T, C] = yg[T, Di] · out_projᵀ  (out_proj [C, Di])
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(C), Int32(Di),
                    1, yg, Int32(Di), w.pointer(.outProj), Int32(Di), 0, out, Int32(C))
    }

    /// One token: out[C] = mixer(x[C]) given the state before it, which is advanced in place.
    /// Equal to forward(...) token by token; costs GEMVs and O(Di·N) for the scan, however
    /// long the sequence so far.
    public func step(_ x: [Float], state: inout MambaState, threads: Int = Threads.count) throws -> [Float] {
        let C = config.hiddenSize
        guard x.count == C else { throw HMSTError.invalidArgument("mamba step: input has \(x.count) values, expected C = \(C)") }
        try state.check(config)
        var out = [Float](repeating: 0, count: C)
        x.withUnsafeBufferPointer { xb in
            out.withUnsafeMutableBufferPointer { ob in
                withMutableElements(&state.conv) { conv in
                    withMutableElements(&state.ssm) { ssm in
                        if let xp = xb.baseAddress, let op = ob.baseAddress {
                            step(out: op, x: xp, conv: conv, ssm: ssm, threads: max(1, threads))
                        }
                    }
                }
            }
        }
        return out
    }

    /// out[C] = mixer(x[C]) for one token, advancing conv [Di, W-1] and ssm [Di, N] in place.
    func step(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
              conv: UnsafeMutablePointer<Float>, ssm: UnsafeMutablePointer<Float>, threads: Int) {
        let c = config, C = c.hiddenSize, Di = c.intermediateSize, N = c.stateSize, W = c.convKernel, R = c.timeStepRank
        let ldBC = R + 2 * N
        let w = weights
        func weight(_ t: MambaTensor, _ rows: Int, _ cols: Int) -> Weight {
            Weight(.f32(UnsafePointer(w.pointer(t))), rows: rows, cols: cols, owner: w)
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 5 * Di + ldBC) { scratch in
            guard let s = scratch.baseAddress else { return }
            // xz [2Di] | xc [Di] | dbc [R+2N] | δ [Di] | y [Di]
            let xz = s, xc = s + 2 * Di, dbc = s + 3 * Di, delta = dbc + ldBC, y = delta + Di
            // xz[2Di] = in_proj [2Di, C] · x[C]
            gemvParallel(out: xz, x: x, w: weight(.inProj, 2 * Di, C), threads: threads)
            // xc[Di] = silu(conv1d(xz[:Di])) over the state's W-1 inputs and this one; state shifts by one
            hk_ssm_conv_forward(xc, nil, conv, xz, 2 * Di, w.pointer(.convWeight),
                                c.useConvBias ? UnsafePointer(w.pointer(.convBias)) : nil, 1, Di, W, 0, Di)
            // dbc[R+2N] = x_proj [R+2N, Di] · xc[Di]
            gemvParallel(out: dbc, x: xc, w: weight(.xProj, ldBC, Di), threads: threads)
            // δ[Di] = softplus(dt_proj [Di, R] · Δraw[R] + bias)
            gemvParallel(out: delta, x: dbc, w: weight(.dtProj, Di, R), threads: threads)
            let dtBias = w.pointer(.dtBias)
            for d in 0..<Di { delta[d] = mambaSoftplus(delta[d] + dtBias[d]) }
            // y[Di] = one scan step from ssm [Di, N] (A = -exp(A_log) per channel block)
            let blocks = splitRange(Di, parts: gemvThreads(bytes: Di * N * 12, threads))
            parallelFor(blocks.count, threads: threads) { b in
                hk_ssm_scan_forward(y, ssm, xc, delta, w.pointer(.aLog), dbc + R, dbc + R + N, ldBC,
                                    w.pointer(.d), 1, Di, N, blocks[b].lowerBound, blocks[b].upperBound)
            }
            // y ⊙= silu(z)
            let z = xz + Di
            for d in 0..<Di { y[d] *= z[d] * mambaSigmoid(z[d]) }
            // out[C] = out_proj [C, Di] · y[Di]
            gemvParallel(out: out, x: y, w: weight(.outProj, C, Di), threads: threads)
        }
    }
}

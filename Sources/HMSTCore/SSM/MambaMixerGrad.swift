// MambaMixerGrad: the backward of MambaMixer.forward(out:x:T:conv:ssm:tape:threads:), step by
// step in reverse, each step naming the forward line it differentiates. Gradients accumulate
// (+=) into a MambaMixerWeights of the same layout and into dx, so a trainer zeroes them once a
// step. The carried states are treated as constants: chunked training is truncated BPTT (no
// gradient flows into the conv or ssm state a chunk started from). A loss may also read the
// ssm state the forward leaves (the episodic memory's soft tokens): pass its gradient as dState.
import CBLAS
import CKernels

extension MambaMixer {
    /// At most this many channel blocks in the backward (memory: 5·T·N floats per block).
    static let maxBackwardBlocks = 32

    /// Differentiates the forward recorded on `tape` given dy = dL/dout [T, C] and, when a loss
    /// also reads the final ssm state, dState = dL/d(that state) [Di, N] (nil: zero): adds dL/dx
    /// to dx [T, C] and dL/dW to `grads` for all nine tensors (conv1d.bias only if use_conv_bias).
    public func backward(dx: inout [Float], grads: MambaMixerWeights, dy: [Float], tape: MambaTape,
                         dState: [Float]? = nil, threads: Int = Threads.count) throws {
        let C = config.hiddenSize, T = tape.T
        guard tape.config == config, grads.config == config else {
            throw HMSTError.invalidArgument("mamba backward: tape or gradients were made for another config")
        }
        guard T > 0 else { throw HMSTError.invalidArgument("mamba backward: the tape holds no forward") }
        guard dy.count == T * C, dx.count == T * C else {
            throw HMSTError.invalidArgument("mamba backward: dy has \(dy.count) and dx \(dx.count) values, the tape's forward needs T·C = \(T * C)")
        }
        if let dState {
            let want = config.intermediateSize * config.stateSize
            guard dState.count == want else {
                throw HMSTError.invalidArgument("mamba backward: dState has \(dState.count) values, the ssm state [Di, N] has \(want)")
            }
        }
        try dy.withUnsafeBufferPointer { dyb in
            try dx.withUnsafeMutableBufferPointer { dxb in
                guard let dyp = dyb.baseAddress, let dxp = dxb.baseAddress else { return }
                if let dState {
                    try dState.withUnsafeBufferPointer {
                        try backwardUnchecked(dx: dxp, grads: grads, dy: dyp, tape: tape, dState: $0.baseAddress, threads: max(1, threads))
                    }
                } else {
                    try backwardUnchecked(dx: dxp, grads: grads, dy: dyp, tape: tape, threads: max(1, threads))
                }
            }
        }
    }

    /// dx[T, C] += dL/dx and grads += dL/dW, given dy[T, C] = dL/dout, dState [Di, N] = dL/d(final
    /// ssm state) or nil (zero), and the tape of the forward.
    /// Unchecked: the caller has matched T, the config and the buffer sizes.
    func backwardUnchecked(dx: UnsafeMutablePointer<Float>, grads g: MambaMixerWeights, dy: UnsafePointer<Float>,
                  tape: MambaTape, dState: UnsafePointer<Float>? = nil, threads: Int) throws {
        let c = config, C = c.hiddenSize, Di = c.intermediateSize, N = c.stateSize, W = c.convKernel, R = c.timeStepRank
        let ldBC = R + 2 * N, T = tape.T
        let w = weights
        let x = tape.x.pointer, xz = tape.xz.pointer, u = tape.u.pointer, xc = tape.xc.pointer, dbc = tape.dbc.pointer
        let dtpre = tape.dtpre.pointer, delta = tape.delta.pointer, y = tape.y.pointer, yg = tape.yg.pointer
        let dyg = try FloatBuffer(count: T * Di, zeroed: false, for: "mamba backward") // [T, Di]      dL/dyg
        let dyScan = try FloatBuffer(count: T * Di, zeroed: false, for: "mamba backward") // [T, Di]     dL/dy (scan output)
        let dxz = try FloatBuffer(count: T * 2 * Di, for: "mamba backward") // [T, 2Di]     dL/dxz: conv input | gate
        let dxc = try FloatBuffer(count: T * Di, for: "mamba backward") // [T, Di]      dL/dxc
        let ddelta = try FloatBuffer(count: T * Di, for: "mamba backward") // [T, Di]      dL/dδ, then dL/ddtpre
        let ddbc = try FloatBuffer(count: T * ldBC, for: "mamba backward") // [T, R+2N]    dL/d(Δraw | B | C)
        // each block holds [T, 2N] partial dB/dC and [T+3, N] scratch, so the split stays modest
        let blocks = splitRange(Di, parts: min(threads, MambaMixer.maxBackwardBlocks))

        // forward: out[T, C] = yg[T, Di] · out_projᵀ
        //   d out_proj[C, Di] += dyᵀ · yg;   dyg[T, Di] = dy · out_proj
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(C), Int32(Di), Int32(T),
                    1, dy, Int32(C), yg, Int32(Di), 1, g.pointer(.outProj), Int32(Di))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(Di), Int32(C),
                    1, dy, Int32(C), w.pointer(.outProj), Int32(Di), 0, dyg.pointer, Int32(Di))

        // forward: yg = y ⊙ silu(z), z = xz[:, Di:]
        //   dy_scan = dyg ⊙ silu(z);   dz = dyg ⊙ y ⊙ silu'(z), silu'(z) = σ(z)(1 + z(1 − σ(z)))
        for t in 0..<T {
            let z = xz + t * 2 * Di + Di, dz = dxz.pointer + t * 2 * Di + Di
            let gr = dyg.pointer + t * Di, yr = y + t * Di, ds = dyScan.pointer + t * Di
            for d in 0..<Di {
                let s = mambaSigmoid(z[d])
                ds[d] = gr[d] * z[d] * s
                dz[d] = gr[d] * yr[d] * s * (1 + z[d] * (1 - s))
            }
        }

        // forward: y = scan(xc, δ, A, B, C) + D ⊙ xc   (hk_ssm_scan_forward)
        //   dxc, dδ, dA_log, dD from the kernel; dB, dC summed over channels, so each block gets
        //   its own [T, 2N] buffer when there are several
        let nb = blocks.count
        let parts = try FloatBuffer(count: nb > 1 ? nb * T * 2 * N : 0, for: "mamba backward")
        let work = try FloatBuffer(count: nb * (T + 3) * N, zeroed: false, for: "mamba backward")
        parallelFor(nb, threads: threads) { b in
            let (dBC, ld) = nb > 1 ? (parts.pointer + b * T * 2 * N, 2 * N) : (ddbc.pointer + R, ldBC)
            hk_ssm_scan_backward(dxc.pointer, ddelta.pointer, g.pointer(.aLog), g.pointer(.d), dBC, dBC + N, ld,
                                 work.pointer + b * (T + 3) * N, dyScan.pointer, xc, delta, w.pointer(.aLog),
                                 dbc + R, dbc + R + N, ldBC, w.pointer(.d), tape.h0.pointer, dState, T, Di, N,
                                 blocks[b].lowerBound, blocks[b].upperBound)
        }
        if nb > 1 {
            // ddbc[:, R:] = Σ_b parts[b]   ([T, 2N] each)
            for b in 0..<nb {
                let p = parts.pointer + b * T * 2 * N
                for t in 0..<T {
                    let dst = ddbc.pointer + t * ldBC + R, src = p + t * 2 * N
                    for j in 0..<2 * N { dst[j] += src[j] }
                }
            }
        }

        // forward: δ = softplus(dtpre)  ->  ddtpre = dδ ⊙ σ(dtpre) (torch's threshold: 1 above 20), in place
        // forward: dtpre = Δraw · dt_projᵀ + bias  ->  d dt_proj.bias[Di] += Σ_t ddtpre
        let dd = ddelta.pointer, gBias = g.pointer(.dtBias)
        for t in 0..<T {
            let row = dd + t * Di, pre = dtpre + t * Di
            for d in 0..<Di {
                row[d] *= pre[d] > 20 ? 1 : mambaSigmoid(pre[d])
                gBias[d] += row[d]
            }
        }
        //   d dt_proj[Di, R] += ddtpreᵀ · Δraw[T, R];   dΔraw[T, R] = ddtpre · dt_proj  (into ddbc[:, :R])
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(Di), Int32(R), Int32(T),
                    1, dd, Int32(Di), dbc, Int32(ldBC), 1, g.pointer(.dtProj), Int32(R))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(R), Int32(Di),
                    1, dd, Int32(Di), w.pointer(.dtProj), Int32(R), 0, ddbc.pointer, Int32(ldBC))

        // forward: dbc[T, R+2N] = xc[T, Di] · x_projᵀ
        //   d x_proj[R+2N, Di] += ddbcᵀ · xc;   dxc[T, Di] += ddbc · x_proj
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(ldBC), Int32(Di), Int32(T),
                    1, ddbc.pointer, Int32(ldBC), xc, Int32(Di), 1, g.pointer(.xProj), Int32(Di))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(Di), Int32(ldBC),
                    1, ddbc.pointer, Int32(ldBC), w.pointer(.xProj), Int32(Di), 1, dxc.pointer, Int32(Di))

        // forward: xc = silu(conv1d(xz[:, :Di]))   (hk_ssm_conv_forward)
        //   dxz[:, :Di], d conv1d.weight [Di, 1, W], d conv1d.bias [Di]
        let gConvBias: UnsafeMutablePointer<Float>? = c.useConvBias ? g.pointer(.convBias) : nil
        parallelFor(nb, threads: threads) { b in
            hk_ssm_conv_backward(dxz.pointer, 2 * Di, g.pointer(.convWeight), gConvBias, dxc.pointer, u, xz, 2 * Di,
                                 tape.conv0.pointer, w.pointer(.convWeight), T, Di, W,
                                 blocks[b].lowerBound, blocks[b].upperBound)
        }

        // forward: xz[T, 2Di] = x[T, C] · in_projᵀ
        //   d in_proj[2Di, C] += dxzᵀ · x;   dx[T, C] += dxz · in_proj
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(2 * Di), Int32(C), Int32(T),
                    1, dxz.pointer, Int32(2 * Di), x, Int32(C), 1, g.pointer(.inProj), Int32(C))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(C), Int32(2 * Di),
                    1, dxz.pointer, Int32(2 * Di), w.pointer(.inProj), Int32(C), 1, dx, Int32(C))
    }
}

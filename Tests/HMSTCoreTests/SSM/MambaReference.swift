// MambaReference: the Mamba mixer forward written the slow, obvious way, in Double, one token
// and one channel at a time, straight from the equations (Gu & Dao 2023, Algorithm 2). The
// f32 MambaMixer (forward, step, backward via finite differences) must agree with it.
@testable import HMSTCore

struct MambaReference {
    let c: MambaConfig
    /// the nine tensors in MambaTensor order, row-major in their HF shapes
    var p: [[Double]]

    init(_ w: MambaMixerWeights) {
        c = w.config
        p = MambaTensor.allCases.map { t in w.buffer(t).map(Double.init) }
    }

    subscript(_ t: MambaTensor) -> [Double] {
        get { p[t.rawValue] }
        set { p[t.rawValue] = newValue }
    }

    static func sigmoid(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
    static func softplus(_ v: Double) -> Double { v > 20 ? v : log1p(exp(v)) }

    /// out[T, C] for x[T, C] from conv0 [Di, W-1] and h0 [Di, N]; also the states after x.
    func forward(_ x: [Double], T: Int, conv0: [Double], h0: [Double]) -> (out: [Double], conv: [Double], h: [Double]) {
        let C = c.hiddenSize, Di = c.intermediateSize, N = c.stateSize, W = c.convKernel, R = c.timeStepRank
        let inW = self[.inProj], cw = self[.convWeight], cb = self[.convBias], xw = self[.xProj]
        let dtw = self[.dtProj], dtb = self[.dtBias], aLog = self[.aLog], D = self[.d], ow = self[.outProj]
        // xz[t][j] = Σ_c in_proj[j, c] x[t, c]
        let xz: [[Double]] = (0..<T).map { t in
            (0..<2 * Di).map { j in (0..<C).reduce(0.0) { $0 + inW[j * C + $1] * x[t * C + $1] } }
        }
        // the conv input at time s (negative: from the carried state)
        func input(_ s: Int, _ d: Int) -> Double { s >= 0 ? xz[s][d] : conv0[d * (W - 1) + (W - 1) + s] }
        var h = h0
        var out = [Double](repeating: 0, count: T * C)
        for t in 0..<T {
            var xc = [Double](repeating: 0, count: Di)
            for d in 0..<Di {
                var u = c.useConvBias ? cb[d] : 0
                for k in 0..<W { u += cw[d * W + k] * input(t - (W - 1) + k, d) }
                xc[d] = u * MambaReference.sigmoid(u)
            }
            let dbc = (0..<(R + 2 * N)).map { r in (0..<Di).reduce(0.0) { $0 + xw[r * Di + $1] * xc[$1] } }
            var yg = [Double](repeating: 0, count: Di)
            for d in 0..<Di {
                var pre = dtb[d]
                for r in 0..<R { pre += dtw[d * R + r] * dbc[r] }
                let delta = MambaReference.softplus(pre)
                var y = D[d] * xc[d]
                for n in 0..<N {
                    let A = -exp(aLog[d * N + n])
                    h[d * N + n] = exp(delta * A) * h[d * N + n] + delta * dbc[R + n] * xc[d]
                    y += dbc[R + N + n] * h[d * N + n]
                }
                let z = xz[t][Di + d]
                yg[d] = y * z * MambaReference.sigmoid(z)
            }
            for o in 0..<C { out[t * C + o] = (0..<Di).reduce(0.0) { $0 + ow[o * Di + $1] * yg[$1] } }
        }
        var conv = [Double](repeating: 0, count: Di * (W - 1))
        for d in 0..<Di {
            for j in 0..<(W - 1) { conv[d * (W - 1) + j] = input(T - (W - 1) + j, d) }
        }
        return (out, conv, h)
    }
}

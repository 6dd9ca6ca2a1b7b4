// RMSNorm for training: y = w ⊙ x · rstd, rstd = 1 / sqrt(mean(x²) + eps), per row.

enum RMSNormGrad {
    /// x: [N, C]  w: [C]  ->  y: [N, C];  rstd: [N] saved for backward.
    static func forward(y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        for n in 0..<N {
            let xr = x + n * C
            var ss: Float = 0
            for c in 0..<C { ss += xr[c] * xr[c] }
            let r = 1 / (ss / Float(C) + eps).squareRoot()
            rstd[n] = r
            for c in 0..<C { y[n * C + c] = w[c] * xr[c] * r }
        }
    }

    /// Differentiates forward. With g = w ⊙ dy:  dx = rstd · (g − x · rstd² · mean(g ⊙ x)),
    /// dw += Σ_n dy ⊙ x · rstd.  Accumulates into dx and dw.
    static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, w: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int) {
        for n in 0..<N {
            let xr = x + n * C, dyr = dy + n * C, r = rstd[n]
            var dot: Float = 0
            for c in 0..<C { dot += w[c] * dyr[c] * xr[c] }
            let k = r * r * r * dot / Float(C)
            for c in 0..<C {
                dx[n * C + c] += r * w[c] * dyr[c] - k * xr[c]
                dw[c] += dyr[c] * xr[c] * r
            }
        }
    }
}

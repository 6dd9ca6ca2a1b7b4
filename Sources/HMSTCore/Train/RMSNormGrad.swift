// RMSNorm for training: y = w ⊙ x · rstd, rstd = 1 / sqrt(mean(x²) + eps), per row.
// Rows run in parallel; dw sums per-range partials in a fixed order (deterministic).
import CKernels

enum RMSNormGrad {
    /// x: [N, C]  w: [C]  ->  y: [N, C];  rstd: [N] saved for backward.
    static func forward(y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        w: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
        parallelRows(N) { r in
            hk_rmsnorm(y + r.lowerBound * C, rstd + r.lowerBound, x + r.lowerBound * C, w, r.count, C, eps)
        }
    }

    /// Differentiates forward. With g = w ⊙ dy:  dx = rstd · (g − x · rstd² · mean(g ⊙ x)),
    /// dw += Σ_n dy ⊙ x · rstd.  Accumulates into dx and dw.
    static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, w: UnsafePointer<Float>, rstd: UnsafePointer<Float>, N: Int, C: Int) {
        let ranges = splitRange(N, parts: min(Threads.count, max(1, N / 32)))
        let partial = FloatBuffer(count: ranges.count * C)   // [parts, C] dw per range
        parallelFor(ranges.count) { part in
            let pdw = partial.pointer + part * C
            for n in ranges[part] {
                let xr = x + n * C, dyr = dy + n * C, dxr = dx + n * C, r = rstd[n]
                var dot: Float = 0
                for c in 0..<C { dot += w[c] * dyr[c] * xr[c] }
                let k = r * r * r * dot / Float(C)
                for c in 0..<C {
                    dxr[c] += r * w[c] * dyr[c] - k * xr[c]
                    pdw[c] += dyr[c] * xr[c] * r
                }
            }
        }
        for part in 0..<ranges.count {
            let pdw = partial.pointer + part * C
            for c in 0..<C { dw[c] += pdw[c] }
        }
    }
}

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
            let r = ranges[part], o = r.lowerBound
            hk_rmsnorm_backward(dx + o * C, partial.pointer + part * C, dy + o * C, x + o * C, w, rstd + o, r.count, C)
        }
        for part in 0..<ranges.count {
            let pdw = partial.pointer + part * C
            for c in 0..<C { dw[c] += pdw[c] }
        }
    }
}

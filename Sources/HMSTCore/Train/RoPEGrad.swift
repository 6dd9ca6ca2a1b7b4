// Rotary embedding for training. The rotation is orthogonal, so its backward is the same
// rotation by the negative angle: dx = Rᵀ dy.
import CKernels

enum RoPEGrad {
    /// x: [N, nHeads, Dh] rows with stride ld, rotated in place at positions pos[n].
    static func forward(_ x: UnsafeMutablePointer<Float>, N: Int, nHeads: Int, Dh: Int, ld: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        rotate(x, N: N, nHeads: nHeads, Dh: Dh, ld: ld, cos: cos, sin: sin)
    }

    /// Differentiates forward in place: dy -> dx. negSin: [N, Dh/2] = −sin.
    static func backward(_ d: UnsafeMutablePointer<Float>, N: Int, nHeads: Int, Dh: Int, ld: Int, cos: UnsafePointer<Float>, negSin: UnsafePointer<Float>) {
        rotate(d, N: N, nHeads: nHeads, Dh: Dh, ld: ld, cos: cos, sin: negSin)
    }

    /// Rows split over the pool (one thread rotating a step's 2,048 rows left the other waiting).
    private static func rotate(_ x: UnsafeMutablePointer<Float>, N: Int, nHeads: Int, Dh: Int, ld: Int, cos: UnsafePointer<Float>,
                               sin: UnsafePointer<Float>) {
        let half = Dh / 2
        parallelRows(N, grain: 128) { r in
            hk_rope(x + r.lowerBound * ld, r.count, nHeads, Dh, ld, cos + r.lowerBound * half, sin + r.lowerBound * half)
        }
    }
}

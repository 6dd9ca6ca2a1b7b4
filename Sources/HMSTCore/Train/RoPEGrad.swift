// Rotary embedding for training. The rotation is orthogonal, so its backward is the same
// rotation by the negative angle: dx = Rᵀ dy.
import CKernels

enum RoPEGrad {
    /// x: [N, nHeads, Dh] rows with stride ld, rotated in place at positions pos[n].
    static func forward(_ x: UnsafeMutablePointer<Float>, N: Int, nHeads: Int, Dh: Int, ld: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        hk_rope(x, N, nHeads, Dh, ld, cos, sin)
    }

    /// Differentiates forward in place: dy -> dx. negSin: [N, Dh/2] = −sin.
    static func backward(_ d: UnsafeMutablePointer<Float>, N: Int, nHeads: Int, Dh: Int, ld: Int, cos: UnsafePointer<Float>, negSin: UnsafePointer<Float>) {
        hk_rope(d, N, nHeads, Dh, ld, cos, negSin)
    }
}

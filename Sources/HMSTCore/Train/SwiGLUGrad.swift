// The SwiGLU gate of an expert: h = silu(a) ⊙ b, with a = x·W1ᵀ and b = x·W3ᵀ.
// Both directions are CKernels loops (AVX-512 with a vector exp where available).
import CKernels

enum SwiGLUGrad {
    /// h[n] = a[n] σ(a[n]) b[n]
    static func forward(h: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int) {
        hk_silu_mul(h, a, b, n)
    }

    /// Differentiates forward: da = dh · b · σ(a)(1 + a(1 − σ(a))),  db = dh · silu(a).
    /// Overwrites da and db.
    static func backward(da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>,
                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int) {
        hk_swiglu_backward(da, db, dh, a, b, n)
    }
}

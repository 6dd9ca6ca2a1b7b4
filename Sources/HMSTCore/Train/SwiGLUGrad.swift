// The SwiGLU gate of an expert: h = silu(a) ⊙ b, with a = x·W1ᵀ and b = x·W3ᵀ.
#if canImport(Glibc)
import Glibc
#endif

enum SwiGLUGrad {
    /// h[n] = a[n] σ(a[n]) b[n]
    static func forward(h: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int) {
        for i in 0..<n {
            let s = 1 / (1 + expf(-a[i]))
            h[i] = a[i] * s * b[i]
        }
    }

    /// Differentiates forward: da = dh · b · σ(a)(1 + a(1 − σ(a))),  db = dh · silu(a).
    /// Overwrites da and db.
    static func backward(da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, dh: UnsafePointer<Float>,
                         a: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int) {
        for i in 0..<n {
            let s = 1 / (1 + expf(-a[i]))
            da[i] = dh[i] * b[i] * s * (1 + a[i] * (1 - s))
            db[i] = dh[i] * a[i] * s
        }
    }
}

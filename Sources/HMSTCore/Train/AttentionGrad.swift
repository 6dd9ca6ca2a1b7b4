// Causal grouped-query attention for training, through sgemm per (sequence, head):
//   S = scale · Q Kᵀ (causal mask), P = softmax_rows(S), O = P V
// P is saved for backward:
//   dV += Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ += scale · dS K,  dK += scale · dSᵀ Q
// Heads h in a group share KV head h / (H / KV); their dK and dV add up. Forward runs one task
// per (sequence, head), backward one per (sequence, KV group) so no two tasks write one dK row;
// each GEMM runs on its task's thread (nested pool calls run inline), in the step's precision.
import CKernels

enum AttentionGrad {
    /// q: [B*T, H*Dh]  k, v: [B*T, KV*Dh]  ->  out: [B*T, H*Dh];  probs: [B, H, T, T] saved.
    static func forward(mm: Matmul = Matmul(precision: .f32), out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                        k: UnsafePointer<Float>, v: UnsafePointer<Float>, B: Int, T: Int, H: Int, KV: Int, Dh: Int) {
        let scale = 1 / Float(Dh).squareRoot()
        let ldq = H * Dh, ldk = KV * Dh
        parallelFor(B * H) { task in
                let b = task / H, h = task % H
                let g = h / (H / KV)
                let Q = q + b * T * ldq + h * Dh, K = k + b * T * ldk + g * Dh, V = v + b * T * ldk + g * Dh
                let P = probs + ((b * H + h) * T) * T
                // P[T, T] = scale · Q Kᵀ
                mm.gemm(transA: false, transB: true, M: T, N: T, K: Dh, alpha: scale, A: Q, lda: ldq, B: K, ldb: ldk, beta: 0, C: P, ldc: T)
                for t in 0..<T {
                    let row = P + t * T
                    hk_softmax(row, t + 1)
                    for s in (t + 1)..<max(t + 1, T) { row[s] = 0 }
                }
                // O[T, Dh] = P V
                mm.gemm(transA: false, transB: false, M: T, N: Dh, K: T, alpha: 1, A: P, lda: T, B: V, ldb: ldk, beta: 0, C: out + b * T * ldq + h * Dh, ldc: ldq)
        }
    }

    /// Differentiates forward. dq, dk, dv accumulate (+=); scratch: [B·KV, T, T].
    static func backward(mm: Matmul = Matmul(precision: .f32), dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         dout: UnsafePointer<Float>, probs: UnsafePointer<Float>, q: UnsafePointer<Float>,
                         k: UnsafePointer<Float>, v: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                         B: Int, T: Int, H: Int, KV: Int, Dh: Int) {
        let scale = 1 / Float(Dh).squareRoot()
        let ldq = H * Dh, ldk = KV * Dh
        parallelFor(B * KV) { task in
            let b = task / KV, g = task % KV
            let dS = scratch + task * T * T
            for h in (g * (H / KV))..<((g + 1) * (H / KV)) {
                let qo = b * T * ldq + h * Dh, ko = b * T * ldk + g * Dh
                let P = probs + ((b * H + h) * T) * T
                let dO = dout + qo
                // dV[T, Dh] += Pᵀ dO
                mm.gemm(transA: true, transB: false, M: T, N: Dh, K: T, alpha: 1, A: P, lda: T, B: dO, ldb: ldq, beta: 1, C: dv + ko, ldc: ldk)
                // dP[T, T] = dO Vᵀ
                mm.gemm(transA: false, transB: true, M: T, N: T, K: Dh, alpha: 1, A: dO, lda: ldq, B: v + ko, ldb: ldk, beta: 0, C: dS, ldc: T)
                // dS = P ⊙ (dP − rowsum(dP ⊙ P)), causal entries only
                for t in 0..<T {
                    let p = P + t * T, d = dS + t * T
                    var dot: Float = 0
                    for s in 0...t { dot += p[s] * d[s] }
                    for s in 0...t { d[s] = p[s] * (d[s] - dot) }
                    for s in (t + 1)..<max(t + 1, T) { d[s] = 0 }
                }
                // dQ[T, Dh] += scale · dS K ;  dK[T, Dh] += scale · dSᵀ Q
                mm.gemm(transA: false, transB: false, M: T, N: Dh, K: T, alpha: scale, A: dS, lda: T, B: k + ko, ldb: ldk, beta: 1, C: dq + qo, ldc: ldq)
                mm.gemm(transA: true, transB: false, M: T, N: Dh, K: T, alpha: scale, A: dS, lda: T, B: q + qo, ldb: ldq, beta: 1, C: dk + ko, ldc: ldk)
            }
        }
    }
}

// Causal grouped-query attention for training, through GEMMs per (sequence, head):
//   S = scale · Q Kᵀ (causal mask), P = softmax_rows(S), O = P V
// P is saved for backward:
//   dV += Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ += scale · dS K,  dK += scale · dSᵀ Q
// Every GEMM runs over causal blocks only: the T positions are cut into blocks of `block` rows;
// a block of queries [r0, r1) sees keys [0, r1), and a block of keys [c0, c1) is seen by queries
// [c0, T). With 4 blocks that is 10/16 of the full T×T work, with 8 blocks 36/64. Entries of P
// and dS right of the diagonal inside the diagonal block are zero; those beyond a row's block
// are never written and never read.
// Heads h in a group share KV head h / (H / KV); their dK and dV add up. Forward runs one task
// per (sequence, head), backward one per (sequence, KV group) so no two tasks write one dK row;
// each GEMM runs on its task's thread (nested pool calls run inline), in the step's precision.
import CKernels

enum AttentionGrad {
    /// The causal block for T positions: about T/8 rows, at least 32, a multiple of 16. At T = 256
    /// (8 × 256-token micro steps, Zen 4) blocks of 16, 32 and 64 all took 4% off the step
    /// against one block of 256 rows, within each other's noise; 128 took half that.
    static func defaultBlock(_ T: Int) -> Int {
        let b = max(32, (T + 7) / 8)
        return (b + 15) / 16 * 16
    }

    /// q: [B*T, H*Dh]  k, v: [B*T, KV*Dh]  ->  out: [B*T, H*Dh];  probs: [B, H, T, T] saved.
    /// block: rows per causal block (nil: defaultBlock(T)); any value gives the same result up
    /// to summation order.
    static func forward(mm: Matmul = Matmul(precision: .f32), out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
                        k: UnsafePointer<Float>, v: UnsafePointer<Float>, B: Int, T: Int, H: Int, KV: Int, Dh: Int, block: Int? = nil) {
        let scale = 1 / Float(Dh).squareRoot()
        let ldq = H * Dh, ldk = KV * Dh
        let bt = max(1, block ?? defaultBlock(T))
        parallelFor(B * H) { task in
            let b = task / H, h = task % H
            let g = h / (H / KV)
            let Q = q + b * T * ldq + h * Dh, K = k + b * T * ldk + g * Dh, V = v + b * T * ldk + g * Dh
            let P = probs + ((b * H + h) * T) * T
            let O = out + b * T * ldq + h * Dh
            for r0 in stride(from: 0, to: T, by: bt) {
                let r1 = min(T, r0 + bt)
                // P[r0..<r1, 0..<r1] = scale · Q[r0..<r1] K[0..<r1]ᵀ
                mm.gemm(transA: false, transB: true, M: r1 - r0, N: r1, K: Dh, alpha: scale, A: Q + r0 * ldq, lda: ldq, B: K, ldb: ldk,
                        beta: 0, C: P + r0 * T, ldc: T)
                for t in r0..<r1 {
                    let row = P + t * T
                    hk_softmax(row, t + 1)
                    if t + 1 < r1 { (row + t + 1).update(repeating: 0, count: r1 - t - 1) }
                }
                // O[r0..<r1] = P[r0..<r1, 0..<r1] V[0..<r1]
                mm.gemm(transA: false, transB: false, M: r1 - r0, N: Dh, K: r1, alpha: 1, A: P + r0 * T, lda: T, B: V, ldb: ldk,
                        beta: 0, C: O + r0 * ldq, ldc: ldq)
            }
        }
    }

    /// Differentiates forward (called with the same block). dq, dk, dv accumulate (+=);
    /// scratch: [B·KV, T, T].
    static func backward(mm: Matmul = Matmul(precision: .f32), dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         dout: UnsafePointer<Float>, probs: UnsafePointer<Float>, q: UnsafePointer<Float>,
                         k: UnsafePointer<Float>, v: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                         B: Int, T: Int, H: Int, KV: Int, Dh: Int, block: Int? = nil) {
        let scale = 1 / Float(Dh).squareRoot()
        let ldq = H * Dh, ldk = KV * Dh
        let bt = max(1, block ?? defaultBlock(T))
        parallelFor(B * KV) { task in
            let b = task / KV, g = task % KV
            let dS = scratch + task * T * T
            for h in (g * (H / KV))..<((g + 1) * (H / KV)) {
                let qo = b * T * ldq + h * Dh, ko = b * T * ldk + g * Dh
                let P = probs + ((b * H + h) * T) * T
                let dO = dout + qo
                for r0 in stride(from: 0, to: T, by: bt) {
                    let r1 = min(T, r0 + bt)
                    // dP[r0..<r1, 0..<r1] = dO[r0..<r1] V[0..<r1]ᵀ
                    mm.gemm(transA: false, transB: true, M: r1 - r0, N: r1, K: Dh, alpha: 1, A: dO + r0 * ldq, lda: ldq, B: v + ko, ldb: ldk,
                            beta: 0, C: dS + r0 * T, ldc: T)
                    // dS = P ⊙ (dP − rowsum(dP ⊙ P)) on the causal entries, zero right of the diagonal
                    for t in r0..<r1 {
                        let d = dS + t * T
                        hk_softmax_backward(d, P + t * T, t + 1)
                        if t + 1 < r1 { (d + t + 1).update(repeating: 0, count: r1 - t - 1) }
                    }
                    // dQ[r0..<r1] += scale · dS[r0..<r1, 0..<r1] K[0..<r1]
                    mm.gemm(transA: false, transB: false, M: r1 - r0, N: Dh, K: r1, alpha: scale, A: dS + r0 * T, lda: T, B: k + ko, ldb: ldk,
                            beta: 1, C: dq + qo + r0 * ldq, ldc: ldq)
                }
                for c0 in stride(from: 0, to: T, by: bt) {
                    let c1 = min(T, c0 + bt)
                    // dV[c0..<c1] += P[c0..<T, c0..<c1]ᵀ dO[c0..<T]
                    mm.gemm(transA: true, transB: false, M: c1 - c0, N: Dh, K: T - c0, alpha: 1, A: P + c0 * T + c0, lda: T,
                            B: dO + c0 * ldq, ldb: ldq, beta: 1, C: dv + ko + c0 * ldk, ldc: ldk)
                    // dK[c0..<c1] += scale · dS[c0..<T, c0..<c1]ᵀ Q[c0..<T]
                    mm.gemm(transA: true, transB: false, M: c1 - c0, N: Dh, K: T - c0, alpha: scale, A: dS + c0 * T + c0, lda: T,
                            B: q + qo + c0 * ldq, ldb: ldq, beta: 1, C: dk + ko + c0 * ldk, ldc: ldk)
                }
            }
        }
    }
}

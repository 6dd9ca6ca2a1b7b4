// The MoE router for training: p = softmax(logits) over E, top-K experts (held fixed in
// backward: the choice is not differentiable), gates g = p_chosen / Σ p_chosen; and the
// Switch/Mixtral load-balancing loss  L_aux = coef · E · Σ_k Σ_e f[k, e] · P[e], with
// f[k, e] the fraction of tokens whose k-th choice is e and P[e] the mean router probability.
import CKernels

enum RouterGrad {
    /// logits: [N, E] -> probs: [N, E], topIdx: [N, K], gates: [N, K]
    static func forward(probs: UnsafeMutablePointer<Float>, topIdx: UnsafeMutablePointer<Int32>, gates: UnsafeMutablePointer<Float>,
                        logits: UnsafePointer<Float>, N: Int, E: Int, K: Int) {
        probs.update(from: logits, count: N * E)
        Router.route(probs: probs, T: N, E: E, K: K, topIdx: topIdx, topW: gates)
    }

    /// Differentiates forward, given dgates: [N, K]; writes dlogits: [N, E].
    /// g_j = p_j / S with S = Σ_k p_k:  dp_j = (dg_j − Σ_k dg_k g_k) / S on the chosen experts,
    /// 0 elsewhere; then through the softmax: dz = p ⊙ (dp − Σ p ⊙ dp).
    static func backward(dlogits: UnsafeMutablePointer<Float>, dgates: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                         topIdx: UnsafePointer<Int32>, gates: UnsafePointer<Float>, N: Int, E: Int, K: Int) {
        for n in 0..<N {
            let p = probs + n * E
            var S: Float = 0
            var dgg: Float = 0
            for k in 0..<K {
                S += p[Int(topIdx[n * K + k])]
                dgg += dgates[n * K + k] * gates[n * K + k]
            }
            let dz = dlogits + n * E
            dz.update(repeating: 0, count: E)
            var dot: Float = 0
            for k in 0..<K {
                let e = Int(topIdx[n * K + k])
                let dp = (dgates[n * K + k] - dgg) / S
                dz[e] = dp  // dp temporarily
                dot += p[e] * dp
            }
            for e in 0..<E { dz[e] = p[e] * (dz[e] - dot) }
        }
    }

    /// L_aux for one layer's routing, and its gradient added to dlogits (through the softmax).
    static func auxLoss(dlogits: UnsafeMutablePointer<Float>?, probs: UnsafePointer<Float>, topIdx: UnsafePointer<Int32>,
                        N: Int, E: Int, K: Int, coef: Float) -> Float {
        guard N > 0, coef != 0 else { return 0 }
        var fSum = [Float](repeating: 0, count: E)   // Σ_k f[k, e]
        var meanP = [Float](repeating: 0, count: E)  // P[e]
        for n in 0..<N {
            for k in 0..<K { fSum[Int(topIdx[n * K + k])] += 1 / Float(N) }
            for e in 0..<E { meanP[e] += probs[n * E + e] / Float(N) }
        }
        var loss: Float = 0
        for e in 0..<E { loss += fSum[e] * meanP[e] }
        loss *= coef * Float(E)
        if let dlogits {
            // dL/dp[n, e] = coef · E · fSum[e] / N, then through each row's softmax
            for n in 0..<N {
                let p = probs + n * E
                var dot: Float = 0
                for e in 0..<E { dot += p[e] * coef * Float(E) * fSum[e] / Float(N) }
                for e in 0..<E { dlogits[n * E + e] += p[e] * (coef * Float(E) * fSum[e] / Float(N) - dot) }
            }
        }
        return loss
    }
}

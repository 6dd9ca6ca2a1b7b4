// PPOLoss: CleanRL ppo.py's minibatch loss and its gradient w.r.t. the logits and values.
//   ratio = exp(logp - oldLogp), adv normalised over the minibatch (mean, unbiased std + 1e-8)
//   pg    = mean(max(-adv * ratio, -adv * clamp(ratio, 1 - c, 1 + c)))
//   v     = 0.5 * mean(max((V - R)^2, (oldV + clamp(V - oldV, -c, c) - R)^2))   (clipVLoss)
//           0.5 * mean((V - R)^2)                                              (otherwise)
//   loss  = pg - entCoef * mean(entropy) + vfCoef * v
// plus the diagnostics approx_kl = mean((ratio - 1) - log ratio) and the clip fraction.
// Per head with softmax p and chosen a: d logp / d logit_k = [k = a] - p_k and
// d entropy / d logit_k = -p_k (log p_k + H).
import Foundation

public struct PPOLossStats {
    public var loss: Float = 0
    public var policyLoss: Float = 0
    public var valueLoss: Float = 0
    public var entropy: Float = 0
    public var approxKL: Float = 0
    public var oldApproxKL: Float = 0
    public var clipFraction: Float = 0
}

/// A minibatch of M rows: actions [M, heads], and per row the old log-probability, advantage,
/// return and old value.
public struct PPOMinibatch {
    public var M: Int
    public var actions: UnsafePointer<Int32>
    public var oldLogProbs: UnsafePointer<Float>
    public var advantages: UnsafePointer<Float>
    public var returns: UnsafePointer<Float>
    public var oldValues: UnsafePointer<Float>
}

/// The loss of the minibatch at logits [M, sum(heads)] and values [M]; when dLogits and dValues
/// are given, writes the loss's gradient into them.
public func ppoLoss(logits: UnsafePointer<Float>, values: UnsafePointer<Float>, heads: [Int], batch b: PPOMinibatch,
                    config c: PPOConfig, dLogits: UnsafeMutablePointer<Float>? = nil,
                    dValues: UnsafeMutablePointer<Float>? = nil) -> PPOLossStats {
    let M = b.M, nH = heads.count, nLogits = heads.reduce(0, +)
    var advMean: Double = 0, advStd: Double = 1
    if c.normalizeAdvantages && M > 1 {
        for i in 0..<M { advMean += Double(b.advantages[i]) }
        advMean /= Double(M)
        var v: Double = 0
        for i in 0..<M { v += (Double(b.advantages[i]) - advMean) * (Double(b.advantages[i]) - advMean) }
        advStd = (v / Double(M - 1)).squareRoot() + 1e-8
    }
    var s = PPOLossStats()
    var pg: Double = 0, vl: Double = 0, ent: Double = 0, kl: Double = 0, oldKL: Double = 0, clipped = 0
    let invM = 1 / Float(M), clip = c.clipCoef
    let logp = UnsafeMutablePointer<Float>.allocate(capacity: nLogits), hEnt = UnsafeMutablePointer<Float>.allocate(capacity: nH)
    defer { logp.deallocate(); hEnt.deallocate() }
    for i in 0..<M {
        let row = logits + i * nLogits
        var newLogp: Float = 0, rowEnt: Float = 0, at = 0
        for h in 0..<nH {
            let n = heads[h], lse = logSumExp(row + at, n)
            var H: Float = 0
            for k in 0..<n {
                logp[at + k] = row[at + k] - lse
                H -= expf(logp[at + k]) * logp[at + k]
            }
            hEnt[h] = H
            rowEnt += H
            newLogp += logp[at + Int(b.actions[i * nH + h])]
            at += n
        }
        let adv = Float((Double(b.advantages[i]) - advMean) / advStd)
        let logRatio = newLogp - b.oldLogProbs[i], ratio = expf(logRatio)
        oldKL += Double(-logRatio)
        kl += Double((ratio - 1) - logRatio)
        if abs(ratio - 1) > clip { clipped += 1 }
        let pg1 = -adv * ratio, pg2 = -adv * min(max(ratio, 1 - clip), 1 + clip)
        pg += Double(max(pg1, pg2))
        ent += Double(rowEnt)

        let v = values[i], R = b.returns[i]
        let unclipped = (v - R) * (v - R)
        var dV = v - R
        if c.clipValueLoss {
            let diff = v - b.oldValues[i]
            let vc = b.oldValues[i] + min(max(diff, -clip), clip)
            let clippedLoss = (vc - R) * (vc - R)
            vl += Double(max(unclipped, clippedLoss))
            if clippedLoss > unclipped { dV = abs(diff) < clip ? vc - R : 0 }
        } else {
            vl += Double(unclipped)
        }

        if let dLogits, let dValues {
            let dLogp = pg1 >= pg2 ? -adv * ratio * invM : 0
            let dRow = dLogits + i * nLogits
            var at = 0
            for h in 0..<nH {
                let n = heads[h], a = Int(b.actions[i * nH + h])
                for k in 0..<n {
                    let p = expf(logp[at + k])
                    dRow[at + k] = dLogp * ((k == a ? 1 : 0) - p) + c.entCoef * invM * p * (logp[at + k] + hEnt[h])
                }
                at += n
            }
            dValues[i] = c.vfCoef * dV * invM
        }
    }
    s.policyLoss = Float(pg / Double(M))
    s.valueLoss = Float(0.5 * vl / Double(M))
    s.entropy = Float(ent / Double(M))
    s.approxKL = Float(kl / Double(M))
    s.oldApproxKL = Float(oldKL / Double(M))
    s.clipFraction = Float(clipped) / Float(M)
    s.loss = s.policyLoss - c.entCoef * s.entropy + c.vfCoef * s.valueLoss
    return s
}

/// Scales grads [n] so their global L2 norm is at most maxNorm (torch clip_grad_norm_: factor
/// maxNorm / (norm + 1e-6) when below 1); returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ grads: UnsafeMutablePointer<Float>, _ n: Int, maxNorm: Float) -> Float {
    var sq: Double = 0
    for i in 0..<n { sq += Double(grads[i]) * Double(grads[i]) }
    let norm = Float(sq.squareRoot())
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 { for i in 0..<n { grads[i] *= coef } }
    return norm
}

/// One Adam step (torch.optim.Adam, no weight decay) on n parameters; step is 1-based.
/// param -= lr * (m / (1 - b1^t)) / (sqrt(v) / sqrt(1 - b2^t) + eps)
public func adamStep(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                     v: UnsafeMutablePointer<Float>, n: Int, step: Int, lr: Float,
                     beta1: Float = 0.9, beta2: Float = 0.999, eps: Float) {
    let bc1 = 1 - powf(beta1, Float(step)), bc2Sqrt = (1 - powf(beta2, Float(step))).squareRoot()
    let stepSize = lr / bc1
    for i in 0..<n {
        let g = grads[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        params[i] -= stepSize * m[i] / (v[i].squareRoot() / bc2Sqrt + eps)
    }
}

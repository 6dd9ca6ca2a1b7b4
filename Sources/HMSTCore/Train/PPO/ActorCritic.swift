// ActorCritic: CleanRL ppo.py's agent. Separate actor and critic MLPs (obs -> 64 -> 64, tanh),
// orthogonal init with gain sqrt(2) for hidden layers, 0.01 for the policy head and 1 for the
// value head. The actor's output is the logits of every categorical head side by side
// (sum(actionHeads) values per row); the joint log-probability of an action is the sum of the
// heads' log-softmax at their chosen indices, the entropy the sum of the heads' entropies.
// All parameters (actor then critic) live in one flat buffer with one gradient buffer beside it.
import Foundation

public final class ActorCritic {
    public let observationSize: Int
    public let actionHeads: [Int]
    public let nLogits: Int
    let headOffsets: [Int]
    let actor: MLP
    let critic: MLP
    public let parameterCount: Int
    public let params: PPOBuffer<Float>
    public let grads: PPOBuffer<Float>

    public init(observationSize: Int, actionHeads: [Int], hidden: [Int] = [64, 64], seed: UInt64) throws {
        guard observationSize > 0, !actionHeads.isEmpty, actionHeads.allSatisfy({ $0 > 0 }), hidden.allSatisfy({ $0 > 0 }) else {
            throw HMSTError.invalidArgument("ActorCritic: observation size \(observationSize), action heads \(actionHeads) and hidden sizes \(hidden) must be positive")
        }
        self.observationSize = observationSize
        self.actionHeads = actionHeads
        nLogits = actionHeads.reduce(0, +)
        var offs = [Int](), at = 0
        for n in actionHeads { offs.append(at); at += n }
        headOffsets = offs
        actor = MLP(sizes: [observationSize] + hidden + [nLogits], offset: 0)
        critic = MLP(sizes: [observationSize] + hidden + [1], offset: actor.parameterCount)
        parameterCount = actor.parameterCount + critic.parameterCount
        params = PPOBuffer(count: parameterCount, value: 0)
        grads = PPOBuffer(count: parameterCount, value: 0)
        var rng = RNG(seed: seed)
        let hiddenGains = [Float](repeating: Float(2).squareRoot(), count: hidden.count)
        actor.initialise(params.p, gains: hiddenGains + [0.01], rng: &rng)
        critic.initialise(params.p, gains: hiddenGains + [1], rng: &rng)
    }

    /// Logits [B, nLogits] and values [B] of obs [B, observationSize]; valid until the next call.
    public func forward(_ obs: UnsafePointer<Float>, B: Int) -> (logits: UnsafePointer<Float>, values: UnsafePointer<Float>) {
        (actor.forward(params.p, obs, B: B), critic.forward(params.p, obs, B: B))
    }

    /// Adds to grads the gradient given dLogits [B, nLogits] and dValues [B] at the last forward
    /// (whose input was obs).
    public func backward(_ obs: UnsafePointer<Float>, B: Int, dLogits: UnsafePointer<Float>, dValues: UnsafePointer<Float>) {
        actor.backward(params.p, grads.p, obs, B: B, dOut: dLogits)
        critic.backward(params.p, grads.p, obs, B: B, dOut: dValues)
    }

    public func zeroGrads() { grads.p.update(repeating: 0, count: parameterCount) }

    /// Chooses actions for obs [B, observationSize]: sampled from each head's softmax (or its
    /// argmax when greedy). Writes actions [B, heads], the joint log-probabilities [B] and the
    /// values [B].
    public func act(_ obs: UnsafePointer<Float>, B: Int, rng: inout RNG, greedy: Bool = false,
                    actions: UnsafeMutablePointer<Int32>, logProbs: UnsafeMutablePointer<Float>,
                    values: UnsafeMutablePointer<Float>) {
        let (logits, v) = forward(obs, B: B)
        let nH = actionHeads.count
        for r in 0..<B {
            var lp: Float = 0
            for h in 0..<nH {
                let l = logits + r * nLogits + headOffsets[h], n = actionHeads[h]
                let lse = logSumExp(l, n)
                var a = 0
                if greedy {
                    for k in 1..<max(n, 1) where l[k] > l[a] { a = k }
                } else {
                    let u = rng.nextFloat()
                    var acc: Float = 0
                    a = n - 1
                    for k in 0..<n {
                        acc += expf(l[k] - lse)
                        if u < acc { a = k; break }
                    }
                }
                actions[r * nH + h] = Int32(a)
                lp += l[a] - lse
            }
            logProbs[r] = lp
            values[r] = v[r]
        }
    }
}

@inline(__always) func logSumExp(_ l: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = l[0]
    for k in 1..<max(n, 1) { m = max(m, l[k]) }
    var s: Float = 0
    for k in 0..<n { s += expf(l[k] - m) }
    return m + logf(s)
}

// KNNLM: a kNN-LM control (Khandelwal et al. 2020, "Generalization through Memorization",
// arXiv:1911.00172) for the memory conditions: a datastore maps the final-norm hidden state
// before each token of the fact sentences to that token; a target token then gets
//     p(w) = λ · p_kNN(w) + (1 − λ) · p_LM(w),  p_kNN(w) ∝ Σ_{i ∈ k nearest, v_i = w} exp(−‖h − k_i‖²)
// (squared L2, temperature 1, as the paper). The search is exact (brute force): datastores here
// are the facts of a benchmark, thousands of tokens, not Wikipedia.
#if canImport(Glibc)
import Glibc
#endif

public final class KNNDatastore: @unchecked Sendable {
    public let C: Int
    /// [N, C] hidden states, row i predicts values[i]
    public private(set) var keys: [Float] = []
    public private(set) var values: [Int32] = []
    public var count: Int { values.count }

    public init(C: Int) { self.C = C }

    /// Adds every (hidden state before token t+1, token t+1) pair of the tokens.
    public func add(tokens: [Int32], session: Session) throws {
        guard tokens.count >= 2 else { return }
        let enc = try session.encode(tokens)
        keys += enc.hidden[0..<((tokens.count - 1) * C)]
        values += tokens[1...]
    }

    /// Σ over the k nearest keys of the normalised weights of those whose value is target.
    /// query: [C].
    public func probability(of target: Int32, query: UnsafePointer<Float>, k: Int) -> Double {
        let N = count
        guard N > 0, k > 0 else { return 0 }
        var d = [Float](repeating: 0, count: N)
        keys.withUnsafeBufferPointer { kp in
            for i in 0..<N {
                var s: Float = 0
                let row = kp.baseAddress! + i * C
                for c in 0..<C { let x = row[c] - query[c]; s += x * x }
                d[i] = s
            }
        }
        let order = d.indices.sorted { d[$0] < d[$1] }.prefix(min(k, N))
        // weights exp(−d) relative to the nearest, so the largest is exp(0) = 1
        let d0 = Double(d[order.first ?? 0])
        var total = 0.0, hit = 0.0
        for i in order {
            let w = exp(-(Double(d[i]) - d0))
            total += w
            if values[i] == target { hit += w }
        }
        return total > 0 ? hit / total : 0
    }
}

extension Session {
    /// For each scored position t in [from, seq.count): the final-norm hidden state before it
    /// ([C]) and log p_LM(seq[t]). The sequence must fit n_ctx. The session is reset.
    func hiddenAndLogProbs(_ seq: [Int32], from first: Int) throws -> (hidden: [Float], logp: [Double]) {
        let d = decoder.dims, C = d.C, V = d.V
        guard first >= 1, first < seq.count else { throw HMSTError.invalidArgument("kNN-LM: nothing to score") }
        guard seq.count - 1 <= nCtx else { throw HMSTError.invalidArgument("kNN-LM: \(seq.count) tokens exceed n_ctx \(nCtx)") }
        let enc = try encode(Array(seq.dropLast()))   // hidden[t] is the state that predicts seq[t+1]
        var hidden: [Float] = [], logp: [Double] = []
        // the LM's own probabilities: one all-rows pass over the same inputs
        reset()
        var p = 0
        let inputs = Array(seq.dropLast())
        while p < inputs.count {
            let q = min(inputs.count, p + ws.maxT)
            try evaluate(Array(inputs[p..<q]), allLogits: true)
            for j in p..<q where j + 1 >= first {
                var s = LogLikelihoodScore(logprob: 0, count: 0, isGreedy: false)
                try accumulate(row: j - p, target: seq[j + 1], vocabLimit: V, into: &s)
                logp.append(s.logprob)
                hidden += enc.hidden[(j * C)..<((j + 1) * C)]
            }
            p = q
        }
        reset()
        return (hidden, logp)
    }
}

public enum KNNLM {
    /// Mean over target tokens of −log(λ p_kNN + (1 − λ) p_LM), one value per λ.
    public static func answerNLL(session: Session, datastore: KNNDatastore, context: [Int32], continuation: [Int32],
                                 lambdas: [Double], k: Int = 32) throws -> [Double] {
        guard !context.isEmpty, !continuation.isEmpty else { throw HMSTError.invalidArgument("kNN-LM: empty context or continuation") }
        let (hidden, logp) = try session.hiddenAndLogProbs(context + continuation, from: context.count)
        let C = datastore.C
        var pk = [Double](repeating: 0, count: continuation.count)
        hidden.withUnsafeBufferPointer { h in
            for j in 0..<continuation.count {
                pk[j] = datastore.probability(of: continuation[j], query: h.baseAddress! + j * C, k: k)
            }
        }
        return lambdas.map { l in
            var nll = 0.0
            for j in 0..<continuation.count { nll -= log(l * pk[j] + (1 - l) * exp(logp[j])) }
            return nll / Double(continuation.count)
        }
    }
}

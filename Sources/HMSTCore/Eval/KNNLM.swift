// KNNLM: a kNN-LM control (Khandelwal et al. 2020, "Generalization through Memorization",
// arXiv:1911.00172) for the memory conditions: a datastore maps the final-norm hidden state
// before each token of the fact sentences to that token; a target token then gets
//     p(w) = λ · p_kNN(w) + (1 − λ) · p_LM(w),  p_kNN(w) ∝ Σ_{i ∈ k nearest, v_i = w} exp(−‖h − k_i‖²)
// (squared L2, temperature 1, as the paper). The search is exact (brute force): datastores here
// are the facts of a benchmark, thousands of tokens, not Wikipedia.
import CBLAS

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
        enc.hidden.withUnsafeBufferPointer { h in
            for t in 0..<(tokens.count - 1) { norms.append(squaredNorm(h.baseAddress! + t * C, C)) }
        }
    }

    /// ‖k_i‖², kept beside the keys (filled by add) so a query's distances are one GEMV:
    /// ‖q‖² − 2 q·k_i + ‖k_i‖²
    private var norms: [Float] = []

    /// Σ over the k nearest keys of the normalised weights of those whose value is target.
    /// query: [C].
    public func probability(of target: Int32, query: UnsafePointer<Float>, k: Int) -> Double {
        let N = count
        guard N > 0, k > 0 else { return 0 }
        var dots = [Float](repeating: 0, count: N)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(N), Int32(C), 1, keys, Int32(C), query, 1, 0, &dots, 1)
        let qn = squaredNorm(query, C)
        // the k smallest distances by a bounded insertion list: O(N) for the small k used here
        let K = min(k, N)
        var best: [(d: Float, i: Int)] = []
        best.reserveCapacity(K + 1)
        for i in 0..<N {
            let d = max(0, qn - 2 * dots[i] + norms[i])
            if best.count == K, d >= best[K - 1].d { continue }
            var pos = best.count
            while pos > 0 && best[pos - 1].d > d { pos -= 1 }
            best.insert((d, i), at: pos)
            if best.count > K { best.removeLast() }
        }
        // weights exp(−d) relative to the nearest, so the largest is exp(0) = 1
        let d0 = Double(best[0].d)
        var total = 0.0, hit = 0.0
        for b in best {
            let w = exp(-(Double(b.d) - d0))
            total += w
            if values[b.i] == target { hit += w }
        }
        return total > 0 ? hit / total : 0
    }
}

private func squaredNorm(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var s: Float = 0
    for c in 0..<n { s += x[c] * x[c] }
    return s
}

extension Session {
    /// For each scored position t in [from, seq.count): the final-norm hidden state before it
    /// ([C]) and log p_LM(seq[t]). The sequence must fit n_ctx. The session is reset.
    func hiddenAndLogProbs(_ seq: [Int32], from first: Int) throws -> (hidden: [Float], logp: [Double]) {
        let C = decoder.dims.C
        guard first >= 1, first < seq.count else { throw HMSTError.invalidArgument("kNN-LM: nothing to score") }
        guard seq.count <= nCtx else { throw HMSTError.invalidArgument("kNN-LM: \(seq.count) tokens exceed n_ctx \(nCtx)") }
        // one pass: encode keeps every position's hidden state and next-token log-probability
        let enc = try encode(seq)   // hidden[t] is the state that predicts seq[t+1]
        var hidden: [Float] = [], logp: [Double] = []
        for t in (first - 1)..<(seq.count - 1) {
            hidden += enc.hidden[(t * C)..<((t + 1) * C)]
            logp.append(enc.nextTokenLogProbs[t])
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

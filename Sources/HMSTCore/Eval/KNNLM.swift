// KNNLM: the training-free control for memory fine-tuning, after Khandelwal et al. 2020,
// "Generalization through Memorization: Nearest Neighbor Language Models" (arXiv:1911.00172):
// a datastore of (hidden state at t, token t+1) pairs over the memory texts, and at each target
// position p(w) = λ·p_kNN(w) + (1−λ)·p_LM(w), where p_kNN puts softmax(−d/τ) mass on the
// tokens of the k nearest keys (squared L2 over final-norm hidden states, the LM head's input).
// τ is the mean of the k distances of that query, so the kernel is scale-free. Distances are one
// sgemm per block of queries against all keys. The harness (Eval/) reports its answer NLL beside
// the memory conditions; nothing here is trained.
import CBLAS
#if canImport(Glibc)
import Glibc
#endif

public struct KNNLMConfig: Sendable {
    /// neighbours per query
    public var k = 32
    /// interpolation weights to report
    public var lambdas: [Double] = [0, 0.25, 0.5, 0.75, 0.9]
    public init() {}
}

public final class KNNLM {
    public let model: LanguageModel
    public let config: KNNLMConfig
    /// [N, C] keys, N values, N squared norms
    private(set) var keys: [Float] = []
    private(set) var values: [Int32] = []
    private(set) var keyNorms: [Float] = []
    public var count: Int { values.count }

    /// Builds the datastore from texts (each encoded alone, truncated to the model's context).
    public init(model: LanguageModel, texts: [String], config: KNNLMConfig = KNNLMConfig()) throws {
        guard config.k >= 1 else { throw HMSTError.invalidArgument("kNN-LM: k must be >= 1") }
        guard config.lambdas.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
            throw HMSTError.invalidArgument("kNN-LM: every λ must be in [0, 1]")
        }
        self.model = model
        self.config = config
        let C = model.dims.C
        for text in texts {
            let tokens = try model.tokens(text: text, limit: model.dims.maxPositions)
            guard tokens.count >= 2 else { continue }
            let e = try model.encode(tokens: tokens)
            for t in 0..<(e.T - 1) {
                keys.append(contentsOf: e.hidden[(t * C)..<((t + 1) * C)])
                values.append(tokens[t + 1])
            }
        }
        guard !values.isEmpty else { throw HMSTError.invalidArgument("kNN-LM: the datastore texts produced no (state, next token) pairs") }
        keyNorms = [Float](repeating: 0, count: values.count)
        keys.withUnsafeBufferPointer { k in
            for i in 0..<values.count {
                var s: Float = 0
                for c in 0..<C { s += k[i * C + c] * k[i * C + c] }
                keyNorms[i] = s
            }
        }
    }

    /// Summed negative log-likelihood (nats) of `target`'s tokens after `prompt`, for each λ of
    /// the config, plus the number of target tokens. The prompt is laid out by the caller.
    public func targetNLL(prompt: String, target: String) throws -> (nll: [Double], tokens: Int) {
        guard let tokenizer = model.tokenizer else { throw HMSTError.invalidArgument("kNN-LM: the model has no tokenizer") }
        let p = tokenizer.encode(bytes: Array(prompt.utf8)), t = tokenizer.encode(bytes: Array(target.utf8))
        guard !p.isEmpty, !t.isEmpty else { throw HMSTError.invalidArgument("kNN-LM: empty prompt or target") }
        let all = p + t
        guard all.count <= model.dims.maxPositions else {
            throw HMSTError.invalidArgument("kNN-LM: prompt and target (\(all.count) tokens) exceed the model's context")
        }
        let e = try model.encode(tokens: all)
        let C = model.dims.C, Q = t.count, N = values.count, K = min(config.k, N)
        // queries: the hidden states that predict each target token
        var q = [Float](repeating: 0, count: Q * C)
        for j in 0..<Q {
            let row = p.count - 1 + j
            for c in 0..<C { q[j * C + c] = e.hidden[row * C + c] }
        }
        // dots[j, i] = q_j · k_i
        var dots = [Float](repeating: 0, count: Q * N)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(Q), Int32(N), Int32(C), 1, q, Int32(C),
                    keys, Int32(C), 0, &dots, Int32(N))
        var nll = [Double](repeating: 0, count: config.lambdas.count)
        var best = [(d: Float, i: Int)]()
        best.reserveCapacity(K + 1)
        for j in 0..<Q {
            var qn: Float = 0
            for c in 0..<C { qn += q[j * C + c] * q[j * C + c] }
            // k smallest distances: a bounded insertion list (K is small)
            best.removeAll(keepingCapacity: true)
            dots.withUnsafeBufferPointer { dp in
                keyNorms.withUnsafeBufferPointer { kn in
                    let base = j * N
                    for i in 0..<N {
                        let d = max(0, qn - 2 * dp[base + i] + kn[i])
                        if best.count == K, d >= best[K - 1].d { continue }
                        var pos = best.count
                        while pos > 0 && best[pos - 1].d > d { pos -= 1 }
                        best.insert((d, i), at: pos)
                        if best.count > K { best.removeLast() }
                    }
                }
            }
            let tau = max(1e-6, Double(best.reduce(Float(0)) { $0 + $1.d }) / Double(best.count))
            let dMin = Double(best[0].d)
            var z = 0.0, hit = 0.0
            for b in best {
                let w = exp(-(Double(b.d) - dMin) / tau)
                z += w
                if values[b.i] == t[j] { hit += w }
            }
            let pKNN = hit / z
            let pLM = exp(e.nextTokenLogProbs[p.count - 1 + j])
            for (li, lambda) in config.lambdas.enumerated() {
                nll[li] -= log(max(lambda * pKNN + (1 - lambda) * pLM, 1e-300))
            }
        }
        return (nll, Q)
    }
}

// LogLikelihood: log-probabilities of chosen tokens under the model, read off one all-rows
// forward pass per window (Session.evaluate, all rows kept for the scored part, n_batch rows at a
// time), as lm-evaluation-harness's loglikelihood and loglikelihood_rolling requests do. A
// sequence longer than n_ctx is scored in windows: the first keeps as much left context as fits
// (lm-eval truncates the context on the left too), each later window carries one token of
// context (lm-eval's disjoint rolling windows, context_len = 1).
#if canImport(Glibc)
import Glibc
#endif

public struct LogLikelihoodScore: Sendable, Equatable {
    /// Σ log p(token | everything before it), natural log
    public var logprob: Double
    /// tokens scored
    public var count: Int
    /// every scored token was the argmax of its row (within vocabLimit)
    public var isGreedy: Bool
}

extension Session {
    /// Scores seq[from...] given everything before it. from >= 1 (the first token of a sequence
    /// has nothing to condition on). vocabLimit bounds the argmax behind isGreedy (a tokenizer
    /// smaller than the model's vocabulary); log-probabilities are over the whole vocabulary,
    /// as the training loss is. The session is reset.
    public func logLikelihood(_ seq: [Int32], from first: Int, vocabLimit: Int? = nil) throws -> LogLikelihoodScore {
        guard first >= 1, first <= seq.count else {
            throw HMSTError.invalidArgument("log-likelihood: first scored position \(first) must be in 1...\(seq.count)")
        }
        let V = decoder.dims.V
        if let bad = seq.first(where: { $0 < 0 || Int($0) >= V }) {
            throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(V)")
        }
        let VL = max(1, min(V, vocabLimit ?? V))
        var score = LogLikelihoodScore(logprob: 0, count: 0, isGreedy: true)
        var a = first
        var isFirst = true
        while a < seq.count {
            // a window scores targets [a, b) from the inputs seq[s ..< b-1], at most n_ctx of them
            let b = min(seq.count, isFirst ? max(a + 1, nCtx + 1) : a + nCtx)
            let s = isFirst ? max(0, b - 1 - nCtx) : a - 1
            reset()
            var p = s
            if a - 1 > p {   // context rows need no logits
                try evaluate(Array(seq[p..<(a - 1)]))
                p = a - 1
            }
            while p < b - 1 {   // then n_batch inputs at a time, reading every row
                let q = min(b - 1, p + ws.maxT)
                try evaluate(Array(seq[p..<q]), allLogits: true)
                for t in (p + 1)...q {
                    let row = try logits(row: t - 1 - p)
                    guard let lp = row.baseAddress else { continue }
                    let target = Int(seq[t])
                    var m = lp[0]
                    for v in 1..<V { m = max(m, lp[v]) }
                    var sum = 0.0
                    for v in 0..<V { sum += Double(expf(lp[v] - m)) }
                    score.logprob += Double(lp[target]) - Double(m) - log(sum)
                    if score.isGreedy {
                        var best = 0
                        for v in 1..<VL where lp[v] > lp[best] { best = v }
                        if best != target { score.isGreedy = false }
                    }
                }
                p = q
            }
            score.count += b - a
            a = b
            isFirst = false
        }
        reset()
        return score
    }
}

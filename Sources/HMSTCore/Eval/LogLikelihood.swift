// LogLikelihood: log-probabilities of chosen tokens under the model, read off one all-rows
// forward pass per window (Session.evaluate, all rows kept for the scored part, n_batch rows at a
// time), as lm-evaluation-harness's loglikelihood and loglikelihood_rolling requests do. A
// sequence longer than n_ctx is scored in windows: the first keeps as much left context as fits
// (lm-eval truncates the context on the left too), each later window carries one token of
// context (lm-eval's disjoint rolling windows, context_len = 1).

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
    /// as the training loss is. The session is reset. injected: rows given as embeddings at
    /// positions of seq (InjectedEmbeddings), in whichever window they fall.
    public func logLikelihood(_ seq: [Int32], from first: Int, vocabLimit: Int? = nil,
                              injected: InjectedEmbeddings? = nil) throws -> LogLikelihoodScore {
        guard first >= 1, first <= seq.count else {
            throw HMSTError.invalidArgument("log-likelihood: first scored position \(first) must be in 1...\(seq.count)")
        }
        let V = decoder.dims.V
        if let bad = seq.first(where: { $0 < 0 || Int($0) >= V }) {
            throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(V)")
        }
        let VL = max(1, min(V, vocabLimit ?? V))
        if let injected { try injected.validate(C: decoder.dims.C, limit: seq.count, vocabulary: decoder.dims.V) }
        func rows(_ r: Range<Int>) -> InjectedEmbeddings? { injected.map { $0.slice(r, C: decoder.dims.C) } }
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
                try evaluate(Array(seq[p..<(a - 1)]), injected: rows(p..<(a - 1)))
                p = a - 1
            }
            while p < b - 1 {   // then n_batch inputs at a time, reading every row
                let q = min(b - 1, p + ws.maxT)
                try evaluate(Array(seq[p..<q]), allLogits: true, injected: rows(p..<q))
                for t in (p + 1)...q {
                    try accumulate(row: t - 1 - p, target: seq[t], vocabLimit: VL, into: &score)
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

    /// Adds log p(target) from logits row r of the last evaluate, and whether it was the argmax.
    @inline(__always)
    func accumulate(row r: Int, target: Int32, vocabLimit VL: Int, into score: inout LogLikelihoodScore) throws {
        let V = decoder.dims.V
        let row = try logits(row: r)
        guard let lp = row.baseAddress else { return }
        let t = Int(target)
        var m = lp[0]
        for v in 1..<V { m = max(m, lp[v]) }
        var sum = 0.0
        for v in 0..<V { sum += Double(expf(lp[v] - m)) }
        score.logprob += Double(lp[t]) - Double(m) - log(sum)
        if score.isGreedy {
            var best = 0
            for v in 1..<VL where lp[v] > lp[best] { best = v }
            if best != t { score.isGreedy = false }
        }
    }

    /// Each continuation scored after the same context, which is evaluated once (multiple-choice
    /// options share their question). Equal to logLikelihood(context + c, from: context.count)
    /// per continuation; falls back to it when context and the longest continuation overflow n_ctx.
    public func logLikelihoods(context: [Int32], continuations: [[Int32]], vocabLimit: Int? = nil) throws -> [LogLikelihoodScore] {
        guard !context.isEmpty else { throw HMSTError.invalidArgument("log-likelihood: empty context") }
        guard continuations.allSatisfy({ !$0.isEmpty }) else { throw HMSTError.invalidArgument("log-likelihood: empty continuation") }
        let longest = continuations.map(\.count).max() ?? 0
        if context.count + longest - 1 > nCtx {
            return try continuations.map { try logLikelihood(context + $0, from: context.count, vocabLimit: vocabLimit) }
        }
        let V = decoder.dims.V
        for c in [context] + continuations {
            if let bad = c.first(where: { $0 < 0 || Int($0) >= V }) {
                throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(V)")
            }
        }
        let VL = max(1, min(V, vocabLimit ?? V))
        let P = context.count - 1
        reset()
        if P > 0 { try evaluate(Array(context[0..<P])) }
        var out: [LogLikelihoodScore] = []
        for cont in continuations {
            rewind(to: P)
            // inputs: the context's last token, then every continuation token but the last
            let inputs = [context[P]] + cont.dropLast()
            var score = LogLikelihoodScore(logprob: 0, count: cont.count, isGreedy: true)
            var p = 0
            while p < inputs.count {
                let q = min(inputs.count, p + ws.maxT)
                try evaluate(Array(inputs[p..<q]), allLogits: true)
                for j in p..<q { try accumulate(row: j - p, target: cont[j], vocabLimit: VL, into: &score) }
                p = q
            }
            out.append(score)
        }
        reset()
        return out
    }
}

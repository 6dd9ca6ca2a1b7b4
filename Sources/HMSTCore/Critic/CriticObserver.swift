// CriticObserver: reads the critic's features of one answer off the model: one forward pass
// over prompt + answer gives the answer tokens' log-probabilities, the entropy where the answer
// starts and the final-norm hidden states at the answer positions; then a few answers are
// sampled from the same prompt (the KV cache rewound to the prompt, so the prompt is not run
// again) and compared with the given one, a cheap SelfCheckGPT (Manakul et al. 2023). The
// evidence's retrieval scores and memories give the rest. The probe and head are Critic.swift's.

public enum CriticObserver {
    /// Features (probeScore left 0) and the pooled answer hidden state of one answer. Errors
    /// name the problem: no prompt, ids outside the vocabulary, too long for the context.
    public static func observe(model: LanguageModel, evidence e: CriticEvidence, settings: CriticSettings,
                               seed: UInt64) throws -> CriticObservation {
        try settings.validate()
        let d = model.dims, V = d.V, C = d.C
        let P = e.promptTokens.count, A = e.answerTokens.count
        guard P >= 1 else { throw HMSTError.invalidArgument("critic: the evidence has no prompt tokens") }
        for (what, toks) in [("prompt", e.promptTokens), ("answer", e.answerTokens)] {
            if let bad = toks.first(where: { $0 < 0 || Int($0) >= V }) {
                throw HMSTError.invalidArgument("critic: \(what) token id \(bad) is outside the vocabulary 0 ..< \(V)")
            }
        }
        guard P + A <= d.maxPositions else {
            throw HMSTError.invalidArgument("critic: prompt (\(P)) + answer (\(A)) tokens exceed the model's context \(d.maxPositions)")
        }
        if let bad = e.retrievalScores.first(where: { !$0.isFinite }) {
            throw HMSTError.invalidArgument("critic: retrieval score \(bad) is not finite")
        }
        var p = SessionParams()
        p.nCtx = min(d.maxPositions, P + max(A, settings.samples > 0 ? settings.maxTokens : 0))
        p.nBatch = max(1, min(p.nCtx, max(64, (32 << 20) / (4 * V))))
        let session = try Session(decoder: model.decoder, params: p)
        var cost = CriticCost()
        var f = CriticFeatures()

        // ---- one pass: the prompt up to its last token without logits, then every row that
        // predicts an answer token (row P-1 predicts answer[0]) with logits and hidden states
        if P > 1 {
            try session.evaluate(Array(e.promptTokens[0..<(P - 1)]))
            cost.forwardPasses += (P - 1 + session.ws.maxT - 1) / session.ws.maxT
            cost.tokensEncoded += P - 1
        }
        let rows = max(1, A)
        let inputs = [e.promptTokens[P - 1]] + e.answerTokens.prefix(max(0, A - 1))
        var hidden = [Double](repeating: 0, count: C)
        var firstRow = [Float](repeating: 0, count: V)
        var lpSum = 0.0, lpMin = Double.infinity
        var start = 0
        while start < rows {
            let n = min(session.ws.maxT, rows - start)
            try session.evaluate(Array(inputs[start..<(start + n)]), allLogits: true)
            cost.forwardPasses += 1
            cost.tokensEncoded += n
            let xn = session.ws.xn.pointer, logits = session.ws.logits.pointer
            for r in 0..<n {
                let g = start + r
                let h = xn + r * C
                for c in 0..<C { hidden[c] += Double(h[c]) }
                let row = logits + r * V
                let (lse, entropy) = logSumExpAndEntropy(row, V)
                if g == 0 {
                    f.firstTokenEntropy = Float(entropy)
                    firstRow.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: row, count: V) }
                }
                if g < A {
                    let lp = Double(row[Int(e.answerTokens[g])]) - lse
                    lpSum += lp
                    lpMin = min(lpMin, lp)
                }
            }
            start += n
        }
        let pooled = hidden.map { Float($0 / Double(rows)) }
        if A > 0 {
            f.answerLogProbMean = Float(lpSum / Double(A))
            f.answerLogProbMin = Float(lpMin)
        }
        f.answerLength = Float(A)

        // ---- retrieval and memory
        if let top = e.retrievalScores.first {
            f.hasRetrieval = 1
            f.retrievalTop = top
            f.retrievalGap = e.retrievalScores.count > 1 ? top - e.retrievalScores[1] : top
        }
        f.hasMemory = e.memories.isEmpty ? 0 : 1
        f.answerInMemory = e.memories.contains { answerOccurs(e.answerText, in: $0.text) } ? 1 : 0

        // ---- agreement of sampled answers with the given one
        if settings.samples > 0 {
            let given = EvalMetrics.normalizeAnswer(e.answerText)
            var agree = 0
            for s in 0..<settings.samples {
                session.rewind(to: P)
                let (text, toks, c) = try sample(session: session, model: model, firstRow: firstRow, settings: settings,
                                                 seed: seed &+ UInt64(s + 1) &* 0x9E37_79B9_7F4A_7C15)
                cost += c
                let same = model.tokenizer == nil ? toks == e.answerTokens : EvalMetrics.normalizeAnswer(text) == given
                if same { agree += 1 }
            }
            f.sampleAgreement = Float(agree) / Float(settings.samples)
        }
        return CriticObservation(features: f, hidden: pooled, cost: cost)
    }

    /// Whether the normalised answer occurs as whole words in the normalised memory text.
    /// An empty answer occurs nowhere.
    public static func answerOccurs(_ answer: String, in memory: String) -> Bool {
        let a = EvalMetrics.normalizeAnswer(answer)
        guard !a.isEmpty else { return false }
        return (" " + EvalMetrics.normalizeAnswer(memory) + " ").contains(" " + a + " ")
    }

    /// log Σ_v e^{l_v} and the entropy −Σ p_v log p_v of softmax(l), over a row [V], in Double.
    static func logSumExpAndEntropy(_ row: UnsafePointer<Float>, _ V: Int) -> (Double, Double) {
        var m = row[0]
        for v in 1..<V { m = max(m, row[v]) }
        var s = 0.0, sx = 0.0
        for v in 0..<V {
            let x = Double(row[v] - m)
            let ex = exp(x)
            s += ex
            sx += ex * x
        }
        // H = log s − Σ e^x·x / s with x = l − max
        return (Double(m) + log(s), log(s) - sx / s)
    }

    /// One sampled answer from a session holding the prompt, whose next-token logits are firstRow.
    static func sample(session: Session, model: LanguageModel, firstRow: [Float], settings: CriticSettings,
                       seed: UInt64) throws -> (String, [Int32], CriticCost) {
        var sp = SamplingParams()
        sp.temperature = settings.temperature
        sp.topK = 0
        sp.topP = 1
        sp.seed = seed
        var sampler = try Sampler(params: sp)
        let tokenizer = model.tokenizer
        let V = min(model.dims.V, tokenizer?.vocabSize ?? model.dims.V)
        let eos = tokenizer?.eosId
        let stops = settings.stopStrings.map { Array($0.utf8) }.filter { !$0.isEmpty }
        var cost = CriticCost()
        var out: [Int32] = [], text: [UInt8] = []
        var next = firstRow.withUnsafeBufferPointer { sampler.sample(logits: $0.baseAddress!, V: V, recent: session.history[...]) }
        while true {
            cost.tokensSampled += 1
            if next == eos { break }
            out.append(next)
            if let tokenizer {
                text += try tokenizer.decode([next])
                if let cut = stops.compactMap({ TextGeneration.find($0, in: text, from: 0) }).min() {
                    text.removeLast(text.count - cut)
                    break
                }
            }
            if out.count >= settings.maxTokens || session.position >= session.nCtx { break }
            try session.evaluate([next])
            cost.forwardPasses += 1
            cost.tokensEncoded += 1
            let row = try session.logits()
            next = sampler.sample(logits: row.baseAddress!, V: V, recent: session.history[...])
        }
        return (String(decoding: text, as: UTF8.self), out, cost)
    }
}

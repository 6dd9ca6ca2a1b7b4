// Generator: one completion on a slot's Session, on top of Session.generate (prefill, sample,
// stop at EOS): stop strings on the decoded bytes, log-probabilities of each sampled token and
// its top alternatives (from the raw logits, before temperature), the prompt echoed with its
// tokens' log-probabilities, and streaming that never emits a partial UTF-8 character or the
// start of a stop string that may still complete.
// A cancel flag, checked after every token, stops a generation whose client has gone.
import HMSTCore

struct GenerationJob: Sendable {
    var promptTokens: [Int32]
    var maxTokens: Int
    var sampling: SamplingParams
    var stops: [[UInt8]]
    /// nil: no log-probabilities; n: the sampled token's and its n best alternatives'
    var topLogprobs: Int?
    /// the prompt's text ahead of the completion's, and with log-probabilities the prompt
    /// tokens' too (the first has none: OpenAI's null), as /v1/completions' echo
    var echo = false
    /// response_format {"type": "json_object"}: one JSON object (JSONConstraint)
    var jsonObject = false
    /// response_format json_schema or a GBNF grammar: a sentence of it (GrammarConstraint)
    var grammar: Grammar? = nil
    /// tokens that end generation (finish_reason "stop")
    var endTokens: Set<Int32> = []
    /// keep the longest prefix of the prompt the slot's context already holds (llama.cpp's
    /// cache_prompt); false: start from an empty context
    var cachePrompt = true
}

struct TokenLogprob: Sendable {
    var id: Int32
    var bytes: [UInt8]
    var logprob: Double
    var top: [(id: Int32, bytes: [UInt8], logprob: Double)]
    /// false for an echoed prompt's first token, which nothing predicts (null in the response)
    var predicted = true
}

struct GenerationOutcome: Sendable {
    var text: String
    var completionTokens: Int
    /// "stop" (end of text or a stop string), "length" (max_tokens or the context), "cancelled"
    var finishReason: String
    var logprobs: [TokenLogprob]
    var stats: GenerationStats
}

enum Generator {
    /// Runs the job on the session, which keeps the longest prefix of the prompt it already
    /// holds (cachePrompt, unless the prompt's own log-probabilities are asked for) or starts
    /// empty: the result depends on the job alone, up to rounding in the cached rows.
    /// emit(textDelta, logprobsOfItsTokens) is called as text becomes safe to send.
    static func run(session: Session, tokenizer: TextTokenizer, job: GenerationJob, cancel: CancelFlag,
                    emit: ((String, [TokenLogprob]) -> Void)? = nil) throws -> GenerationOutcome {
        let promptLogprobs = job.echo && job.topLogprobs != nil
        if !job.cachePrompt || promptLogprobs { session.reset() }
        let cached = promptLogprobs ? 0 : session.keepPrefix(of: job.promptTokens)
        let V = min(session.decoder.dims.V, tokenizer.vocabSize)
        var r = GenerationRequest()
        r.maxTokens = job.maxTokens
        r.sampling = job.sampling
        r.vocabLimit = tokenizer.vocabSize
        r.eosTokens = job.endTokens
        if job.jsonObject { r.constraint = JSONConstraint(tokenizer: tokenizer) }
        if let g = job.grammar { r.constraint = try g.constraint(tokenizer: tokenizer) }
        let maxStop = job.stops.map(\.count).max() ?? 0
        var text: [UInt8] = []
        var emitted = 0
        var stopAt: Int?
        var decodeError: Error?
        var logprobs: [TokenLogprob] = []
        var pendingLogprobs: [TokenLogprob] = []
        var cancelled = false
        // echo: the prompt's text (and its tokens' log-probabilities) first; stops look only
        // at the completion after it
        var promptEvaluated = false, echoMs = 0.0
        if job.echo {
            let t0 = Clock.nowMs()
            let tokens = job.promptTokens
            let pieces = try tokens.map { try tokenizer.decode([$0]) }
            for piece in pieces { text += piece }
            if let top = job.topLogprobs, let first = tokens.first {
                // the prompt through the model in chunks, all rows' logits kept (row j predicts
                // token j + 1), so a long prompt holds a chunk's logits, not the prompt's
                var lps = [TokenLogprob(id: first, bytes: pieces[0], logprob: 0, top: [], predicted: false)]
                var start = 0
                while start < tokens.count {
                    let end = min(tokens.count, start + min(Generator.echoChunk, session.params.nBatch, session.nCtx))
                    try session.evaluate(Array(tokens[start..<end]), allLogits: true)
                    for j in start..<end where j + 1 < tokens.count {
                        var lp = Generator.logprob(row: try session.logits(row: j - start), V: V, id: tokens[j + 1], top: top)
                        lp.bytes = pieces[j + 1]
                        for k in lp.top.indices { lp.top[k].bytes = (try? tokenizer.decode([lp.top[k].id])) ?? [] }
                        lps.append(lp)
                    }
                    start = end
                }
                promptEvaluated = true
                logprobs += lps
                pendingLogprobs += lps
            }
            echoMs = Clock.nowMs() - t0
        }
        let completionStart = text.count

        func flush(upTo end: Int) {
            guard let emit, end > emitted || !pendingLogprobs.isEmpty else { return }
            let delta = end > emitted ? String(decoding: text[emitted..<end], as: UTF8.self) : ""
            emit(delta, pendingLogprobs)
            pendingLogprobs.removeAll()
            emitted = max(emitted, end)
        }

        r.onToken = { id in
            do {
                let piece = try tokenizer.decode([id])
                if job.topLogprobs != nil, let row = try? session.logits() {
                    var lp = Generator.logprob(row: row, V: V, id: id, top: job.topLogprobs ?? 0)
                    lp.bytes = piece
                    for i in lp.top.indices { lp.top[i].bytes = (try? tokenizer.decode([lp.top[i].id])) ?? [] }
                    logprobs.append(lp)
                    pendingLogprobs.append(lp)
                }
                text += piece
            } catch {
                decodeError = error
                return false
            }
            if cancel.isCancelled { cancelled = true; return false }
            return true
        }
        r.shouldStop = { _ in
            for s in job.stops {
                let from = max(completionStart, text.count - s.count - 64)
                if let i = Generator.find(s, in: text, from: from) {
                    stopAt = stopAt.map { min($0, i) } ?? i
                }
            }
            if stopAt != nil { return true }
            // stream what can no longer be the start of a stop string or a partial character
            // (only the completion's last maxStop bytes can start a stop string)
            let hold = Generator.stopPrefixLength(Array(text[max(completionStart, text.count - maxStop)...]), job.stops, maxStop)
            flush(upTo: Generator.safeEnd(text, from: emitted, holdBack: hold))
            return false
        }
        var (_, stats) = try session.generate(prompt: promptEvaluated ? [] : Array(job.promptTokens[cached...]), r)
        stats.cachedTokens = cached
        if promptEvaluated {
            // the prompt went through evaluate above: count it as Session.generate would have
            stats.promptTokens = job.promptTokens.count
            stats.promptMs += echoMs
            if stats.generatedTokens > 0 { stats.timeToFirstTokenMs += echoMs }
        }
        if let decodeError { throw decodeError }
        if let stopAt { text.removeLast(text.count - stopAt) }
        let finish: String
        if cancelled { finish = "cancelled" }
        else {
            switch stats.stopReason {
            case .eos, .stopString: finish = stopAt != nil || stats.stopReason == .eos ? "stop" : "length"
            case .maxTokens, .contextFull, .noContinuation: finish = "length"
            case .callback: finish = "stop"
            }
        }
        if stats.stopReason == .stopString && stopAt == nil { stats.stopReason = .maxTokens }
        if !cancelled { flush(upTo: text.count) }
        return GenerationOutcome(text: String(decoding: text, as: UTF8.self), completionTokens: stats.generatedTokens,
                                 finishReason: finish, logprobs: logprobs, stats: stats)
    }

    /// Prompt tokens evaluated at once for an echo's log-probabilities.
    static let echoChunk = 256

    /// log p(id) under softmax(row[0..<V]) and the `top` most likely ids with theirs.
    static func logprob(row: UnsafeBufferPointer<Float>, V: Int, id: Int32, top: Int) -> TokenLogprob {
        var m = -Float.infinity
        for v in 0..<V where row[v] > m { m = row[v] }
        var s = 0.0
        for v in 0..<V { s += Double(expf(row[v] - m)) }
        let lse = Double(m) + log(s)
        var best: [(id: Int32, bytes: [UInt8], logprob: Double)] = []
        if top > 0 {
            // partial selection: keep the `top` largest (ties: smaller id first)
            var picked: [(Int32, Float)] = []
            for v in 0..<V {
                let x = row[v]
                if picked.count < top || x > picked[picked.count - 1].1 {
                    var i = picked.count
                    while i > 0 && picked[i - 1].1 < x { i -= 1 }
                    picked.insert((Int32(v), x), at: i)
                    if picked.count > top { picked.removeLast() }
                }
            }
            best = picked.map { (id: $0.0, bytes: [], logprob: Double($0.1) - lse) }
        }
        let i = Int(id)
        return TokenLogprob(id: id, bytes: [], logprob: i >= 0 && i < V ? Double(row[i]) - lse : -.infinity, top: best)
    }

    /// The longest suffix of text that is a proper prefix of some stop string.
    static func stopPrefixLength(_ text: [UInt8], _ stops: [[UInt8]], _ maxStop: Int) -> Int {
        guard maxStop > 1 else { return 0 }
        var hold = 0
        for s in stops where s.count > 1 {
            var L = min(s.count - 1, text.count)
            while L > hold {
                if text[(text.count - L)...].elementsEqual(s[..<L]) { hold = L; break }
                L -= 1
            }
        }
        return hold
    }

    /// How far text may be sent: not the last holdBack bytes, and not into an unfinished
    /// UTF-8 sequence at the end.
    static func safeEnd(_ text: [UInt8], from: Int, holdBack: Int) -> Int {
        var end = text.count - holdBack
        // back off over continuation bytes to the lead byte of a possibly unfinished character
        var i = end - 1, cont = 0
        while i >= from && i >= 0 && text[i] & 0xC0 == 0x80 && cont < 3 { i -= 1; cont += 1 }
        if i >= from && i >= 0 {
            let lead = text[i]
            let need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0
            if need > cont { end = i }
        }
        return max(from, end)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

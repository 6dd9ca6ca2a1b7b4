// Generation: the token loop on top of a Session: prefill the prompt, then sample, stream and
// stop. Text concerns (stop strings, incremental UTF-8) come in through closures so this file
// needs no tokenizer.

public struct GenerationStats: Sendable, Equatable {
    /// prompt tokens evaluated (cachedTokens more came from the context's cache)
    public var promptTokens = 0
    /// prompt tokens the context already held (Session.keepPrefix), not evaluated again
    public var cachedTokens = 0
    public var promptMs = 0.0
    public var generatedTokens = 0
    public var generateMs = 0.0
    /// from the start of the call to the first sampled token
    public var timeToFirstTokenMs = 0.0
    public var stopReason = StopReason.maxTokens

    public var promptTokensPerSecond: Double { promptMs > 0 ? Double(promptTokens) / promptMs * 1000 : 0 }
    /// decode speed: the tokens after the first, over the time after the first was sampled
    public var tokensPerSecond: Double {
        generateMs > 0 && generatedTokens > 1 ? Double(generatedTokens - 1) / generateMs * 1000 : 0
    }
    public init() {}
}

public enum StopReason: Int32, Sendable {
    case maxTokens = 0
    case eos = 1
    case stopString = 2
    case callback = 3
    case contextFull = 4
    /// the constraint (JSON mode, a grammar) allows no token of the vocabulary: the text is unfinished
    case noContinuation = 5
}

public struct GenerationRequest {
    public var maxTokens = 50
    public var sampling = SamplingParams()
    /// Token ids that end generation (not emitted), e.g. the tokenizer's end-of-text.
    public var eosTokens: Set<Int32> = []
    /// Called with every sampled token; return false to stop (the token is kept).
    public var onToken: (Int32) -> Bool = { _ in true }
    /// Sample only ids below this (a tokenizer smaller than the model's vocabulary).
    public var vocabLimit: Int? = nil
    /// Called after each token with all generated tokens; return true to stop (stop strings).
    public var shouldStop: ([Int32]) -> Bool = { _ in false }
    /// Tokens allowed next (JSONConstraint, GrammarConstraint); generation stops when it is
    /// complete (stop reason eos), or when it allows nothing (noContinuation).
    public var constraint: TokenConstraint? = nil

    public init() {}
}

extension Session {
    /// Evaluates `prompt` (appended to the current context) and generates up to maxTokens.
    public func generate(prompt: [Int32], _ req: GenerationRequest) throws -> (tokens: [Int32], stats: GenerationStats) {
        guard req.maxTokens >= 0 else { throw HMSTError.invalidArgument("max_tokens \(req.maxTokens) must be >= 0") }
        var sampler = try Sampler(params: req.sampling)
        let V = min(decoder.dims.V, req.vocabLimit ?? Int.max)
        if let id = req.sampling.logitBias.keys.first(where: { Int($0) >= V }) {
            throw HMSTError.invalidArgument("logit_bias names token \(id); this model's tokens are 0..<\(V)")
        }
        var stats = GenerationStats()
        let t0 = Clock.nowMs()
        if !prompt.isEmpty { try evaluate(prompt) } else if logitsRows == 0 {
            throw HMSTError.invalidArgument("empty prompt and no previous context to continue from")
        }
        stats.promptTokens = prompt.count
        stats.promptMs = Clock.nowMs() - t0
        var out: [Int32] = []
        var tFirst = 0.0
        while out.count < req.maxTokens {
            let row = try logits()
            var allowed = true
            let mask = req.constraint.map { c in { (l: UnsafeMutableBufferPointer<Float>) in allowed = c.mask(l, eos: req.eosTokens) } }
            let next = sampler.sample(logits: row.baseAddress!, V: V, recent: history[...], mask: mask)
            if !allowed { stats.stopReason = req.constraint?.canEnd == true ? .eos : .noContinuation; break }
            if out.isEmpty {
                tFirst = Clock.nowMs()
                stats.timeToFirstTokenMs = tFirst - t0
            }
            if req.eosTokens.contains(next) { stats.stopReason = .eos; break }
            out.append(next)
            req.constraint?.accept(next)
            if !req.onToken(next) { stats.stopReason = .callback; break }
            if req.shouldStop(out) { stats.stopReason = .stopString; break }
            if req.constraint?.isComplete == true { stats.stopReason = .eos; break }
            if out.count == req.maxTokens { stats.stopReason = .maxTokens; break }
            if position >= nCtx { stats.stopReason = .contextFull; break }
            try evaluate([next])
        }
        stats.generatedTokens = out.count
        if !out.isEmpty { stats.generateMs = Clock.nowMs() - tFirst }
        return (out, stats)
    }
}

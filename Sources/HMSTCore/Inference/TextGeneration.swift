// TextGeneration: prompt text in, text out, on a Session and a tokenizer: stop strings, raw
// byte streaming per token and the text result. Stop strings are matched on the decoded bytes
// of the generated tokens; the returned text ends before the stop string. The tokenizer is any
// TextTokenizer (Text/TextTokenizer.swift).

public struct TextGenerationRequest {
    public var maxTokens = 50
    public var sampling = SamplingParams()
    public var stopStrings: [String] = []
    /// Also stop at the tokenizer's end-of-text token (default).
    public var stopAtEOS = true
    /// Called with each token and its bytes; return false to stop.
    public var onPiece: (Int32, [UInt8]) -> Bool = { _, _ in true }
    /// Only one JSON object (JSONConstraint); generation stops when it is closed.
    public var jsonObject = false
    /// Only sentences of this grammar (GrammarConstraint: GBNF, or a JSON Schema through
    /// JSONSchemaGrammar), or with triggers free text until one and the grammar from there on
    /// (TriggeredConstraint); generation stops when nothing can follow. Not with jsonObject.
    public var grammar: Grammar? = nil
    /// Tokens that end generation besides the end-of-text token (with stopAtEOS): a chat's
    /// end-of-turn tokens (LanguageModel.endOfTurnTokens).
    public var endTokens: Set<Int32> = []
    public init() {}
}

public struct TextGenerationResult: Sendable {
    public var text: [UInt8]
    public var tokens: [Int32]
    public var stats: GenerationStats
    public var string: String { String(decoding: text, as: UTF8.self) }
}

extension Session {
    public func generate(prompt: [UInt8], tokenizer: TextTokenizer, _ req: TextGenerationRequest) throws -> TextGenerationResult {
        try generate(promptTokens: tokenizer.encode(bytes: prompt), tokenizer: tokenizer, req)
    }

    /// A prompt whose literal parts get no special tokens (a chat template's rendering).
    public func generate(prompt: PromptText, tokenizer: TextTokenizer, _ req: TextGenerationRequest) throws -> TextGenerationResult {
        try generate(promptTokens: tokenizer.encode(prompt), tokenizer: tokenizer, req)
    }

    /// A (chat) prompt that replaces the context: the longest prefix the context already holds
    /// is kept (Session.keepPrefix), the rest evaluated; stats.cachedTokens counts what was kept.
    public func generate(replacingContextWith promptTokens: [Int32], tokenizer: TextTokenizer,
                         _ req: TextGenerationRequest) throws -> TextGenerationResult {
        guard !promptTokens.isEmpty else { throw HMSTError.invalidArgument("the chat template rendered an empty prompt") }
        let cached = keepPrefix(of: promptTokens)
        var r = try generate(promptTokens: Array(promptTokens[cached...]), tokenizer: tokenizer, req)
        r.stats.cachedTokens = cached
        return r
    }

    /// Appends promptTokens to the context and generates.
    func generate(promptTokens: [Int32], tokenizer: TextTokenizer, _ req: TextGenerationRequest) throws -> TextGenerationResult {
        guard tokenizer.vocabSize <= decoder.dims.V else {
            throw HMSTError.invalidArgument("tokenizer vocabulary \(tokenizer.vocabSize) is larger than the model's \(decoder.dims.V)")
        }
        let stops = req.stopStrings.map { Array($0.utf8) }.filter { !$0.isEmpty }
        var r = GenerationRequest()
        r.maxTokens = req.maxTokens
        r.sampling = req.sampling
        r.vocabLimit = tokenizer.vocabSize
        if req.stopAtEOS {
            if let eos = tokenizer.eosId { r.eosTokens = [eos] }
            r.eosTokens.formUnion(req.endTokens)
        }
        if req.jsonObject && req.grammar != nil {
            throw HMSTError.invalidArgument("a JSON object and a grammar both asked for: give one (a JSON Schema says both)")
        }
        if req.jsonObject { r.constraint = JSONConstraint(tokenizer: tokenizer) }
        if let g = req.grammar { r.constraint = try g.constraint(tokenizer: tokenizer) }
        var text: [UInt8] = []
        var stopAt: Int?
        var decodeError: Error?
        r.onToken = { id in
            do {
                let piece = try tokenizer.decode([id])
                text += piece
                return req.onPiece(id, piece)
            } catch {
                decodeError = error
                return false
            }
        }
        r.shouldStop = { _ in
            for s in stops {
                // only the tail can contain a new match
                let from = max(0, text.count - s.count - 64)
                if let i = TextGeneration.find(s, in: text, from: from) { stopAt = i; return true }
            }
            return false
        }
        var (tokens, stats) = try generate(prompt: promptTokens, r)
        if let decodeError { throw decodeError }
        if let stopAt { text.removeLast(text.count - stopAt) }
        if stats.stopReason == .stopString && stopAt == nil { stats.stopReason = .maxTokens }
        return TextGenerationResult(text: text, tokens: tokens, stats: stats)
    }
}

enum TextGeneration {
    /// First index >= from where needle occurs in hay.
    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}

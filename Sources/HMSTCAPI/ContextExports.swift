// Exports: contexts, evaluation, sampling and generation. Documented in include/hmst.h.
import CHMST
import HMSTCore

final class ContextBox {
    let model: LanguageModel
    let session: Session
    var lastOutput: [UInt8] = []
    /// the calls of the last chat reply with tools
    var lastToolCalls: [ToolCall] = []
    /// Held by the calls that change the session (eval, reset, generate): one made from a
    /// generation's own on_token callback is INVALID_ARGUMENT instead of altering the cache the
    /// generation is decoding from; two threads misusing one context wait for each other.
    let changing = ReentryCheckedLock("this context is already evaluating or generating")
    init(model: LanguageModel, session: Session) {
        self.model = model
        self.session = session
    }
}

func resolveContext(_ h: OpaquePointer?) throws -> ContextBox {
    try HandleRegistry.shared.resolve(h, as: ContextBox.self, "ctx")
}

@_cdecl("hmst_context_default_params")
public func hmst_context_default_params() -> hmst_context_params {
    var p = hmst_context_params()
    p.struct_size = UInt32(MemoryLayout<hmst_context_params>.size)
    p.n_ctx = 0
    p.n_batch = 256
    p.n_threads = 0
    p.trace_routes = false
    p.kv_type = Int32(HMST_KV_F32.rawValue)
    return p
}

@_cdecl("hmst_context_new")
public func hmst_context_new(_ model: OpaquePointer?, _ params: UnsafePointer<hmst_context_params>?,
                             _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let m = try resolveModel(model)
        let out = try required(out, "out_ctx")
        let p = try readParams(params, defaults: hmst_context_default_params(), name: "params")
        var sp = SessionParams()
        sp.nCtx = Int(p.n_ctx)
        sp.nBatch = Int(p.n_batch)
        sp.nThreads = Int(p.n_threads)
        sp.traceRoutes = p.trace_routes
        switch p.kv_type {
        case Int32(HMST_KV_F32.rawValue): sp.kvType = .f32
        case Int32(HMST_KV_BF16.rawValue): sp.kvType = .bf16
        default: throw HMSTError.invalidArgument("params->kv_type = \(p.kv_type) is not an enum hmst_kv_type value")
        }
        let session = try Session(decoder: m.decoder, params: sp)
        out.pointee = HandleRegistry.shared.register(ContextBox(model: m, session: session))
    }
}

@_cdecl("hmst_context_free")
public func hmst_context_free(_ ctx: OpaquePointer?) {
    HandleRegistry.shared.release(ctx, as: ContextBox.self)
}

@_cdecl("hmst_context_reset")
public func hmst_context_reset(_ ctx: OpaquePointer?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        try c.changing.lock()
        defer { c.changing.unlock() }
        c.session.reset()
        c.lastOutput = []
        c.lastToolCalls = []
    }
}

@_cdecl("hmst_context_n_past")
public func hmst_context_n_past(_ ctx: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        try required(out, "out_n").pointee = Int32(c.session.position)
    }
}

@_cdecl("hmst_context_tokens")
public func hmst_context_tokens(_ ctx: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?, _ cap: Int,
                                _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        let nOut = try required(nOut, "n_out")
        let cap = try outputCapacity(out, cap, "out")
        let ids = c.session.history
        nOut.pointee = ids.count
        if ids.isEmpty { return }
        guard ids.count <= cap, let out else { throw HMSTError(.bufferTooSmall, "\(ids.count) tokens do not fit cap \(cap)") }
        ids.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: ids.count) }
    }
}

@_cdecl("hmst_context_rewind")
public func hmst_context_rewind(_ ctx: OpaquePointer?, _ n: Int32) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        try c.changing.lock()
        defer { c.changing.unlock() }
        guard n >= 0, Int(n) <= c.session.position else {
            throw HMSTError.invalidArgument("n = \(n) must be in 0 ... n_past (\(c.session.position))")
        }
        c.session.rewind(to: Int(n))
    }
}

@_cdecl("hmst_context_eval")
public func hmst_context_eval(_ ctx: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int, _ allLogits: Bool) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        guard n >= 1, n <= c.session.nCtx else {
            throw HMSTError.invalidArgument("n = \(UInt(bitPattern: n)) tokens; must be in 1 ... n_ctx (\(c.session.nCtx))")
        }
        let t = try required(tokens, "tokens")
        try c.changing.lock()
        defer { c.changing.unlock() }
        try c.session.evaluate(Array(UnsafeBufferPointer(start: t, count: n)), allLogits: allLogits)
    }
}

@_cdecl("hmst_context_get_logits")
public func hmst_context_get_logits(_ ctx: OpaquePointer?, _ row: Int32, _ out: UnsafeMutablePointer<Float>?, _ cap: Int,
                                    _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        let nOut = try required(nOut, "n_out"), cap = try outputCapacity(out, cap, "out")
        guard row >= -1 else { throw HMSTError.invalidArgument("row \(row) must be >= -1") }
        let logits = try c.session.logits(row: Int(row))
        nOut.pointee = logits.count
        guard cap >= logits.count, let out else {
            throw HMSTError(.bufferTooSmall, "\(logits.count) logits do not fit cap \(cap)")
        }
        out.update(from: logits.baseAddress!, count: logits.count)
    }
}

@_cdecl("hmst_context_route_trace")
public func hmst_context_route_trace(_ ctx: OpaquePointer?, _ experts: UnsafeMutablePointer<Int32>?,
                                     _ gates: UnsafeMutablePointer<Float>?, _ cap: Int,
                                     _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        let nOut = try required(nOut, "n_out")
        guard c.session.params.traceRoutes else {
            throw HMSTError.invalidArgument("this context was created without trace_routes")
        }
        let cap = capacity(cap)
        let t = c.session.trace
        nOut.pointee = t.experts.count
        if t.experts.isEmpty { return }
        guard cap >= t.experts.count, experts != nil || gates != nil else {
            if experts == nil && gates == nil && cap != 0 { throw HMSTError.invalidArgument("experts and gates are both NULL") }
            throw HMSTError(.bufferTooSmall, "\(t.experts.count) trace entries do not fit cap \(cap)")
        }
        if let experts { t.experts.withUnsafeBufferPointer { experts.update(from: $0.baseAddress!, count: $0.count) } }
        if let gates { t.gates.withUnsafeBufferPointer { gates.update(from: $0.baseAddress!, count: $0.count) } }
    }
}

@_cdecl("hmst_sampling_default_params")
public func hmst_sampling_default_params() -> hmst_sampling_params {
    let d = SamplingParams()
    var p = hmst_sampling_params()
    p.struct_size = UInt32(MemoryLayout<hmst_sampling_params>.size)
    p.temperature = d.temperature
    p.top_k = Int32(d.topK)
    p.top_p = d.topP
    p.min_p = d.minP
    p.repetition_penalty = d.repetitionPenalty
    p.repeat_last_n = Int32(d.repeatLastN)
    p.seed = d.seed
    return p
}

@_cdecl("hmst_generate_default_params")
public func hmst_generate_default_params() -> hmst_generate_params {
    var p = hmst_generate_params()
    p.struct_size = UInt32(MemoryLayout<hmst_generate_params>.size)
    p.max_tokens = 50
    p.sampling = hmst_sampling_default_params()
    p.stop = nil
    p.n_stop = 0
    p.ignore_eos = false
    p.on_token = nil
    p.user_data = nil
    p.frequency_penalty = 0
    p.presence_penalty = 0
    p.logit_bias_tokens = nil
    p.logit_bias = nil
    p.n_logit_bias = 0
    p.json_object = false
    p.grammar = nil
    p.json_schema = nil
    return p
}

/// A NUL-terminated UTF-8 argument: INVALID_ARGUMENT when it is not UTF-8 (a lossy conversion
/// would change what a grammar means).
func utf8String(_ p: UnsafePointer<CChar>, _ name: String) throws -> String {
    guard let s = String(validatingUTF8: p) else { throw HMSTError.invalidArgument("\(name) is not UTF-8") }
    return s
}

/// The grammar a generate call asks for (GBNF text or a JSON Schema), or nil.
func requestedGrammar(gbnf: UnsafePointer<CChar>?, jsonSchema: UnsafePointer<CChar>?) throws -> Grammar? {
    if gbnf != nil && jsonSchema != nil { throw HMSTError.invalidArgument("grammar and json_schema both set: give one") }
    if let g = gbnf { return try Grammar.parse(gbnf: try utf8String(g, "grammar")) }
    if let j = jsonSchema { return try JSONSchemaGrammar.grammar(schemaText: try utf8String(j, "json_schema")) }
    return nil
}

@_cdecl("hmst_json_schema_to_grammar")
public func hmst_json_schema_to_grammar(_ schema: UnsafePointer<CChar>?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                        _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let text = try utf8String(try required(schema, "json_schema"), "json_schema")
        try writeString(try JSONSchemaGrammar.grammar(schemaText: text).source, buf, cap, nOut)
    }
}

@_cdecl("hmst_grammar_check")
public func hmst_grammar_check(_ grammar: UnsafePointer<CChar>?) -> Int32 {
    hmstCall {
        _ = try Grammar.parse(gbnf: try utf8String(try required(grammar, "grammar"), "grammar"))
    }
}

func samplingParams(_ s: hmst_sampling_params) throws -> SamplingParams {
    guard Int(s.struct_size) == MemoryLayout<hmst_sampling_params>.size else {
        throw HMSTError.invalidArgument("sampling.struct_size is \(s.struct_size); initialise it with hmst_sampling_default_params()")
    }
    var p = SamplingParams()
    p.temperature = s.temperature
    p.topK = Int(s.top_k)
    p.topP = s.top_p
    p.minP = s.min_p
    p.repetitionPenalty = s.repetition_penalty
    p.repeatLastN = Int(s.repeat_last_n)
    p.seed = s.seed
    try p.validate()
    return p
}

@_cdecl("hmst_generate")
public func hmst_generate(_ ctx: OpaquePointer?, _ prompt: UnsafePointer<CChar>?, _ params: UnsafePointer<hmst_generate_params>?,
                          _ stats: UnsafeMutablePointer<hmst_generation_stats>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        let promptPtr = try required(prompt, "prompt")
        let promptBytes = Array(UnsafeRawBufferPointer(start: promptPtr, count: strlen(promptPtr)))
        let (tok, req) = try textRequest(c, params, stats)
        try c.changing.lock()
        defer { c.changing.unlock() }
        let r = try c.session.generate(prompt: promptBytes, tokenizer: tok, req)
        try finish(c, r, stats)
    }
}

@_cdecl("hmst_chat_default_params")
public func hmst_chat_default_params() -> hmst_chat_params {
    var p = hmst_chat_params()
    p.struct_size = UInt32(MemoryLayout<hmst_chat_params>.size)
    p.add_generation_prompt = true
    p.tool_choice = nil
    p.parallel_tool_calls = true
    return p
}

@_cdecl("hmst_chat_apply_template")
public func hmst_chat_apply_template(_ model: OpaquePointer?, _ messagesJSON: UnsafePointer<CChar>?, _ params: UnsafePointer<hmst_chat_params>?,
                                     _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let chat = try chatRequest(try resolveModel(model), messagesJSON, params, generating: false)
        try writeBytes(chat.prompt.bytes, buf, cap, nOut)
    }
}

@_cdecl("hmst_chat_tokenize")
public func hmst_chat_tokenize(_ model: OpaquePointer?, _ messagesJSON: UnsafePointer<CChar>?, _ params: UnsafePointer<hmst_chat_params>?,
                               _ out: UnsafeMutablePointer<Int32>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let m = try resolveModel(model)
        let nOut = try required(nOut, "n_out")
        let cap = try outputCapacity(out, cap, "out")
        guard let tok = m.tokenizer else { throw HMSTError.unsupported("this model has no tokenizer") }
        let ids = tok.encode(try chatRequest(m, messagesJSON, params, generating: false).prompt)
        nOut.pointee = ids.count
        if ids.isEmpty { return }
        guard ids.count <= cap, let out else { throw HMSTError(.bufferTooSmall, "\(ids.count) tokens do not fit cap \(cap)") }
        ids.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: ids.count) }
    }
}

@_cdecl("hmst_chat_generate")
public func hmst_chat_generate(_ ctx: OpaquePointer?, _ messagesJSON: UnsafePointer<CChar>?, _ chatParams: UnsafePointer<hmst_chat_params>?,
                               _ params: UnsafePointer<hmst_generate_params>?, _ stats: UnsafeMutablePointer<hmst_generation_stats>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        let chat = try chatRequest(c.model, messagesJSON, chatParams, generating: true)
        var (tok, req) = try textRequest(c, params, stats)
        if let g = chat.tools?.grammar(besideCallerConstraint: req.jsonObject || req.grammar != nil) {
            guard !req.jsonObject && req.grammar == nil else {
                throw HMSTError.invalidArgument("with these tools and tool_choice a grammar holds the reply (required, a named function, or the generic tool format); params->json_object, grammar and json_schema cannot be set with it")
            }
            req.grammar = g
        }
        req.stopStrings += try c.model.chatTemplate().stop
        if req.stopAtEOS { req.endTokens = c.model.endOfTurnTokens() }
        try c.changing.lock()
        defer { c.changing.unlock() }
        let r = try c.session.generate(replacingContextWith: tok.encode(chat.prompt), tokenizer: tok, req)
        try finish(c, r, stats)
        if let setup = chat.tools {
            let reply = setup.parse(r.string)
            c.lastOutput = Array(reply.content.utf8)
            c.lastToolCalls = reply.calls
        }
    }
}

/// A chat's prompt, and with tools how the reply's calls are read
struct ChatRequest {
    var prompt: PromptText
    var tools: ToolCallSetup?
}

/// messages, tools and template variables as JSON, rendered with the model's chat template
func chatRequest(_ m: LanguageModel, _ messagesJSON: UnsafePointer<CChar>?, _ params: UnsafePointer<hmst_chat_params>?,
                 generating: Bool) throws -> ChatRequest {
    func json(_ p: UnsafePointer<CChar>, _ name: String) throws -> JSONValue {
        do {
            return try JSONValue.parse(bytes: Array(UnsafeRawBufferPointer(start: p, count: strlen(p))))
        } catch let e as HMSTError {
            throw HMSTError.invalidArgument("\(name): \(e.message)")
        }
    }
    let p = try readParams(params, defaults: hmst_chat_default_params(), name: "params")
    let messages = try json(try required(messagesJSON, "messages_json"), "messages_json")
    guard let list = messages.array else { throw HMSTError.invalidArgument("messages_json must be a JSON array of messages") }
    let tools = try p.tools_json.map { try json($0, "tools_json") }
    var vars: [(String, JSONValue)] = []
    if let v = p.template_vars_json {
        guard let o = try json(v, "template_vars_json").object else {
            throw HMSTError.invalidArgument("template_vars_json must be a JSON object")
        }
        vars = o
    }
    var choice = ToolChoice.auto
    if let tc = p.tool_choice {
        let text = String(cString: tc)
        choice = try ToolChoice(json: text.hasPrefix("{") ? try json(tc, "tool_choice") : .string(text))
    }
    if let tools, !tools.isNull {
        do { _ = try ToolCallFormat.functions(tools) } catch let e as HMSTError { throw HMSTError.invalidArgument("tools_json: \(e.message)") }
    }
    let (prompt, setup) = try m.chatTemplate().render(messages: list, addGenerationPrompt: generating || p.add_generation_prompt,
                                                      tools: tools, toolChoice: choice, parallelToolCalls: p.parallel_tool_calls,
                                                      extra: vars)
    return ChatRequest(prompt: prompt, tools: setup)
}

/// hmst_generate's parameters as a request (the stats pointer checked too)
func textRequest(_ c: ContextBox, _ params: UnsafePointer<hmst_generate_params>?,
                 _ stats: UnsafeMutablePointer<hmst_generation_stats>?) throws -> (TextTokenizer, TextGenerationRequest) {
    let p = try readParams(params, defaults: hmst_generate_default_params(), name: "params")
    if let stats {
        let s = Int(UnsafeRawPointer(stats).load(as: UInt32.self))
        guard s >= 8 else { throw HMSTError.invalidArgument("stats->struct_size is \(s); set it to sizeof(struct hmst_generation_stats)") }
    }
    guard let tok = c.model.tokenizer else {
        throw HMSTError.unsupported("this model has no tokenizer; use hmst_context_eval with token ids")
    }
    guard p.max_tokens >= 0 else { throw HMSTError.invalidArgument("max_tokens \(p.max_tokens) must be >= 0") }
    let nStop = try sizeArgument(p.n_stop, "n_stop", in: 0 ... 1024)
    if p.n_stop > 0 && p.stop == nil { throw HMSTError.invalidArgument("stop is NULL but n_stop is \(p.n_stop)") }
    var req = TextGenerationRequest()
    req.maxTokens = Int(p.max_tokens)
    req.sampling = try samplingParams(p.sampling)
    req.sampling.frequencyPenalty = p.frequency_penalty
    req.sampling.presencePenalty = p.presence_penalty
    let nBias = try sizeArgument(p.n_logit_bias, "n_logit_bias", in: 0 ... 65536)
    if nBias > 0 {
        guard let ids = p.logit_bias_tokens, let biases = p.logit_bias else {
            throw HMSTError.invalidArgument("n_logit_bias is \(nBias) but logit_bias_tokens or logit_bias is NULL")
        }
        for i in 0..<nBias { req.sampling.logitBias[ids[i]] = biases[i] }
    }
    try req.sampling.validate()
    req.stopAtEOS = !p.ignore_eos
    req.jsonObject = p.json_object
    req.grammar = try requestedGrammar(gbnf: p.grammar, jsonSchema: p.json_schema)
    for i in 0..<nStop {
        guard let s = p.stop![i] else { throw HMSTError.invalidArgument("stop[\(i)] is NULL") }
        req.stopStrings.append(String(cString: s))
    }
    if let cb = p.on_token {
        let ud = p.user_data
        req.onPiece = { id, piece in
            piece.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { cb(id, $0.baseAddress, $0.count, ud) }
            }
        }
    }
    return (tok, req)
}

/// The output kept for hmst_context_last_output, and the stats
func finish(_ c: ContextBox, _ r: TextGenerationResult, _ stats: UnsafeMutablePointer<hmst_generation_stats>?) throws {
    c.lastOutput = r.text
    c.lastToolCalls = []
    if let stats {
        var s = hmst_generation_stats()
        s.prompt_tokens = Int32(r.stats.promptTokens)
        s.generated_tokens = Int32(r.stats.generatedTokens)
        s.stop_reason = r.stats.stopReason.rawValue
        s.load_ms = c.model.report.loadMs
        s.prompt_ms = r.stats.promptMs
        s.generate_ms = r.stats.generateMs
        s.time_to_first_token_ms = r.stats.timeToFirstTokenMs
        s.prompt_tokens_per_second = r.stats.promptTokensPerSecond
        s.tokens_per_second = r.stats.tokensPerSecond
        s.cached_tokens = Int32(r.stats.cachedTokens)
        try writeInfo(s, to: stats, minimum: 8, name: "stats")
    }
}

@_cdecl("hmst_context_last_tool_calls")
public func hmst_context_last_tool_calls(_ ctx: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                         _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        try writeBytes(Array(JSONValue.array(c.lastToolCalls.map(\.json)).serialized.utf8), buf, cap, nOut)
    }
}

@_cdecl("hmst_context_last_output")
public func hmst_context_last_output(_ ctx: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                     _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let c = try resolveContext(ctx)
        try writeBytes(c.lastOutput, buf, cap, nOut)
    }
}

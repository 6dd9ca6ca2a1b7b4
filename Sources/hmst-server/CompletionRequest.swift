// CompletionRequest: a /v1/completions or /v1/chat/completions body, checked: the prompts as
// token ids, sampling, stops, n, log-probabilities, echo, streaming, and max_tokens against both
// the server's cap and the context left after the prompt (400 context_length_exceeded).
import HMSTCore

enum CompletionKind { case text, chat }

struct CompletionRequest {
    var kind: CompletionKind
    var prompts: [[Int32]] = []
    var maxTokens: [Int] = []          // per prompt
    var n = 1
    var sampling = SamplingParams()
    var seedGiven = false
    var stops: [[UInt8]] = []
    var topLogprobs: Int?              // nil: off
    var echo = false                   // completions: the prompt ahead of the text (and its log-probabilities)
    var jsonObject = false             // response_format {"type": "json_object"}
    var grammar: Grammar?              // response_format json_schema, or llama.cpp's grammar / json_schema fields
    var stream = false
    var includeUsage = false
    var cachePrompt = true             // llama.cpp's cache_prompt: reuse a slot's cached prefix
    var toolSetup: ToolCallSetup?      // chat with tools (tool_choice not none): how the reply's calls are read
    var toolGrammarHolds = false       // the tools' grammar is the constraint (calls can stream as written)
    /// tokens that end generation: the end-of-text token, for chat also the end-of-turn tokens
    var endTokens: Set<Int32> = []

    /// Jobs in choice order: prompt-major, then n.
    var jobs: [GenerationJob] {
        var out: [GenerationJob] = []
        for (p, tokens) in prompts.enumerated() {
            for i in 0..<n {
                var s = sampling
                s.seed = sampling.seed &+ UInt64(p * n + i)
                out.append(GenerationJob(promptTokens: tokens, maxTokens: maxTokens[p], sampling: s, stops: stops,
                                         topLogprobs: topLogprobs, echo: echo, jsonObject: jsonObject, grammar: grammar,
                                         endTokens: endTokens, cachePrompt: cachePrompt))
            }
        }
        return out
    }

    /// A JSON Schema's grammar; what cannot be converted is a 400 naming the keyword.
    static func schemaGrammar(_ schema: JSONValue, param: String) throws -> Grammar {
        do { return try JSONSchemaGrammar.grammar(schema: schema) } catch let e as HMSTError {
            throw APIError.invalid(e.message, param: param)
        }
    }

    init(kind: CompletionKind, fields f: Fields, state: ServerState) throws {
        self.kind = kind
        let L = state.limits
        _ = try f.string("model")
        for unsupported in ["suffix", "functions", "function_call"] + (kind == .text ? ["tools", "tool_choice"] : [])
            where f[unsupported] != nil {
            if let a = f[unsupported]?.array, a.isEmpty { continue }
            if unsupported == "tool_choice" || unsupported == "function_call", f[unsupported]?.string == "none" { continue }
            throw APIError.invalid("'\(unsupported)' is not supported by hmst serve" + (kind == .text ? " on /v1/completions" : ""),
                                   param: unsupported, code: "unsupported_parameter")
        }
        // ---- tools (chat): checked here, rendered with the messages (ChatTemplate.render)
        var tools = ToolsRequest()
        if kind == .chat {
            let t = f["tools"].flatMap { $0.isNull || $0.array?.isEmpty == true ? nil : $0 }
            var names: [String] = []
            if let t {
                do { names = try ToolCallFormat.functions(t).map(\.name) } catch let e as HMSTError { throw APIError.invalid(e.message, param: "tools") }
            }
            do { tools.choice = try ToolChoice(json: f["tool_choice"]) } catch let e as HMSTError { throw APIError.invalid(e.message, param: "tool_choice") }
            switch tools.choice {
            case .required where t == nil: throw APIError.invalid("'tool_choice' required needs 'tools'", param: "tool_choice")
            case let .function(name) where !names.contains(name):
                throw APIError.invalid("tool_choice names \(name), which is not among the tools", param: "tool_choice")
            default: break
            }
            tools.list = t
            tools.parallel = try f.bool("parallel_tool_calls") ?? true
        }
        if let rf = f["response_format"] {
            guard case .object = rf, let type = rf["type"]?.string else {
                throw APIError.invalid("'response_format' must be an object with a 'type'", param: "response_format")
            }
            switch type {
            case "text": break
            case "json_object":
                // llama.cpp's server: json_object with a schema is json_schema
                if let schema = rf["schema"], !schema.isNull { grammar = try CompletionRequest.schemaGrammar(schema, param: "response_format") }
                else { jsonObject = true }
            case "json_schema":
                guard case .object = rf["json_schema"] ?? .null, let spec = rf["json_schema"] else {
                    throw APIError.invalid("'response_format' json_schema needs a 'json_schema' object (name, schema)", param: "response_format")
                }
                grammar = try CompletionRequest.schemaGrammar(spec["schema"] ?? .bool(true), param: "response_format")
            default:
                throw APIError.invalid("'response_format' type '\(type)' is not supported by hmst serve (text, json_object, json_schema)",
                                       param: "response_format", code: "unsupported_parameter")
            }
        }
        // llama.cpp's server fields: GBNF text, or a JSON Schema
        if let g = f["grammar"], !g.isNull {
            guard let text = g.string else { throw APIError.invalid("'grammar' must be GBNF text", param: "grammar") }
            if grammar != nil { throw APIError.invalid("give one of 'grammar', 'json_schema' and a response_format with a schema", param: "grammar") }
            do { grammar = try Grammar.parse(gbnf: text) } catch let e as HMSTError {
                throw APIError.invalid(e.message, param: "grammar")
            }
        }
        if let j = f["json_schema"], !j.isNull {
            if grammar != nil { throw APIError.invalid("give one of 'grammar', 'json_schema' and a response_format with a schema", param: "json_schema") }
            grammar = try CompletionRequest.schemaGrammar(j, param: "json_schema")
        }
        if grammar != nil && jsonObject {
            throw APIError.invalid("response_format json_object and a grammar: give one", param: "response_format")
        }
        echo = try f.bool("echo") ?? false
        cachePrompt = try f.bool("cache_prompt") ?? true
        if echo && kind == .chat {
            throw APIError.invalid("'echo' applies to /v1/completions", param: "echo", code: "unsupported_parameter")
        }
        // ---- prompts
        let promptParam: String
        switch kind {
        case .text:
            promptParam = "prompt"
            prompts = try CompletionRequest.prompts(f, state: state)
        case .chat:
            promptParam = "messages"
            let (prompt, setup) = try CompletionRequest.chatPrompt(f, template: state.template, tools: tools)
            prompts = [state.encode(prompt)]
            toolSetup = setup
            if let g = setup?.grammar(besideCallerConstraint: grammar != nil || jsonObject) {
                guard grammar == nil && !jsonObject else {
                    throw APIError.invalid("tools with tool_choice required, a named function, or this model's generic tool format hold the reply to a grammar; "
                                           + "response_format and grammar cannot be given with them", param: "tool_choice")
                }
                grammar = g
                toolGrammarHolds = true
            }
        }
        for (i, p) in prompts.enumerated() {
            guard !p.isEmpty else { throw APIError.invalid("prompt \(i) has no tokens", param: promptParam) }
            guard p.count < state.nCtx else {
                throw APIError.invalid("prompt \(i) has \(p.count) tokens; the context holds \(state.nCtx), leaving no room to generate",
                                       param: promptParam, code: "context_length_exceeded")
            }
        }
        // ---- lengths
        let maxParam = kind == .chat && f["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens"
        let asked = try f.int(maxParam, in: 0...Int(Int32.max))
        for p in prompts {
            let room = state.nCtx - p.count
            if let asked {
                guard p.count + asked <= state.nCtx else {
                    throw APIError.invalid("the prompt (\(p.count) tokens) plus '\(maxParam)' (\(asked)) exceed the context of \(state.nCtx) tokens",
                                           param: maxParam, code: "context_length_exceeded")
                }
                guard asked <= L.maxTokensCap else {
                    throw APIError.invalid("'\(maxParam)' is \(asked); this server allows at most \(L.maxTokensCap)", param: maxParam)
                }
                maxTokens.append(asked)
            } else {
                let d = kind == .chat ? L.defaultChatMaxTokens : L.defaultCompletionMaxTokens
                maxTokens.append(min(d, room, L.maxTokensCap))
            }
        }
        n = try f.int("n", in: 1...L.maxN) ?? 1
        if let best = try f.int("best_of", in: 1...L.maxN), best != n {
            throw APIError.invalid("'best_of' other than n is not supported by hmst serve", param: "best_of", code: "unsupported_parameter")
        }
        // ---- sampling: OpenAI's defaults (temperature 1, top_p 1), top_k and min_p off
        sampling.temperature = Float(try f.number("temperature", in: 0...2) ?? 1)
        let topP = try f.number("top_p", in: 0...1) ?? 1
        if topP == 0 { sampling.temperature = 0; sampling.topP = 1 } else { sampling.topP = Float(topP) }
        sampling.topK = try f.int("top_k", in: 0...1_000_000) ?? 0
        sampling.minP = Float(try f.number("min_p", in: 0...1) ?? 0)
        sampling.repetitionPenalty = Float(try f.number("repetition_penalty", in: 0.01...100) ?? 1)
        // OpenAI's penalties, over the last repeat_last_n tokens of the context (prompt included, as llama.cpp's server)
        sampling.frequencyPenalty = Float(try f.number("frequency_penalty", in: -2...2) ?? 0)
        sampling.presencePenalty = Float(try f.number("presence_penalty", in: -2...2) ?? 0)
        sampling.repeatLastN = try f.int("repeat_last_n", in: 0...1_000_000) ?? sampling.repeatLastN
        sampling.logitBias = try CompletionRequest.logitBias(f, vocab: state.tokenizer.vocabSize)
        if let s = try f.seed() {
            sampling.seed = s
            seedGiven = true
        } else {
            sampling.seed = UInt64.random(in: 0...UInt64.max)
        }
        do { try sampling.validate() } catch let e as HMSTError { throw APIError.invalid(e.message) }
        // ---- stops: the request's, plus the chat template's for chat
        var stopStrings = try f.strings("stop", maxCount: L.maxStops) ?? []
        if kind == .chat { stopStrings += state.template.stop }
        endTokens = kind == .chat ? state.endOfTurn : Set(state.tokenizer.eosId.map { [$0] } ?? [])
        stops = stopStrings.filter { !$0.isEmpty }.map { Array($0.utf8) }
        // ---- log-probabilities
        switch kind {
        case .text:
            topLogprobs = try f.int("logprobs", in: 0...L.maxTopLogprobs)
        case .chat:
            let on = try f.bool("logprobs") ?? false
            let top = try f.int("top_logprobs", in: 0...L.maxTopLogprobs)
            if top != nil && !on { throw APIError.invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs") }
            topLogprobs = on ? (top ?? 0) : nil
        }
        // ---- streaming
        stream = try f.bool("stream") ?? false
        if let so = f["stream_options"] {
            guard case .object = so else { throw APIError.invalid("'stream_options' must be an object", param: "stream_options") }
            let sf = Fields(so)
            includeUsage = try sf.bool("include_usage") ?? false
        }
        _ = try f.string("user")
    }

    /// OpenAI's logit_bias: {"token id": bias in -100...100}, ids of this model's vocabulary.
    static func logitBias(_ f: Fields, vocab V: Int) throws -> [Int32: Float] {
        guard let v = f["logit_bias"] else { return [:] }
        guard case .object(let entries) = v else {
            throw APIError.invalid("'logit_bias' must be an object mapping token ids to biases", param: "logit_bias")
        }
        guard entries.count <= 1024 else {
            throw APIError.invalid("'logit_bias' has \(entries.count) entries; at most 1024", param: "logit_bias")
        }
        var out: [Int32: Float] = [:]
        for (key, value) in entries {
            guard let id = Int(key), id >= 0, id < V else {
                throw APIError.invalid("'logit_bias' key '\(key)' is not a token id in 0..<\(V)", param: "logit_bias")
            }
            guard let b = value.number, b.isFinite, b >= -100, b <= 100 else {
                throw APIError.invalid("'logit_bias' of token \(id) must be a number in -100...100", param: "logit_bias")
            }
            out[Int32(id)] = Float(b)
        }
        return out
    }

    /// prompt: a string, an array of strings, an array of token ids, or an array of such arrays.
    static func prompts(_ f: Fields, state: ServerState) throws -> [[Int32]] {
        guard let p = f["prompt"] else { throw APIError.invalid("'prompt' is required", param: "prompt") }
        let V = state.tokenizer.vocabSize
        func ids(_ a: [JSONValue]) throws -> [Int32] {
            try a.map {
                guard let i = $0.int, i >= 0, i < V else {
                    throw APIError.invalid("token ids in 'prompt' must be integers in 0..<\(V)", param: "prompt")
                }
                return Int32(i)
            }
        }
        var out: [[Int32]] = []
        if let s = p.string {
            out = [state.encode(s)]
        } else if let a = p.array, !a.isEmpty {
            if a.allSatisfy({ $0.string != nil }) {
                out = a.compactMap(\.string).map { state.encode($0) }
            } else if a.allSatisfy({ $0.number != nil }) {
                out = [try ids(a)]
            } else if a.allSatisfy({ $0.array != nil }) {
                out = try a.compactMap(\.array).map(ids)
            } else {
                throw APIError.invalid("'prompt' must be a string, an array of strings, an array of token ids or an array of such arrays",
                                       param: "prompt")
            }
        } else {
            throw APIError.invalid("'prompt' must be a non-empty string or array", param: "prompt")
        }
        guard out.count <= state.limits.maxPrompts else {
            throw APIError.invalid("'prompt' holds \(out.count) prompts; at most \(state.limits.maxPrompts)", param: "prompt")
        }
        return out
    }

    /// messages: [{role, content, ...}] with content a string, null, or an array of
    /// {"type": "text", "text"} parts; the model's chat template renders them (ChatTemplate),
    /// with llama.cpp's and vLLM's `chat_template_kwargs` as extra template variables.
    static func chatPrompt(_ f: Fields, template: ChatTemplate, tools: ToolsRequest) throws -> (PromptText, ToolCallSetup?) {
        guard let ms = f["messages"]?.array else { throw APIError.invalid("'messages' must be an array", param: "messages") }
        guard !ms.isEmpty else { throw APIError.invalid("'messages' must hold at least one message", param: "messages") }
        for (i, m) in ms.enumerated() {
            let p = "messages[\(i)]"
            guard case .object = m else { throw APIError.invalid("\(p) must be an object", param: p) }
            let mf = Fields(m)
            guard let role = try? mf.string("role", required: true),
                  ["system", "developer", "user", "assistant", "tool"].contains(role) else {
                throw APIError.invalid("\(p).role must be system, developer, user, assistant or tool", param: "\(p).role")
            }
            if mf["content"] == nil || mf["content"]?.isNull == true, role != "assistant" {
                throw APIError.invalid("\(p).content is required", param: "\(p).content")
            }
            for (j, part) in (mf["content"]?.array ?? []).enumerated() where part["type"]?.string != "text" || part["text"]?.string == nil {
                throw APIError.invalid("\(p).content[\(j)] must be {\"type\": \"text\", \"text\": ...}; only text is supported",
                                       param: "\(p).content")
            }
        }
        var extra: [(String, JSONValue)] = []
        if let kw = f["chat_template_kwargs"] {
            guard let o = kw.object else {
                throw APIError.invalid("'chat_template_kwargs' must be an object", param: "chat_template_kwargs")
            }
            extra = o
        }
        do {
            return try template.render(messages: ms, addGenerationPrompt: true, tools: tools.list, toolChoice: tools.choice,
                                       parallelToolCalls: tools.parallel, extra: extra)
        } catch let e as HMSTError {
            // malformed content, or the template's own refusal (raise_exception: roles out of order)
            throw APIError.invalid(e.message, param: "messages")
        }
    }
}

/// A chat request's tools, tool_choice and parallel_tool_calls, checked.
struct ToolsRequest {
    var list: JSONValue? = nil
    var choice = ToolChoice.auto
    var parallel = true
}

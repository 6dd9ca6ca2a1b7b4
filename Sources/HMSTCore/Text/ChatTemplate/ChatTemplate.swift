// ChatTemplate: how chat messages become one prompt, for the server, the C API, Python and the
// CLI. A model's own template is used when it has one, found in this order:
//   1. chat_template.jinja in the checkpoint directory (transformers >= 4.43 writes it),
//   2. chat_template.json: {"chat_template": "<jinja>"} (transformers' processors), or hmst's
//      pattern form {"system": "System: {content}\n", "user": ..., "assistant": ...,
//      "generation_prompt": "Assistant:", "stop": ["\nUser:"]},
//   3. tokenizer_config.json's "chat_template" (a string, or a list of {name, template}: the
//      one named "default"),
//   4. a GGUF file's tokenizer.chat_template,
//   5. hmst's built-in patterns (the pattern form's defaults).
// Jinja templates are rendered as transformers renders them (JinjaTemplate/JinjaRender), with
// messages, add_generation_prompt, bos_token, eos_token, tools and any extra variables. Message
// text is literal in the result (PromptText): special tokens typed by a user stay plain text.

public struct ChatTemplate: @unchecked Sendable {
    /// hmst's pattern form: each message is its role's pattern with {content} replaced.
    public struct Patterns: Sendable, Equatable {
        public var system = "System: {content}\n"
        public var user = "User: {content}\n"
        public var assistant = "Assistant: {content}\n"
        public var generationPrompt = "Assistant:"
        public init() {}
    }

    enum Form {
        case patterns(Patterns)
        case jinja(JinjaTemplate)
    }

    let form: Form
    /// Where the template came from ("tokenizer_config.json", "built-in", ...), for logs and errors.
    public let origin: String
    /// The Jinja source, nil for the pattern form.
    public let source: String?
    /// Stop strings chat requests add to their own (the pattern form's "stop"; none for Jinja,
    /// whose turns end with the model's end-of-text token).
    public let stop: [String]
    public var bosToken: String
    public var eosToken: String
    /// Bounds on a rendering (work, output, macro depth); tests lower them.
    var limits = JinjaRenderLimits()
    /// Content parts other than text ([{"type": "image_url", ...}]) reach a template that takes
    /// typed content; off: hmst reads text only, so a placeholder for an image it cannot see is
    /// refused rather than rendered. The jinja2 goldens turn it on.
    var allowsNonTextParts = false

    /// Variables a template gets from render's own arguments, and the globals every template
    /// has: `extra` may not replace them.
    static let reservedNames: Set<String> = ["messages", "add_generation_prompt", "bos_token", "eos_token", "tools",
                                             "range", "namespace", "dict", "raise_exception", "strftime_now"]

    public static let patternFileName = "chat_template.json"
    public static let jinjaFileName = "chat_template.jinja"

    /// hmst's built-in patterns.
    public init() {
        form = .patterns(Patterns())
        takesTypedContent = false
        origin = "built-in"
        source = nil
        stop = ["\nUser:"]
        bosToken = ""
        eosToken = ""
    }

    public init(patterns: Patterns, stop: [String], origin: String) {
        form = .patterns(patterns)
        takesTypedContent = false
        self.origin = origin
        source = nil
        self.stop = stop
        bosToken = ""
        eosToken = ""
    }

    /// A Jinja chat template; BAD_FORMAT naming the line when it does not parse.
    public init(jinja: String, bosToken: String = "", eosToken: String = "", origin: String = "template") throws {
        do {
            let f = Form.jinja(try JinjaTemplate(source: jinja))
            form = f
            takesTypedContent = ChatTemplate.probeTypedContent(f)
        } catch let e as HMSTError {
            throw HMSTError(e.status, "\(origin): \(e.message)")
        }
        self.origin = origin
        source = jinja
        stop = []
        self.bosToken = bosToken
        self.eosToken = eosToken
    }

    public var isJinja: Bool { source != nil }

    /// Whether the template reads content given as typed parts ([{"type": "text", ...}]) itself
    /// (multimodal templates); others get the text parts joined into one string (with nothing
    /// between them, as hmst's server always has). Found once by rendering a probe message, as
    /// llama.cpp finds its templates' capabilities.
    public let takesTypedContent: Bool

    static func probeTypedContent(_ form: Form) -> Bool {
        guard case let .jinja(t) = form else { return false }
        let probe = "hmst-typed-content-probe"
        let messages: JValue = .list([.dict([(.markup("role"), .markup("user")),
                                            (.markup("content"), .list([.dict([(.markup("type"), .markup("text")),
                                                                               (.markup("text"), .markup(probe))])]))])])
        let r = JinjaRenderer(globals: ["messages": messages, "add_generation_prompt": .bool(true),
                                        "bos_token": .markup(""), "eos_token": .markup("")], now: 0)
        guard let out = try? r.render(t.body).text else { return false }
        return out.contains(probe) && !out.contains("'type'")
    }

    /// The chat template of a loaded model: its checkpoint's files, its GGUF metadata, else the
    /// built-in one. bos_token / eos_token come from tokenizer_config.json or the model's
    /// tokenizer (its config's bos/eos ids).
    public static func of(model: LanguageModel) throws -> ChatTemplate {
        let path = model.report.path
        let dir = FileIO.isDirectory(path) ? path : nil
        let (bos, eos, tokenizerConfig) = try specialTokens(model)
        if let dir {
            let jinjaPath = dir + "/" + jinjaFileName
            if FileIO.exists(jinjaPath) {
                return try ChatTemplate(jinja: try readText(jinjaPath), bosToken: bos, eosToken: eos, origin: jinjaPath)
            }
            let jsonPath = dir + "/" + patternFileName
            if FileIO.exists(jsonPath) {
                let j = try JSONValue.parse(file: jsonPath)
                if let t = j["chat_template"] {
                    guard let s = t.string else { throw HMSTError.badFormat("\(jsonPath): \"chat_template\" must be a string") }
                    return try ChatTemplate(jinja: s, bosToken: bos, eosToken: eos, origin: jsonPath)
                }
                return try patterns(j, path: jsonPath)
            }
            if let tc = tokenizerConfig, let t = tc["chat_template"] {
                let origin = dir + "/tokenizer_config.json"
                return try ChatTemplate(jinja: try pick(t, origin), bosToken: bos, eosToken: eos, origin: origin)
            }
        }
        if let gguf = model.ggufChatTemplate {
            return try ChatTemplate(jinja: gguf, bosToken: bos, eosToken: eos, origin: path + " (tokenizer.chat_template)")
        }
        return ChatTemplate()
    }

    /// A Jinja template file in place of the model's own (llama.cpp's --chat-template-file),
    /// with the model's bos_token and eos_token.
    public static func file(_ path: String, for model: LanguageModel) throws -> ChatTemplate {
        let (bos, eos, _) = try specialTokens(model)
        return try ChatTemplate(jinja: try readText(path), bosToken: bos, eosToken: eos, origin: path)
    }

    /// bos_token and eos_token: tokenizer_config.json's (also returned), else the tokens of the
    /// config's bos/eos ids.
    static func specialTokens(_ model: LanguageModel) throws -> (bos: String, eos: String, tokenizerConfig: JSONValue?) {
        var (bos, eos) = model.specialTokenTexts()
        let path = model.report.path + "/tokenizer_config.json"
        guard FileIO.isDirectory(model.report.path), FileIO.exists(path) else { return (bos, eos, nil) }
        let tc = try JSONValue.parse(file: path)
        func token(_ k: String) -> String? { tc[k]?.string ?? tc[k]?["content"]?.string }
        bos = token("bos_token") ?? bos
        eos = token("eos_token") ?? eos
        return (bos, eos, tc)
    }

    static func readText(_ path: String) throws -> String {
        let bytes = try FileIO.readAll(path)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw HMSTError.badFormat("\(path): not UTF-8 text") }
        return s
    }

    /// tokenizer_config.json's chat_template: a string, or named templates (the "default" one).
    static func pick(_ t: JSONValue, _ origin: String) throws -> String {
        if let s = t.string { return s }
        if let list = t.array {
            for entry in list where entry["name"]?.string == "default" {
                if let s = entry["template"]?.string { return s }
            }
            throw HMSTError.badFormat("\(origin): \"chat_template\" is a list without a template named \"default\"")
        }
        throw HMSTError.badFormat("\(origin): \"chat_template\" must be a string or a list of {name, template}")
    }

    /// hmst's pattern form of chat_template.json.
    static func patterns(_ j: JSONValue, path: String) throws -> ChatTemplate {
        guard case .object = j else { throw HMSTError.badFormat("\(path): must be a JSON object") }
        var p = Patterns()
        func str(_ k: String, _ into: inout String) throws {
            guard let v = j[k] else { return }
            guard let s = v.string, k == "generation_prompt" || s.contains("{content}") else {
                throw HMSTError.badFormat("\(path): \"\(k)\" must be a string containing {content}")
            }
            into = s
        }
        try str("system", &p.system)
        try str("user", &p.user)
        try str("assistant", &p.assistant)
        try str("generation_prompt", &p.generationPrompt)
        var stop = ["\nUser:"]
        if let s = j["stop"] {
            guard let a = s.array, a.allSatisfy({ $0.string != nil }) else { throw HMSTError.badFormat("\(path): \"stop\" must be an array of strings") }
            stop = a.compactMap(\.string)
        }
        return ChatTemplate(patterns: p, stop: stop, origin: path)
    }

    /// The prompt for `messages` (JSON objects with "role" and "content"; content a string, null,
    /// or text parts [{"type": "text", "text": ...}], which are joined). Other members
    /// (tool_calls, name, ...) reach a Jinja template as given. `tools` and `extra` become
    /// template variables. INVALID_ARGUMENT for malformed messages and for the template's own
    /// refusals (raise_exception), naming them.
    public func render(messages: [JSONValue], addGenerationPrompt: Bool = true, tools: JSONValue? = nil,
                       extra: [(String, JSONValue)] = [], now: Double? = nil) throws -> PromptText {
        var normalized: [JSONValue] = []
        for (i, m) in messages.enumerated() {
            guard case var .object(members) = m else { throw HMSTError.invalidArgument("messages[\(i)] must be an object") }
            guard m["role"]?.string != nil else { throw HMSTError.invalidArgument("messages[\(i)].role must be a string") }
            if let parts = m["content"]?.array, !allowsNonTextParts {
                for (j, part) in parts.enumerated() where part["type"]?.string != "text" || part["text"]?.string == nil {
                    throw HMSTError.invalidArgument("messages[\(i)].content[\(j)] must be {\"type\": \"text\", \"text\": ...}; only text is supported")
                }
            }
            if let ci = members.firstIndex(where: { $0.0 == "content" }), let parts = members[ci].1.array, !takesTypedContent {
                var text = ""
                for (j, part) in parts.enumerated() {
                    guard part["type"]?.string == "text", let t = part["text"]?.string else {
                        throw HMSTError.invalidArgument("messages[\(i)].content[\(j)] must be {\"type\": \"text\", \"text\": ...}; only text is supported")
                    }
                    text += t
                }
                members[ci].1 = .string(text)
            } else if let c = m["content"], c.string == nil, !c.isNull, c.array == nil {
                throw HMSTError.invalidArgument("messages[\(i)].content must be a string, null or an array of text parts")
            }
            normalized.append(.object(members))
        }
        switch form {
        case let .patterns(p):
            var out = PromptText()
            for m in normalized {
                let pattern: String
                switch m["role"]?.string ?? "" {
                case "system", "developer": pattern = p.system
                case "assistant": pattern = p.assistant
                default: pattern = p.user
                }
                for (i, part) in JinjaRenderer.split(pattern, by: "{content}").enumerated() {
                    if i > 0 { out.literal(m["content"]?.string ?? "") }
                    out.markup(part)
                }
            }
            if addGenerationPrompt { out.markup(p.generationPrompt) }
            return out
        case let .jinja(t):
            var globals: [String: JValue] = [
                "messages": .list(normalized.map { JValue(json: $0) }),
                "add_generation_prompt": .bool(addGenerationPrompt),
                "bos_token": .markup(bosToken),
                "eos_token": .markup(eosToken),
            ]
            if let tools, !tools.isNull { globals["tools"] = JValue(json: tools) }
            for (k, v) in extra {
                guard !ChatTemplate.reservedNames.contains(k) else {
                    throw HMSTError.invalidArgument("template variable '\(k)' is set by hmst; pass messages and tools as such")
                }
                globals[k] = JValue(json: v)
            }
            let r = JinjaRenderer(globals: globals, limits: limits, now: now ?? Clock.wallSeconds())
            let text: JStr
            do {
                text = try r.render(t.body)
            } catch let e as HMSTError {
                throw HMSTError(e.status, "\(origin): \(e.message)")
            } catch {
                throw HMSTError.invalidArgument("\(origin): break or continue outside a loop")
            }
            var out = PromptText()
            for part in text.parts {
                if part.literal { out.literal(part.text) } else { out.markup(part.text) }
            }
            return out
        }
    }
}

extension LanguageModel {
    /// This model's chat template (ChatTemplate.of(model:)), read once.
    public func chatTemplate() throws -> ChatTemplate {
        if let t = chatTemplateCache.get() { return t }
        let t = try ChatTemplate.of(model: self)
        chatTemplateCache.set(t)
        return t
    }

    /// Special tokens that end an assistant's turn, for chat generation: the tokenizer's
    /// end-of-text token, every eos_token_id of config.json and generation_config.json (Llama 3
    /// lists three), a GGUF's end-of-turn ids (tokenizer.ggml.eot/eom_token_id), and the
    /// common end-of-turn special tokens the vocabulary holds as added special tokens
    /// (<|im_end|>, <|eot_id|>, <end_of_turn>, ...), as llama.cpp's end-of-generation set.
    public func endOfTurnTokens() -> Set<Int32> {
        if let cached = endOfTurnCache.get() { return cached }
        let ids = findEndOfTurnTokens()
        endOfTurnCache.set(ids)
        return ids
    }

    func findEndOfTurnTokens() -> Set<Int32> {
        guard let tokenizer else { return [] }
        var ids = Set<Int32>()
        if let e = tokenizer.eosId { ids.insert(e) }
        func add(_ v: JSONValue?) {
            if let i = v?.int { ids.insert(Int32(truncatingIfNeeded: i)) }
            for x in v?.array ?? [] { if let i = x.int { ids.insert(Int32(truncatingIfNeeded: i)) } }
        }
        add(config["eos_token_id"])
        if FileIO.isDirectory(report.path), let g = try? JSONValue.parse(file: report.path + "/generation_config.json") {
            add(g["eos_token_id"])
        }
        for i in ggufEndOfTurnIds { ids.insert(i) }
        if let t = tokenizer as? Tokenizer {
            let endings: Set<String> = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|END_OF_TURN_TOKEN|>", "<|end_of_text|>", "</s>", "<|end▁of▁sentence|>", "<|return|>"]
            // OpenAI's harmony format (gpt-oss) ends a channel with <|end|> and the answer with
            // <|return|> or <|call|>: there <|end|> does not end the turn
            let harmony = t.addedTokens.contains { $0.special && $0.content == "<|return|>" }
            for a in t.addedTokens where a.special && endings.contains(a.content) && !(harmony && a.content == "<|end|>") { ids.insert(a.id) }
        }
        return ids.filter { $0 >= 0 && Int($0) < tokenizer.vocabSize }
    }
}

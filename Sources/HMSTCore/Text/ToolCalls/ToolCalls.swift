// Tool calling (OpenAI's `tools`): each model family writes a call its own way, so the format is
// read from the chat template, as llama.cpp does:
//   hermes   <tool_call>{"name": ..., "arguments": {...}}</tool_call>, repeated for parallel
//            calls (Hermes 2 Pro/3, Qwen 2.5/3, QwQ, and the many templates that copied them)
//   mistral  [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}, ...] (Mistral Nemo), or
//            [TOOL_CALLS]name[ARGS]{...} per call (Mistral Small 3.2, Devstral, Magistral)
//   llama3   the reply is one JSON object {"name": ..., "parameters": {...}} (Llama 3.1-3.3;
//            optionally after <|python_tag|>)
//   other    a template that renders `tools` in a syntax hmst does not know (Functionary,
//            Command-R, DeepSeek, ...): it gets `tools` as transformers would give them; the
//            reply is read by every parser above (the first that finds calls), and a required
//            call is one JSON object {"name", "arguments"}
//   generic  a template that does not mention tools (hmst's patterns, plain chat templates):
//            the tools and a JSON reply format are described in a system message, and the reply
//            is held to {"tool_calls": [{"name", "arguments"}]} or {"response": "..."} by a grammar
// All but generic get `tools` as the template variable and parse the reply after generation;
// tool_choice "required" or a named function holds the reply to a call by a grammar in every
// format (so even an untrained model writes a call that parses). Under "auto" the reply is free
// until it starts a call (hermes `<tool_call>`, mistral `[TOOL_CALLS]` before a JSON list, llama3
// a reply opening with `<|python_tag|>` or {"name"), and from there a grammar holds it to calls
// of the tools (a lazy grammar, as llama.cpp's: Grammar.triggers, TriggeredConstraint); Mistral's
// name[ARGS]{...} syntax and `other` templates stay free under auto (their markers are special
// tokens a grammar cannot write, or unknown). A schema the grammar cannot enforce (JSONSchemaGrammar
// refuses uniqueItems, not, ...) holds that tool's arguments to a JSON object.

/// One call of a tool, as OpenAI's message.tool_calls[i]: arguments is JSON text.
public struct ToolCall: Sendable, Equatable {
    public var id: String
    public var name: String
    public var arguments: String
    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    public var json: JSONValue {
        .object([("id", .string(id)), ("type", .string("function")),
                 ("function", .object([("name", .string(name)), ("arguments", .string(arguments))]))])
    }
}

/// OpenAI's tool_choice.
public enum ToolChoice: Sendable, Equatable, CustomStringConvertible {
    case none, auto, required
    case function(String)

    public var description: String {
        switch self {
        case .none: return "none"
        case .auto: return "auto"
        case .required: return "required"
        case let .function(name): return "function \(name)"
        }
    }

    /// "none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}
    public init(json: JSONValue?) throws {
        guard let json, !json.isNull else { self = .auto; return }
        if let s = json.string {
            switch s {
            case "none": self = .none
            case "auto": self = .auto
            case "required": self = .required
            default: throw HMSTError.invalidArgument("tool_choice \"\(s)\" must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}")
            }
            return
        }
        guard json["type"]?.string == "function", let name = json["function"]?["name"]?.string else {
            throw HMSTError.invalidArgument("tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}")
        }
        self = .function(name)
    }
}

/// What a reply holds: its text for the user, and the calls it makes.
public struct ToolCallReply: Sendable, Equatable {
    public var content: String
    public var calls: [ToolCall]
}

public struct ToolCallFormat: Sendable, Equatable {
    public enum Syntax: String, Sendable, CaseIterable { case hermes, mistral, llama3, other, generic }
    public let syntax: Syntax
    /// whether the template has a system turn (the generic format's tool list goes there, else
    /// into the first user turn: Gemma's templates refuse a system role)
    public let systemTurn: Bool
    /// mistral: calls written name[ARGS]{...} (Mistral Small 3.2, Devstral), not as a JSON list
    public let argsMarker: Bool

    public init(_ syntax: Syntax, systemTurn: Bool = true, argsMarker: Bool = false) {
        self.syntax = syntax
        self.systemTurn = systemTurn
        self.argsMarker = argsMarker
    }

    /// The format a chat template's model writes calls in.
    public init(template: ChatTemplate) {
        guard let src = template.source else { syntax = .generic; systemTurn = true; argsMarker = false; return }
        systemTurn = src.contains("system")
        argsMarker = src.contains("[ARGS]")
        if src.contains("<tool_call>") { syntax = .hermes }
        else if src.contains("[TOOL_CALLS]") { syntax = .mistral }
        else if src.contains(">>>all") || src.contains("<function=") { syntax = .other }   // Functionary 3.x
        else if src.contains("<|start_header_id|>") && src.contains("tools") { syntax = .llama3 }
        else if src.contains("tools") { syntax = .other }
        else { syntax = .generic }
    }

    /// The most calls a grammar lets one reply list (parallel_tool_calls).
    public static let maxParallelCalls = 16

    /// Whether the template receives `tools` itself (else the tools go into a system message).
    public var templateRendersTools: Bool { syntax != .generic }

    /// Text that starts a call: a streamed reply is held back from there on.
    public var markers: [String] {
        switch syntax {
        case .hermes: return ["<tool_call>"]
        case .mistral: return ["[TOOL_CALLS]"]
        case .other: return ["<tool_call>", "[TOOL_CALLS]"]
        case .llama3, .generic: return []
        }
    }

    // MARK: tools

    /// The tools as given (OpenAI's [{"type": "function", "function": {"name", "description",
    /// "parameters"}}]), checked: (name, description, parameters schema) each.
    public static func functions(_ tools: JSONValue) throws -> [(name: String, description: String, parameters: JSONValue)] {
        guard let list = tools.array else { throw HMSTError.invalidArgument("tools must be an array") }
        guard list.count <= 128 else { throw HMSTError.invalidArgument("tools holds \(list.count) tools; at most 128") }
        var out: [(String, String, JSONValue)] = []
        var seen: Set<String> = []
        for (i, t) in list.enumerated() {
            guard t["type"]?.string == "function", let f = t["function"], f.object != nil else {
                throw HMSTError.invalidArgument("tools[\(i)] must be {\"type\": \"function\", \"function\": {\"name\": ...}}")
            }
            guard let name = f["name"]?.string, !name.isEmpty, name.utf8.count <= 64,
                  name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") }) else {
                throw HMSTError.invalidArgument("tools[\(i)].function.name must be 1-64 characters of a-z, A-Z, 0-9, _ and -")
            }
            guard seen.insert(name).inserted else { throw HMSTError.invalidArgument("tools[\(i)]: a second tool named \(name)") }
            let params = f["parameters"] ?? .object([("type", .string("object"))])
            guard params.object != nil else { throw HMSTError.invalidArgument("tools[\(i)].function.parameters must be a JSON Schema object") }
            // arguments are a JSON object (OpenAI's rule; every call syntax writes an object)
            if let t = params["type"], t.string != "object" {
                throw HMSTError.invalidArgument("tools[\(i)].function.parameters must describe an object (\"type\": \"object\")")
            }
            out.append((name, f["description"]?.string ?? "", params))
        }
        return out
    }

    // MARK: prompt

    /// The messages as the template should see them: an assistant's tool_calls with their
    /// arguments as JSON objects (OpenAI sends them as text; templates write them with tojson)
    /// and its null content as "",
    /// and for the generic format the tools described in the system message, calls written as
    /// the JSON replies they were and tool results as user turns.
    /// Without tools (nil), only the arguments are changed.
    public func messages(_ messages: [JSONValue], tools: JSONValue?) throws -> [JSONValue] {
        let generic = syntax == .generic && tools != nil
        var out: [JSONValue] = []
        var previousWasToolResult = false
        for m in messages {
            guard case var .object(members) = m else { out.append(m); continue }
            if let i = members.firstIndex(where: { $0.0 == "tool_calls" }), let calls = members[i].1.array {
                let fixed = calls.map { call -> JSONValue in
                    guard case var .object(c) = call, let fi = c.firstIndex(where: { $0.0 == "function" }),
                          case var .object(f) = c[fi].1, let ai = f.firstIndex(where: { $0.0 == "arguments" }),
                          let text = f[ai].1.string, let parsed = try? JSONValue.parse(text) else { return call }
                    f[ai].1 = parsed
                    c[fi].1 = .object(f)
                    return .object(c)
                }
                members[i].1 = .array(fixed)
                // OpenAI sends null content beside calls; many templates test or split it as a
                // string (Qwen 3, QwQ, Devstral), so it becomes "" as llama.cpp makes it
                if let ci = members.firstIndex(where: { $0.0 == "content" }) {
                    if members[ci].1.isNull { members[ci].1 = .string("") }
                } else {
                    members.append(("content", .string("")))
                }
                if generic {
                    let written: [JSONValue] = fixed.map { .object([("name", $0["function"]?["name"] ?? .null),
                                                                    ("arguments", $0["function"]?["arguments"] ?? .object([]))]) }
                    members.removeAll { $0.0 == "tool_calls" || $0.0 == "content" }
                    members.append(("content", .string(JSONValue.object([("tool_calls", .array(written))]).serialized)))
                }
            }
            if generic, m["role"]?.string == "tool" {
                let who = m["name"]?.string ?? m["tool_call_id"]?.string ?? "tool"
                let line = "Result of \(who): \(Self.text(of: m["content"]))"
                // the results of one turn's calls become one user turn (roles keep alternating)
                if previousWasToolResult, case var .object(prev) = out[out.count - 1],
                   let ci = prev.firstIndex(where: { $0.0 == "content" }) {
                    prev[ci].1 = .string(Self.text(of: prev[ci].1) + "\n" + line)
                    out[out.count - 1] = .object(prev)
                    continue
                }
                members = [("role", .string("user")), ("content", .string(line))]
                out.append(.object(members))
                previousWasToolResult = true
                continue
            }
            previousWasToolResult = false
            out.append(.object(members))
        }
        guard generic, let tools, let fs = try? Self.functions(tools), !fs.isEmpty else { return out }
        var text = "You can call these tools; their arguments follow the JSON Schema given:\n"
        for f in fs {
            text += "- \(f.name)" + (f.description.isEmpty ? "" : ": \(f.description)") + "\n  arguments: \(f.parameters.serialized)\n"
        }
        text += "Reply with one JSON object: {\"tool_calls\": [{\"name\": \"<tool>\", \"arguments\": {...}}]} to call tools, "
            + "or {\"response\": \"<your answer>\"} to answer."
        let opening = out.firstIndex { ["system", "developer"].contains($0["role"]?.string ?? "") }
            ?? (systemTurn ? nil : out.firstIndex { $0["role"]?.string == "user" })
        if let i = opening, case var .object(members) = out[i] {
            let old = Self.text(of: out[i]["content"])
            let isSystem = ["system", "developer"].contains(out[i]["role"]?.string ?? "")
            members.removeAll { $0.0 == "content" }
            members.append(("content", .string(old.isEmpty ? text : isSystem ? old + "\n\n" + text : text + "\n\n" + old)))
            out[i] = .object(members)
        } else {
            out.insert(.object([("role", .string(systemTurn ? "system" : "user")), ("content", .string(text))]), at: 0)
        }
        return out
    }

    static func text(of content: JSONValue?) -> String {
        if let s = content?.string { return s }
        return (content?.array ?? []).compactMap { $0["text"]?.string }.joined()
    }

    // MARK: grammar

    /// Under tool_choice auto, what starts a call that a grammar can hold from there (nil: the
    /// reply stays free and is parsed after).
    var autoTriggers: GrammarTriggers? {
        switch syntax {
        case .hermes: return GrammarTriggers(words: ["<tool_call>"])
        case .mistral: return argsMarker ? nil : GrammarTriggers(words: ["[TOOL_CALLS]"])
        case .llama3: return GrammarTriggers(openingWords: ["<|python_tag|>"], jsonObjectKey: "name")
        case .other, .generic: return nil
        }
    }

    /// Whitespace a lazy grammar allows around and between calls.
    static let callSpace = "[ \\t\\r\\n]{0,4}"

    /// The grammar a reply is held to, or nil (free text, parsed after): the whole reply, or
    /// under auto the reply from the start of a call on (`triggers` set). Refuses a named tool
    /// that is not among the tools.
    public func grammar(tools: JSONValue, choice: ToolChoice, parallel: Bool) throws -> Grammar? {
        var fs = try Self.functions(tools)
        let lazy = choice == .auto ? autoTriggers : nil
        switch choice {
        case .none: return nil
        case .auto: if syntax != .generic && lazy == nil { return nil }
        case .required: break
        case let .function(name):
            fs = fs.filter { $0.name == name }
            guard !fs.isEmpty else { throw HMSTError.invalidArgument("tool_choice names \(name), which is not among the tools") }
        }
        guard !fs.isEmpty else { throw HMSTError.invalidArgument("tools is empty") }
        let argsKey = syntax == .llama3 ? "parameters" : "arguments"
        // each tool's schema under the document's $defs, its references into itself moved there
        var defs: [(String, JSONValue)] = []
        let call: JSONValue = .object([("anyOf", .array(fs.enumerated().map { i, f in
            // a schema the grammar cannot enforce holds the arguments to an object
            let params = (try? JSONSchemaGrammar.gbnf(schema: f.parameters)) != nil ? f.parameters : .object([("type", .string("object"))])
            defs.append(("tool-\(i)", Self.rebase(params, to: "#/$defs/tool-\(i)")))
            return .object([("type", .string("object")),
                            ("properties", .object([("name", .object([("const", .string(f.name))])),
                                                    (argsKey, .object([("$ref", .string("#/$defs/tool-\(i)"))]))])),
                            ("required", .array([.string("name"), .string(argsKey)]))])
        }))])
        func document(_ root: JSONValue) -> JSONValue {
            guard case var .object(o) = root else { return root }
            o.append(("$defs", .object(defs)))
            return .object(o)
        }
        func calls(min: Int) -> JSONValue {
            var o: [(String, JSONValue)] = [("type", .string("array")), ("items", call), ("minItems", .number(Double(min)))]
            // parallel calls: at most 16 in one reply (a model that keeps listing calls stops)
            o.append(("maxItems", .number(parallel ? Double(ToolCallFormat.maxParallelCalls) : 1)))
            return .object(o)
        }
        let text: String
        let sp = Self.callSpace
        switch syntax {
        case .hermes where lazy != nil:
            // the model's own spacing around each call, up to 16 calls when parallel
            text = try JSONSchemaGrammar.gbnf(schema: document(call)) { v in
                let one = "\"<tool_call>\" \(sp) \(v) \(sp) \"</tool_call>\""
                // spacing after the last call too, so a line break there does not force another call
                return (parallel ? "\(one) (\(sp) \(one)){0,\(ToolCallFormat.maxParallelCalls - 1)}" : one) + " \(sp)"
            }
        case .hermes:
            // required: up to 16 calls when parallel, one a line as Qwen writes them; a named function: one
            text = try JSONSchemaGrammar.gbnf(schema: document(call)) { v in
                let one = "\"<tool_call>\\n\" \(v) \"\\n</tool_call>\""
                return parallel && choice == .required ? "\(one) (\"\\n\" \(one)){0,\(ToolCallFormat.maxParallelCalls - 1)}" : one
            }
        case .mistral: text = try JSONSchemaGrammar.gbnf(schema: document(calls(min: 1)), prefix: "[TOOL_CALLS]", suffix: "")
        case .llama3 where lazy != nil:
            text = try JSONSchemaGrammar.gbnf(schema: document(call)) { v in "(\"<|python_tag|>\" \(sp))? \(v)" }
        case .llama3, .other: text = try JSONSchemaGrammar.gbnf(schema: document(call))
        case .generic:
            let toolCalls: JSONValue = .object([("type", .string("object")), ("properties", .object([("tool_calls", calls(min: 1))])),
                                                ("required", .array([.string("tool_calls")]))])
            let response: JSONValue = .object([("type", .string("object")), ("properties", .object([("response", .object([("type", .string("string"))]))])),
                                               ("required", .array([.string("response")]))])
            text = try JSONSchemaGrammar.gbnf(schema: document(choice == .auto ? .object([("anyOf", .array([toolCalls, response]))]) : toolCalls))
        }
        var g = try Grammar.parse(gbnf: text)
        g.triggers = lazy
        return g
    }

    /// The schema with its references into itself ("#", "#/...") pointing under `base`.
    static func rebase(_ v: JSONValue, to base: String) -> JSONValue {
        switch v {
        case let .object(o):
            return .object(o.map { k, x in
                if k == "$ref", let r = x.string, r == "#" || r.hasPrefix("#/") { return (k, .string(base + r.dropFirst())) }
                return (k, rebase(x, to: base))
            })
        case let .array(a): return .array(a.map { rebase($0, to: base) })
        default: return v
        }
    }

    // MARK: parsing

    /// The reply's content and calls. Text that does not parse as a call stays content (a
    /// model that writes a broken call gets its text back, not an error).
    /// names: the tools' names; a reply that calls another is left as content.
    public func parse(_ reply: String, parallel: Bool = true, names: Set<String>? = nil) -> ToolCallReply {
        var r: ToolCallReply
        switch syntax {
        case .hermes: r = parseHermes(reply)
        case .mistral: r = parseMistral(reply)
        case .llama3: r = parseLlama3(reply)
        case .generic: r = parseGeneric(reply)
        case .other:
            r = ToolCallReply(content: reply, calls: [])
            for parse in [parseHermes, parseMistral, parseLlama3, parseGeneric] {
                let p = parse(reply)
                if !p.calls.isEmpty { r = p; break }
            }
        }
        if let names, r.calls.contains(where: { !names.contains($0.name) }) { return ToolCallReply(content: reply, calls: []) }
        if !parallel && r.calls.count > 1 { r.calls = [r.calls[0]] }
        return r
    }

    /// A call from {"name", one of argsKeys}; without the arguments key only where markers
    /// already say it is a call (requireArguments false).
    private func call(_ v: JSONValue?, argsKeys: [String], requireArguments: Bool = false) -> ToolCall? {
        guard let v, let name = v["name"]?.string, !name.isEmpty else { return nil }
        let given = argsKeys.lazy.compactMap { v[$0] }.first
        if given == nil && requireArguments { return nil }
        let arguments = given ?? .object([])
        let text: String
        if let s = arguments.string, let parsed = try? JSONValue.parse(s), parsed.object != nil { text = parsed.serialized }
        else if arguments.object != nil { text = arguments.serialized }
        else { return nil }
        return ToolCall(id: v["id"]?.string ?? newID(), name: name, arguments: text)
    }

    /// OpenAI's call_ plus 24 characters; Mistral's templates require 9 letters and digits.
    func newID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var g = SystemRandomNumberGenerator()
        let n = syntax == .mistral ? 9 : 24
        let s = String((0..<n).map { _ in chars[Int(g.next() % UInt64(chars.count))] })
        return syntax == .mistral ? s : "call_" + s
    }

    private func parseHermes(_ reply: String) -> ToolCallReply {
        var content = "", calls: [ToolCall] = []
        var rest = Substring(reply)
        // a reasoning block (Qwen 3, QwQ) may mention the tag: calls come after it
        if let thought = rest.range(of: "</think>") {
            content += rest[..<thought.upperBound]
            rest = rest[thought.upperBound...]
        }
        while let open = rest.range(of: "<tool_call>") {
            content += rest[..<open.lowerBound]
            let after = rest[open.upperBound...]
            let close = after.range(of: "</tool_call>")
            let body = close.map { after[..<$0.lowerBound] } ?? after
            guard let v = try? JSONValue.parse(String(body).trimmingWhitespace()),
                  let c = call(v, argsKeys: ["arguments", "parameters"]) else {
                return ToolCallReply(content: reply, calls: [])
            }
            calls.append(c)
            rest = close.map { after[$0.upperBound...] } ?? ""
        }
        content += rest
        return ToolCallReply(content: calls.isEmpty ? reply : content.trimmingWhitespace(), calls: calls)
    }

    private func parseMistral(_ reply: String) -> ToolCallReply {
        guard let first = reply.range(of: "[TOOL_CALLS]") else { return ToolCallReply(content: reply, calls: []) }
        var calls: [ToolCall] = []
        var rest = reply[first.upperBound...]
        let failed = ToolCallReply(content: reply, calls: [])
        while true {
            rest = rest.drop { $0 == " " || $0 == "\n" }
            if rest.hasPrefix("[") {
                // Nemo: a JSON array of calls
                guard let (v, end) = Self.jsonPrefix(rest), let list = v.array else { return failed }
                for item in list {
                    guard let c = call(item, argsKeys: ["arguments", "parameters"]) else { return failed }
                    calls.append(c)
                }
                rest = rest[end...]
            } else if let args = rest.range(of: "[ARGS]") {
                // Small 3.2: name[ARGS]{...}; newer tokenizers: name[CALL_ID]id[ARGS]{...}
                var name = String(rest[..<args.lowerBound]).trimmingWhitespace()
                var fields: [(String, JSONValue)] = []
                if let idMark = name.range(of: "[CALL_ID]") {
                    fields.append(("id", .string(String(name[idMark.upperBound...]).trimmingWhitespace())))
                    name = String(name[..<idMark.lowerBound]).trimmingWhitespace()
                }
                guard let (v, end) = Self.jsonPrefix(rest[args.upperBound...]), v.object != nil,
                      let c = call(.object([("name", .string(name)), ("arguments", v)] + fields), argsKeys: ["arguments"]) else { return failed }
                calls.append(c)
                rest = rest[end...]
            } else {
                return failed
            }
            rest = rest.drop { $0 == " " || $0 == "\n" }
            if rest.hasPrefix("[TOOL_CALLS]") { rest = rest.dropFirst("[TOOL_CALLS]".count); continue }
            break
        }
        guard rest.trimmingWhitespace().isEmpty else { return failed }
        return ToolCallReply(content: String(reply[..<first.lowerBound]).trimmingWhitespace(), calls: calls)
    }

    private func parseLlama3(_ reply: String) -> ToolCallReply {
        var body = Substring(reply.trimmingWhitespace())
        if body.hasPrefix("<|python_tag|>") { body = body.dropFirst("<|python_tag|>".count) }
        var calls: [ToolCall] = []
        while body.hasPrefix("{") {
            guard let (v, end) = Self.jsonPrefix(body), let c = call(v, argsKeys: ["parameters", "arguments"], requireArguments: true) else {
                return ToolCallReply(content: reply, calls: [])
            }
            calls.append(c)
            body = body[end...].drop { $0 == " " || $0 == "\n" || $0 == ";" }
        }
        guard !calls.isEmpty, body.isEmpty else { return ToolCallReply(content: reply, calls: []) }
        return ToolCallReply(content: "", calls: calls)
    }

    private func parseGeneric(_ reply: String) -> ToolCallReply {
        guard let v = try? JSONValue.parse(reply.trimmingWhitespace()) else {
            // cut short (max_tokens) inside {"response": "...": its text so far, as streamed
            let bytes = Array(reply.utf8)
            if case let .at(i) = ToolCallStream.responseStart(bytes) {
                return ToolCallReply(content: String(decoding: ToolCallStream.decodedPrefix(bytes[i...]), as: UTF8.self), calls: [])
            }
            return ToolCallReply(content: reply, calls: [])
        }
        if let list = v["tool_calls"]?.array {
            let calls = list.compactMap { call($0, argsKeys: ["arguments", "parameters"]) }
            if calls.count == list.count, !calls.isEmpty { return ToolCallReply(content: "", calls: calls) }
        }
        if let c = call(v["tool_call"], argsKeys: ["arguments", "parameters"]) { return ToolCallReply(content: "", calls: [c]) }
        if let s = v["response"]?.string { return ToolCallReply(content: s, calls: []) }
        return ToolCallReply(content: reply, calls: [])
    }

    /// The JSON value at the start of text (objects and arrays, found by balancing brackets
    /// outside strings) and where it ends.
    static func jsonPrefix(_ text: Substring) -> (JSONValue, Substring.Index)? {
        var depth = 0, inString = false, escaped = false
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
            } else if c == "\"" {
                inString = true
            } else if c == "{" || c == "[" {
                depth += 1
            } else if c == "}" || c == "]" {
                depth -= 1
                if depth == 0 {
                    let end = text.index(after: i)
                    guard let v = try? JSONValue.parse(String(text[..<end])) else { return nil }
                    return (v, end)
                }
                if depth < 0 { return nil }
            }
            i = text.index(after: i)
        }
        return nil
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and line breaks.
    func trimmingWhitespace() -> String {
        let ws: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        guard let a = firstIndex(where: { !ws($0) }), let b = lastIndex(where: { !ws($0) }) else { return "" }
        return String(self[a...b])
    }
}

/// How a chat's reply with tools is read: the syntax, the grammar that holds it (tool_choice
/// required or named, or the generic format; from the start of a call under auto), whether
/// parallel calls are kept.
public struct ToolCallSetup: Sendable {
    public let format: ToolCallFormat
    public let grammar: Grammar?
    public let parallel: Bool
    /// the tools' names: a reply calling another is content
    public let names: Set<String>

    public func parse(_ reply: String) -> ToolCallReply { format.parse(reply, parallel: parallel, names: names) }

    /// The grammar to hold the reply to when the caller may also ask for a constraint of their
    /// own (a grammar, a JSON Schema, JSON mode): under auto the calls' grammar only waits for a
    /// call to start, so the caller's constraint holds the whole reply instead (nil); other
    /// grammars stay (and the caller's constraint is a conflict to refuse).
    public func grammar(besideCallerConstraint callerConstrains: Bool) -> Grammar? {
        guard let g = grammar, !(g.isLazy && callerConstrains) else { return nil }
        return g
    }
}

extension ChatTemplate {
    /// The prompt of a chat with tools as the template's call syntax expects them (see
    /// ToolCallFormat: the template's own `tools`, or the generic format's system message), and
    /// how to read the reply: nil when no tools are active (none given, or tool_choice none,
    /// which leaves them out). INVALID_ARGUMENT for malformed tools or a choice naming no tool.
    public func render(messages: [JSONValue], addGenerationPrompt: Bool = true, tools: JSONValue?, toolChoice: ToolChoice,
                       parallelToolCalls: Bool = true, extra: [(String, JSONValue)] = [],
                       now: Double? = nil) throws -> (prompt: PromptText, tools: ToolCallSetup?) {
        let format = ToolCallFormat(template: self)
        var setup: ToolCallSetup? = nil
        if let tools, !tools.isNull, tools.array?.isEmpty != true {
            let names = Set(try ToolCallFormat.functions(tools).map(\.name))
            if toolChoice != .none {
                setup = ToolCallSetup(format: format, grammar: try format.grammar(tools: tools, choice: toolChoice, parallel: parallelToolCalls),
                                      parallel: parallelToolCalls, names: names)
            }
        } else if toolChoice == .required || { if case .function = toolChoice { return true }; return false }() {
            throw HMSTError.invalidArgument("tool_choice \(toolChoice) needs tools")
        }
        let active = setup == nil ? nil : tools
        let prompt = try render(messages: try format.messages(messages, tools: active), addGenerationPrompt: addGenerationPrompt,
                                tools: format.templateRendersTools ? active : nil, extra: extra, now: now)
        // a generation prompt that opens a reasoning block (QwQ, DeepSeek R1): the reply thinks
        // first, and a lazy grammar waits for its end
        if var s = setup, var g = s.grammar, g.triggers != nil, Self.opensThought(prompt.bytes) {
            g.triggers?.startsInThought = true
            s = ToolCallSetup(format: s.format, grammar: g, parallel: s.parallel, names: s.names)
            setup = s
        }
        return (prompt, setup)
    }

    /// Whether a prompt ends inside a reasoning block: the generation prompt ends with
    /// `<think>` (and whitespace), as QwQ's and DeepSeek R1's do.
    static func opensThought(_ bytes: [UInt8]) -> Bool {
        var end = bytes.count
        while end > 0 && JSONOpening.isSpace(bytes[end - 1]) { end -= 1 }
        return bytes[..<end].elementsEqual([]) ? false : bytes[..<end].reversed().starts(with: Array("<think>".utf8).reversed())
    }
}

/// A streamed chat reply with tools: text is passed on until it may be starting a call (the
/// format's marker, or for Llama 3 and the generic format a reply that starts as JSON), then
/// held. Where a grammar holds the calls (required, a named function, the generic format, auto
/// once a call starts), the calls go out as they are written (takeCallDeltas: a call's id and
/// name, then its arguments piece by piece, as OpenAI streams them); otherwise finish() parses
/// the whole reply into what content is still unsent and the calls.
public final class ToolCallStream: @unchecked Sendable {
    public let setup: ToolCallSetup
    var format: ToolCallFormat { setup.format }
    private var text: [UInt8] = []
    private var sent = 0       // bytes of text already passed on (or read, in a generic response)
    private var emitted: [UInt8] = []   // what push returned
    private var holding = false
    private var responseStart: Int?     // generic format: where the response string's text starts
    private var scanner: CallScanner?   // calls read as written (a grammar holds them)
    private var scanFrom: Int?          // where the calls start (the hold, or a lazy grammar's trigger)
    private var scanned = 0             // bytes of text the scanner has read
    private var watch: TriggerWatch?    // a lazy grammar's trigger, found as the constraint finds it

    /// grammarHolds: the setup's grammar is the generation's constraint (not replaced by the
    /// caller's own grammar or JSON mode): only then are calls read as they are written.
    public init(setup: ToolCallSetup, grammarHolds: Bool = true) {
        self.setup = setup
        if let g = setup.grammar, grammarHolds {
            let depth = setup.format.syntax == .mistral ? 1 : setup.format.syntax == .generic ? 2 : 0
            scanner = CallScanner(callDepth: depth, newID: setup.format.newID)
            watch = g.triggers.map { TriggerWatch($0) }
        }
    }

    /// Whether calls go out as they are written (else whole, from finish()).
    public var streamsCalls: Bool { scanner != nil }

    /// Calls went out and all of them ended: the reply's finish reason is tool_calls.
    public var callsComplete: Bool { scanner.map { $0.announced > 0 && !$0.callOpen && !$0.rejected } ?? false }

    /// The pieces of calls written since the last take (all that is left with `flush`, at the end).
    public func takeCallDeltas(flush: Bool = false) -> [ToolCallDelta] {
        guard scanner != nil else { return [] }
        return scanner!.takeDeltas(names: setup.names, flush: flush)
    }

    private func hold(at i: Int) {
        holding = true
        if watch == nil && scanFrom == nil { startScan(at: i) }
    }

    /// Calls are read from byte i on (Mistral's list after its marker, whose brackets are no JSON).
    private func startScan(at i: Int) {
        scanFrom = i
        scanned = i + (format.syntax == .mistral && text[i...].starts(with: Array("[TOOL_CALLS]".utf8)) ? "[TOOL_CALLS]".utf8.count : 0)
    }

    private func scan() {
        guard scanFrom != nil, scanner != nil, text.count > scanned else { return }   // startScan: scanned >= scanFrom
        scanner!.feed(text[scanned...])
        scanned = text.count
    }

    /// The part of the text so far that can be sent now (deltas arrive as whole characters; the
    /// markers are ASCII, so every cut is at a character's boundary).
    public func push(_ delta: String) -> String {
        text += delta.utf8
        if watch != nil && scanFrom == nil, let at = watch!.feed(Array(delta.utf8)) {
            watch!.text = []
            startScan(at: at)
        }
        defer { scan() }
        if holding { return "" }
        var end = text.count
        var marker: Int?        // where a call's marker starts
        switch format.syntax {
        case .generic:
            // {"response": "..."}: the string's text as it comes; anything else is held
            if responseStart == nil {
                switch Self.responseStart(text) {
                case .undecided: return ""
                case .no: hold(at: 0); return ""
                case let .at(i): responseStart = i
                }
            }
            let decoded = Self.decodedPrefix(text[responseStart!...])
            guard decoded.count > emitted.count else { return "" }
            let out = decoded[emitted.count...]
            emitted = decoded
            return String(decoding: out, as: UTF8.self)
        case .llama3:
            let t = text.drop(while: JSONOpening.isSpace)
            let tag = Array("<|python_tag|>".utf8)
            if t.isEmpty { return "" }
            if t.first == UInt8(ascii: "{") || t.starts(with: tag) { hold(at: 0); return "" }
            if tag.starts(with: t) { return "" }
        case .hermes, .mistral, .other:
            if format.syntax == .other {
                // a reply that starts as JSON may be a call
                let t = text.drop(while: JSONOpening.isSpace)
                if t.isEmpty { return "" }
                if t.first == UInt8(ascii: "{") { hold(at: 0); return "" }
            }
            for m in format.markers.map({ Array($0.utf8) }) {
                if let at = TextGeneration.find(m, in: text, from: max(0, sent - m.count)) {
                    end = min(end, at)
                    marker = min(marker ?? .max, at)
                } else {
                    // a suffix that may still become the marker waits
                    var k = min(m.count - 1, text.count)
                    while k > 0 && !m.starts(with: text.suffix(k)) { k -= 1 }
                    end = min(end, text.count - k)
                }
            }
        }
        if let marker { hold(at: marker) }
        guard end > sent else { return "" }
        let out = String(decoding: text[sent..<end], as: UTF8.self)
        emitted += text[sent..<end]
        sent = end
        return out
    }

    /// Where `{ "response" : "` ends (JSON whitespace allowed between), if the text starts so.
    static func responseStart(_ t: [UInt8]) -> JSONOpening.Match {
        JSONOpening.match(t[...], parts: ["{", "\"response\"", ":", "\""])
    }

    /// The decoded text of a JSON string's body up to its closing quote or the last complete
    /// character (an escape cut short waits for the next piece).
    static func decodedPrefix(_ b: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var i = b.startIndex
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= b.endIndex else { return nil }
            return UInt32(String(decoding: b[at..<(at + 4)], as: UTF8.self), radix: 16)
        }
        while i < b.endIndex {
            let c = b[i]
            if c == UInt8(ascii: "\"") { break }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            guard i + 1 < b.endIndex else { break }
            let e = b[i + 1]
            let simple: [UInt8: UInt8] = [0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x62: 0x08, 0x66: 0x0C, 0x6E: 0x0A, 0x72: 0x0D, 0x74: 0x09]
            if let v = simple[e] { out.append(v); i += 2; continue }
            guard e == UInt8(ascii: "u"), var v = hex4(i + 2) else { break }
            var used = 6
            if (0xD800...0xDBFF).contains(v) {   // a pair: both halves first
                guard i + 12 <= b.endIndex, b[i + 6] == UInt8(ascii: "\\"), b[i + 7] == UInt8(ascii: "u"),
                      let lo = hex4(i + 8), (0xDC00...0xDFFF).contains(lo) else { break }
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                used = 12
            }
            guard let scalar = Unicode.Scalar(v) else { break }
            out += Array(String(Character(scalar)).utf8)
            i += used
        }
        return out
    }

    /// The content not yet sent, and the calls not streamed (takeCallDeltas has the rest of the
    /// streamed ones: all of a reply's calls go one way).
    public func finish() -> (String, [ToolCall]) {
        // calls that went out as written: the held text before them is content
        if let s = scanner, s.announced > 0, let from = scanFrom {
            let held = from > sent ? String(decoding: text[sent..<from], as: UTF8.self) : ""
            return (emitted.isEmpty ? held.trimmingWhitespace() : String(held.reversed().drop { " \n\t\r".contains($0) }.reversed()), [])
        }
        let reply = setup.parse(String(decoding: text, as: UTF8.self))
        let content = Array(reply.content.utf8)
        // content with calls is trimmed: then what was sent is compared without its leading whitespace
        var sentText = emitted[...]
        if !content.starts(with: sentText) { sentText = sentText.drop(while: JSONOpening.isSpace) }
        let rest = content.starts(with: sentText) ? String(decoding: content[sentText.count...], as: UTF8.self) : ""
        return (rest, reply.calls)
    }
}

// hmst chat-template: the prompt a chat turns into under a model's chat template (the one the
// server and `generate --chat` use) or under a template file, with where the template came
// from; --tokens shows the token ids with the template's special tokens resolved and the
// messages' text kept literal.
import ArgumentParser
import HMSTCore

struct ChatTemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-template",
        abstract: "Render chat messages with a model's chat template (or a Jinja template file).")

    @Option(help: "A checkpoint directory or GGUF file whose chat template to use.")
    var model: String?

    @Option(name: .customLong("template-file"), help: "A Jinja chat template file instead of a model's.")
    var templateFile: String?

    @Option(help: ArgumentHelp("A JSON file (- for standard input) of messages: [{\"role\", \"content\"}, ...] or {\"messages\": [...]}.",
                               valueName: "FILE"))
    var messages: String?

    @Option(help: "A JSON file of tools (OpenAI's [{\"type\": \"function\", \"function\": {...}}]) for the template.")
    var tools: String?

    @Option(name: .customLong("tool-choice"),
            help: "auto (default), none (the tools left out), required, or a function's name: the prompt as hmst_chat_generate and the server give it.")
    var toolChoice: String?

    @Flag(name: .customLong("no-generation-prompt"), help: "Do not end with the assistant's turn opening (add_generation_prompt false).")
    var noGenerationPrompt = false

    @Option(help: "bos_token for the template (default: the model's).")
    var bos: String?

    @Option(help: "eos_token for the template (default: the model's).")
    var eos: String?

    @Option(name: .customLong("var"), help: ArgumentHelp("An extra template variable (repeatable); VALUE is JSON, or text if it is not JSON.",
                                                         valueName: "NAME=VALUE"))
    var vars: [String] = []

    @Option(help: "Seconds since 1970 for strftime_now (default: now), for reproducible prompts.")
    var now: Double?

    @Flag(help: "Print where the template came from and its source, not a rendering.")
    var show = false

    @Flag(help: "Also print the prompt's token ids (needs --model with a tokenizer).")
    var tokens = false

    func validate() throws {
        if (model == nil) == (templateFile == nil) { throw ValidationError("give one of --model, --template-file") }
        if messages == nil && !show { throw ValidationError("give --messages FILE (or --show)") }
        if tokens && model == nil { throw ValidationError("--tokens needs --model") }
        if let now, !(now.isFinite && abs(now) < 1e15) { throw ValidationError("--now must be a finite number of seconds") }
    }

    func run() throws {
        try runReportingErrors {
            var loaded: LanguageModel? = nil
            var template: ChatTemplate
            if let path = model {
                var o = ModelLoadOptions()
                o.placement.strategy = .disabled
                let m = try LanguageModel.load(path: path, options: o)
                loaded = m
                template = try m.chatTemplate()
            } else {
                let f = templateFile ?? ""
                template = try ChatTemplate(jinja: try withSource(f) { try readUTF8(f) }, origin: f)
            }
            if let bos { template.bosToken = bos }
            if let eos { template.eosToken = eos }
            if show {
                print("origin: \(template.origin)")
                print("form: \(template.isJinja ? "jinja" : "patterns")")
                print("bos_token: \(template.bosToken.debugDescription), eos_token: \(template.eosToken.debugDescription)")
                if let m = loaded, let t = m.tokenizer {
                    let ends = m.endOfTurnTokens().sorted().map { id in "\(id) \((try? t.decode([id])).map { String(decoding: $0, as: UTF8.self).debugDescription } ?? "")" }
                    print("end-of-turn tokens: \(ends.joined(separator: ", "))")
                }
                if let s = template.source { print("source:\n\(s)") }
                return
            }
            let list = try readJSONArgument(messages ?? "-", what: "--messages")
            guard let ms = list.array ?? list["messages"]?.array else {
                throw HMSTError.invalidArgument("--messages: expected a JSON array of messages or {\"messages\": [...]}")
            }
            let toolsJSON = try tools.map { try readJSONArgument($0, what: "--tools") }
            let extra = try templateVariables(vars, option: "--var")
            let choice = toolChoiceArgument(toolChoice)
            // the tools as the template's call syntax expects them (hmst's generic format in the
            // system message for a template that does not mention tools)
            let (prompt, setup) = try template.render(messages: ms, addGenerationPrompt: !noGenerationPrompt, tools: toolsJSON,
                                                      toolChoice: choice, extra: extra, now: now)
            if let setup { printError("hmst: tool calls: \(setup.format.syntax.rawValue) syntax" + (setup.grammar.map { $0.isLazy ? ", a call held to the tools' schemas by a grammar once it starts" : ", the reply held to a call by a grammar" } ?? "")) }
            StandardStream.output.write(prompt.string)
            if tokens, let t = loaded?.tokenizer {
                StandardStream.output.write("\n" + t.encode(prompt).map(String.init).joined(separator: " ") + "\n")
            }
        }
    }
}

/// --tool-choice: auto (also when absent), none, required, or a function's name.
func toolChoiceArgument(_ value: String?) -> ToolChoice {
    switch value {
    case nil, "auto"?: return .auto
    case "none"?: return .none
    case "required"?: return .required
    case let name?: return .function(name)
    }
}

/// NAME=VALUE options as template variables: VALUE as JSON, or as text when it is not JSON.
func templateVariables(_ options: [String], option: String) throws -> [(String, JSONValue)] {
    try options.map { v in
        guard let eq = v.firstIndex(of: "="), eq != v.startIndex else {
            throw HMSTError.invalidArgument("\(option) \(v): expected NAME=VALUE")
        }
        let value = String(v[v.index(after: eq)...])
        return (String(v[..<eq]), (try? JSONValue.parse(bytes: Array(value.utf8))) ?? .string(value))
    }
}

/// A JSON file's value (- reads standard input); errors name the file.
func readJSONArgument(_ path: String, what: String) throws -> JSONValue {
    let bytes = path == "-" ? StandardStream.readAllInput() : try withSource(path) { try FileIO.readAll(path) }
    return try withSource("\(what) \(path)") { try JSONValue.parse(bytes: bytes) }
}

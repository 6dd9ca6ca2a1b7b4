// hmst generate: the seed's inference.py. Interactive REPL by default, one --prompt, or a batch
// from --input (one prompt per line) to --output. Reports tokens/s, latency and TTFT.
import ArgumentParser
import Foundation
import HMSTCore

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a checkpoint (interactive, single prompt, or batch).",
        discussion: """
            Interactive commands: set <param> <value> (max_length, temperature, top_p, top_k, min_p, \
            repetition_penalty, repeat_last_n, frequency_penalty, presence_penalty, seed), stats, help, quit/exit.
            """)

    @Argument(help: "Checkpoint directory (config.json, model.safetensors, tokenizer.json) or a .gguf file.")
    var checkpoint: String

    @Option(help: "Generate once for this prompt and exit.")
    var prompt: String?

    @Option(help: "Batch mode: a file with one prompt per line.")
    var input: String?

    @Option(help: "Batch mode: write results here (default: stdout).")
    var output: String?

    @Option(name: .customLong("max-length"), help: "Maximum tokens to generate.")
    var maxLength = 50

    @Option(help: "Sampling temperature; 0 = greedy.")
    var temperature: Float = 0.8

    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold (1 = off).")
    var topP: Float = 0.9

    @Option(name: .customLong("top-k"), help: "Top-k sampling (0 = off).")
    var topK = 50

    @Option(name: .customLong("min-p"), help: "Min-p sampling (0 = off).")
    var minP: Float = 0

    @Option(name: .customLong("repetition-penalty"), help: "Penalty for recent tokens (1 = off).")
    var repetitionPenalty: Float = 1

    @Option(name: .customLong("repeat-last-n"), help: "Recent tokens the penalties look at (the prompt's included).")
    var repeatLastN = 64

    @Option(name: .customLong("frequency-penalty"), help: "Subtracted from a token's logit per time it occurs in the recent tokens (OpenAI's; 0 = off).")
    var frequencyPenalty: Float = 0

    @Option(name: .customLong("presence-penalty"), help: "Subtracted from the logit of every token in the recent tokens (OpenAI's; 0 = off).")
    var presencePenalty: Float = 0

    @Flag(name: .customLong("json"), help: "The text is one JSON object (tokens that cannot extend it are masked; generation stops when it closes).")
    var jsonObject = false

    @Option(help: ArgumentHelp("The text is a sentence of this GBNF grammar (llama.cpp's notation; it starts at rule root).", valueName: "GBNF"))
    var grammar: String?

    @Option(name: .customLong("grammar-file"), help: "--grammar read from a file.")
    var grammarFile: String?

    @Option(name: .customLong("json-schema"), help: ArgumentHelp("The text is one JSON value this JSON Schema accepts (see `hmst grammar`).", valueName: "JSON"))
    var jsonSchema: String?

    @Option(name: .customLong("json-schema-file"), help: "--json-schema read from a file.")
    var jsonSchemaFile: String?

    /// The grammar the constraint options ask for (read and checked before the model loads).
    func requestedGrammar() throws -> Grammar? {
        if let g = grammar { return try Grammar.parse(gbnf: g) }
        if let f = grammarFile { return try withSource(f) { try Grammar.parse(gbnf: try readUTF8(f)) } }
        if let j = jsonSchema { return try JSONSchemaGrammar.grammar(schemaText: j) }
        if let f = jsonSchemaFile { return try withSource(f) { try JSONSchemaGrammar.grammar(schemaText: try readUTF8(f)) } }
        return nil
    }

    @Option(name: .customLong("logit-bias"), help: ArgumentHelp("Add BIAS to token ID's logit (repeatable; -inf bans it).", valueName: "ID=BIAS"))
    var logitBias: [String] = []

    /// --logit-bias values as a map.
    func parsedLogitBias() throws -> [Int32: Float] {
        var out: [Int32: Float] = [:]
        for item in logitBias {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let id = Int32(parts[0]), let b = Float(parts[1]) else {
                throw ValidationError("--logit-bias takes ID=BIAS (a token id and a number, or -inf), not '\(item)'")
            }
            out[id] = b
        }
        return out
    }

    @Option(help: "Random seed (same seed, same text).")
    var seed: UInt64 = 0

    @Option(help: "Stop string (repeatable).")
    var stop: [String] = []

    @Option(name: .customLong("n-ctx"), help: "Context length (0 = the model's).")
    var nCtx = 0

    @Option(help: "NUMA placement: disabled, distribute, isolate, numactl.")
    var numa = "disabled"

    @OptionGroup var threadOptions: ThreadOptions

    @OptionGroup var loadFlags: LoadFlags

    @Option(name: .customLong("kv-cache"), help: "KV cache storage: f32 or bf16 (half the memory).")
    var kvCache = "f32"

    @Flag(help: "Chat: each prompt is a user message, rendered with the model's chat template (see `hmst chat-template`); generation stops at the end of the assistant's turn; interactive mode keeps the conversation.")
    var chat = false

    @Option(help: "With --chat: a system message first.")
    var system: String?

    @Option(name: .customLong("chat-template-file"), help: "With --chat: a Jinja chat template to use instead of the checkpoint's own.")
    var chatTemplateFile: String?

    @Option(name: .customLong("chat-var"), help: ArgumentHelp("With --chat: a template variable (repeatable); VALUE is JSON, or text if it is not JSON.",
                                                             valueName: "NAME=VALUE"))
    var chatVars: [String] = []

    @Option(help: "With --chat: a JSON file of tools (OpenAI's [{\"type\": \"function\", \"function\": {...}}]); the reply's calls are printed as JSON.")
    var tools: String?

    @Option(name: .customLong("tool-choice"), help: "With --tools: auto (default), none, required, or a function's name (a grammar holds the reply to a call).")
    var toolChoice: String?

    @Flag(help: "Interactive engine mode: each line is a question answered through the HMST engine (decisions, citations, confidence).")
    var engine = false

    @Option(help: "Memory directory for --engine (episodic/ and semantic/).")
    var memory: String?

    func validate() throws {
        if input == nil && output != nil { throw ValidationError("--output needs --input") }
        if prompt != nil && input != nil { throw ValidationError("--prompt and --input are mutually exclusive") }
        if NUMAStrategy(name: numa) == nil { throw ValidationError("--numa must be disabled, distribute, isolate or numactl") }
        if engine && (prompt != nil || input != nil) { throw ValidationError("--engine is an interactive mode (use `hmst ask` for one question)") }
        if memory != nil && !engine { throw ValidationError("--memory needs --engine") }
        if (system != nil || chatTemplateFile != nil || !chatVars.isEmpty || tools != nil) && !chat {
            throw ValidationError("--system, --chat-template-file, --chat-var and --tools need --chat")
        }
        if toolChoice != nil && tools == nil { throw ValidationError("--tool-choice needs --tools") }
        if chat && engine { throw ValidationError("--chat and --engine are different modes; give one") }
        let constraints = [grammar, grammarFile, jsonSchema, jsonSchemaFile].compactMap { $0 }.count + (jsonObject ? 1 : 0)
        if constraints > 1 { throw ValidationError("give one of --json, --grammar, --grammar-file, --json-schema, --json-schema-file") }
        if engine && constraints > 0 { throw ValidationError("--engine answers in text; --json and grammars are for plain generation") }
    }

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let constraint = try requestedGrammar()
            var load = try loadFlags.options()
            load.placement.strategy = NUMAStrategy(name: numa) ?? .disabled
            let model = try LanguageModel.load(path: checkpoint, options: load)
            for w in model.report.warnings + model.report.placement.warnings { printError("hmst: warning: \(w)") }
            if model.report.untrained { printError("hmst: note: \(checkpoint) is an untrained (randomly initialised) model") }
            guard let tokenizer = model.tokenizer else {
                throw HMSTError.unsupported("\(checkpoint) has no tokenizer.json; generation needs one")
            }
            if engine { return try engineRepl(model) }
            var sp = SessionParams()
            sp.nCtx = nCtx
            guard let kv = KVCacheType(rawValue: kvCache) else { throw HMSTError.invalidArgument("--kv-cache must be f32 or bf16") }
            sp.kvType = kv
            let session = try Session(decoder: model.decoder, params: sp)
            var settings = Settings(maxLength: maxLength, sampling: SamplingParams(), jsonObject: jsonObject, grammar: constraint)
            settings.sampling.temperature = temperature
            settings.sampling.topP = topP
            settings.sampling.topK = topK
            settings.sampling.minP = minP
            settings.sampling.repetitionPenalty = repetitionPenalty
            settings.sampling.repeatLastN = repeatLastN
            settings.sampling.frequencyPenalty = frequencyPenalty
            settings.sampling.presencePenalty = presencePenalty
            settings.sampling.logitBias = try parsedLogitBias()
            if let id = settings.sampling.logitBias.keys.first(where: { Int($0) >= tokenizer.vocabSize }) {
                throw HMSTError.invalidArgument("--logit-bias names token \(id); the tokenizer's ids are 0..<\(tokenizer.vocabSize)")
            }
            settings.sampling.seed = seed
            try settings.sampling.validate()
            let runner = Runner(session: session, tokenizer: tokenizer, stops: stop, loadMs: model.report.loadMs)
            if chat {
                let template = try chatTemplateFile.map { f in try withSource(f) { try ChatTemplate.file(f, for: model) } } ?? model.chatTemplate()
                runner.chat = (template, model.endOfTurnTokens())
                runner.chatVars = try templateVariables(chatVars, option: "--chat-var")
                if let tools {
                    runner.tools = try readJSONArgument(tools, what: "--tools")
                    runner.toolChoice = toolChoiceArgument(toolChoice)
                }
                runner.stops += template.stop
                if let system { runner.conversation = [.object([("role", .string("system")), ("content", .string(system))])] }
                if prompt == nil && input == nil { printError("hmst: chat template: \(template.isJinja ? "Jinja" : "patterns") from \(template.origin)") }
            }
            if let prompt {
                _ = try runner.run(prompt, settings, stream: true)
                printError(runner.lastStatsLine)
            } else if let input {
                try runBatch(runner, settings, input: input)
            } else {
                try repl(runner, &settings)
            }
        }
    }

    struct Settings {
        var maxLength: Int
        var sampling: SamplingParams
        var jsonObject = false
        var grammar: Grammar? = nil
    }

    final class Runner {
        let session: Session
        let tokenizer: TextTokenizer
        var stops: [String]
        let loadMs: Double
        /// --chat: the template and the tokens that end a turn
        var chat: (template: ChatTemplate, endTokens: Set<Int32>)?
        /// --chat: template variables
        var chatVars: [(String, JSONValue)] = []
        /// --chat --tools: the tools and tool_choice
        var tools: JSONValue?
        var toolChoice = ToolChoice.auto
        /// --chat: the messages so far (a system message, then the turns of interactive mode)
        var conversation: [JSONValue] = []
        /// interactive chat keeps the turns; single prompts and batches start again each time
        var keepConversation = false
        var history: [GenerationStats] = []
        var lastStatsLine = ""

        init(session: Session, tokenizer: TextTokenizer, stops: [String], loadMs: Double) {
            self.session = session
            self.tokenizer = tokenizer
            self.stops = stops
            self.loadMs = loadMs
        }

        func run(_ prompt: String, _ s: Settings, stream: Bool) throws -> String {
            var req = TextGenerationRequest()
            req.maxTokens = s.maxLength
            req.sampling = s.sampling
            req.jsonObject = s.jsonObject
            req.grammar = s.grammar
            req.stopStrings = stops
            if let (_, ends) = chat { req.endTokens = ends }
            if stream {
                if chat == nil { StandardStream.output.write(prompt) }
                req.onPiece = { _, piece in
                    StandardStream.output.write(piece)
                    return true
                }
            }
            var r: TextGenerationResult
            var toolSetup: ToolCallSetup?
            if let (template, _) = chat {
                let turn = JSONValue.object([("role", .string("user")), ("content", .string(prompt))])
                let (rendered, setup) = try template.render(messages: conversation + [turn], addGenerationPrompt: true, tools: tools,
                                                            toolChoice: toolChoice, extra: chatVars)
                if let setup {
                    // the reply is parsed once whole: no raw call syntax on the terminal
                    req.onPiece = { _, _ in true }
                    if let g = setup.grammar(besideCallerConstraint: req.jsonObject || req.grammar != nil) {
                        if req.jsonObject || req.grammar != nil {
                            throw HMSTError.invalidArgument("--tool-choice \(toolChoice) (or this template's generic tool format) holds the reply to a grammar; drop --json / --grammar / --json-schema")
                        }
                        req.grammar = g
                    }
                    toolSetup = setup
                }
                let ids = tokenizer.encode(rendered)
                // a conversation's next turn keeps the cache of what it shares with the last
                // (prompt caching); single prompts and batches start from an empty context
                if !keepConversation { session.reset() }
                r = try session.generate(replacingContextWith: ids, tokenizer: tokenizer, req)
                var reply: JSONValue = .object([("role", .string("assistant")), ("content", .string(r.string))])
                if let toolSetup {
                    let parsed = toolSetup.parse(r.string)
                    r.text = Array(parsed.content.utf8)
                    if stream { StandardStream.output.write(parsed.content) }
                    var members: [(String, JSONValue)] = [("role", .string("assistant")), ("content", .string(parsed.content))]
                    if !parsed.calls.isEmpty {
                        let calls = JSONValue.array(parsed.calls.map(\.json))
                        members.append(("tool_calls", calls))
                        let line = "tool_calls: " + calls.serialized
                        if stream { StandardStream.output.write((parsed.content.isEmpty ? "" : "\n") + line) } else {
                            r.text += Array(((parsed.content.isEmpty ? "" : "\n") + line).utf8)
                        }
                    }
                    reply = .object(members)
                }
                if keepConversation { conversation += [turn, reply] }
            } else {
                session.reset()
                r = try session.generate(prompt: Array(prompt.utf8), tokenizer: tokenizer, req)
            }
            if stream { StandardStream.output.write("\n") }
            history.append(r.stats)
            let st = r.stats
            let cachedNote = st.cachedTokens > 0 ? " (+\(st.cachedTokens) cached)" : ""
            lastStatsLine = String(format: "[%ld prompt tokens%@ in %.1f ms, %ld generated in %.1f ms: %.1f tokens/s, TTFT %.1f ms, latency %.1f ms, stop: %@]",
                                   st.promptTokens, cachedNote, st.promptMs, st.generatedTokens, st.generateMs, st.tokensPerSecond,
                                   st.timeToFirstTokenMs, st.timeToFirstTokenMs + st.generateMs, "\(st.stopReason)")
            return r.string
        }
    }

    func runBatch(_ runner: Runner, _ s: Settings, input: String) throws {
        if let output { try FileIO.refuseOverwriting(inputs: [input], outputs: [output]) }
        let text = try FileIO.readText(input)
        // (line number, prompt): blank lines are not prompts but still count as lines
        let prompts = text.lines(omittingEmpty: false).enumerated().filter { !$0.element.isEmpty }.map { ($0.offset + 1, String($0.element)) }
        if prompts.isEmpty { printError("warning: \(input) holds no prompts (one per line)") }
        // opened first, so an output that cannot be written fails before the prompts are run
        let writer = try output.map { try AtomicFileWriter(path: $0) }
        var out = ""
        for (i, (line, p)) in prompts.enumerated() {
            let completion: String
            do { completion = try runner.run(p, s, stream: false) } catch let e as HMSTError {
                throw HMSTError(e.status, "prompt \(i + 1) (\(input) line \(line)): \(e.message)")
            }
            out += "=== prompt \(i + 1)\n\(p)\n=== completion\n\(completion)\n"
            printError("prompt \(i + 1)/\(prompts.count): \(runner.lastStatsLine)")
        }
        if let writer { try writer.write(Array(out.utf8)); try writer.commit() } else { print(out, terminator: "") }
    }

    /// The interactive engine mode: a question per line; `policy <name>` switches the decisions.
    func engineRepl(_ model: LanguageModel) throws {
        let store = try memory.map { try MemoryStore(directory: $0, readOnly: true) }
        var o = EngineOptions()
        o.nCtx = nCtx
        let e = try Engine(model: model, semantic: store?.semantic, episodic: store?.episodic, options: o)
        var policy = EnginePolicy.automatic
        print("hmst engine mode (controller: \(e.controller != nil ? "trained" : "none, full policy"), critic: \(e.verifier != nil ? "yes" : "none")). "
              + "Type a question, or: policy <auto|controller|full|none|a+b>, help, quit.")
        try readCommands(prompt: "? ") { t, words in
            switch words[0].lowercased() {
            case "quit", "exit": return false
            case "help": print("policy <auto|controller|full|none|\(EngineDecisions.names.joined(separator: "|"))[+...]> | quit; anything else is a question")
            case "policy" where words.count == 2:
                do { policy = try EnginePolicy.parse(words[1]); print("policy = \(words[1])") } catch let err as HMSTError { print("error: \(err.message)") }
            default:
                var q = EngineQuery(t)
                q.policy = policy
                q.maxTokens = maxLength
                do { print(EngineReport.text(try e.ask(q))) } catch let err as HMSTError { print("error: \(err.message)") }
            }
            return true
        }
    }

    /// Reads lines after a prompt until EOF or body returns false; blank lines are skipped;
    /// body gets the trimmed line and its words.
    func readCommands(prompt: String, _ body: (String, [String]) throws -> Bool) throws {
        while true {
            StandardStream.output.write(prompt)
            guard let line = readLine() else { print(""); return }
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            if try !body(t, t.split(separator: " ").map(String.init)) { return }
        }
    }

    func repl(_ runner: Runner, _ s: inout Settings) throws {
        runner.keepConversation = runner.chat != nil
        print("hmst interactive generation. Type a prompt, or: set <param> <value>, stats, help, quit"
              + (runner.chat != nil ? ", reset (a new conversation)." : "."))
        try readCommands(prompt: "> ") { t, words in
            switch words[0].lowercased() {
            case "quit", "exit": return false
            case "reset" where runner.chat != nil && words.count == 1:
                runner.conversation = runner.conversation.filter { $0["role"]?.string == "system" }
                print("(a new conversation)")
            case "help":
                print("max_length=\(s.maxLength) temperature=\(s.sampling.temperature) top_p=\(s.sampling.topP) top_k=\(s.sampling.topK) min_p=\(s.sampling.minP) repetition_penalty=\(s.sampling.repetitionPenalty) "
                      + "repeat_last_n=\(s.sampling.repeatLastN) frequency_penalty=\(s.sampling.frequencyPenalty) presence_penalty=\(s.sampling.presencePenalty) seed=\(s.sampling.seed)")
                print("commands: set <param> <value> | stats | help | quit | exit; anything else is a prompt")
            case "stats":
                let h = runner.history
                if h.isEmpty { print("no generations yet"); return true }
                let tps = h.map(\.tokensPerSecond).reduce(0, +) / Double(h.count)
                let ttft = h.map(\.timeToFirstTokenMs).reduce(0, +) / Double(h.count)
                let lat = h.map { $0.timeToFirstTokenMs + $0.generateMs }.reduce(0, +) / Double(h.count)
                print(String(format: "%ld generations: %.1f tokens/s, TTFT %.1f ms, latency %.1f ms (means); load %.0f ms",
                             h.count, tps, ttft, lat, runner.loadMs))
            case "set" where words.count == 3:
                var n = s
                switch words[1] {
                case "max_length", "max-length": n.maxLength = Int(words[2]) ?? -1
                case "temperature": n.sampling.temperature = Float(words[2]) ?? -1
                case "top_p", "top-p": n.sampling.topP = Float(words[2]) ?? -1
                case "top_k", "top-k": n.sampling.topK = Int(words[2]) ?? -1
                case "min_p", "min-p": n.sampling.minP = Float(words[2]) ?? -1
                case "repetition_penalty", "repetition-penalty": n.sampling.repetitionPenalty = Float(words[2]) ?? -1
                case "repeat_last_n", "repeat-last-n": n.sampling.repeatLastN = Int(words[2]) ?? -1
                case "frequency_penalty", "frequency-penalty": n.sampling.frequencyPenalty = Float(words[2]) ?? .nan
                case "presence_penalty", "presence-penalty": n.sampling.presencePenalty = Float(words[2]) ?? .nan
                case "seed": n.sampling.seed = UInt64(words[2]) ?? 0
                default:
                    print("unknown parameter \(words[1])")
                    return true
                }
                do {
                    try n.sampling.validate()
                    guard n.maxLength >= 0 else { throw HMSTError.invalidArgument("max_length must be >= 0") }
                    s = n
                    print("\(words[1]) = \(words[2])")
                } catch let e as HMSTError {
                    print("invalid: \(e.message)")
                }
            default:
                do {
                    _ = try runner.run(t, s, stream: true)
                    print(runner.lastStatsLine)
                } catch let e as HMSTError {
                    print("error: \(e.message)")
                }
            }
            return true
        }
    }
}

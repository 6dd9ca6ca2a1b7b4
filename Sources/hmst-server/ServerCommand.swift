// hmst-server: the OpenAI-compatible HTTP server over HMSTCore (`hmst serve` execs it).
// Loads one checkpoint (weights mapped once, shared read-only by every slot), opens the memory
// directory if given, and serves the routes below on Hummingbird 2 until SIGTERM/SIGINT, which
// stop accepting, let in-flight requests finish, then save the memory a last time.
import ArgumentParser
import Foundation
import HMSTCore
import Hummingbird
import ServiceLifecycle
import Logging

@main
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hmst-server",
        abstract: "Serve a checkpoint over an OpenAI-compatible HTTP API (plus hmst memory routes).",
        discussion: """
            Routes: GET /health, GET /metrics, GET /openapi.json, GET /v1/models, POST /v1/completions, \
            POST /v1/chat/completions, POST /v1/embeddings, POST /v1/hmst/ask (the engine; its memory scoped by owner), \
            and /v1/hmst/memory/... (with --memory). See README.md, "hmst serve".
            """)

    @Argument(help: "Checkpoint directory (config.json, model.safetensors, tokenizer.json) or a .gguf file.")
    var checkpoint: String?

    @Option(help: "Memory directory (episodic/ and semantic/ tiers; created if missing). Without it the memory routes answer 404.")
    var memory: String?

    @Option(help: "Address to bind; loopback by default. Anything else exposes the server: set --api-key.")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port; the chosen one is printed).")
    var port = 8080

    @Option(help: "Slots: requests generating at once, each with its own context over the shared weights.")
    var slots = 4

    @Option(help: "Requests that may wait for a slot; beyond that the server answers 503 with Retry-After.")
    var queue = 64

    @Option(name: .customLong("api-key"), help: "Accepted API key (repeatable); clients send 'Authorization: Bearer KEY'.")
    var apiKeys: [String] = []

    @Option(name: .customLong("api-key-file"), help: "File with one accepted API key per line.")
    var apiKeyFile: String?

    @Option(name: .customLong("chat-template-file"), help: "A Jinja chat template to use instead of the checkpoint's own.")
    var chatTemplateFile: String?

    @Option(name: .customLong("n-ctx"), help: "Context length of each slot (0: the model's).")
    var nCtx = 0

    @Option(help: "Threads per slot's computation (0: CPUs / slots, at least 1).")
    var threads = 0

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body (413 beyond).")
    var maxBodyBytes = 1 << 20

    @Option(name: .customLong("max-tokens-cap"), help: "Largest max_tokens a request may ask for (400 beyond).")
    var maxTokensCap = 4096

    @Option(name: .customLong("stream-stall-timeout"), help: "Seconds a streaming client may leave 256 events unread before its generation is cancelled (its slot freed).")
    var streamStallTimeout: Double = 30

    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may send nothing while it is between requests or part-way through sending one (head or body) before it is closed; a request being answered is never cut.")
    var idleTimeout: Double = 60

    @Option(name: .customLong("default-chat-max-tokens"), help: "max_tokens of a chat request that sets none.")
    var defaultChatMaxTokens = 256

    @Option(name: .customLong("episodic-max-entries"), help: "Capacity of a new episodic tier (the least important entry is evicted beyond it).")
    var episodicMaxEntries = 100_000

    @Option(name: .customLong("model-name"), help: "The model id clients see (default: the checkpoint's directory name).")
    var modelName: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Flag(name: .customLong("print-openapi"), help: "Print the OpenAPI document and exit.")
    var printOpenAPI = false

    func validate() throws {
        if printOpenAPI { return }
        guard checkpoint != nil else { throw ValidationError("a checkpoint is required: hmst-server CKPT [options]") }
        guard slots >= 1, slots <= 256 else { throw ValidationError("--slots must be in 1...256") }
        guard queue >= 0 else { throw ValidationError("--queue must be >= 0") }
        guard port >= 0, port <= 65535 else { throw ValidationError("--port must be in 0...65535") }
        guard threads >= 0 else { throw ValidationError("--threads must be >= 0") }
        guard streamStallTimeout.isFinite, streamStallTimeout > 0, streamStallTimeout <= 86_400 else {
            throw ValidationError("--stream-stall-timeout must be in (0, 86400] seconds")
        }
        guard idleTimeout.isFinite, idleTimeout >= 0.1, idleTimeout <= 86_400 else {
            throw ValidationError("--idle-timeout must be in [0.1, 86400] seconds")
        }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be >= 1024") }
        guard maxTokensCap >= 1, defaultChatMaxTokens >= 1 else { throw ValidationError("--max-tokens-cap and --default-chat-max-tokens must be >= 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical") }
    }

    func run() async throws {
        if printOpenAPI { print(OpenAPIDocument.json(vocabSize: Int(Int32.max), maxTokensCap: maxTokensCap)); return }
        guard let checkpoint else { return }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "hmst-server")
        logger.logLevel = level
        do {
            try await serve(checkpoint: checkpoint, logger: logger)
        } catch let e as HMSTError {
            logger.critical("\(e.message)")
            throw ExitCode(1)
        }
    }

    private func serve(checkpoint: String, logger: Logger) async throws {
        // ---- model: mapped once; every slot's Session reads the same weights
        let perSlot = threads > 0 ? threads : max(1, Threads.cpuCount / slots)
        try Threads.set(perSlot)
        let model = try LanguageModel.load(path: checkpoint, options: ModelLoadOptions())
        for w in model.report.warnings + model.report.placement.warnings { logger.warning("\(w)") }
        guard let tokenizer = model.tokenizer else {
            throw HMSTError.unsupported("\(checkpoint) has no tokenizer.json; the server needs one")
        }
        let template = try chatTemplateFile.map { try ChatTemplate.file($0, for: model) } ?? model.chatTemplate()
        logger.info("chat template: \(template.isJinja ? "Jinja" : "patterns") from \(template.origin)")
        var sp = SessionParams()
        sp.nCtx = nCtx
        sp.nThreads = perSlot
        var slotList: [Slot] = []
        for i in 0..<slots { slotList.append(Slot(index: i, session: try Session(decoder: model.decoder, params: sp))) }
        let ctx = slotList[0].session.nCtx
        let nSlots = slotList.count

        // ---- memory: both tiers made up front (so no route creates one concurrently), saved once
        var store: MemoryStore?
        if let memory {
            let s = try MemoryStore(directory: memory)
            var ec = EpisodicMemoryConfig()
            ec.maxEntries = episodicMaxEntries
            _ = try s.episodic(creatingFor: model, config: ec)
            _ = try s.semantic(creatingFor: model)
            try s.save()
            store = s
            logger.info("memory \(memory): \(s.episodic?.count ?? 0) episodic, \(s.semantic?.count ?? 0) semantic entries")
        }

        var keys = apiKeys
        if let apiKeyFile {
            keys += try FileIO.readText(apiKeyFile).split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if keys.isEmpty && host != "127.0.0.1" && host != "localhost" && host != "::1" {
            logger.warning("listening on \(host) without an API key: anyone who can reach it can use it")
        }

        var limits = ServerLimits()
        limits.maxBodyBytes = maxBodyBytes
        limits.maxTokensCap = maxTokensCap
        limits.defaultChatMaxTokens = defaultChatMaxTokens
        limits.streamStallSeconds = streamStallTimeout
        ServerLimits.shared = limits
        let name = modelName ?? URL(fileURLWithPath: checkpoint).standardizedFileURL.lastPathComponent

        // ---- engine: one per slot, on the slot's Session, over the memory tiers and the
        // checkpoint's controller and critic (when present). A checkpoint the engine cannot
        // serve (no BPE tokenizer.json, e.g. a .gguf) leaves the rest of the server up.
        var engines: [Engine] = []
        var engineUnavailable = ""
        do {
            for slot in slotList {
                engines.append(try Engine(model: model, semantic: store?.semantic, episodic: store?.episodic, session: slot.session))
            }
            let e = engines[0]
            logger.info("engine: policy \(e.controller != nil ? "the checkpoint's controller" : "full (no controller in the checkpoint)"), confidence \(e.verifier != nil ? "from the critic" : "the answer's token probability (no critic)")\(store == nil ? ", no memory (--memory)" : "")")
        } catch let e as HMSTError {
            engines = []
            engineUnavailable = e.message
            logger.warning("POST /v1/hmst/ask is unavailable: \(e.message)")
        }
        let state = ServerState(model: model, tokenizer: tokenizer, modelName: name, template: template,
                                pool: SlotPool(slots: slotList, queueLimit: queue), nCtx: ctx, limits: limits, memory: store,
                                engines: engines, engineUnavailable: engineUnavailable)

        let router = ServerCommand.router(state: state, keys: keys.map { Array($0.utf8) }, logger: logger)
        // a client that opens connections and sends half a request, or nothing, is cut off after
        // --idle-timeout (Hummingbird's connection state: a request whose answer is being
        // computed or written is never idle)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(idleTimeout * 1e9)))),
            configuration: .init(address: .hostname(host, port: port), serverName: "hmst"),
            onServerRunning: { channel in
                let p = channel.localAddress?.port ?? 0
                // the line tests and scripts wait for
                print("hmst-server: listening on http://\(host):\(p) (model \(name), \(ctx)-token context, \(nSlots) slots)")
                fflush(stdout)
            },
            logger: logger)
        // SIGTERM/SIGINT: in-flight requests drain for up to 30 s, then are cancelled (a client
        // that stopped reading a stream would otherwise hold the shutdown for as long as it
        // keeps its socket open); acknowledged memory writes are committed before their reply
        var group = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(30)
        do { try await ServiceGroup(configuration: group).run() } catch {
            logger.warning("shutdown: \(error)")
        }
        // in-flight requests have drained or been cancelled; make the last save
        if let p = state.persister { try p.flush() }
        logger.info("stopped; memory saved")
    }

    static func jsonResponse(_ v: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: v.serialized + "\n")))
    }

    static func router(state: ServerState, keys: [[UInt8]], logger: Logger) -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: RequestLogMiddleware(logger: logger, metrics: state.metrics))
        router.add(middleware: ErrorShapeMiddleware<ServerContext>())
        router.add(middleware: APIKeyMiddleware<ServerContext>(keys: keys))

        let json = ServerCommand.jsonResponse
        let modelJSON: JSONValue = .object([("id", .string(state.modelName)), ("object", .string("model")),
                                            ("created", .number(Double(state.created))), ("owned_by", .string("hmst"))])

        // every route through `on`, so a known path asked with another method is a 405 naming
        // the ones it takes (Allow), not a 404 saying the path does not exist; a GET route also
        // answers HEAD (its headers, no body) and every path answers OPTIONS with its Allow
        var methods: [(path: String, allowed: [HTTPRequest.Method])] = []
        func on(_ method: HTTPRequest.Method, _ path: String,
                _ handler: @Sendable @escaping (Request, ServerContext) async throws -> Response) {
            router.on(RouterPath(path), method: method, use: handler)
            var added = [method]
            if method == .get {
                router.on(RouterPath(path), method: .head) { r, c in try await handler(r, c).createHeadResponse() }
                added.append(.head)
            }
            if let i = methods.firstIndex(where: { $0.path == path }) { methods[i].allowed += added } else { methods.append((path, added)) }
        }
        on(.get, "/health") { _, _ in
            json(.object([("status", .string("ok")), ("slots", .number(Double(state.pool.slots.count))),
                          ("slots_busy", .number(Double(state.pool.busy))), ("queue_depth", .number(Double(state.pool.queueDepth)))]))
        }
        on(.get, "/metrics") { _, _ in
            let text = state.metrics.render(slots: state.pool.slots.count, busySlots: state.pool.busy,
                                            queueDepth: state.pool.queueDepth, queueLimit: state.pool.queueLimit)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        let openAPI = OpenAPIDocument.json(vocabSize: state.tokenizer.vocabSize, maxTokensCap: state.limits.maxTokensCap)
        on(.get, "/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: openAPI)))
        }
        on(.get, "/v1/models") { _, _ in json(.object([("object", .string("list")), ("data", .array([modelJSON]))])) }
        on(.get, "/v1/models/{model}") { _, context in
            let id = context.parameters.get("model") ?? ""
            guard id == state.modelName else { throw APIError.notFound("no model '\(id)'; this server serves '\(state.modelName)'", param: "model", code: "model_not_found") }
            return json(modelJSON)
        }
        let completions = CompletionRoutes(state: state)
        on(.post, "/v1/completions") { r, c in try await completions.handle(r, c, kind: .text) }
        on(.post, "/v1/chat/completions") { r, c in try await completions.handle(r, c, kind: .chat) }
        let embeddings = EmbeddingRoutes(state: state)
        on(.post, "/v1/embeddings") { r, c in try await embeddings.handle(r, c) }
        let tokenize = TokenizeRoutes(state: state)
        on(.post, "/tokenize") { r, c in try await tokenize.tokenize(r, c) }
        on(.post, "/detokenize") { r, c in try await tokenize.detokenize(r, c) }
        let ask = AskRoutes(state: state)
        on(.post, "/v1/hmst/ask") { r, c in try await ask.handle(r, c) }
        let mem = MemoryRoutes(state: state)
        on(.post, "/v1/hmst/memory/{tier}/entries") { r, c in try await mem.add(r, c) }
        on(.get, "/v1/hmst/memory/{tier}/entries") { r, c in try await mem.list(r, c) }
        on(.delete, "/v1/hmst/memory/{tier}/entries") { r, c in try await mem.deleteOwner(r, c) }
        on(.delete, "/v1/hmst/memory/{tier}/entries/{id}") { r, c in try await mem.deleteOne(r, c) }
        on(.post, "/v1/hmst/memory/{tier}/search") { r, c in try await mem.search(r, c) }
        on(.get, "/v1/hmst/memory/stats") { r, c in try await mem.stats(r, c) }
        for (path, allowed) in methods {
            let allow = (allowed + [.options]).map(\.rawValue).joined(separator: ", ")
            router.on(RouterPath(path), method: .options) { _, _ in Response(status: .noContent, headers: [.allow: allow]) }
            for m in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete] where !allowed.contains(m) {
                router.on(RouterPath(path), method: m) { request, _ -> Response in
                    var e = APIError(status: .methodNotAllowed, message: "method \(request.method) is not allowed on \(request.uri.path); use \(allow)",
                                     type: "invalid_request_error", param: nil, code: "method_not_allowed")
                    e.headers[.allow] = allow
                    throw e
                }
            }
        }
        return router
    }
}

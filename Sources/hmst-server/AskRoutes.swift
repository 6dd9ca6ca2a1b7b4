// POST /v1/hmst/ask: the HMST engine (HMSTCore/Engine) behind the server. A request names its
// owner; the engine then retrieves, scores, counts and cites only that owner's memory entries
// (EngineQuery.owner), exactly as the memory routes scope every search. It runs on a slot: each
// slot has its own Engine over the slot's Session, so asks and completions share the slots,
// the queue and its 503. Non-streamed: one JSON object (AskRoutes.resultJSON). Streamed
// (stream: true): server-sent events, `hmst.answer.attempt` when an attempt starts (a second
// one when verification retries with memory), `hmst.answer.delta` per piece of answer text,
// then the result object itself (`hmst.answer`), then `data: [DONE]`.
import Foundation
import HMSTCore
import Hummingbird

/// One checked ask request.
struct AskRequest: Sendable {
    var query: EngineQuery
    var owner: String
    var stream: Bool

    /// Body: {query (or prompt), owner, policy?, max_tokens?, temperature?, seed?, stream?}.
    init(fields f: Fields, state: ServerState, hasController: Bool) throws {
        let q = try f.string("query"), p = try f.string("prompt")
        if q != nil && p != nil { throw APIError.invalid("give 'query' or its alias 'prompt', not both", param: "prompt") }
        let param = q != nil ? "query" : "prompt"
        guard let text = q ?? p else { throw APIError.invalid("'query' is required (the question to answer)", param: "query") }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw APIError.invalid("'\(param)' must not be empty", param: param)
        }
        guard text.utf8.count <= state.limits.maxMemoryTextBytes else {
            throw APIError.invalid("'\(param)' has \(text.utf8.count) bytes; at most \(state.limits.maxMemoryTextBytes)", param: param)
        }
        owner = try f.owner()
        var eq = EngineQuery(text)
        eq.owner = owner
        if let name = try f.string("policy") {
            do { eq.policy = try EnginePolicy.parse(name) } catch let e as HMSTError {
                throw APIError.invalid(e.message, param: "policy", code: "unknown_policy")
            }
            if eq.policy == .controller && !hasController {
                throw APIError.invalid("policy \"controller\": the checkpoint has no trained controller (hmst rl-train); use auto, full, none or decisions joined by +",
                                       param: "policy", code: "no_controller")
            }
        }
        eq.maxTokens = try f.int("max_tokens", in: 1...min(4096, state.limits.maxTokensCap)) ?? eq.maxTokens
        eq.temperature = Float(try f.number("temperature", in: 0...2) ?? 0)
        eq.seed = try f.seed() ?? 0
        query = eq
        stream = try f.bool("stream") ?? false
        // too long for the context: a 400 now, before a streamed answer's 200 goes out
        if let engine = state.engines.first {
            do { try engine.promptWithoutMemories(text) } catch let e as HMSTError { throw APIError.invalid(e.message, param: param) }
        }
    }
}

struct AskRoutes {
    let state: ServerState

    func handle(_ request: Request, _ context: ServerContext) async throws -> Response {
        var request = request
        guard !state.engines.isEmpty else {
            throw APIError(status: .notImplemented, message: "the engine is not available on this server: \(state.engineUnavailable)",
                           type: "not_implemented_error", param: nil, code: "engine_unavailable")
        }
        let body = try await request.collectBody(upTo: state.limits.maxBodyBytes)
        let req = try AskRequest(fields: try Fields(body: body), state: state, hasController: state.engines[0].controller != nil)
        let id = "ask-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let cancel = CancelFlag(channel: context.channel)
        let slot = try await state.pool.acquire()   // a 503 is counted by the pool
        if req.stream { return stream(req, id: id, slot: slot, cancel: cancel, context: context) }
        let state = self.state
        let query = req.query
        // nothing is written until the end, so the inbound side is watched for the client leaving
        let r = try await request.body.consumeWithInboundCloseHandler({ _ in
            try await SlotPool.onQueue(slot) { s -> EngineResult in
                defer { state.pool.release(s) }
                return try state.engines[s.index].ask(query, onToken: { _, _, _ in !cancel.isCancelled })
            }
        }, onInboundClosed: { cancel.cancel() })
        context.stats.add(prompt: r.cost.promptTokens, completion: r.cost.generatedTokens)
        let obj = AskRoutes.resultJSON(r, id: id, model: state.modelName)
        return Response(status: .ok, headers: [.contentType: "application/json", .connection: "close"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: obj.serialized + "\n")))
    }

    // ---- the result ---------------------------------------------------------------------------

    static func decisionsJSON(_ d: EngineDecisions, _ p: DecisionProbabilities) -> JSONValue {
        .object(zip(EngineDecisions.names, zip(d.bits, p.yes)).map { name, v in
            (name, .object([("chosen", .bool(v.0)), ("probability", .number(Double(v.1)))]))
        })
    }

    static func resultJSON(_ r: EngineResult, id: String, model: String) -> JSONValue {
        let c = r.cost
        let cost: JSONValue = .object([
            ("prompt_tokens", .number(Double(c.promptTokens))), ("generated_tokens", .number(Double(c.generatedTokens))),
            ("matmul_flops", .number(c.matmulFLOPs)), ("vectors_scanned", .number(Double(c.vectorsScanned))),
            ("retrieval_flops", .number(c.retrievalFLOPs)), ("ssm_tokens_encoded", .number(Double(c.ssmTokensEncoded))),
            ("retrievals", .number(Double(c.retrievals))), ("critic_calls", .number(Double(c.criticCalls))),
            ("critic_tokens", .number(Double(c.criticTokens))), ("attempts", .number(Double(c.attempts))),
            ("latency_units", .number(c.latencyUnits)),
        ])
        let citations: [JSONValue] = r.citations.map {
            .object([("tier", .string($0.tier.rawValue)), ("id", .number(Double($0.id))), ("score", .number(Double($0.score))),
                     ("text", .string($0.text))])
        }
        return .object([
            ("id", .string(id)), ("object", .string("hmst.answer")), ("created", .number(Double(Int(Date().timeIntervalSince1970)))),
            ("model", .string(model)), ("owner", .string(r.owner ?? "")), ("query", .string(r.query)),
            ("answer", .string(r.answer)), ("model_answer", .string(r.modelAnswer)),
            ("finish_reason", .string(r.finish.rawValue)), ("max_tokens", .number(Double(r.maxTokens))),
            ("abstained", .bool(r.abstained)), ("retried", .bool(r.retried)),
            ("confidence", .number(Double(r.confidence))), ("confidence_calibrated", .bool(r.confidenceCalibrated)),
            ("policy", .string(r.policy)), ("decisions", decisionsJSON(r.decisions, r.probabilities)),
            ("citations", .array(citations)),
            // every token the model ran: the query's encoding pass and each attempt's prompt
            ("usage", .object([("prompt_tokens", .number(Double(c.promptTokens))), ("completion_tokens", .number(Double(c.generatedTokens))),
                               ("total_tokens", .number(Double(c.promptTokens + c.generatedTokens)))])),
            ("cost", cost),
            ("stage_ms", .object(zip(StageTimes.names, r.times.values).map { ($0.0, .number($0.1)) })),
        ])
    }

    // ---- streaming ----------------------------------------------------------------------------

    private func stream(_ req: AskRequest, id: String, slot: Slot, cancel: CancelFlag, context: ServerContext) -> Response {
        let state = self.state
        let es = EventStream(cancel: cancel, stallSeconds: state.limits.streamStallSeconds)
        @Sendable func event(_ o: [(String, JSONValue)]) -> String {
            "data: " + JSONValue.object([("id", .string(id)), ("model", .string(state.modelName))] + o).serialized + "\n\n"
        }
        let query = req.query
        let stats = context.stats
        slot.queue.async {
            defer { state.pool.release(slot) }
            // answer text is sent once it cannot be the start of the engine's end marker </a>
            // (the engine cuts it) or an unfinished UTF-8 character
            let marker = [Array(MemoryPrompt.answerEnd.utf8)]
            var text: [UInt8] = [], sent = 0, attempt = 0
            func flush(final: Bool) {
                let hold = Generator.stopPrefixLength(text, marker, marker[0].count)
                let end = final ? text.count - hold : Generator.safeEnd(text, from: sent, holdBack: hold)
                guard end > sent else { return }
                es.send(event([("object", .string("hmst.answer.delta")), ("attempt", .number(Double(attempt))),
                                  ("text", .string(String(decoding: text[sent..<end], as: UTF8.self)))]))
                sent = end
            }
            do {
                let r = try state.engines[slot.index].ask(query, onToken: { _, piece, _ in
                    text += piece
                    flush(final: false)
                    return !cancel.isCancelled
                }, onAttempt: { n, d in
                    if n > 0 { flush(final: true) }
                    attempt = n
                    text = []
                    sent = 0
                    es.send(event([("object", .string("hmst.answer.attempt")), ("attempt", .number(Double(n))),
                                      ("decisions", .string(d.summary))]))
                })
                flush(final: true)
                stats.add(prompt: r.cost.promptTokens, completion: r.cost.generatedTokens)
                es.send("data: " + AskRoutes.resultJSON(r, id: id, model: state.modelName).serialized + "\n\n")
            } catch {
                // headers are sent: report in the stream, in the error shape
                let e = (error as? HMSTError).map(APIError.from) ??
                    APIError(status: .internalServerError, message: "\(error)", type: "server_error", param: nil, code: "internal_error")
                es.send("data: " + e.json.serialized + "\n\n")
            }
            es.send("data: [DONE]\n\n")
            es.finish()
        }
        let body = ResponseBody { writer in
            do {
                for await e in es.events {
                    try await writer.write(ByteBuffer(string: e))
                    es.written()
                }
                try await writer.finish(nil)
            } catch {
                cancel.cancel()
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache"], body: body)
    }
}

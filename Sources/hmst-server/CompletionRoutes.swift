// POST /v1/completions and POST /v1/chat/completions: a request's generations run one after
// another on one slot (prompt-major, then n). Non-streamed: one JSON object with choices and
// usage. Streamed (stream: true): server-sent events, `data: {chunk}` per text delta, the last
// chunk of each choice carries its finish_reason (the final one also usage), then
// `data: [DONE]`. A generation stops at the next token when its client disconnects.
import Foundation
import HMSTCore
import Hummingbird

struct CompletionRoutes {
    let state: ServerState

    func handle(_ request: Request, _ context: ServerContext, kind: CompletionKind) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: state.limits.maxBodyBytes)
        let req = try CompletionRequest(kind: kind, fields: try Fields(body: body), state: state)
        let id = (kind == .chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let cancel = CancelFlag(channel: context.channel)
        // the free slot whose context shares the longest prefix with the first prompt (its
        // cache is kept); a 503 is counted by the pool
        let slot = try await state.pool.acquire(prompt: req.cachePrompt ? req.prompts.first : nil)
        if req.stream { return stream(req, id: id, slot: slot, cancel: cancel, context: context) }
        let jobs = req.jobs
        let state = self.state
        // a plain (not streamed) response writes nothing until the end, so the connection's
        // inbound side is watched instead: EOF there means the client has gone
        let outcomes = try await request.body.consumeWithInboundCloseHandler({ _ in
          try await SlotPool.onQueue(slot) { s -> [GenerationOutcome] in
            defer { state.pool.release(s) }
            var out: [GenerationOutcome] = []
            for job in jobs {
                let o = try Generator.run(session: s.session, tokenizer: state.tokenizer, job: job, cancel: cancel)
                state.metrics.generation(promptTokens: o.stats.promptTokens, cachedTokens: o.stats.cachedTokens, completionTokens: o.completionTokens,
                                         ttftMs: o.stats.timeToFirstTokenMs, decodeMs: o.stats.generateMs,
                                         cancelled: o.finishReason == "cancelled")
                out.append(o)
                if o.finishReason == "cancelled" { break }
            }
            return out
          }
        }, onInboundClosed: { cancel.cancel() })
        let usage = self.usage(req, outcomes)
        context.stats.add(prompt: usage.prompt, completion: usage.completion)
        let cached = CompletionRoutes.cachedPromptTokens(outcomes, choicesPerPrompt: req.n)
        var choices: [JSONValue] = []
        for (i, o) in outcomes.enumerated() {
            choices.append(choice(kind, index: i, outcome: o, topLogprobs: req.topLogprobs,
                                  tools: req.toolSetup))
        }
        let obj: JSONValue = .object([
            ("id", .string(id)), ("object", .string(kind == .chat ? "chat.completion" : "text_completion")),
            ("created", .number(Double(Int(Date().timeIntervalSince1970)))), ("model", .string(state.modelName)),
            ("system_fingerprint", .string("hmst")),
            ("choices", .array(choices)), ("usage", usageJSON(usage.prompt, usage.completion, cached: cached)),
        ])
        // watching the inbound side ends this connection after the response: say so, so that
        // clients open a new one rather than reuse it
        return Response(status: .ok, headers: [.contentType: "application/json", .connection: "close"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: obj.serialized + "\n")))
    }

    private func usage(_ req: CompletionRequest, _ outcomes: [GenerationOutcome]) -> (prompt: Int, completion: Int) {
        // each prompt counts once, however many choices it has (as OpenAI counts n)
        let prompt = req.prompts.reduce(0) { $0 + $1.count }
        return (prompt, outcomes.reduce(0) { $0 + $1.completionTokens })
    }

    /// OpenAI's usage; prompt_tokens_details.cached_tokens: the prompt tokens a slot's cache held
    private func usageJSON(_ p: Int, _ c: Int, cached: Int) -> JSONValue {
        .object([("prompt_tokens", .number(Double(p))), ("completion_tokens", .number(Double(c))),
                 ("total_tokens", .number(Double(p + c))),
                 ("prompt_tokens_details", .object([("cached_tokens", .number(Double(cached)))]))])
    }

    /// The cached tokens of each prompt's first choice: later choices of the same prompt find
    /// it all in the cache, but a prompt counts once (as in prompt_tokens).
    static func cachedPromptTokens(_ outcomes: [GenerationOutcome], choicesPerPrompt n: Int) -> Int {
        stride(from: 0, to: outcomes.count, by: max(1, n)).reduce(0) { $0 + outcomes[$1].stats.cachedTokens }
    }

    private func choice(_ kind: CompletionKind, index: Int, outcome o: GenerationOutcome, topLogprobs: Int?,
                        tools: ToolCallSetup?) -> JSONValue {
        var finish: JSONValue = .string(o.finishReason == "cancelled" ? "stop" : o.finishReason)
        let lp: JSONValue = topLogprobs == nil ? .null : logprobsJSON(kind, o.logprobs)
        switch kind {
        case .text:
            return .object([("index", .number(Double(index))), ("text", .string(o.text)), ("logprobs", lp), ("finish_reason", finish)])
        case .chat:
            var message: [(String, JSONValue)] = [("role", .string("assistant")), ("content", .string(o.text)), ("refusal", .null)]
            if let tools {
                // the reply's calls (text that does not parse as a call stays content)
                let reply = tools.parse(o.text)
                message[1].1 = reply.calls.isEmpty || !reply.content.isEmpty ? .string(reply.content) : .null
                if !reply.calls.isEmpty {
                    message.append(("tool_calls", .array(reply.calls.map(\.json))))
                    finish = .string("tool_calls")
                }
            }
            return .object([("index", .number(Double(index))), ("message", .object(message)), ("logprobs", lp), ("finish_reason", finish)])
        }
    }

    /// Completions: {tokens, token_logprobs, top_logprobs: [{token: lp}], text_offset}.
    /// Chat: {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
    private func logprobsJSON(_ kind: CompletionKind, _ lps: [TokenLogprob], textOffset: Int = 0) -> JSONValue {
        func tok(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
        func bytes(_ b: [UInt8]) -> JSONValue { .array(b.map { .number(Double($0)) }) }
        switch kind {
        case .text:
            var offsets: [JSONValue] = []
            var off = textOffset
            for t in lps { offsets.append(.number(Double(off))); off += t.bytes.count }
            return .object([
                ("tokens", .array(lps.map { .string(tok($0.bytes)) })),
                ("token_logprobs", .array(lps.map { $0.predicted ? .number($0.logprob) : .null })),
                ("top_logprobs", .array(lps.map { t in
                    t.predicted ? .object(t.top.map { (tok($0.bytes), JSONValue.number($0.logprob)) }) : .null })),
                ("text_offset", .array(offsets)),
            ])
        case .chat:
            return .object([("content", .array(lps.map { t in
                .object([("token", .string(tok(t.bytes))), ("logprob", .number(t.logprob)), ("bytes", bytes(t.bytes)),
                         ("top_logprobs", .array(t.top.map {
                             .object([("token", .string(tok($0.bytes))), ("logprob", .number($0.logprob)), ("bytes", bytes($0.bytes))])
                         }))])
            })), ("refusal", .null)])
        }
    }

    // ---- streaming -----------------------------------------------------------------------------

    private func stream(_ req: CompletionRequest, id: String, slot: Slot, cancel: CancelFlag, context: ServerContext) -> Response {
        let state = self.state
        let kind = req.kind
        let created = Double(Int(Date().timeIntervalSince1970))
        let objectName = kind == .chat ? "chat.completion.chunk" : "text_completion"
        let es = EventStream(cancel: cancel, stallSeconds: state.limits.streamStallSeconds)
        @Sendable func chunk(_ choices: [JSONValue], usage: JSONValue? = nil) -> String {
            var o: [(String, JSONValue)] = [("id", .string(id)), ("object", .string(objectName)), ("created", .number(created)),
                                            ("model", .string(state.modelName)), ("system_fingerprint", .string("hmst")),
                                            ("choices", .array(choices))]
            if let usage { o.append(("usage", usage)) }
            return "data: " + JSONValue.object(o).serialized + "\n\n"
        }
        @Sendable func delta(_ index: Int, _ text: String?, role: Bool, lps: [TokenLogprob], finish: String?) -> JSONValue {
            let lp: JSONValue = req.topLogprobs == nil || lps.isEmpty ? .null : logprobsJSON(kind, lps)
            let f: JSONValue = finish.map { .string($0) } ?? .null
            switch kind {
            case .text:
                return .object([("index", .number(Double(index))), ("text", .string(text ?? "")), ("logprobs", lp), ("finish_reason", f)])
            case .chat:
                var d: [(String, JSONValue)] = []
                if role { d.append(("role", .string("assistant"))) }
                if let text { d.append(("content", .string(text))) }
                return .object([("index", .number(Double(index))), ("delta", .object(d)), ("logprobs", lp), ("finish_reason", f)])
            }
        }
        let jobs = req.jobs
        let promptTokens = req.prompts.reduce(0) { $0 + $1.count }
        let stats = context.stats
        let includeUsage = req.includeUsage
        slot.queue.async {
            defer { state.pool.release(slot) }
            var completion = 0, cached = 0
            for (i, job) in jobs.enumerated() {
                if kind == .chat { es.send(chunk([delta(i, "", role: true, lps: [], finish: nil)])) }
                do {
                    // with tools, text that may be a call is held back; calls a grammar holds go out
                    // as delta.tool_calls while they are written, others whole at the end
                    let filter = req.toolSetup.map { ToolCallStream(setup: $0, grammarHolds: req.toolGrammarHolds) }
                    func sendCalls(_ deltas: [ToolCallDelta]) {
                        guard !deltas.isEmpty else { return }
                        es.send(chunk([.object([("index", .number(Double(i))), ("delta", .object([("tool_calls", .array(deltas.map(\.json)))])),
                                                ("logprobs", .null), ("finish_reason", .null)])]))
                    }
                    let o = try Generator.run(session: slot.session, tokenizer: state.tokenizer, job: job, cancel: cancel) { text, lps in
                        es.send(chunk([delta(i, filter?.push(text) ?? text, role: false, lps: lps, finish: nil)]))
                        if let filter { sendCalls(filter.takeCallDeltas()) }
                    }
                    var finish = o.finishReason
                    if let filter, o.finishReason != "cancelled" {
                        let (rest, calls) = filter.finish()
                        if !rest.isEmpty { es.send(chunk([delta(i, rest, role: false, lps: [], finish: nil)])) }
                        sendCalls(filter.takeCallDeltas(flush: true)
                                  + calls.enumerated().map { k, c in ToolCallDelta(index: k, id: c.id, name: c.name, arguments: c.arguments) })
                        // a reply cut short (max_tokens) in or between streamed calls keeps "length"
                        if !calls.isEmpty || filter.callsComplete && o.finishReason != "length" { finish = "tool_calls" }
                    }
                    completion += o.completionTokens
                    if i % max(1, req.n) == 0 { cached += o.stats.cachedTokens }
                    state.metrics.generation(promptTokens: o.stats.promptTokens, cachedTokens: o.stats.cachedTokens, completionTokens: o.completionTokens,
                                             ttftMs: o.stats.timeToFirstTokenMs, decodeMs: o.stats.generateMs,
                                             cancelled: o.finishReason == "cancelled")
                    if o.finishReason == "cancelled" { break }
                    let last = i == jobs.count - 1
                    let usage = last && !includeUsage ? usageJSON(promptTokens, completion, cached: cached) : nil
                    es.send(chunk([delta(i, kind == .chat ? nil : "", role: false, lps: [], finish: finish)], usage: usage))
                } catch {
                    // headers are sent: report in the stream, in the error shape
                    let e = (error as? HMSTError).map(APIError.from) ??
                        APIError(status: .internalServerError, message: "\(error)", type: "server_error", param: nil, code: "internal_error")
                    es.send("data: " + e.json.serialized + "\n\n")
                    break
                }
            }
            if includeUsage { es.send(chunk([], usage: usageJSON(promptTokens, completion, cached: cached))) }
            stats.add(prompt: promptTokens, completion: completion)
            es.send("data: [DONE]\n\n")
            es.finish()
        }
        let body = ResponseBody { writer in
            do {
                for await event in es.events {
                    try await writer.write(ByteBuffer(string: event))
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

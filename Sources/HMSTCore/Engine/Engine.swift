// Engine: the seed's HMSTInferenceEngine. For each query:
//   1. encode the query with the base model (its pooled encoding, and the first answer token's
//      distribution without memory: the model's own uncertainty);
//   2. probe the memory tiers (hybrid retrieval) for their signals; with 1, the state summary;
//   3. decide the five things (EngineDecisions): by the meta-controller, or a fixed policy;
//   4. give the chosen memories to the model in the Stage 2 layout (MemoryPrompt);
//   5. generate the answer at the chosen depth and expert count, with per-token log-probs;
//   6. if verification was chosen, the verifier (critic) scores it; below the threshold the
//      engine retries once with both memories at full compute, then abstains ("not sure").
// The result carries the answer, the confidence, the decisions and their probabilities, the
// citations, per-token log-probs and the cost account. One query at a time per engine (a
// lock); the model, memory and critic may be shared with other engines.
import Foundation

public final class Engine: @unchecked Sendable {
    public let model: LanguageModel
    public let tokenizer: Tokenizer
    public let semantic: SemanticMemory?
    public let episodic: EpisodicMemory?
    public let verifier: EngineVerifier?
    public let controller: EngineController?
    public let options: EngineOptions
    /// the layer early exit reads from
    public let exitLayer: Int
    let session: Session

    /// The query's prompt without memories, INVALID_ARGUMENT when it does not fit the context
    /// with a token to spare. A server checks this before it answers (a streamed answer's
    /// status is sent before ask runs); ask checks it again. Safe from any thread.
    @discardableResult
    public func promptWithoutMemories(_ text: String) throws -> [Int32] {
        let prompt = tokenizer.encode(MemoryPrompt.prompt(memories: [], question: text, tokenizer: tokenizer))
        guard prompt.count < session.nCtx else {
            throw HMSTError.invalidArgument("engine: the query is \(prompt.count) tokens; the engine's context is \(session.nCtx)")
        }
        return prompt
    }
    let projection: [Float]
    let answerEnd: Int32?
    let unknownToken: Int32?
    private let lock = ReentryCheckedLock("this engine is already answering a query")

    /// verifier and controller: nil uses the model's (loaded with the checkpoint), if any;
    /// pass useModelParts false to run without them. session: the context the engine runs in
    /// (one over model.decoder; options.nCtx and nThreads then do not apply), for a host that
    /// owns its contexts, as the server's slots do; the engine resets it and its compute budget
    /// at every query and leaves it reset to the full budget, and the host must not use it
    /// during a query. nil: the engine makes its own.
    public init(model: LanguageModel, semantic: SemanticMemory? = nil, episodic: EpisodicMemory? = nil,
                verifier: EngineVerifier? = nil, controller: EngineController? = nil, useModelParts: Bool = true,
                options: EngineOptions = EngineOptions(), session: Session? = nil) throws {
        try options.validate()
        guard let tok = model.tokenizer as? Tokenizer else {
            throw HMSTError.invalidArgument("engine: the model has no tokenizer (tokenizer.json beside the checkpoint)")
        }
        let d = model.dims
        var options = options
        if let mc = (controller ?? (useModelParts ? model.controller : nil)) as? MetaController {
            // the controller was trained on this exit layer and projection
            if options.exitLayer == nil { options.exitLayer = mc.exitLayer }
            options.projectionSeed = mc.projectionSeed
        }
        let exit = options.exitLayer ?? model.decoder.exitHead?.layer ?? max(1, d.L / 2)
        guard (1...d.L).contains(exit) else { throw HMSTError.invalidArgument("engine: exit layer \(exit) must be in 1...\(d.L)") }
        guard options.selectedExperts <= d.K else {
            throw HMSTError.invalidArgument("engine: selected experts \(options.selectedExperts) exceeds the model's \(d.K) experts per token")
        }
        if let episodic { try episodic.checkModel(model) }
        if let semantic, semantic.count > 0 { try semantic.checkModel(model) }
        self.model = model
        tokenizer = tok
        self.semantic = semantic
        self.episodic = episodic
        self.verifier = verifier ?? (useModelParts ? model.critic : nil)
        let ctl = controller ?? (useModelParts ? model.controller : nil)
        self.controller = ctl
        self.options = options
        exitLayer = exit
        if let session {
            guard session.decoder === model.decoder else {
                throw HMSTError.invalidArgument("engine: the session given runs another model's decoder")
            }
            self.session = session
        } else {
            var sp = SessionParams()
            sp.nCtx = options.nCtx == 0 ? min(2048, d.maxPositions) : min(options.nCtx, d.maxPositions)
            sp.nThreads = options.nThreads
            self.session = try Session(decoder: model.decoder, params: sp)
        }
        projection = StateSummary.projection(C: d.C, seed: options.projectionSeed)
        answerEnd = tok.id(for: MemoryPrompt.answerEnd)
        let u = tok.encode(" " + options.unknownAnswer)
        unknownToken = u.first
    }

    // MARK: the query

    /// Answers one query. onToken receives each answer token, its bytes and log-probability of
    /// every attempt; return false to stop that attempt. onAttempt is told when an attempt
    /// starts (0, then 1 for a retry) with its decisions, before its first token. Thread-safe
    /// (queries run one at a time).
    public func ask(_ q: EngineQuery, onToken: ((Int32, [UInt8], Float) -> Bool)? = nil,
                    onAttempt: ((Int, EngineDecisions) -> Void)? = nil) throws -> EngineResult {
        try lock.lock()
        defer { lock.unlock() }
        defer { resetSession() }
        let t0 = Clock.nowMs()
        let ctx = try observeLocked(q)
        let (decisions, probs, policyName) = try ctx.timed(\.control) { try decide(ctx) }
        var r = try runLocked(ctx, decisions: decisions, onToken: onToken, onAttempt: onAttempt)
        r.probabilities = probs
        r.policy = policyName
        ctx.times.total = Clock.nowMs() - t0
        r.times = ctx.times
        return r
    }

    /// Steps 1-2 alone: the query's signals and the state the controller sees.
    public func observe(_ q: EngineQuery) throws -> QueryContext {
        try lock.lock()
        defer { lock.unlock() }
        return try observeLocked(q)
    }

    /// Steps 4-6 for given decisions on an observed query (the outcome tables of RL training
    /// call this for every action of a query).
    /// The result's cost and times are the observation's plus this action's; the context is
    /// left as observed, so every action of a query can run from it.
    public func run(_ ctx: QueryContext, decisions: EngineDecisions) throws -> EngineResult {
        try lock.lock()
        defer { lock.unlock() }
        defer { resetSession() }
        let (cost, times, events) = (ctx.cost, ctx.times, ctx.events)
        defer { (ctx.cost, ctx.times, ctx.events) = (cost, times, events) }
        var r = try runLocked(ctx, decisions: decisions, onToken: nil, onAttempt: nil)
        r.policy = "fixed"
        r.probabilities = DecisionProbabilities(fixed: decisions)
        r.times.total = r.times.values.dropLast().reduce(0, +)
        return r
    }

    /// The controller's observation vector of an observed query.
    public func observation(_ ctx: QueryContext) -> [Float] { StateSummary.vector(ctx.signals, projection: projection) }

    // MARK: stages

    /// Leaves the session empty at the full budget (a host's session is used by others after).
    private func resetSession() {
        session.reset()
        try? session.setBudget(ComputeBudget())
    }

    private func observeLocked(_ q: EngineQuery) throws -> QueryContext {
        let text = q.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw HMSTError.invalidArgument("engine: the query is empty") }
        guard q.maxTokens >= 1, q.maxTokens <= 4096 else { throw HMSTError.invalidArgument("engine: max_tokens \(q.maxTokens) must be in 1...4096") }
        guard q.temperature >= 0, q.temperature.isFinite else { throw HMSTError.invalidArgument("engine: temperature must be >= 0") }
        if let o = q.owner, o.utf8.contains(0) { throw HMSTError.invalidArgument("engine: the owner contains a NUL byte") }
        var query = q
        query.text = text
        let ctx = QueryContext(model: model, tokenizer: tokenizer, semantic: semantic, episodic: episodic, verifier: verifier, query: query)
        let full = ComputeBudget().matmulFLOPsPerToken(model.dims)
        // 1. the query's encoding and the model's uncertainty without memory
        try ctx.timed(\.encode) {
            let qt = tokenizer.encode(PromptText(literal: text))   // as MemoryPrompt's question and the entries' keys
            guard !qt.isEmpty else { throw HMSTError.invalidArgument("engine: the query encodes to no tokens") }
            ctx.signals.queryTokens = qt.count
            let encoded = Array(qt.suffix(session.nCtx))
            ctx.signals.queryEncoding = try model.embed(tokens: encoded)
            // the semantic tier's query vector from the same pass (projection only), when it is
            // searched by vectors at all
            if semantic != nil && options.retrieval.mode != .lexical { ctx.queryVector = try model.queryEmbedding(tokens: encoded, pooled: ctx.signals.queryEncoding) }
            ctx.cost.prefill(qt.count, flopsPerToken: full)
            let prompt = try promptWithoutMemories(text)
            session.reset()
            try session.setBudget(ComputeBudget())
            try session.evaluate(prompt)
            ctx.cost.prefill(prompt.count, flopsPerToken: full)
            let (entropy, top, unk) = firstTokenStats(try session.logits())
            ctx.signals.firstTokenEntropy = entropy
            ctx.signals.firstTokenTopProbability = top
            ctx.signals.unknownProbability = unk
        }
        // 2. the memory probe
        try ctx.timed(\.retrieve) { try probe(ctx) }
        return ctx
    }

    /// With an owner (EngineQuery.owner) every hit, score and count below is that owner's
    /// alone; the cost account still counts the work done over the whole tier.
    private func probe(_ ctx: QueryContext) throws {
        var o = options.retrieval
        o.k = options.k
        o.owner = ctx.query.owner
        let text = ctx.query.text
        if let s = semantic, case let inScope = s.count(owner: o.owner), inScope > 0 {
            ctx.semanticHits = try s.retrieve(text: text, queryEmbedding: ctx.queryVector, model: model, options: o)
            ctx.semanticFusion = ctx.semanticHits.map { $0.fusionScore(o) }
            let st = s.stats()
            let scanned = st.nlist > 0 && st.isTrained ? Int((Double(st.count) * Double(min(st.nprobe, st.nlist)) / Double(st.nlist)).rounded(.up)) : st.count
            ctx.cost.vectorsScanned += scanned
            ctx.cost.retrievalFLOPs += 2 * Double(scanned) * Double(st.dim)
            ctx.cost.retrievals += 1
            ctx.cost.latencyUnits += 1
            let cov = s.lexicalCoverage(of: text, owner: o.owner)
            ctx.signals.semantic = TierSignals(hits: ctx.semanticHits, entries: inScope, capacity: inScope, coverage: cov)
            ctx.events.append("probe semantic: \(ctx.semanticHits.count) hits of \(inScope)")
        }
        if let e = episodic, case let inScope = e.count(owner: o.owner), inScope > 0 {
            var eo = o
            eo.mode = options.episodicMode
            ctx.episodicHits = try e.retrieve(text: text, model: model, options: eo)
            ctx.episodicFusion = ctx.episodicHits.map { $0.fusionScore(eo) }
            if eo.mode != .lexical {   // the dense part: the query's SSM state against every key
                let n = e.count
                ctx.cost.vectorsScanned += n
                ctx.cost.retrievalFLOPs += 2 * Double(n) * Double(e.config.stateSize)
                ctx.cost.ssmTokensEncoded += ctx.signals.queryTokens
            }
            ctx.cost.retrievals += 1
            ctx.cost.latencyUnits += 1
            let cov = e.lexicalCoverage(of: text, owner: o.owner)
            ctx.signals.episodic = TierSignals(hits: ctx.episodicHits, entries: inScope, capacity: e.config.maxEntries, coverage: cov)
            ctx.events.append("probe episodic: \(ctx.episodicHits.count) hits of \(inScope)")
        }
    }

    private func decide(_ ctx: QueryContext) throws -> (EngineDecisions, DecisionProbabilities, String) {
        switch ctx.query.policy {
        case .fixed(let d): return (d, DecisionProbabilities(fixed: d), "fixed")
        case .controller:
            guard let controller else {
                throw HMSTError.invalidArgument("engine: " + (model.controllerProblem ?? "the checkpoint has no trained controller (hmst rl-train)"))
            }
            let (d, p) = try controller.decide(observation(ctx))
            return (d, p, "controller")
        case .automatic:
            if let controller {
                let (d, p) = try controller.decide(observation(ctx))
                return (d, p, "controller")
            }
            return (.full, DecisionProbabilities(fixed: .full), model.controllerProblem == nil ? "full (no controller)" : "full (stale controller)")
        }
    }

    private func runLocked(_ ctx: QueryContext, decisions: EngineDecisions,
                           onToken: ((Int32, [UInt8], Float) -> Bool)?,
                           onAttempt: ((Int, EngineDecisions) -> Void)?) throws -> EngineResult {
        var r = EngineResult()
        r.query = ctx.query.text
        r.owner = ctx.query.owner
        r.decisions = decisions
        r.signals = ctx.signals
        onAttempt?(0, decisions)
        var attempt = try ctx.timed(\.generate) { try generate(ctx, decisions: decisions, onToken: onToken) }
        var confidence = attempt.meanProbability, calibrated = false
        if decisions.verify, let verifier {
            var v = try ctx.timed(\.verify) { try verify(ctx, attempt, verifier) }
            if (v.probability < options.confidenceThreshold || attempt.saidUnknown) && options.retryWithMemory
                && !(decisions.episodic && decisions.semantic && !decisions.earlyExit && !decisions.expertSelection)
                && !(ctx.semanticHits.isEmpty && ctx.episodicHits.isEmpty) {
                ctx.events.append("verified \(v.probability) < \(options.confidenceThreshold): retry with both memories at full compute")
                r.retried = true
                let retry = EngineDecisions(episodic: true, semantic: true, verify: true)
                onAttempt?(1, retry)
                attempt = try ctx.timed(\.generate) { try generate(ctx, decisions: retry, onToken: onToken) }
                v = try ctx.timed(\.verify) { try verify(ctx, attempt, verifier) }
            }
            confidence = v.probability
            calibrated = v.calibrated
        } else if decisions.verify {
            ctx.events.append("verification asked for, but " + (model.criticProblem ?? "the checkpoint has no critic")
                              + ": confidence is the answer's mean token probability")
        }
        r.modelAnswer = attempt.text
        r.tokens = attempt.tokens
        r.tokenLogProbs = attempt.logProbs
        r.finish = attempt.finish
        r.maxTokens = attempt.maxTokens
        r.citations = attempt.memories
        r.confidence = confidence
        r.confidenceCalibrated = calibrated
        let lowConfidence = decisions.verify && verifier != nil && confidence < options.confidenceThreshold
        r.abstained = attempt.saidUnknown || lowConfidence || attempt.text.isEmpty
        r.answer = r.abstained ? options.abstainText : attempt.text
        if r.abstained { ctx.events.append(attempt.saidUnknown ? "the model answered \(options.unknownAnswer)" : "abstained at confidence \(confidence)") }
        r.cost = ctx.cost
        r.times = ctx.times
        r.events = ctx.events
        return r
    }

    struct Attempt {
        var tokens: [Int32] = []
        var logProbs: [Float] = []
        var text = ""
        var memories: [Citation] = []
        var promptTokens: [Int32] = []
        var saidUnknown = false
        /// the answer's token limit: the query's max_tokens, or less when the prompt left less room
        var maxTokens = 0
        var finish = EngineFinish.stop
        var meanProbability: Float {
            logProbs.isEmpty ? 0 : Float(exp(Double(logProbs.reduce(0, +)) / Double(logProbs.count)))
        }
    }

    /// Steps 4-5: the prompt with the chosen memories, then the answer up to </a>.
    private func generate(_ ctx: QueryContext, decisions d: EngineDecisions,
                          onToken: ((Int32, [UInt8], Float) -> Bool)?) throws -> Attempt {
        var a = Attempt()
        a.memories = ctx.memories(for: d, k: options.k)
        let budget = ComputeBudget(layers: d.earlyExit ? exitLayer : nil,
                                   expertsPerToken: d.expertSelection ? min(options.selectedExperts, model.dims.K) : nil)
        let perToken = budget.matmulFLOPsPerToken(model.decoder)
        var prompt = tokenizer.encode(MemoryPrompt.prompt(memories: a.memories.map(\.text), question: ctx.query.text, tokenizer: tokenizer))
        // memories that do not fit are dropped from the end (the weakest)
        while prompt.count + ctx.query.maxTokens > session.nCtx, !a.memories.isEmpty {
            a.memories.removeLast()
            prompt = tokenizer.encode(MemoryPrompt.prompt(memories: a.memories.map(\.text), question: ctx.query.text, tokenizer: tokenizer))
        }
        let maxTokens = min(ctx.query.maxTokens, session.nCtx - prompt.count)
        guard maxTokens >= 1 else { throw HMSTError.invalidArgument("engine: the query leaves no room to answer in a context of \(session.nCtx)") }
        if maxTokens < ctx.query.maxTokens {
            ctx.events.append("max_tokens \(ctx.query.maxTokens) cut to \(maxTokens): the prompt takes \(prompt.count) of the context's \(session.nCtx)")
        }
        a.maxTokens = maxTokens
        a.promptTokens = prompt
        session.reset()
        try session.setBudget(budget)
        try session.evaluate(prompt)
        ctx.cost.prefill(prompt.count, flopsPerToken: perToken)
        ctx.cost.attempts += 1
        var sp = SamplingParams()
        sp.temperature = ctx.query.temperature
        sp.topK = 0
        sp.topP = 1
        sp.seed = ctx.query.seed
        var sampler = try Sampler(params: sp)
        let V = min(model.dims.V, tokenizer.vocabSize)
        let eos = tokenizer.eosId
        var bytes: [UInt8] = []
        let endBytes = Array(MemoryPrompt.answerEnd.utf8)
        for _ in 0..<maxTokens {
            let logits = try session.logits()
            let next = sampler.sample(logits: logits.baseAddress!, V: V, recent: [])
            if next == answerEnd || next == eos { break }
            let lp = logProbability(logits, next, V)
            let piece = try tokenizer.decode([next])
            bytes += piece
            if let cut = TextGeneration.find(endBytes, in: bytes, from: max(0, bytes.count - piece.count - endBytes.count)) {
                bytes.removeLast(bytes.count - cut)
                break
            }
            if piece.contains(10) { bytes.removeLast(piece.count); break }  // a newline ends the answer
            a.tokens.append(next)
            a.logProbs.append(lp)
            if let onToken, !onToken(next, piece, lp) { a.finish = .cancelled; break }
            if a.tokens.count == maxTokens { a.finish = .length; break }
            try session.evaluate([next])
            ctx.cost.decode(flopsPerToken: perToken)
        }
        a.text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        a.saidUnknown = a.text.lowercased() == options.unknownAnswer.lowercased()
        ctx.events.append("answer [\(d.summary)] with \(a.memories.count) memories: \(a.text)")
        return a
    }

    private func verify(_ ctx: QueryContext, _ a: Attempt, _ verifier: EngineVerifier) throws -> Verification {
        let input = VerificationInput(promptTokens: a.promptTokens, answerTokens: a.tokens, answerText: a.text,
                                      memories: a.memories, retrievalScores: ctx.retrievalScores)
        let v = try verifier.verify(input, model: model, seed: ctx.query.seed)
        guard v.probability.isFinite, v.probability >= 0, v.probability <= 1 else {
            throw HMSTError(.internal, "the critic returned \(v.probability), not a probability")
        }
        ctx.cost = ctx.cost + v.cost
        ctx.cost.criticCalls += 1
        return v
    }

    // MARK: helpers

    /// Entropy (nats), top probability and the probability of the unknown answer's first token.
    private func firstTokenStats(_ logits: UnsafeBufferPointer<Float>) -> (Float, Float, Float) {
        let V = min(model.dims.V, tokenizer.vocabSize)
        var m = -Float.infinity
        for i in 0..<V { m = max(m, logits[i]) }
        var z = 0.0
        for i in 0..<V { z += exp(Double(logits[i] - m)) }
        var h = 0.0, top = 0.0
        for i in 0..<V {
            let p = exp(Double(logits[i] - m)) / z
            if p > 0 { h -= p * log(p) }
            top = max(top, p)
        }
        let unk = unknownToken.map { Int($0) < V ? exp(Double(logits[Int($0)] - m)) / z : 0 } ?? 0
        return (Float(h), Float(top), Float(unk))
    }

    private func logProbability(_ logits: UnsafeBufferPointer<Float>, _ t: Int32, _ V: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<V { m = max(m, logits[i]) }
        var z = 0.0
        for i in 0..<V { z += exp(Double(logits[i] - m)) }
        return Float(Double(logits[Int(t)] - m) - log(z))
    }
}

extension Engine {
    /// An engine over a checkpoint directory: the model, and the critic and controller stored
    /// with it when present; memory from a memory directory (nil: none). The memory directory
    /// must exist.
    public static func open(checkpoint: String, memory: String?, options: EngineOptions = EngineOptions(),
                            loadOptions: ModelLoadOptions = ModelLoadOptions()) throws -> Engine {
        let model = try LanguageModel.load(path: checkpoint, options: loadOptions)
        let store = try memory.map { try MemoryStore(directory: $0, readOnly: true) }
        return try Engine(model: model, semantic: store?.semantic, episodic: store?.episodic, options: options)
    }

    /// The critic stored with a checkpoint, as the engine's verifier (nil: none).
    public static func openVerifier(checkpoint: String, model: LanguageModel) throws -> EngineVerifier? {
        try Critic.load(checkpoint: checkpoint, model: model)
    }
}

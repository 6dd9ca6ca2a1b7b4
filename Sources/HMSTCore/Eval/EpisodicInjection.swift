// EpisodicInjection: how evaluation gives the model the episodic entries it retrieves (issue 11):
//   text   each entry's text inside <mem> … </mem> (MemoryPrompt's layout; the default)
//   state  each entry's stored state features (or key) as the checkpoint's K soft tokens:
//          <mem>▢…▢</mem>, as Stage 2 trained them (Memory/EpisodicSoftTokens.swift)
//   both   the soft tokens, then the text, as two spans: <mem>▢…▢</mem><mem>text</mem>
// With the soft tokens' copy path, each soft row also carries the token it names through the LM
// head, for the copy head to copy. Semantic hits stay text. Under oracle the gold texts are not in the memory: their soft tokens
// come from encoding the text with the model and the trained SSM (what the memory would store).
// loglikelihood, multiple_choice and generate_until tasks (greedy generation continues from the
// context with its injected rows; the copy head can copy the tokens the soft rows name).

public enum EpisodicInjection: String, Sendable, CaseIterable {
    case text, state, both
}

/// One memory of a prompt: a text, or an episodic entry's state features (with its text, for records).
enum PromptMemory {
    case text(String)
    case soft(features: [Float], text: String)
}

extension Evaluator {
    /// The memories an item sees under a condition, episodic hits as their stored features
    /// (retrieved) or as features encoded from the gold texts (oracle).
    func promptMemories(for item: EvalItem, query: String, condition: MemoryCondition) throws -> [PromptMemory] {
        guard let soft else { throw HMSTError(.internal, "episodic injection without soft tokens") }
        switch condition {
        case .off: return []
        case .oracle:
            return try item.memory.map { text in
                let enc = try model.encode(text: text, maxTokens: EpisodicMemoryConfig().maxTokens)
                let x = try soft.mixerInput(hidden: enc.encoding.hidden, tokens: enc.tokens, embedding: model.decoder.weights.embed)
                return .soft(features: try soft.encode(hidden: x).features, text: text)
            }
        case .on, .deleted:
            guard let r = retriever as? MemoryStoreRetriever else {
                throw HMSTError.invalidArgument("episodic injection \(options.episodicInjection.rawValue) needs a memory directory to retrieve from")
            }
            let hits = try r.retrieveHits(query: query, k: options.k, excluding: condition == .deleted ? item.deletedTexts : [])
            return try hits.map { h in
                guard h.tier == .episodic, let ep = r.store.episodic else { return .text(h.hit.text) }
                return .soft(features: try ep.softFeatures(id: h.hit.id, for: soft), text: h.hit.text)
            }
        }
    }

    /// The context tokens of MemoryPrompt's layout with soft memories, and the injected rows.
    func injectedContext(_ memories: [PromptMemory], question: String) throws -> (tokens: [Int32], injected: InjectedEmbeddings) {
        guard let soft, let t = tokenizer as? Tokenizer, let open = t.id(for: MemoryPrompt.memoryOpen) else {
            throw HMSTError.invalidArgument("episodic injection needs a Stage 2 tokenizer with the memory markers")
        }
        var tokens: [Int32] = [], positions: [Int] = [], rows: [Float] = []
        for m in memories {
            switch m {
            case .text(let s):
                tokens += encode(MemoryPrompt.memoryOpen + s + MemoryPrompt.memoryClose)
            case .soft(let features, let s):
                tokens += encode(MemoryPrompt.memoryOpen)
                positions += (0..<soft.K).map { tokens.count + $0 }
                rows += try soft.project(features: features)
                tokens += [Int32](repeating: open, count: soft.K)
                tokens += encode(MemoryPrompt.memoryClose)
                if options.episodicInjection == .both { tokens += encode(MemoryPrompt.memoryOpen + s + MemoryPrompt.memoryClose) }
            }
        }
        tokens += encode(MemoryPrompt.render(memories: [], question: question))
        let copy = soft.copySources ? soft.copyTokens(rows: rows, lmHead: model.decoder.weights.lmHead) : []
        return (tokens, InjectedEmbeddings(positions: positions, rows: rows, copyTokens: copy))
    }

    /// Greedy generation after the context with its injected rows, until a stop string, end of
    /// text or maxTokens (Evaluator.generate's rules for a text prompt).
    func generateInjected(_ ctx: (tokens: [Int32], injected: InjectedEmbeddings), until: [String], maxTokens: Int) throws -> String {
        guard ctx.tokens.count + maxTokens <= session.nCtx else {
            throw HMSTError.invalidArgument("with injected soft tokens the prompt (\(ctx.tokens.count) tokens) and \(maxTokens) generated tokens must fit n_ctx \(session.nCtx)")
        }
        session.reset()
        defer { session.reset() }
        try session.evaluate(ctx.tokens, injected: ctx.injected)
        var req = TextGenerationRequest()
        req.maxTokens = maxTokens
        req.sampling.temperature = 0
        req.stopStrings = until
        return try session.generate(prompt: [], tokenizer: tokenizer, req).string
    }

    /// log p(continuation | context with injected rows), the continuation encoded alone.
    func scoreInjected(_ ctx: (tokens: [Int32], injected: InjectedEmbeddings), continuation: String) throws -> LogLikelihoodScore {
        let cont = encode(continuation)
        guard !cont.isEmpty else { throw HMSTError.invalidArgument("the continuation \"\(continuation)\" encodes to no tokens") }
        let seq = ctx.tokens + cont
        guard seq.count <= session.nCtx else {
            throw HMSTError.invalidArgument("with injected soft tokens the prompt and answer (\(seq.count) tokens) must fit n_ctx \(session.nCtx)")
        }
        return try session.logLikelihood(seq, from: ctx.tokens.count, vocabLimit: tokenizer.vocabSize, injected: ctx.injected)
    }
}

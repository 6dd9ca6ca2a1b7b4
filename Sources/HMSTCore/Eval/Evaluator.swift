// Evaluator: runs tasks under memory conditions on one model and aggregates the scores.
// Prompts are MemoryPrompt's layout (markers when the tokenizer has them, plain text otherwise);
// the context and the continuation are tokenized apart and joined, as lm-eval does. Scores:
//   loglikelihood          acc (target is the greedy continuation), answer_nll, perplexity
//   multiple_choice        acc, acc_norm, answer_nll (of the gold choice)
//   generate_until         exact_match (SQuAD normalisation), answer_nll (of the target)
//   loglikelihood_rolling  bits_per_byte, byte_perplexity, word_perplexity, token_perplexity
// answer_nll: per item, −Σ log p(target tokens) / their count (nats per token), averaged over
// items. perplexity: exp(−mean over items of Σ log p(target)), lm-eval's loglikelihood metric.
// Rolling metrics are ratios of sums over items (lm-eval's weighted_perplexity and
// bits_per_byte); a rolling text is scored from its first token when the tokenizer has an
// end-of-text token to condition on (lm-eval's prefix token), from its second otherwise; its
// bytes all count either way. Metric code lives in EvalMetrics, token scoring in LogLikelihood.
// An Evaluator owns one Session: one thread at a time (the model itself may be shared).

public final class Evaluator {
    public let model: LanguageModel
    public let tokenizer: TextTokenizer
    public let retriever: Retriever?
    public let options: EvalOptions
    let session: Session
    /// the model's trained episodic soft tokens, when options.episodicInjection needs them
    let soft: EpisodicSoftTokens?

    public init(model: LanguageModel, retriever: Retriever? = nil, options: EvalOptions = EvalOptions()) throws {
        try options.validate()
        guard let tok = model.tokenizer else {
            throw HMSTError.invalidArgument("evaluation needs a tokenizer: the checkpoint has no tokenizer.json")
        }
        guard tok.vocabSize <= model.dims.V else {
            throw HMSTError.invalidArgument("tokenizer vocabulary \(tok.vocabSize) is larger than the model's \(model.dims.V)")
        }
        if let c = options.conditions.first(where: \.retrieves), retriever == nil {
            throw HMSTError.invalidArgument("memory condition \(c.rawValue) needs a memory directory to retrieve from")
        }
        self.model = model
        tokenizer = tok
        self.retriever = retriever
        self.options = options
        if options.episodicInjection != .text {
            guard let s = model.episodicSoftTokens else {
                throw HMSTError.invalidArgument("--episodic-injection \(options.episodicInjection.rawValue): the checkpoint has no trained episodic "
                                                + "soft tokens (\(EpisodicSoftTokens.configName)); train them with `hmst train-memory "
                                                + "--episodic-soft-tokens K`, or inject the entries as text")
            }
            guard let t = tok as? Tokenizer, MemoryPrompt.isSupported(by: t) else {
                throw HMSTError.invalidArgument("--episodic-injection \(options.episodicInjection.rawValue) needs a Stage 2 tokenizer with the memory markers")
            }
            soft = s
        } else {
            soft = nil
        }
        var p = SessionParams()
        p.nCtx = options.nCtx > 0 ? min(options.nCtx, model.dims.maxPositions) : min(model.dims.maxPositions, 4096)
        // rows of logits kept per forward: bounded so [n_batch, V] floats stay near 32 MiB
        p.nBatch = max(1, min(p.nCtx, max(64, (32 << 20) / (4 * model.dims.V))))
        p.nThreads = options.nThreads
        session = try Session(decoder: model.decoder, params: p)
    }

    public var nCtx: Int { session.nCtx }

    /// "markers" when the tokenizer has MemoryPrompt's tokens, else "plain".
    public var promptFormat: String {
        if let t = tokenizer as? Tokenizer, MemoryPrompt.isSupported(by: t) { return "markers" }
        return "plain"
    }

    /// The prompt for a question with memories: MemoryPrompt.format for a BPE tokenizer,
    /// MemoryPrompt.plain for any other (which cannot carry the markers).
    public func prompt(memories: [String], question: String) -> String {
        if let t = tokenizer as? Tokenizer { return MemoryPrompt.format(memories: memories, question: question, tokenizer: t) }
        return MemoryPrompt.plain(memories: memories, question: question)
    }

    /// The memories alone, as they open a prompt (for rolling texts): the prompt with an empty
    /// question, less the empty question's own layout.
    public func memoryPrefix(_ memories: [String]) -> String {
        guard !memories.isEmpty else { return "" }
        let full = prompt(memories: memories, question: ""), empty = prompt(memories: [], question: "")
        return full.hasSuffix(empty) ? String(full.dropLast(empty.count)) : full
    }

    /// The memories an item sees under a condition.
    public func memories(for item: EvalItem, query: String, condition: MemoryCondition) throws -> [String] {
        switch condition {
        case .off: return []
        case .oracle: return item.memory
        case .on, .deleted:
            guard let retriever else { throw HMSTError.invalidArgument("memory condition \(condition.rawValue) needs a memory directory") }
            return try retriever.retrieve(query: query, k: options.k, excluding: condition == .deleted ? item.deletedTexts : [])
        }
    }

    func encode(_ s: String) -> [Int32] { tokenizer.encode(bytes: Array(s.utf8)) }

    /// log p(continuation | context) with lm-eval's tokenization: each part encoded alone.
    public func score(context: String, continuation: String) throws -> LogLikelihoodScore {
        var ctx = encode(context)
        let cont = encode(continuation)
        guard !cont.isEmpty else { throw HMSTError.invalidArgument("the continuation \"\(continuation)\" encodes to no tokens") }
        if ctx.isEmpty {
            guard let eos = tokenizer.eosId else { throw HMSTError.invalidArgument("empty context and no end-of-text token to start from") }
            ctx = [eos]
        }
        return try session.logLikelihood(ctx + cont, from: ctx.count, vocabLimit: tokenizer.vocabSize)
    }

    /// Several continuations of one context, the context evaluated once (Session.logLikelihoods).
    public func score(context: String, continuations: [String]) throws -> [LogLikelihoodScore] {
        var ctx = encode(context)
        let conts = continuations.map(encode)
        if let i = conts.firstIndex(where: \.isEmpty) {
            throw HMSTError.invalidArgument("the continuation \"\(continuations[i])\" encodes to no tokens")
        }
        if ctx.isEmpty {
            guard let eos = tokenizer.eosId else { throw HMSTError.invalidArgument("empty context and no end-of-text token to start from") }
            ctx = [eos]
        }
        return try session.logLikelihoods(context: ctx, continuations: conts, vocabLimit: tokenizer.vocabSize)
    }

    /// Rolling log-likelihood of text after an optional context (memories): see the header.
    public func scoreRolling(text: String, context: String = "") throws -> LogLikelihoodScore {
        let toks = encode(text)
        guard !toks.isEmpty else { throw HMSTError.invalidArgument("the text encodes to no tokens") }
        var ctx = encode(context)
        if ctx.isEmpty, let eos = tokenizer.eosId { ctx = [eos] }
        guard !ctx.isEmpty || toks.count > 1 else {
            throw HMSTError.invalidArgument("a one-token text without an end-of-text token has nothing to score")
        }
        return try session.logLikelihood(ctx + toks, from: max(1, ctx.count), vocabLimit: tokenizer.vocabSize)
    }

    /// Greedy generation from the prompt until a stop string, end of text or maxTokens.
    public func generate(prompt: String, until: [String], maxTokens: Int) throws -> String {
        session.reset()
        var req = TextGenerationRequest()
        req.maxTokens = maxTokens
        req.sampling.temperature = 0
        req.stopStrings = until
        let r = try session.generate(prompt: Array(prompt.utf8), tokenizer: tokenizer, req)
        session.reset()
        return r.string
    }

    public func run(_ tasks: [EvalTask], memoryDirectory: String? = nil) throws -> EvalReport {
        let t0 = Clock.nowMs()
        var names = Set<String>()
        for t in tasks where !names.insert(t.name).inserted { throw HMSTError.invalidArgument("two tasks are named \(t.name)") }
        var report = EvalReport()
        report.options = options
        report.nCtx = nCtx
        report.promptFormat = promptFormat
        report.memoryDirectory = memoryDirectory
        for task in tasks {
            for c in options.conditions {
                let (result, records) = try run(task, condition: c)
                report.results.append(result)
                if options.keepItems { report.items += records }
            }
        }
        report.seconds = (Clock.nowMs() - t0) / 1000
        return report
    }

    /// One task under one condition.
    public func run(_ task: EvalTask, condition: MemoryCondition) throws -> (EvalResult, [EvalItemRecord]) {
        guard !task.items.isEmpty else { throw HMSTError.invalidArgument("task \(task.name) has no items") }
        var records: [EvalItemRecord] = []
        var columns: [String: [Double]] = [:]   // per-item values by metric input
        var names: [String] = []                // extra mean metrics, in order
        func add(_ k: String, _ v: Double) { columns[k, default: []].append(v) }
        let knn = try knnDatastore(task, condition)
        for item in task.items {
            let query = task.outputType == .loglikelihoodRolling ? item.text : item.prompt
            let mems: [String]
            do { mems = try memories(for: item, query: query, condition: condition) } catch let e as HMSTError {
                throw HMSTError(e.status, "task \(task.name), item \(item.id): \(e.message)")
            }
            var f: [(String, JSONValue)] = []
            // episodic entries as soft tokens: the context is built from their keys
            let injecting = soft != nil && condition != .off
            if injecting && task.outputType == .loglikelihoodRolling {
                throw HMSTError.unsupported("task \(task.name): --episodic-injection \(options.episodicInjection.rawValue) scores loglikelihood, "
                                            + "multiple_choice and generate_until tasks (a rolling text has no question to put the memories before)")
            }
            if injecting && task.outputType == .generateUntil && options.critic != nil {
                throw HMSTError.unsupported("task \(task.name): the critic judges text prompts; --critic with --episodic-injection \(options.episodicInjection.rawValue) is not supported")
            }
            do {
                let injected = injecting ? try injectedContext(try promptMemories(for: item, query: query, condition: condition),
                                                               question: item.prompt) : nil
                switch task.outputType {
                case .loglikelihood:
                    let s = try injected.map { try scoreInjected($0, continuation: item.target) }
                        ?? score(context: prompt(memories: mems, question: item.prompt), continuation: item.target)
                    add("acc", s.isGreedy ? 1 : 0)
                    add("answer_nll", -s.logprob / Double(s.count))
                    add("loglik", s.logprob)
                    add("items", 1)
                    f = [("logprob", .number(s.logprob)), ("n_tokens", .number(Double(s.count))),
                         ("answer_nll", .number(-s.logprob / Double(s.count))), ("is_greedy", .bool(s.isGreedy))]
                case .multipleChoice:
                    let p = prompt(memories: mems, question: item.prompt)
                    let scores = try injected.map { ctx in try item.choices.map { try scoreInjected(ctx, continuation: $0) } }
                        ?? score(context: p, continuations: item.choices)
                    let ll = scores.map(\.logprob)
                    let mc = EvalMetrics.multipleChoice(logliks: ll, choiceBytes: item.choices.map(\.utf8.count), gold: item.gold)
                    let g = scores[item.gold]
                    add("acc", mc.acc)
                    add("acc_norm", mc.accNorm)
                    add("answer_nll", -g.logprob / Double(g.count))
                    f = [("logprobs", .array(ll.map(JSONValue.number))), ("gold", .number(Double(item.gold))),
                         ("pred", .number(Double(mc.pred))), ("pred_norm", .number(Double(mc.predNorm))),
                         ("acc", .number(mc.acc)), ("acc_norm", .number(mc.accNorm)), ("answer_nll", .number(-g.logprob / Double(g.count)))]
                case .generateUntil:
                    let p = prompt(memories: mems, question: item.prompt)
                    let (out, judged) = try injected.map { (try generateInjected($0, until: task.until, maxTokens: task.maxGenTokens), nil) }
                        ?? answerJudged(prompt: p, item: item, condition: condition, until: task.until, maxTokens: task.maxGenTokens)
                    let em = EvalMetrics.exactMatch(out, item.target)
                    let s = try injected.map { try scoreInjected($0, continuation: item.target) } ?? score(context: p, continuation: item.target)
                    add("exact_match", em ? 1 : 0)
                    add("answer_nll", -s.logprob / Double(s.count))
                    f = [("generation", .string(out)), ("target", .string(item.target)), ("exact_match", .bool(em)),
                         ("logprob", .number(s.logprob)), ("n_tokens", .number(Double(s.count))),
                         ("answer_nll", .number(-s.logprob / Double(s.count)))]
                    if let judged { add("critic_p", judged); f.append(("critic_p", .number(judged))) }
                case .loglikelihoodRolling:
                    let s = try scoreRolling(text: item.text, context: memoryPrefix(mems))
                    let bytes = item.text.utf8.count, words = EvalMetrics.wordCount(item.text)
                    add("loglik", s.logprob)
                    add("tokens", Double(s.count))
                    add("bytes", Double(bytes))
                    add("words", Double(words))
                    f = [("logprob", .number(s.logprob)), ("n_tokens", .number(Double(s.count))),
                         ("bytes", .number(Double(bytes))), ("words", .number(Double(words))),
                         ("bits_per_byte", .number(EvalMetrics.bitsPerByte(loglik: s.logprob, bytes: bytes)))]
                }
            } catch let e as HMSTError {
                throw HMSTError(e.status, "task \(task.name), item \(item.id) (line \(item.line)): \(e.message)")
            }
            if let knn, task.outputType == .loglikelihood || task.outputType == .generateUntil {
                var ctx = encode(prompt(memories: mems, question: item.prompt))
                if ctx.isEmpty, let eos = tokenizer.eosId { ctx = [eos] }
                let nll = try KNNLM.answerNLL(session: session, datastore: knn, context: ctx, continuation: encode(item.target),
                                              lambdas: options.knnLambdas, k: options.knnK)
                for (l, v) in zip(options.knnLambdas, nll) {
                    let name = "knn_answer_nll@\(l)"
                    if !names.contains(name) { names.append(name) }
                    add(name, v)
                    f.append((name, .number(v)))
                }
            }
            if options.keepItems {
                records.append(EvalItemRecord(task: task.name, condition: condition, id: item.id, memories: mems, fields: f,
                                              metadata: item.metadata))
            }
        }
        let metrics = aggregate(task.outputType, columns) + names.map { meanMetric($0, columns) }
        return (EvalResult(task: task.name, outputType: task.outputType, file: task.path, condition: condition,
                           n: task.items.count, metrics: metrics), records)
    }

    /// The kNN-LM datastore for a task under the off condition: every distinct gold memory text
    /// of its items; nil when no λ is asked for or the task has no memories.
    func knnDatastore(_ task: EvalTask, _ condition: MemoryCondition) throws -> KNNDatastore? {
        guard !options.knnLambdas.isEmpty, condition == .off,
              task.outputType == .loglikelihood || task.outputType == .generateUntil else { return nil }
        var seen = Set<String>()
        let store = KNNDatastore(C: model.dims.C)
        for item in task.items {
            for m in item.memory where seen.insert(m).inserted {
                let toks = encode(m)
                try store.add(tokens: Array(toks.prefix(nCtx)), session: session)
            }
        }
        return store.count > 0 ? store : nil
    }

    func meanMetric(_ name: String, _ cols: [String: [Double]]) -> EvalMetricValue {
        let v = cols[name] ?? []
        let ci = EvalMetrics.bootstrapMean(v, resamples: options.resamples, seed: options.seed)
        return EvalMetricValue(name: name, value: v.reduce(0, +) / Double(max(1, v.count)), low: ci.low, high: ci.high, n: v.count)
    }

    /// Metric values and bootstrap intervals from the per-item columns.
    func aggregate(_ type: EvalOutputType, _ cols: [String: [Double]]) -> [EvalMetricValue] {
        let B = options.resamples, seed = options.seed
        func mean(_ name: String, from col: String? = nil) -> EvalMetricValue {
            let v = cols[col ?? name] ?? []
            let ci = EvalMetrics.bootstrapMean(v, resamples: B, seed: seed)
            return EvalMetricValue(name: name, value: v.reduce(0, +) / Double(max(1, v.count)), low: ci.low, high: ci.high, n: v.count)
        }
        /// f(Σ num, Σ den) over items, resampled together
        func ratio(_ name: String, _ num: String, _ den: String, _ f: @escaping (Double, Double) -> Double) -> EvalMetricValue {
            let a = cols[num] ?? [], b = cols[den] ?? []
            let ci = a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    EvalMetrics.bootstrapInterval(n: pa.count, resamples: B, seed: seed) { idx in
                        var x = 0.0, y = 0.0
                        for i in idx { x += pa[i]; y += pb[i] }
                        return f(x, y)
                    }
                }
            }
            return EvalMetricValue(name: name, value: f(a.reduce(0, +), b.reduce(0, +)), low: ci.low, high: ci.high, n: a.count)
        }
        switch type {
        case .loglikelihood:
            // exp(−mean over items of Σ log p): the ratio of Σ log p to the item count
            let ppl = ratio("perplexity", "loglik", "items") { EvalMetrics.perplexity(loglik: $0, units: Int($1)) }
            return [mean("acc"), mean("answer_nll"), ppl]
        case .multipleChoice:
            return [mean("acc"), mean("acc_norm"), mean("answer_nll")]
        case .generateUntil:
            return [mean("exact_match"), mean("answer_nll")] + criticMetrics(cols)
        case .loglikelihoodRolling:
            return [ratio("bits_per_byte", "loglik", "bytes") { EvalMetrics.bitsPerByte(loglik: $0, bytes: Int($1)) },
                    ratio("byte_perplexity", "loglik", "bytes") { EvalMetrics.perplexity(loglik: $0, units: Int($1)) },
                    ratio("word_perplexity", "loglik", "words") { EvalMetrics.perplexity(loglik: $0, units: Int($1)) },
                    ratio("token_perplexity", "loglik", "tokens") { EvalMetrics.perplexity(loglik: $0, units: Int($1)) }]
        }
    }
}

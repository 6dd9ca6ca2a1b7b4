// Session: one conversation's state over a shared, read-only Decoder: the KV cache, the
// workspace, the token history and the optional route trace. One thread at a time.

public struct SessionParams: Sendable {
    /// Context length in tokens; 0 = the model's max_position_embeddings.
    public var nCtx = 0
    /// Most tokens per forward call; longer inputs are split into chunks.
    public var nBatch = 256
    /// Threads for this session's work; 0 = the library-wide count.
    public var nThreads = 0
    /// Record which experts each token used, per layer.
    public var traceRoutes = false
    /// KV cache storage: f32, or bf16 (half the memory and the bytes decode reads per token)
    public var kvType = KVCacheType.f32

    public init() {}
}

/// Less compute than the model's full forward, for the engine's early-exit and expert decisions:
/// `layers` runs only the first n layers and reads the logits from there (through the model's
/// final norm and head, or the trained exit head of that layer when the checkpoint has one);
/// `expertsPerToken` routes each token to its top n experts instead of the model's K. nil:
/// the model's own. A budget holds for a whole context: change it only after reset().
public struct ComputeBudget: Sendable, Equatable {
    public var layers: Int?
    public var expertsPerToken: Int?
    public init(layers: Int? = nil, expertsPerToken: Int? = nil) {
        self.layers = layers
        self.expertsPerToken = expertsPerToken
    }

    /// A clear error unless 1 <= layers <= L and 1 <= expertsPerToken <= K.
    public func validate(for d: DecoderDims) throws {
        if let n = layers, !(1...d.L).contains(n) {
            throw HMSTError.invalidArgument("the compute budget's layers \(n) must be in 1 ... \(d.L)")
        }
        if let k = expertsPerToken, !(1...d.K).contains(k) {
            throw HMSTError.invalidArgument("the compute budget's experts per token \(k) must be in 1 ... \(d.K)")
        }
    }

    /// 2 x multiply-adds per token of the projections this budget runs (attention projections,
    /// router, the chosen experts, an exit head's adapter, the head), for cost accounts;
    /// attention over the cache is not included.
    public func matmulFLOPsPerToken(_ d: DecoderDims, exitAdapter: Bool = false) -> Double {
        let L = Double(layers ?? d.L), K = Double(expertsPerToken ?? d.K)
        let C = Double(d.C)
        let attn = C * Double(d.qDim) * 2 + C * Double(d.kvDim) * 2
        let ffn = K * 3 * C * Double(d.F) + C * Double(d.E)
        let adapter = exitAdapter && (layers ?? d.L) < d.L ? C * C : 0
        return 2 * (L * (attn + ffn) + adapter + C * Double(d.V))
    }

    /// matmulFLOPsPerToken for a decoder (its exit head counted when this budget uses it).
    public func matmulFLOPsPerToken(_ decoder: Decoder) -> Double {
        matmulFLOPsPerToken(decoder.dims, exitAdapter: decoder.exitHead != nil && decoder.exitHead?.layer == layers)
    }
}

/// The expert trace: experts and gates of every token evaluated since the last reset (when
/// tracing). "Expert", not "route": the controller's routing decisions are another thing.
public struct ExpertTrace: Sendable {
    public var nLayers: Int
    public var K: Int
    public var experts: [Int32] = []  // [N, L, K]
    public var gates: [Float] = []    // [N, L, K]
    public var count: Int { experts.count / max(1, nLayers * K) }
}

public final class Session: @unchecked Sendable {
    public let decoder: Decoder
    public let params: SessionParams
    public let nCtx: Int
    public let threads: Int
    let cache: KVCache
    let ws: Workspace
    public internal(set) var history: [Int32] = []
    /// How many leading positions of the cache hold what evaluating history[0..<n] from an
    /// empty context gives: positions from an injected row onwards do not (their tokens are
    /// placeholders), so they are never reused for a prompt that names those tokens.
    public private(set) var reusableLength = 0
    public private(set) var trace: ExpertTrace
    /// the decoder's copy head over this context (Copy/CopyHeadSession.swift), if it has one
    let copy: CopyState?
    /// The residual stream after the last evaluate's final chunk ([rows, C], rows = that chunk's
    /// tokens), at the depth of the budget: what an exit head reads. Valid until the next evaluate.
    func residual(rows: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: ws.x.pointer, count: rows * decoder.dims.C)
    }

    /// Rows of ws.logits valid after the last evaluate: 1 (last token) or the batch size.
    public internal(set) var logitsRows = 0
    /// The compute budget of this context (set with setBudget, after a reset).
    public private(set) var budget = ComputeBudget()

    /// Sets the compute budget; the context must be empty (reset) because the cache of a
    /// shallower forward has no entries for the skipped layers.
    public func setBudget(_ b: ComputeBudget) throws {
        try b.validate(for: decoder.dims)
        guard cache.length == 0 || b == budget else {
            throw HMSTError.invalidArgument("the compute budget can change only on an empty context (reset first)")
        }
        budget = b
    }

    public init(decoder: Decoder, params: SessionParams) throws {
        let d = decoder.dims
        guard params.nCtx >= 0, params.nCtx <= d.maxPositions else {
            throw HMSTError.invalidArgument("n_ctx \(params.nCtx) must be in 0 (model maximum) ... \(d.maxPositions)")
        }
        guard params.nBatch >= 1, params.nBatch <= 65536 else {
            throw HMSTError.invalidArgument("n_batch \(params.nBatch) must be in 1 ... 65536")
        }
        guard params.nThreads >= 0, params.nThreads <= Threads.maxThreads else {
            throw HMSTError.invalidArgument("n_threads \(params.nThreads) must be in 0 (library default) ... \(Threads.maxThreads)")
        }
        self.decoder = decoder
        self.params = params
        nCtx = params.nCtx == 0 ? d.maxPositions : params.nCtx
        // Threads.count starts hmst's worker pool (at the library default) if nothing has yet: a
        // context given its own n_threads must not find the pool without workers, which ran its
        // GEMVs and attention on the calling thread alone (decode at "2 threads" was 1-thread decode
        // plus 2-thread OpenBLAS for prompts). The pool's size caps the context's count.
        let poolThreads = Threads.count
        threads = params.nThreads == 0 ? poolThreads : params.nThreads
        let maxT = min(params.nBatch, nCtx)
        cache = try KVCache(dims: d, nCtx: nCtx, type: params.kvType)
        ws = try Workspace(dims: d, maxT: maxT, nCtx: nCtx, widenCount: decoder.weights.needsWidening ? decoder.weights.largestMatrix : 1,
                       kvType: params.kvType)
        trace = ExpertTrace(nLayers: d.L, K: d.K)
        let n = nCtx
        copy = decoder.copyHead.map { CopyState(head: $0, decoder: decoder, nCtx: n, maxT: maxT) }
    }

    public var position: Int { cache.length }
    public var memoryBytes: Int { cache.bytes + ws.bytes }

    public func reset() { rewind(to: 0) }

    /// Forgets positions >= n (n is clamped to 0 ... position): the cache, the history, the
    /// expert trace and the copy head's state end at n. The logits are gone until the next
    /// evaluate.
    public func rewind(to n: Int) {
        let n = max(0, min(n, cache.length))
        cache.truncate(to: n)
        if history.count > n { history.removeLast(history.count - n) }
        let keep = n * trace.nLayers * trace.K
        if trace.experts.count > keep {
            trace.experts.removeLast(trace.experts.count - keep)
            trace.gates.removeLast(trace.gates.count - keep)
        }
        reusableLength = min(reusableLength, n)
        logitsRows = 0
        copy?.truncate(to: n)
    }

    /// Prompt caching: rewinds the context to the longest prefix of `tokens` it already holds
    /// (reusable positions only), leaving at least the last token of `tokens` to evaluate so
    /// that its logits are computed. Returns that prefix's length; evaluating
    /// tokens[result...] then gives the context `tokens` would give from an empty one, up to
    /// rounding (the cached rows were computed in other batches).
    @discardableResult
    public func keepPrefix(of tokens: [Int32]) -> Int {
        let n = sharedPrefixLength(with: tokens.dropLast())
        rewind(to: n)
        return n
    }

    /// Prompt caching across contexts (a server's slots): replaces this context with the first
    /// `count` positions of another over the same decoder, cache type and compute budget (its
    /// cache rows, history and expert trace; clamped to the other's reusable positions and this
    /// context's size), as if those tokens had been evaluated here. Returns the positions copied:
    /// 0, leaving this context as it was, for another decoder, cache type or budget, a decoder
    /// with a copy head (whose state follows the text), or the same context.
    @discardableResult
    public func copyPrefix(from other: Session, count: Int) -> Int {
        guard other !== self, other.decoder === decoder, other.cache.type == cache.type, other.budget == budget,
              copy == nil, other.copy == nil else { return 0 }
        let n = max(0, min(count, other.reusableLength, nCtx))
        guard n > 0 else { return 0 }
        cache.copyRows(from: other.cache, count: n)
        history = Array(other.history[0..<n])
        let perPosition = trace.nLayers * trace.K
        trace.experts = Array(other.trace.experts.prefix(n * perPosition))
        trace.gates = Array(other.trace.gates.prefix(n * perPosition))
        reusableLength = n
        logitsRows = 0
        return n
    }

    /// How many leading tokens of `tokens` the context holds at reusable positions.
    public func sharedPrefixLength(with tokens: ArraySlice<Int32>) -> Int {
        let limit = min(reusableLength, tokens.count)
        var n = 0
        while n < limit && history[n] == tokens[tokens.startIndex + n] { n += 1 }
        return n
    }

    /// Appends `tokens` to the context. With allLogits, logits for every token of the final
    /// chunk are kept (all tokens if they fit one batch); otherwise only the last token's.
    /// injected: rows given as embeddings at positions of `tokens` (0 ..< tokens.count) in place
    /// of those tokens' embeddings (InjectedEmbeddings; the episodic soft tokens).
    public func evaluate(_ tokens: [Int32], allLogits: Bool = false, injected: InjectedEmbeddings? = nil) throws {
        let d = decoder.dims
        if let injected { try injected.validate(C: d.C, limit: tokens.count, vocabulary: d.V) }
        let inject = injected.flatMap { $0.isEmpty ? nil : $0 }
        guard !tokens.isEmpty else { throw HMSTError.invalidArgument("no tokens to evaluate") }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= d.V }) {
            throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(d.V)")
        }
        guard cache.length + tokens.count <= nCtx else {
            throw HMSTError.invalidArgument("context full: \(cache.length) + \(tokens.count) tokens exceed n_ctx \(nCtx)")
        }
        if allLogits && tokens.count > ws.maxT {
            throw HMSTError.invalidArgument("all-token logits need the batch to fit n_batch \(ws.maxT); got \(tokens.count) tokens")
        }
        let callStart = cache.length, wasReusable = reusableLength == callStart
        var start = 0
        while start < tokens.count {
            let n = min(ws.maxT, tokens.count - start)
            let last = start + n == tokens.count
            var traceE: [Int32] = [], traceG: [Float] = []
            if params.traceRoutes {
                traceE = [Int32](repeating: -1, count: n * d.L * d.K)
                traceG = [Float](repeating: 0, count: n * d.L * d.K)
            }
            let pos0 = cache.length
            let chunkInjected = inject.map { $0.slice(start..<(start + n), C: d.C) }
            tokens.withUnsafeBufferPointer { tp in
                traceE.withUnsafeMutableBufferPointer { te in
                    traceG.withUnsafeMutableBufferPointer { tg in
                        decoder.forward(tokens: tp.baseAddress! + start, T: n, cache: cache, ws: ws,
                                        logits: last ? (allLogits ? .all : .last) : .none, threads: threads,
                                        traceExperts: params.traceRoutes ? te.baseAddress : nil,
                                        traceGates: params.traceRoutes ? tg.baseAddress : nil, budget: budget,
                                        injected: chunkInjected)
                    }
                }
                // the copy head reads the final layer's states: not under a shallower budget
                if let copy, (budget.layers ?? d.L) == d.L {
                    copy.observe(tokens: tp.baseAddress! + start, T: n, pos0: pos0, x: ws.x.pointer, logits: ws.logits.pointer,
                                 logitsRows: last ? (allLogits ? n : 1) : 0, V: d.V,
                                 copyTokens: chunkInjected?.copySources ?? [:])
                }
            }
            if params.traceRoutes {
                trace.experts += traceE
                trace.gates += traceG
            }
            start += n
            if last { logitsRows = allLogits ? n : 1 }
        }
        history += tokens
        if wasReusable { reusableLength = callStart + (inject?.positions.min() ?? tokens.count) }
    }

    /// Logits of row r of the last evaluate: [V]. Valid until the next evaluate.
    public func logits(row r: Int = -1) throws -> UnsafeBufferPointer<Float> {
        let V = decoder.dims.V
        guard logitsRows > 0 else { throw HMSTError.invalidArgument("no logits yet: evaluate tokens first") }
        let row = r < 0 ? logitsRows - 1 : r
        guard row < logitsRows else { throw HMSTError.invalidArgument("logits row \(r) is outside 0 ..< \(logitsRows)") }
        return UnsafeBufferPointer(start: ws.logits.pointer + row * V, count: V)
    }
}

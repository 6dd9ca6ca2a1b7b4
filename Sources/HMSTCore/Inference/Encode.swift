// Encoding text with the base model, for the memories: the final-norm hidden states of every
// token ([T, C], what the LM head reads), the model's surprise on the text (mean next-token
// negative log-likelihood) and a pooled embedding (mean of the hidden states, L2-normalised),
// the vector semantic memory stores.

public struct TextEncoding: Sendable {
    /// [T, C] final-norm hidden states, row per token
    public var hidden: [Float]
    public var T: Int
    public var C: Int
    /// mean next-token negative log-likelihood in nats over T-1 predictions (0 when T == 1)
    public var surprise: Double
    /// [T-1]: log p(token[t+1] | tokens[...t]) under the model, nats
    public var nextTokenLogProbs: [Double] = []
    /// [T] the tokens encoded
    public var tokens: [Int32] = []
}

extension Session {
    /// Runs tokens through a fresh context (the session is reset first) and returns every
    /// token's hidden state and the mean next-token loss. Tokens beyond n_ctx are an error.
    public func encode(_ tokens: [Int32]) throws -> TextEncoding {
        reset()
        let d = decoder.dims, C = d.C, V = d.V
        guard !tokens.isEmpty else { throw HMSTError.invalidArgument("encode: no tokens") }
        guard tokens.count <= nCtx else { throw HMSTError.invalidArgument("encode: \(tokens.count) tokens exceed n_ctx \(nCtx)") }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= V }) {
            throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(V)")
        }
        var hidden = [Float](repeating: 0, count: tokens.count * C)
        var nll = 0.0
        var logProbs = [Double]()
        logProbs.reserveCapacity(tokens.count)
        var start = 0
        while start < tokens.count {
            let n = min(ws.maxT, tokens.count - start)
            tokens.withUnsafeBufferPointer { tp in
                decoder.forward(tokens: tp.baseAddress! + start, T: n, cache: cache, ws: ws, logits: .all, threads: threads)
            }
            // after an all-rows forward, ws.xn holds the final-norm hidden states of the chunk
            hidden.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: start * C).update(from: ws.xn.pointer, count: n * C) }
            for t in 0..<n where start + t + 1 < tokens.count {
                let row = ws.logits.pointer + t * V
                var m = row[0]
                for v in 1..<V { m = max(m, row[v]) }
                var s = 0.0
                for v in 0..<V { s += Double(expf(row[v] - m)) }
                let lp = Double(row[Int(tokens[start + t + 1])]) - Double(m) - log(s)
                logProbs.append(lp)
                nll -= lp
            }
            start += n
        }
        history += tokens
        logitsRows = 0
        return TextEncoding(hidden: hidden, T: tokens.count, C: C, surprise: tokens.count > 1 ? nll / Double(tokens.count - 1) : 0,
                            nextTokenLogProbs: logProbs, tokens: tokens)
    }
}

extension Session {
    /// The pooled embedding (TextEncoding.pooled: the unit mean of the final-norm hidden
    /// states) of each sequence, the sequences packed into one forward (Decoder.forward's
    /// segments): many short texts cost one forward's GEMMs instead of one small GEMM each,
    /// whose packing of the weights dominated (train-memory spent most of its set-up embedding
    /// 17k facts and questions one by one). The sequences together must fit one batch and the
    /// context, in an f32 cache; the session is reset first (and left holding them). Equal to encoding each alone up to
    /// rounding (the GEMMs sum over other row counts).
    func pooledEmbeddings(_ seqs: [[Int32]]) throws -> [[Float]] {
        reset()
        let d = decoder.dims, C = d.C
        let total = seqs.reduce(0) { $0 + $1.count }
        guard cache.type == .f32 else { throw HMSTError.invalidArgument("packed embeddings need an f32 KV cache") }
        guard total <= ws.maxT, total <= nCtx else {
            throw HMSTError.invalidArgument("packed embeddings: \(total) tokens exceed one batch of \(min(ws.maxT, nCtx))")
        }
        guard !seqs.isEmpty else { return [] }
        var tokens: [Int32] = [], segments: [Range<Int>] = []
        tokens.reserveCapacity(total)
        for s in seqs {
            guard !s.isEmpty else { throw HMSTError.invalidArgument("encode: no tokens") }
            if let bad = s.first(where: { $0 < 0 || Int($0) >= d.V }) {
                throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(d.V)")
            }
            segments.append(tokens.count..<(tokens.count + s.count))
            tokens += s
        }
        tokens.withUnsafeBufferPointer { tp in
            decoder.forward(tokens: tp.baseAddress!, T: total, cache: cache, ws: ws, logits: .hidden, threads: threads,
                            segments: segments)
        }
        return segments.map { r in
            var sum = [Double](repeating: 0, count: C)
            for t in r {
                let row = ws.xn.pointer + t * C
                for c in 0..<C { sum[c] += Double(row[c]) }
            }
            return HiddenSum(sum).unitMean()
        }
    }
}

extension TextEncoding {
    /// Mean over tokens of the hidden states, L2-normalised: [C].
    public func pooled() -> [Float] {
        var sum = HiddenSum(C: C)
        sum.add(self)
        return sum.unitMean()
    }
}

/// Running sum of hidden states over windows, for a mean over all their tokens.
struct HiddenSum {
    var v: [Double]
    init(C: Int) { v = [Double](repeating: 0, count: C) }
    init(_ sums: [Double]) { v = sums }
    mutating func add(_ e: TextEncoding) {
        for t in 0..<e.T { for c in 0..<e.C { v[c] += Double(e.hidden[t * e.C + c]) } }
    }
    /// The mean direction, unit length (the count cancels in the normalisation).
    func unitMean() -> [Float] {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { Float(norm > 0 ? $0 / norm : 0) }
    }
}

extension LanguageModel {
    /// Tokenizes text with the model's tokenizer, keeping the last `limit` tokens.
    public func tokens(text: String, limit: Int) throws -> [Int32] {
        guard let tokenizer else { throw HMSTError.invalidArgument("this model has no tokenizer: encode token ids instead") }
        // literal: text to embed (a memory entry, a query, an embeddings input) is characters; an
        // "<|endoftext|>" in it is not the token (PromptText)
        let tokens = tokenizer.encode(PromptText(literal: text))
        guard !tokens.isEmpty else { throw HMSTError.invalidArgument("encode: the text has no tokens") }
        return tokens.count > limit ? Array(tokens.suffix(limit)) : tokens
    }

    /// Tokenizes (with the model's tokenizer) and encodes text; at most maxTokens tokens are
    /// kept (the most recent), and at most the model's context.
    public func encode(text: String, maxTokens: Int = 2048) throws -> (tokens: [Int32], encoding: TextEncoding) {
        let tokens = try tokens(text: text, limit: min(maxTokens, dims.maxPositions))
        return (tokens, try encode(tokens: tokens))
    }

    /// Encodes tokens that fit the model's context (an error beyond it).
    public func encode(tokens: [Int32]) throws -> TextEncoding {
        var p = SessionParams()
        p.nCtx = max(1, min(tokens.count, dims.maxPositions))
        return try Session(decoder: decoder, params: p).encode(tokens)
    }

    /// Encodes any number of tokens window by window of the model's context (each window a
    /// fresh context), calling body with each window's encoding in order.
    public func encodeWindows(tokens: [Int32], _ body: (TextEncoding) throws -> Void) throws {
        guard !tokens.isEmpty else { throw HMSTError.invalidArgument("encode: no tokens") }
        let window = max(1, dims.maxPositions)
        var p = SessionParams()
        p.nCtx = min(tokens.count, window)
        let session = try Session(decoder: decoder, params: p)
        var start = 0
        while start < tokens.count {
            try body(try session.encode(Array(tokens[start..<min(tokens.count, start + window)])))
            start += window
        }
    }

    /// The pooled embedding of tokens: the mean of every token's hidden state over all windows,
    /// unit length, [C].
    public func embed(tokens: [Int32]) throws -> [Float] {
        var sum = HiddenSum(C: dims.C)
        try encodeWindows(tokens: tokens) { sum.add($0) }
        return sum.unitMean()
    }

    /// embed(tokens:) of each sequence: the ones that fit a packing batch go several to a
    /// forward (Session.pooledEmbeddings), longer ones one by one, window by window.
    public func embed(batch: [[Int32]]) throws -> [[Float]] {
        var p = SessionParams()
        // no larger than the batch needs (a workspace holds nBatch rows of logits)
        let total = batch.reduce(0) { $0 + $1.count }
        p.nCtx = max(1, min(dims.maxPositions, LanguageModel.embedPackTokens, total))
        p.nBatch = p.nCtx
        p.kvType = .f32
        let session = try Session(decoder: decoder, params: p)
        var out = [[Float]](repeating: [], count: batch.count)
        var chunk: [Int] = [], used = 0
        func flush() throws {
            guard !chunk.isEmpty else { return }
            for (v, i) in zip(try session.pooledEmbeddings(chunk.map { batch[$0] }), chunk) { out[i] = v }
            chunk.removeAll(keepingCapacity: true)
            used = 0
        }
        for (i, s) in batch.enumerated() {
            if s.count > p.nCtx || s.isEmpty {
                out[i] = try embed(tokens: s)   // its own windows (or its error)
                continue
            }
            if used + s.count > p.nCtx { try flush() }
            chunk.append(i)
            used += s.count
        }
        try flush()
        return out
    }

    /// Tokens per packed forward of embed(batch:): enough rows for the GEMMs to run at speed.
    static let embedPackTokens = 512

    /// The most recent tokens of a text that its embeddings read.
    public static let embedMaxTokens = 8192

    /// The pooled embedding of text (its last maxTokens tokens): [C], unit length.
    public func embed(text: String, maxTokens: Int = LanguageModel.embedMaxTokens) throws -> [Float] {
        try embed(tokens: try tokens(text: text, limit: maxTokens))
    }
}

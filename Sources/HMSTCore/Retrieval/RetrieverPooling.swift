// RetrieverPooling: which vector of a text a retrieval projection (RetrieverProjection.swift)
// reads. The mean of the final hidden states alone ("hidden-mean", [C], the first format's only
// pooling) blurs the rare BPE pieces of an entity's name, which decide which fact answers a
// question; the mean of the input token embeddings keeps their identity. "hidden-mean+token-
// embedding-mean" concatenates both, each unit length: [2C]. README, "Retrieval", has the
// measurement that chose it (held-out dense recall@4 0.29 -> 0.90 on the fact benchmark).

public enum RetrieverPooling: String, Sendable, CaseIterable {
    /// unit(mean_t h_t), h the final-norm hidden states: [C]
    case hidden = "hidden-mean"
    /// [unit(mean_t h_t) ; unit(mean_t E[token_t])], E the input embedding table: [2C]
    case hiddenAndTokens = "hidden-mean+token-embedding-mean"

    /// The feature size the projection reads: C or 2C.
    public func inputSize(C: Int) -> Int {
        switch self {
        case .hidden: return C
        case .hiddenAndTokens: return 2 * C
        }
    }

    /// The pooling a CLI or params name stands for: "hidden", "hidden+tokens" or the stored name.
    public static func named(_ s: String) throws -> RetrieverPooling {
        switch s {
        case "hidden", RetrieverPooling.hidden.rawValue: return .hidden
        case "hidden+tokens", RetrieverPooling.hiddenAndTokens.rawValue: return .hiddenAndTokens
        default: throw HMSTError.invalidArgument("retriever pooling \"\(s)\": expected hidden or hidden+tokens")
        }
    }
}

extension LanguageModel {
    /// The unit mean of the input token embeddings of tokens: [C]. Ids must be in the vocabulary.
    func tokenEmbeddingMean(tokens: [Int32]) throws -> [Float] {
        let C = dims.C, V = dims.V
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= V }) {
            throw HMSTError.invalidArgument("token id \(bad) is outside the vocabulary 0 ..< \(V)")
        }
        guard !tokens.isEmpty else { throw HMSTError.invalidArgument("encode: no tokens") }
        var row = [Float](repeating: 0, count: C), sum = [Double](repeating: 0, count: C)
        for t in tokens {
            row.withUnsafeMutableBufferPointer { decoder.weights.embed.copyRow(Int(t), to: $0.baseAddress!) }
            for c in 0..<C { sum[c] += Double(row[c]) }
        }
        // the count cancels in the normalisation
        let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return sum.map { Float(norm > 0 ? $0 / norm : 0) }
    }

    /// What a projection with this pooling reads for tokens: [pooling.inputSize(C)].
    public func retrievalFeatures(tokens: [Int32], pooling: RetrieverPooling) throws -> [Float] {
        let h = try embed(tokens: tokens)
        switch pooling {
        case .hidden: return h
        case .hiddenAndTokens: return h + (try tokenEmbeddingMean(tokens: tokens))
        }
    }

    /// As retrievalFeatures(tokens:pooling:) for text's last maxTokens tokens (as embed(text:)).
    public func retrievalFeatures(text: String, pooling: RetrieverPooling, maxTokens: Int = LanguageModel.embedMaxTokens) throws -> [Float] {
        try retrievalFeatures(tokens: try tokens(text: text, limit: maxTokens), pooling: pooling)
    }

    /// retrievalFeatures(tokens:pooling:) of each sequence, the hidden states of many in one
    /// forward (embed(batch:)).
    public func retrievalFeatures(batch: [[Int32]], pooling: RetrieverPooling) throws -> [[Float]] {
        let h = try embed(batch: batch)
        switch pooling {
        case .hidden: return h
        case .hiddenAndTokens: return try zip(h, batch).map { $0 + (try tokenEmbeddingMean(tokens: $1)) }
        }
    }

    /// retrievalFeatures(text:pooling:maxTokens:) of each text, batched.
    public func retrievalFeatures(texts: [String], pooling: RetrieverPooling, maxTokens: Int = LanguageModel.embedMaxTokens) throws -> [[Float]] {
        try retrievalFeatures(batch: try texts.map { try tokens(text: $0, limit: maxTokens) }, pooling: pooling)
    }
}

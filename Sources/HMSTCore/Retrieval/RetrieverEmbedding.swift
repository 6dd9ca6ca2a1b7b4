// RetrieverEmbedding: the vectors a model gives queries and documents for retrieval. Without a
// retrieval projection both are the pooled embedding (LanguageModel.embed, [C]); with one
// (model.retriever, RetrieverProjection.swift) a query is unit(fᵀ·Wq) and a document
// unit(fᵀ·Wd), [D], f the features its pooling names (RetrieverPooling.swift: [C] or [2C]).
// embedderName names which, so a semantic memory can refuse a query embedded differently from
// its vectors (SemanticMemoryText.swift).

extension LanguageModel {
    /// "pooled", or "projected-<hash of the projection and its pooling>".
    public var embedderName: String { retriever?.embedderName ?? "pooled" }

    /// The size of query and document embeddings: D with a projection, else C.
    public var embeddingDim: Int { retriever?.D ?? dims.C }

    /// [embeddingDim], unit length.
    public func queryEmbedding(text: String) throws -> [Float] {
        guard let r = retriever else { return try embed(text: text) }
        return try r.project(try retrievalFeatures(text: text, pooling: r.pooling), isQuery: true)
    }

    /// queryEmbedding(text:) of the text's tokens, given their pooled embedding (embed(tokens:),
    /// already computed by the caller), so the hidden-state pass is not run a second time.
    public func queryEmbedding(tokens: [Int32], pooled h: [Float]) throws -> [Float] {
        guard h.count == dims.C else { throw HMSTError.invalidArgument("queryEmbedding: the pooled embedding has \(h.count) values, not C = \(dims.C)") }
        guard let r = retriever else { return h }
        let f = r.pooling == .hidden ? h : h + (try tokenEmbeddingMean(tokens: tokens))
        return try r.project(f, isQuery: true)
    }

    /// [embeddingDim], unit length.
    public func documentEmbedding(text: String) throws -> [Float] {
        guard let r = retriever else { return try embed(text: text) }
        return try r.project(try retrievalFeatures(text: text, pooling: r.pooling), isQuery: false)
    }

    /// As documentEmbedding(text:), from token ids.
    public func documentEmbedding(tokens: [Int32]) throws -> [Float] {
        guard let r = retriever else { return try embed(tokens: tokens) }
        return try r.project(try retrievalFeatures(tokens: tokens, pooling: r.pooling), isQuery: false)
    }

    /// queryEmbedding(text:) of each text, the model's forwards batched (embed(batch:)).
    public func queryEmbeddings(texts: [String]) throws -> [[Float]] {
        try embeddings(texts: texts, isQuery: true)
    }

    /// documentEmbedding(text:) of each text, batched.
    public func documentEmbeddings(texts: [String]) throws -> [[Float]] {
        try embeddings(texts: texts, isQuery: false)
    }

    private func embeddings(texts: [String], isQuery: Bool) throws -> [[Float]] {
        guard let r = retriever else { return try embed(batch: try texts.map { try tokens(text: $0, limit: LanguageModel.embedMaxTokens) }) }
        return try retrievalFeatures(texts: texts, pooling: r.pooling).map { try r.project($0, isQuery: isQuery) }
    }
}

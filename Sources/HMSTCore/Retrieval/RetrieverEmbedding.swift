// RetrieverEmbedding: the vectors a model gives queries and documents for retrieval. Without a
// retrieval projection both are the pooled embedding (LanguageModel.embed, [C]); with one
// (model.retriever, RetrieverProjection.swift) a query is unit(eᵀ·Wq) and a document
// unit(eᵀ·Wd), [D]. embedderName names which, so a semantic memory can refuse a query embedded
// differently from its vectors (SemanticMemoryText.swift).

extension LanguageModel {
    /// "pooled", or "projected-<hash of the projection>".
    public var embedderName: String { retriever?.embedderName ?? "pooled" }

    /// The size of query and document embeddings: D with a projection, else C.
    public var embeddingDim: Int { retriever?.D ?? dims.C }

    /// [embeddingDim], unit length.
    public func queryEmbedding(text: String) throws -> [Float] {
        let e = try embed(text: text)
        return try retriever?.project(e, isQuery: true) ?? e
    }

    /// [embeddingDim], unit length.
    public func documentEmbedding(text: String) throws -> [Float] {
        let e = try embed(text: text)
        return try retriever?.project(e, isQuery: false) ?? e
    }

    /// As documentEmbedding(text:), from token ids.
    public func documentEmbedding(tokens: [Int32]) throws -> [Float] {
        let e = try embed(tokens: tokens)
        return try retriever?.project(e, isQuery: false) ?? e
    }
}

// Text in semantic memory: a text's vector is the model's document embedding (the pooled
// hidden state, or its retrieval projection: Retrieval/RetrieverEmbedding.swift), a query's the
// model's query embedding. The memory records which embedder built its vectors (the first
// model to embed a text for it; saved in the manifest) and refuses a model that embeds
// otherwise, since its queries would land in another space.

extension SemanticMemory {
    /// Throws INVALID_ARGUMENT unless the model's embeddings fit this memory: the dimension and
    /// the embedder that built the memory's vectors (when known).
    public func checkModel(_ model: LanguageModel) throws {
        // the embedder first: it names the cause when a projection also changed the dimension
        if let built = embedder, built != model.embedderName {
            throw HMSTError.invalidArgument("this semantic memory's vectors were built by the \(built) embedder, but the model embeds with \(model.embedderName) (\(model.embeddingDim) values; the memory holds \(config.dim)): use the model (and retriever) that built the memory, or rebuild it")
        }
        guard config.dim == model.embeddingDim else {
            throw HMSTError.invalidArgument("the model's embeddings have \(model.embeddingDim) values (\(model.embedderName)); the semantic memory's dimension is \(config.dim)")
        }
    }

    /// The vector this memory stores for text: [dim]. Records the model's embedder when the
    /// memory has none yet.
    public func embedding(of text: String, model: LanguageModel) throws -> [Float] {
        try checkModel(model)
        let v = try model.documentEmbedding(text: text)
        recordEmbedder(model.embedderName)
        return v
    }

    /// embedding(of:model:) of each text, flat: [texts.count * dim], the model's forwards
    /// batched (LanguageModel.documentEmbeddings).
    public func embeddings(of texts: [String], model: LanguageModel) throws -> [Float] {
        try checkModel(model)
        let v = try model.documentEmbeddings(texts: texts)
        recordEmbedder(model.embedderName)
        return v.flatMap { $0 }
    }

    /// The vector a query text is searched with: [dim].
    public func queryEmbedding(of text: String, model: LanguageModel) throws -> [Float] {
        try checkModel(model)
        return try model.queryEmbedding(text: text)
    }

    /// Embeds and adds one text; returns its id. Thread-safe.
    @discardableResult
    public func add(text: String, model: LanguageModel, source: String = "", owner: String = "") throws -> Int64 {
        try add(vectors: try embedding(of: text, model: model), metadata: [MemoryMetadata(text: text, source: source, owner: owner)])[0]
    }

    /// The k entries nearest the text's query embedding. Thread-safe.
    public func search(text: String, model: LanguageModel, k: Int, nprobe: Int? = nil) throws -> [SemanticHit] {
        try search(query: try queryEmbedding(of: text, model: model), k: k, nprobe: nprobe)
    }
}

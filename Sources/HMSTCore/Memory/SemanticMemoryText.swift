// Text in semantic memory: a text's vector is the model's pooled embedding
// (LanguageModel.embed), so the memory's dimension must be the model's hidden size.

extension SemanticMemory {
    /// Throws INVALID_ARGUMENT unless the model's embeddings fit this memory.
    public func checkModel(_ model: LanguageModel) throws {
        guard config.dim == model.dims.C else {
            throw HMSTError.invalidArgument("the model's hidden size \(model.dims.C) is not the semantic memory's dimension \(config.dim)")
        }
    }

    /// The vector this memory stores for text: [dim].
    public func embedding(of text: String, model: LanguageModel) throws -> [Float] {
        try checkModel(model)
        return try model.embed(text: text)
    }

    /// Embeds and adds one text; returns its id. Thread-safe.
    @discardableResult
    public func add(text: String, model: LanguageModel, source: String = "") throws -> Int64 {
        try add(vectors: try embedding(of: text, model: model), metadata: [MemoryMetadata(text: text, source: source)])[0]
    }

    /// The k entries nearest the text's embedding. Thread-safe.
    public func search(text: String, model: LanguageModel, k: Int, nprobe: Int? = nil) throws -> [SemanticHit] {
        try search(query: try embedding(of: text, model: model), k: k, nprobe: nprobe)
    }
}

// Text in semantic memory: a text's vector is the model's document embedding (the pooled
// hidden state, or its retrieval projection: Retrieval/RetrieverEmbedding.swift), a query's the
// model's query embedding. The memory records which embedder built its vectors (the first
// model to embed a text for it; saved in the manifest) and that model's ModelSignature, and
// refuses a model that embeds otherwise or has other weights, since its queries would land in
// another space.

extension SemanticMemory {
    /// Throws INVALID_ARGUMENT unless the model's embeddings fit this memory: the dimension and
    /// the embedder that built the memory's vectors (when known).
    public func checkModel(_ model: LanguageModel) throws {
        let (built, empty, builtByModel) = lock.withReadLock { (embedderName, entries.isEmpty, builtBy) }
        // the embedder first: it names the cause when a projection also changed the dimension
        // (an empty memory takes the embedder that fills it, at its dimension)
        if let built, built != model.embedderName, !empty {
            throw HMSTError.invalidArgument("this semantic memory's vectors were built by the \(built) embedder, but the model embeds with \(model.embedderName) (\(model.embeddingDim) values; the memory holds \(config.dim)): "
                                            + SemanticMemory.reencodeHint)
        }
        guard config.dim == model.embeddingDim else {
            throw HMSTError.invalidArgument("the model's embeddings have \(model.embeddingDim) values (\(model.embedderName)); the semantic memory's dimension is \(config.dim): "
                                            + SemanticMemory.reencodeHint)
        }
        // the same embedder on other weights (a pooled hidden state, a retriever copied along);
        // an empty memory takes the model that fills it
        if !empty, let builtByModel, let why = builtByModel.mismatch(with: ModelSignature(model: model)) {
            throw HMSTError.invalidArgument("this semantic memory's vectors were embedded by another model: \(why); " + SemanticMemory.reencodeHint)
        }
    }

    static let reencodeHint = "re-encode it for this model (`hmst memory reencode --dir DIR --model CHECKPOINT`; C hmst_semantic_reencode, "
        + "Python SemanticMemory.reencoded), or use the model that built it"

    /// The vector this memory stores for text: [dim] (checked against the memory's model;
    /// add it with add(vectors:metadata:embeddedBy:), which records that model).
    public func embedding(of text: String, model: LanguageModel) throws -> [Float] {
        try checkModel(model)
        return try model.documentEmbedding(text: text)
    }

    /// embedding(of:model:) of each text, flat: [texts.count * dim], the model's forwards
    /// batched (LanguageModel.documentEmbeddings).
    public func embeddings(of texts: [String], model: LanguageModel) throws -> [Float] {
        try checkModel(model)
        return try model.documentEmbeddings(texts: texts).flatMap { $0 }
    }

    /// The vector a query text is searched with: [dim].
    public func queryEmbedding(of text: String, model: LanguageModel) throws -> [Float] {
        try checkModel(model)
        return try model.queryEmbedding(text: text)
    }

    /// Embeds and adds one text; returns its id. Thread-safe.
    @discardableResult
    public func add(text: String, model: LanguageModel, source: String = "", owner: String = "") throws -> Int64 {
        try add(vectors: try embedding(of: text, model: model), metadata: [MemoryMetadata(text: text, source: source, owner: owner)],
                embeddedBy: model)[0]
    }

    /// The same entries (ids, metadata, owners) with vectors embedded anew by the model (its
    /// retriever's projection when it has one, so the dimension may change), in a fresh index
    /// of the same description, metric and nprobe; auto-assigned ids continue past every id used
    /// before (removed ones included). Entries without text (bare vectors) cannot be embedded
    /// again: INVALID_ARGUMENT naming them. A description that does not fit a new dimension
    /// (PQ16 of a D not divisible by 16) is FAISS's error. What a
    /// memory built by the model from these texts would hold. Embeds `batch` texts a forward.
    public func reencoded(for model: LanguageModel, batch: Int = 32) throws -> SemanticMemory {
        var c = config
        c.dim = model.embeddingDim
        let m: SemanticMemory
        do { m = try SemanticMemory(config: c) } catch let e as HMSTError {
            throw HMSTError(e.status, "the index \"\(c.description)\" does not fit the model's \(c.dim)-value embeddings (\(e.message)): "
                            + "rebuild the memory with another --index")
        }
        let (ids, metadata, next) = lock.withReadLock { () -> ([Int64], [MemoryMetadata], Int64) in
            let ids = entries.keys.sorted()
            return (ids, ids.compactMap { entries[$0] }, nextId)
        }
        let bare = zip(ids, metadata).filter { $0.1.text.isEmpty }.map(\.0)
        guard bare.isEmpty else {
            throw HMSTError.invalidArgument("\(bare.count) semantic entr\(bare.count == 1 ? "y has" : "ies have") no text to embed again (added as bare vectors; "
                                            + "ids \(bare.prefix(8).map(String.init).joined(separator: ", "))\(bare.count > 8 ? ", ..." : "")): remove them first")
        }
        var start = 0
        while start < ids.count {
            let end = min(ids.count, start + max(1, batch))
            let vectors = try m.embeddings(of: metadata[start..<end].map(\.text), model: model)
            _ = try m.add(vectors: vectors, metadata: Array(metadata[start..<end]), ids: Array(ids[start..<end]), embeddedBy: model)
            start = end
        }
        try m.recordEmbedder(model.embedderName, model: model)   // an empty memory records its model too
        m.waitForTraining()
        m.lock.withWriteLock { m.nextId = max(m.nextId, next) }
        return m
    }

    /// The k entries nearest the text's query embedding. Thread-safe.
    public func search(text: String, model: LanguageModel, k: Int, nprobe: Int? = nil) throws -> [SemanticHit] {
        try search(query: try queryEmbedding(of: text, model: model), k: k, nprobe: nprobe)
    }
}

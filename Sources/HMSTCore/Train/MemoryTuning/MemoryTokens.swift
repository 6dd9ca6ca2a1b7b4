// MemoryTokens: gives a pre-trained checkpoint the five MemoryPrompt markers before Stage 2:
// they are appended to the tokenizer as special added tokens and the embedding and LM head
// grow by as many rows, initialised to the mean of the existing rows (so a new token starts as
// an "average" token instead of noise). Every old row is kept bit for bit, so the logits of the
// old tokens for old inputs do not change. A checkpoint that already has the markers is used
// as it is.

public enum MemoryTokens {
    /// The parameters (vocabulary grown if needed) and the tokenizer with the markers.
    public static func prepare(model: LanguageModel) throws -> (params: Parameters, tokenizer: Tokenizer, added: Int) {
        guard let base = model.tokenizer as? Tokenizer else {
            throw HMSTError.invalidArgument("the checkpoint has no tokenizer.json; Stage 2 needs one to add the memory markers")
        }
        let params = try Parameters(model: model)
        let tokenizer = try base.addingSpecialTokens(MemoryPrompt.markers)
        let added = tokenizer.vocabSize - base.vocabSize
        let V = max(params.config.vocabSize, tokenizer.vocabSize)
        return (V == params.config.vocabSize ? params : try resized(params, vocabSize: V), tokenizer, added)
    }

    /// A copy of params with vocabSize rows in the embedding (and untied LM head): old rows
    /// copied, new rows set to the mean of the old ones. vocabSize must not shrink the vocabulary.
    public static func resized(_ p: Parameters, vocabSize: Int) throws -> Parameters {
        let oldV = p.config.vocabSize, C = p.config.hiddenSize
        guard vocabSize >= oldV else { throw HMSTError.invalidArgument("cannot shrink the vocabulary from \(oldV) to \(vocabSize)") }
        var config = p.config
        config.vocabSize = vocabSize
        try config.validate()
        let q = Parameters(config: config)
        for (i, name) in q.names.enumerated() {
            guard let j = p.index[name] else { throw HMSTError(.internal, "tensor \(name) missing from the model being resized") }
            let dst = q.values.pointer + q.offsets[i], src = p.values.pointer + p.offsets[j]
            let oldCount = p.shapes[j].reduce(1, *)
            dst.update(from: src, count: oldCount)
            let newCount = q.shapes[i].reduce(1, *)
            guard newCount > oldCount else { continue }
            // a vocabulary-sized table ([V, C]): the new rows are the mean of the old rows
            var mean = [Double](repeating: 0, count: C)
            for r in 0..<oldV { for c in 0..<C { mean[c] += Double(src[r * C + c]) } }
            for r in oldV..<vocabSize { for c in 0..<C { dst[r * C + c] = Float(mean[c] / Double(oldV)) } }
        }
        return q
    }
}

// MemoryTokens: gives a pre-trained checkpoint the five MemoryPrompt markers before Stage 2:
// they are appended to the tokenizer as special added tokens and the embedding and LM head
// grow by as many rows. A marker's rows start as the mean of the rows of its plain-text
// counterpart's tokens (MemoryPrompt.plainCounterparts: `<a>` as "\nAnswer:", `</a>` as "\n"), so
// what pre-training learnt about the plain layout carries over; a row with no counterpart starts
// as the mean of all old rows (an "average" token instead of noise). Every old row is kept bit for bit, so the logits of the
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
        guard V != params.config.vocabSize else { return (params, tokenizer, added) }
        var seeds: [Int: [Int32]] = [:]
        for marker in MemoryPrompt.markers {
            guard let id = tokenizer.id(for: marker), Int(id) >= params.config.vocabSize,
                  let plain = MemoryPrompt.plainCounterparts[marker] else { continue }
            seeds[Int(id)] = base.encode(plain).filter { Int($0) < params.config.vocabSize }
        }
        return (try resized(params, vocabSize: V, seedRows: seeds), tokenizer, added)
    }

    /// A copy of params with vocabSize rows in the embedding (and untied LM head): old rows
    /// copied; a new row r is the mean of the old rows seedRows[r] when given and not empty, else
    /// the mean of all old rows. vocabSize must not shrink the vocabulary.
    public static func resized(_ p: Parameters, vocabSize: Int, seedRows: [Int: [Int32]] = [:]) throws -> Parameters {
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
            // a vocabulary-sized table ([V, C]): each new row is the mean of its seed rows
            func meanRow(_ rows: [Int]) -> [Float] {
                var m = [Double](repeating: 0, count: C)
                for r in rows { for c in 0..<C { m[c] += Double(src[r * C + c]) } }
                return m.map { Float($0 / Double(rows.count)) }
            }
            let overall = meanRow(Array(0..<oldV))
            for r in oldV..<vocabSize {
                let seeds = (seedRows[r] ?? []).map(Int.init).filter { $0 >= 0 && $0 < oldV }
                let row = seeds.isEmpty ? overall : meanRow(seeds)
                for c in 0..<C { dst[r * C + c] = row[c] }
            }
        }
        return q
    }
}

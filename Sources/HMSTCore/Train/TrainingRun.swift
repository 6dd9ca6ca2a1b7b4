// TrainingRun: pre-training assembled once, for every front end. From token data (a
// TokenDataset, the tokenizer it names) and a model source (a preset or an HF config.json for a
// fresh model, or a checkpoint to train further) it makes the model and the Trainer, resumed
// when asked. `hmst train` (Sources/hmst-cli/TrainCommand.swift: it tokenizes raw text first and
// prints progress) and hmst_trainer_create (Sources/HMSTCAPI/TrainerExports.swift: params and
// callbacks) keep only their own parts, so a fresh model's shape, vocabulary and end-of-text
// token are chosen the same way from both.

public enum TrainingRun {
    /// Where the weights to train come from.
    public enum ModelSource: Sendable, Equatable {
        /// a fresh model of a preset's shape (MixtralConfig.preset)
        case preset(String)
        /// a fresh model of a Hugging Face config.json's shape (Mixtral or Llama fields); its
        /// vocab_size gives way to the data's
        case configFile(String)
        /// a saved checkpoint's weights (f32), trained further with its own config
        case checkpoint(String)
    }

    /// The preset a run gets when it names none: the fastest to learn on a CPU budget of minutes
    /// (README, "Training").
    public static let defaultPreset = "nano"

    /// The model to pre-train on `data`. A fresh one (preset or config file) takes the data's
    /// vocabulary (the tokenizer's when there is one), its end-of-text token
    /// (TokenDataset.endOfTextToken) and, when given, the router's load-balancing weight, and is
    /// initialised from `seed`; a checkpoint is loaded as it is.
    public static func model(_ source: ModelSource, data: TokenDataset, tokenizer: Tokenizer?, seed: UInt64,
                             routerAuxLossCoef: Double? = nil) throws -> LanguageModel {
        if let c = routerAuxLossCoef, !(c >= 0 && c.isFinite) {
            throw HMSTError.invalidArgument("the router's load-balancing weight must be finite and >= 0, not \(c)")
        }
        let vocab = tokenizer?.vocabSize ?? data.vocabSize
        var config: MixtralConfig
        switch source {
        case .checkpoint(let path):
            var o = ModelLoadOptions()
            o.weightType = .f32
            let model = try LanguageModel.load(path: path, options: o)
            if let tokenizer, let own = model.tokenizer { try checkSameTokenizer(tokenizer, own, checkpoint: path) }
            return model
        case .preset(let name):
            config = try MixtralConfig.preset(name, vocabSize: vocab)
        case .configFile(let path):
            var j = try JSONValue.parse(file: path)
            if case .object(var fields) = j {
                fields.removeAll { $0.0 == "vocab_size" }
                fields.append(("vocab_size", .number(Double(vocab))))
                j = .object(fields)
            }
            config = try MixtralConfig(json: j, source: path)
        }
        config.eosTokenId = data.endOfTextToken(tokenizer: tokenizer)
        if let c = routerAuxLossCoef { config.routerAuxLossCoef = c }
        return try LanguageModel.random(config: config, seed: seed)
    }

    /// INVALID_ARGUMENT unless `tokenizer` (the data's) is the checkpoint's own one, `own`: its
    /// embeddings are that tokenizer's ids, and data made by another (of any size) would train
    /// them on other meanings.
    public static func checkSameTokenizer(_ tokenizer: TextTokenizer, _ own: TextTokenizer, checkpoint: String) throws {
        guard ModelSignature.hash(of: tokenizer) != ModelSignature.hash(of: own) else { return }
        throw HMSTError.invalidArgument("the data's tokenizer is not the one of the checkpoint \(checkpoint) (another vocabulary or merges): "
                                        + "tokenize the data with \(checkpoint)/tokenizer.json")
    }

    /// The trainer of `model` on `train` (and `val`), writing under outputDir; resumed from
    /// `resumeFrom` (a directory saved with its training state: final/ or a checkpoint) when given.
    public static func trainer(model: LanguageModel, train: TokenDataset, val: TokenDataset?, tokenizer: Tokenizer?,
                               outputDir: String, options: TrainerOptions, resumeFrom: String? = nil) throws -> Trainer {
        let trainer = try Trainer(params: try Parameters(model: model), train: train, val: val, tokenizer: tokenizer,
                                  outputDir: outputDir, options: options)
        if let resumeFrom { try trainer.resume(from: resumeFrom) }
        return trainer
    }
}

extension TokenDataset {
    /// The tokenizer this data's metadata names (a path relative to its directory, or absolute;
    /// a tokenizer.json or a directory holding one), loaded; nil when it names none, or names one
    /// that is no longer there (said once in the log: the data still trains, with its own
    /// vocabulary and end-of-text id). A file that is there but malformed is an error.
    public func namedTokenizer() throws -> Tokenizer? {
        guard let name = tokenizer else { return nil }
        let path = Tokenizer.jsonFile(name.hasPrefix("/") ? name : directory + "/" + name)
        guard FileIO.exists(path) else {
            Log.warn("\(directory)/metadata.json names the tokenizer \(name), which is not at \(path): training without it")
            return nil
        }
        return try Tokenizer(jsonPath: path)
    }
}

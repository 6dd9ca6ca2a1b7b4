// The Stage 2 fixture the memory-tuning tests share (MemoryTuningTests, EpisodicSoftStage2Tests,
// EpisodicInjectionEvalTests): a small BPE tokenizer over the facts and some prose, a one-layer
// Mixtral of hidden size 16, and a short pre-training set.
@testable import HMSTCore

enum StageTwoFixture {
    /// A small BPE tokenizer (400 pieces) trained on the facts' sentences and some prose.
    static func tokenizer(_ facts: [TuningFact]) throws -> Tokenizer {
        var texts = facts.map { Array($0.text.utf8) }
        for i in 0..<50 { texts.append(Array("the cat sat on the mat number \(i % 9), where is the dog?".utf8)) }
        var o = BPETrainingOptions()
        o.vocabSize = 400
        o.minFrequency = 2
        return try BPETrainer.train(texts: texts, options: o)
    }

    /// A one-layer Mixtral, hidden size 16, 4 experts of which 2 per token.
    static func tinyConfig(vocab: Int, aux: Double = 0.001) throws -> MixtralConfig {
        try MixtralConfig(vocabSize: vocab, hiddenSize: 16, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2,
                        numKeyValueHeads: 1, maxPositionEmbeddings: 128, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2,
                        routerAuxLossCoef: aux)
    }

    /// The facts fixture (`entities`, seed 5) in dir/facts, its tokenizer with the markers, a
    /// tiny model (seed 3) and a small pre-training set in dir/data.
    static func run(in dir: String, entities: Int = 24) throws -> (Parameters, Tokenizer, FactsCorpus, TokenDataset) {
        try FactsFixture.write(directory: dir + "/facts", entities: entities, seed: 5)
        let corpus = try FactsCorpus(directory: dir + "/facts")
        let base = try tokenizer(corpus.facts)
        var text = ""
        for i in 0..<200 { text += "the cat sat on the mat number \(i % 9). where is the dog?\n\n" }
        try FileIO.writeAtomically(dir + "/corpus.txt", text: text)
        _ = try Preprocessor.run(inputs: [dir + "/corpus.txt"], output: dir + "/data", encoder: base, tokenizerPath: nil)
        let model = try LanguageModel.random(config: try tinyConfig(vocab: base.vocabSize), seed: 3, tokenizer: base)
        let (params, tok, _) = try MemoryTokens.prepare(model: model)
        return (params, tok, corpus, try TokenDataset(directory: dir + "/data"))
    }
}

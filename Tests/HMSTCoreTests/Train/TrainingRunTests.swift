// TrainingRun: the model every front end pre-trains (a preset's or a config file's shape with the
// data's vocabulary and end-of-text token, or a checkpoint as saved), the tokenizer a dataset
// names (loaded, missing, malformed), and the trainer resumed from a saved state.
import XCTest
@testable import HMSTCore

final class TrainingRunTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "hmst-trainingrun-\(UUID().uuidString)"
        try FileIO.makeDirectories(dir)
        let text = (0..<60).map { "Document \($0) says the river runs past the mill number \($0 % 7)." }.joined(separator: "\n\n")
        try FileIO.writeAtomically(dir + "/corpus.txt", text: text)
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    /// A dataset of the corpus, its metadata naming `tokenizerName` (nil: none).
    func dataset(_ name: String, tokenizer: Tokenizer, tokenizerName: String?) throws -> TokenDataset {
        _ = try Preprocessor.run(inputs: [dir + "/corpus.txt"], output: dir + "/" + name, encoder: tokenizer,
                                 tokenizerPath: tokenizerName, options: PreprocessOptions())
        return try TokenDataset(directory: dir + "/" + name)
    }

    func tokenizer(vocab: Int) throws -> Tokenizer {
        var o = BPETrainingOptions()
        o.vocabSize = vocab
        return try BPETrainer.train(files: [dir + "/corpus.txt"], options: o)
    }

    func testFreshModelsTakeTheDataVocabularyAndEndOfText() throws {
        let tok = try tokenizer(vocab: 300)
        try tok.save(path: dir + "/tokenizer.json")
        let ds = try dataset("data", tokenizer: tok, tokenizerName: dir + "/tokenizer.json")
        let named = try XCTUnwrap(try ds.namedTokenizer())
        XCTAssertEqual(named.vocabSize, tok.vocabSize)
        XCTAssertEqual(named.eosId, tok.eosId)

        let fresh = try TrainingRun.model(.preset("nano"), data: ds, tokenizer: named, seed: 3, routerAuxLossCoef: 0.02)
        let c = try fresh.modelConfig()
        XCTAssertEqual(c.vocabSize, tok.vocabSize)
        XCTAssertEqual(c.eosTokenId, tok.eosId.map(Int.init))
        XCTAssertEqual(c.routerAuxLossCoef, 0.02)
        XCTAssertEqual(c.numHiddenLayers, try MixtralConfig.preset("nano").numHiddenLayers)

        // a config file's shape, its vocab_size giving way to the data's
        var shape = try MixtralConfig.preset("micro", vocabSize: 32000)
        shape.numHiddenLayers = 1
        try FileIO.writeAtomically(dir + "/config.json", text: shape.json().serialized)
        let fromFile = try TrainingRun.model(.configFile(dir + "/config.json"), data: ds, tokenizer: named, seed: 3).modelConfig()
        XCTAssertEqual(fromFile.vocabSize, tok.vocabSize)
        XCTAssertEqual(fromFile.numHiddenLayers, 1)

        // a checkpoint as saved, whatever the data's vocabulary
        try fresh.save(directory: dir + "/ckpt")
        let again = try TrainingRun.model(.checkpoint(dir + "/ckpt"), data: ds, tokenizer: nil, seed: 99)
        XCTAssertEqual(try again.modelConfig(), c)

        XCTAssertThrowsError(try TrainingRun.model(.preset("nano"), data: ds, tokenizer: named, seed: 3, routerAuxLossCoef: -1)) {
            XCTAssertTrue("\($0)".contains("load-balancing"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingRun.model(.preset("huge"), data: ds, tokenizer: named, seed: 3))
    }

    /// Without a tokenizer a fresh model takes the manifest's vocabulary and end-of-text id; a
    /// tokenizer the manifest names but that is gone leaves none, one that is malformed is an error.
    func testTheNamedTokenizerMissingOrMalformed() throws {
        let tok = try tokenizer(vocab: 290)
        let none = try dataset("none", tokenizer: tok, tokenizerName: nil)
        XCTAssertNil(try none.namedTokenizer())
        let c = try TrainingRun.model(.preset("nano"), data: none, tokenizer: nil, seed: 1).modelConfig()
        XCTAssertEqual(c.vocabSize, none.vocabSize)
        XCTAssertEqual(c.eosTokenId, none.eosId.map(Int.init))

        let gone = try dataset("gone", tokenizer: tok, tokenizerName: "no-such-tokenizer.json")
        XCTAssertNil(try gone.namedTokenizer())
        try FileIO.writeAtomically(dir + "/broken.json", text: "{\"model\": 7")
        let broken = try dataset("broken", tokenizer: tok, tokenizerName: dir + "/broken.json")
        XCTAssertThrowsError(try broken.namedTokenizer())
        // a directory holding tokenizer.json, named relative to the data's own directory
        try FileIO.makeDirectories(dir + "/rel/tok")
        try tok.save(path: dir + "/rel/tok/tokenizer.json")
        let relative = try dataset("rel/data", tokenizer: tok, tokenizerName: "../tok")
        XCTAssertEqual(try relative.namedTokenizer()?.vocabSize, tok.vocabSize)
    }

    /// The trainer made here resumes from a state it saved: same step, same next loss.
    func testTrainerResumesFromItsSavedState() throws {
        let tok = try tokenizer(vocab: 280)
        let ds = try dataset("data", tokenizer: tok, tokenizerName: nil)
        var o = TrainerOptions()
        o.batchSize = 2
        o.sequenceLength = 32
        o.stepsPerEpoch = 6
        o.evalEvery = 0
        var config = try MixtralConfig.preset("nano", vocabSize: tok.vocabSize)
        config.numHiddenLayers = 1
        config.hiddenSize = 32
        config.intermediateSize = 32
        config.numAttentionHeads = 2
        config.numKeyValueHeads = 1
        let model = try LanguageModel.random(config: config, seed: 5)
        let a = try TrainingRun.trainer(model: model, train: ds, val: nil, tokenizer: tok, outputDir: dir + "/a", options: o)
        for _ in 0..<3 { _ = try a.trainStep() }
        try a.save(to: dir + "/a/state", withState: true)
        let next = try a.trainStep().loss
        let b = try TrainingRun.trainer(model: model, train: ds, val: nil, tokenizer: tok, outputDir: dir + "/b", options: o,
                                        resumeFrom: dir + "/a/state")
        XCTAssertEqual(b.step, 3)
        XCTAssertEqual(try b.trainStep().loss, next, accuracy: 1e-9)
    }
}

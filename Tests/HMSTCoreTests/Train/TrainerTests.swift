// The training loop end to end on a tiny model: it learns, evaluates, stops early, and writes
// loadable best/final/periodic checkpoints plus metrics.jsonl.
import XCTest
@testable import HMSTCore

final class TrainerTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = "/tmp/hmst-trainer-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
        var text = ""
        for i in 0..<120 { text += "abcabc \(i % 7) the cat sat on the mat.\n\n" }
        try FileIO.writeAtomically(dir + "/corpus.txt", text: text)
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    func testTrainsEvaluatesAndSavesLoadableCheckpoints() throws {
        _ = try Preprocessor.run(inputs: [dir + "/corpus.txt"], output: dir + "/data", encoder: ByteEncoder(), tokenizerPath: nil)
        let ds = try TokenDataset(directory: dir + "/data")
        let split = try DatasetSplit.split(dataset: ds, valFraction: 0.2, seed: 1, trainDirectory: dir + "/tr", valDirectory: dir + "/va")
        let config = try MixtralConfig(vocabSize: 257, hiddenSize: 16, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2,
                                     numKeyValueHeads: 1, maxPositionEmbeddings: 64, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        let params = try Parameters(model: LanguageModel.random(config: config, seed: 3))
        var o = TrainerOptions()
        o.batchSize = 4
        o.sequenceLength = 32
        o.learningRate = 3e-3
        o.stepsPerEpoch = 30
        o.epochs = 2
        o.evalEvery = 15
        o.evalWindows = 8
        o.saveEvery = 1
        o.gradientAccumulationSteps = 2
        let trainer = try Trainer(params: params, train: try TokenDataset(directory: split.trainDirectory),
                                  val: try TokenDataset(directory: split.valDirectory), tokenizer: nil, outputDir: dir + "/out", options: o)
        let before = try trainer.evaluate()
        var vals: [Double] = []
        let r = try trainer.run { p in
            if let v = p.valLoss { vals.append(v) }
            return true
        }
        XCTAssertEqual(r.steps, 60)
        XCTAssertEqual(vals.count, 4)
        XCTAssertLessThan(vals.last!, before - 1.0, "validation loss \(before) -> \(vals)")
        for sub in ["best_model", "final", "checkpoint-epoch-1", "checkpoint-epoch-2"] {
            let m = try LanguageModel.load(path: dir + "/out/" + sub)
            XCTAssertEqual(m.dims.V, 257, sub)
        }
        let lines = try FileIO.readText(dir + "/out/metrics.jsonl").split(separator: "\n")
        XCTAssertEqual(lines.count, 60)
        XCTAssertTrue(lines[14].contains("\"val_loss\""))
        XCTAssertTrue(try FileIO.readText(dir + "/out/loss.svg").hasPrefix("<svg"))
        // the saved final model computes the same loss as the trainer's parameters
        let final = try LanguageModel.load(path: dir + "/out/final")
        let p2 = try Parameters(model: final)
        XCTAssertEqual(memcmp(p2.values.pointer, params.values.pointer, params.count * 4), 0)
    }

    /// Stopping at step 10, resuming from final/ in a fresh trainer and finishing gives the
    /// losses of an uninterrupted 20-step run: with the defaults, and with mixed precision,
    /// gradient checkpointing and the 8-bit optimizer together.
    func testResumeIsExact() throws {
        try checkResume(variant: "default") { _ in }
        try checkResume(variant: "bf16-ckpt-8bit") {
            $0.precision = .bf16
            $0.gradientCheckpointing = true
            $0.use8bitOptimizer = true
        }
    }

    /// The corpus byte-encoded into dir/data, and a one-layer model of 16 wide for it.
    func tinyRun(in dir: String) throws -> (TokenDataset, MixtralConfig) {
        try FileIO.makeDirectories(dir)
        _ = try Preprocessor.run(inputs: [self.dir + "/corpus.txt"], output: dir + "/data", encoder: ByteEncoder(), tokenizerPath: nil)
        let config = try MixtralConfig(vocabSize: 257, hiddenSize: 16, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: 2,
                                     numKeyValueHeads: 1, maxPositionEmbeddings: 32, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        return (try TokenDataset(directory: dir + "/data"), config)
    }

    func checkResume(variant: String, _ configure: (inout TrainerOptions) -> Void) throws {
        let dir = self.dir + "/" + variant
        let (ds, config) = try tinyRun(in: dir)
        var o = TrainerOptions()
        o.sequenceLength = 16
        o.batchSize = 2
        o.stepsPerEpoch = 20
        o.learningRate = 2e-3
        o.seed = 4
        configure(&o)
        func losses(_ dir: String) throws -> [Double] {
            try FileIO.readText(dir + "/metrics.jsonl").split(separator: "\n").map {
                try JSONValue.parse(String($0))["loss"]?.number ?? .nan
            }
        }
        let straight = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: ds, val: nil,
                                   tokenizer: nil, outputDir: dir + "/straight", options: o)
        _ = try straight.run()
        let first = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: ds, val: nil,
                                tokenizer: nil, outputDir: dir + "/part", options: o)
        _ = try first.run { $0.step < 10 }
        XCTAssertEqual(first.step, 10)
        let second = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 99)), train: ds, val: nil,
                                 tokenizer: nil, outputDir: dir + "/part", options: o)
        try second.resume(from: dir + "/part/final")
        XCTAssertEqual(second.step, 10)
        _ = try second.run()
        let a = try losses(dir + "/straight"), b = try losses(dir + "/part")
        XCTAssertEqual(a.count, 20)
        XCTAssertEqual(b.count, 20)
        XCTAssertEqual(a, b, "\(variant): resumed losses differ")
        XCTAssertThrowsError(try second.resume(from: dir + "/straight/nonexistent"))
        // the state names its optimizer: resuming with the other one is refused
        var other = o
        other.use8bitOptimizer.toggle()
        let wrong = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: ds, val: nil,
                                tokenizer: nil, outputDir: dir + "/wrong", options: other)
        XCTAssertThrowsError(try wrong.resume(from: dir + "/part/final")) { e in
            XCTAssertTrue("\(e)".contains("optimizer") || "\(e)".contains("adamw"), "\(e)")
        }
    }

    /// A resume keeps the run's data and window length: other data of the same vocabulary, or
    /// another --seq-len, is refused naming it (the restored sampler drew from the old ones).
    /// Counters in a state are bounded (a hand-edited 2^63 - 1 trapped on the next step).
    func testResumeRefusesOtherDataAndAbsurdCounters() throws {
        let dir = self.dir + "/mismatch"
        let (ds, config) = try tinyRun(in: dir)
        var o = TrainerOptions()
        o.sequenceLength = 16
        o.batchSize = 2
        o.stepsPerEpoch = 4
        let first = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: ds, val: nil,
                                tokenizer: nil, outputDir: dir + "/run", options: o)
        _ = try first.run()
        func resume(_ o: TrainerOptions, _ data: TokenDataset) throws {
            let t = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: data, val: nil,
                                tokenizer: nil, outputDir: dir + "/again", options: o)
            try t.resume(from: dir + "/run/final")
        }
        try resume(o, ds)   // the same run resumes
        var longer = o
        longer.sequenceLength = 24
        XCTAssertThrowsError(try resume(longer, ds)) { XCTAssertTrue("\($0)".contains("seq_len 16; this run's is 24"), "\($0)") }
        try FileIO.writeAtomically(dir + "/other.txt", text: String(repeating: "other words entirely. ", count: 300))
        _ = try Preprocessor.run(inputs: [dir + "/other.txt"], output: dir + "/other", encoder: ByteEncoder(), tokenizerPath: nil)
        XCTAssertThrowsError(try resume(o, try TokenDataset(directory: dir + "/other"))) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
            XCTAssertTrue("\(e)".contains("training tokens"), "\(e)")
        }
        // the same length with other tokens: the fingerprint tells them apart
        let same = dir + "/same"
        _ = system("cp -r '\(dir)/data' '\(same)'")
        let shard = try XCTUnwrap(FileIO.listDirectory(same).first { $0.hasPrefix("shard_") })
        var bytes = try FileIO.readAll(same + "/" + shard)
        bytes[TokenShard.headerBytes + (bytes.count - TokenShard.headerBytes) / 2] ^= 1
        try FileIO.writeAtomically(same + "/" + shard, bytes)
        XCTAssertThrowsError(try resume(o, try TokenDataset(directory: same))) { e in
            XCTAssertTrue("\(e)".contains("training data fingerprint"), "\(e)")
        }
        // counters: negative, absurd or mistyped values are BAD_FORMAT naming the file and key
        let j = try JSONValue.parse("{\"step\": -5, \"tokens_seen\": 9223372036854775807, \"ok\": 7, \"half\": 2.5}")
        for (key, says) in [("step", "-5"), ("tokens_seen", "9223372036854775807"), ("half", "2.5")] {
            XCTAssertThrowsError(try TrainerState.counter(j, key, "S.json")) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .badFormat)
                XCTAssertTrue("\(e)".contains("S.json: \"\(key)\" must be an integer in 0 ... 2^50, not \(says)"), "\(e)")
            }
        }
        XCTAssertEqual(try TrainerState.counter(j, "ok", "S.json"), 7)
        XCTAssertEqual(try TrainerState.counter(j, "absent", "S.json"), 0)
        // options whose products overflowed are refused up front
        for edit in [{ (o: inout TrainerOptions) in o.gradientAccumulationSteps = 1 << 62 }, { $0.epochs = Int.max },
                     { $0.stepsPerEpoch = Int.max }] {
            var bad = o
            edit(&bad)
            XCTAssertThrowsError(try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: ds, val: nil,
                                             tokenizer: nil, outputDir: dir + "/bad", options: bad))
        }
    }

    func testEarlyStoppingAndBadOptions() throws {
        _ = try Preprocessor.run(inputs: [dir + "/corpus.txt"], output: dir + "/data", encoder: ByteEncoder(), tokenizerPath: nil)
        let ds = try TokenDataset(directory: dir + "/data")
        let config = try MixtralConfig(vocabSize: 257, hiddenSize: 8, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: 2,
                                     numKeyValueHeads: 1, maxPositionEmbeddings: 32, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        let params = try Parameters(model: LanguageModel.random(config: config, seed: 3))
        var o = TrainerOptions()
        o.sequenceLength = 16
        o.batchSize = 2
        o.stepsPerEpoch = 50
        o.evalEvery = 1
        o.evalWindows = 2
        o.patience = 2
        o.learningRate = 1e-9  // no progress: patience must stop it
        let t = try Trainer(params: params, train: ds, val: ds, tokenizer: nil, outputDir: dir + "/es", options: o)
        let r = try t.run()
        XCTAssertLessThan(r.steps, 50)
        o.sequenceLength = 64
        XCTAssertThrowsError(try Trainer(params: params, train: ds, val: nil, tokenizer: nil, outputDir: dir + "/x", options: o))
    }

    /// --time-budget: the run stops once the budget of training seconds is spent (whatever the
    /// epochs say), the rate warms up and decays with the share of the budget spent (the last
    /// step's rate is near the minimum), the run ends with an evaluation, and the seconds
    /// spent survive a resume. Bad budgets, warmups and minimum rates are refused.
    func testTimeBudget() throws {
        let (ds, config) = try tinyRun(in: dir)
        var o = TrainerOptions()
        o.sequenceLength = 16
        o.batchSize = 2
        o.stepsPerEpoch = 5           // many epochs fit in the budget: the budget decides
        o.evalWindows = 2
        o.learningRate = 1e-3
        o.minLearningRate = 1e-5
        o.timeBudget = 0.5
        let t = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: ds, val: ds,
                            tokenizer: nil, outputDir: dir + "/budget", options: o)
        var rates: [Float] = [], last: TrainerProgress? = nil
        let r = try t.run { p in
            rates.append(p.lr)
            last = p
            return true
        }
        XCTAssertGreaterThanOrEqual(t.trainedSeconds, 0.5)
        XCTAssertGreaterThan(r.steps, 10, "a tiny model takes far less than 0.05 s a step")
        XCTAssertNotNil(r.bestVal, "a time-budgeted run ends with an evaluation")
        XCTAssertNotNil(last?.valLoss)
        XCTAssertEqual(last?.totalSteps, r.steps)
        let peak = rates.max() ?? 0
        XCTAssertEqual(peak, 1e-3, accuracy: 1e-4)
        XCTAssertLessThan(rates.first!, 1e-4, "warmup starts low")
        XCTAssertLessThan(rates.last!, 1e-4, "the rate has decayed by the end of the budget: \(rates.suffix(3))")
        // the decay is monotone after the peak
        let peakAt = rates.firstIndex(of: peak)!
        for i in (peakAt + 1)..<rates.count { XCTAssertLessThanOrEqual(rates[i], rates[i - 1] + 1e-7) }
        // the seconds spent are part of the state: a resumed run has nothing left to do
        let again = try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 2)), train: ds, val: nil,
                                tokenizer: nil, outputDir: dir + "/budget2", options: o)
        try again.resume(from: dir + "/budget/final")
        XCTAssertEqual(again.trainedSeconds, t.trainedSeconds, accuracy: 1e-9)
        XCTAssertEqual(try again.run().steps, r.steps)
        // refused: a budget that is not a positive number of seconds, a warmup outside [0, 1), a
        // minimum rate above the peak
        for bad in [{ (o: inout TrainerOptions) in o.timeBudget = 0 }, { $0.timeBudget = -.infinity }, { $0.timeBudget = .nan },
                    { $0.warmupFraction = 1 }, { $0.minLearningRate = 2e-3 }] {
            var b = o
            bad(&b)
            XCTAssertThrowsError(try Trainer(params: try Parameters(model: LanguageModel.random(config: config, seed: 1)), train: ds,
                                             val: nil, tokenizer: nil, outputDir: dir + "/bad", options: b)) { e in
                XCTAssertTrue("\(e)".contains("budget") || "\(e)".contains("warmup") || "\(e)".contains("minimum"), "\(e)")
            }
        }
    }
}

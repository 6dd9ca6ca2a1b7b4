// Stage 2 with episodic soft tokens (Train/MemoryTuning/EpisodicSoft*.swift): the example
// layout (placeholders inside <mem> … </mem>, loss on the answer only), a run that trains the
// projection and the SSM through the model and stores them with the checkpoint, exact resume,
// and the errors for mismatched options.
import XCTest
@testable import HMSTCore

final class EpisodicSoftStage2Tests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = "/tmp/hmst-softtok-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    /// The fixture, a tokenizer with the markers, a tiny model and a small pre-training set.
    func setUpRun() throws -> (Parameters, Tokenizer, FactsCorpus, TokenDataset) {
        try StageTwoFixture.run(in: dir)
    }

    func testSoftExampleLayout() throws {
        let (_, tok, corpus, _) = try setUpRun()
        let c = try MemoryCurriculum(corpus: corpus, tokenizer: tok)
        let open = try XCTUnwrap(tok.id(for: MemoryPrompt.memoryOpen)), close = try XCTUnwrap(tok.id(for: MemoryPrompt.memoryClose))
        let e = c.softExample(memories: ["a fact", "another"], goldPosition: 1, question: "who?", answer: "Bo", condition: .gold, K: 2)
        // <mem> ▢ ▢ </mem> <mem> ▢ ▢ </mem> <q>who?<a> Bo</a>
        XCTAssertEqual(Array(e.example.tokens.prefix(8)), [open, open, open, close, open, open, open, close])
        XCTAssertEqual(e.slots, [1, 5])
        XCTAssertEqual(e.texts, ["a fact", "another"])
        let rest = tok.encode(MemoryPrompt.render(memories: [], question: "who?")) + tok.encode(" Bo" + MemoryPrompt.answerEnd)
        XCTAssertEqual(Array(e.example.tokens.dropFirst(8)), rest)
        XCTAssertEqual(e.example.answerStart, 8 + tok.encode(MemoryPrompt.render(memories: [], question: "who?")).count)
        // only the answer carries loss
        var inputs: [Int32] = [], targets: [Int32] = []
        MemoryBatch.pack([e.example], T: 40, pad: 0, inputs: &inputs, targets: &targets)
        XCTAssertEqual(targets.filter { $0 >= 0 }.count, e.example.tokens.count - e.example.answerStart)
        // reconstruction: <mem> ▢ ▢ </mem> <mem> text </mem>, loss on the text and </mem>
        let r = c.softReconstruction(text: "a fact", K: 2)
        XCTAssertEqual(Array(r.example.tokens.prefix(5)), [open, open, open, close, open])
        XCTAssertEqual(Array(r.example.tokens.dropFirst(5)), tok.encode("a fact") + [close])
        XCTAssertEqual(r.slots, [1])
        XCTAssertEqual(r.example.answerStart, 5)
        // a sampled example fits and has the gold fact's text among its memories when gold
        var rng = RNG(seed: 4)
        for _ in 0..<20 {
            let s = c.sampleSoft(&rng, K: 1, maxTokens: 30)
            XCTAssertLessThanOrEqual(s.example.tokens.count, 30)
            XCTAssertEqual(s.slots.count, s.texts.count)
            for slot in s.slots { XCTAssertEqual(s.example.tokens[slot], open) }
        }
    }

    func options() -> MemoryTrainerOptions {
        var o = MemoryTrainerOptions()
        o.steps = 8
        o.batchSize = 4
        o.sequenceLength = 64
        o.memorySequenceLength = 48
        o.learningRate = 3e-3
        o.lmFraction = 0.25
        o.evalQuestions = 6
        o.seed = 9
        o.episodicSoftTokens = 2
        o.episodicFraction = 0.5
        o.episodicReconstruction = 0.3
        o.episodicReadout = 0.5
        o.episodicPretrainSteps = 3
        o.copyHeadKeySize = 8   // a copy head beside them: its files too are the checkpoint's own
        return o
    }

    /// The soft tokens learn (their weights move, the SSM's included), are saved with final/,
    /// load with the model, and a resumed run ends bit for bit where a straight one does.
    func testStage2TrainsStoresAndResumesTheSoftTokens() throws {
        let o = options()
        let (p0, tok, corpus, data) = try setUpRun()
        let snapshot = Array(UnsafeBufferPointer(start: p0.values.pointer, count: p0.count))
        func fresh() -> Parameters {
            let p = Parameters(config: p0.config)
            p.values.pointer.update(from: snapshot, count: p.count)
            return p
        }
        let straight = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: nil,
                                         outputDir: dir + "/a", options: o)
        let soft = try XCTUnwrap(straight.episodic?.softTokens)
        XCTAssertEqual(soft.K, 2)
        XCTAssertEqual(soft.input, .stateReadout)
        XCTAssertTrue(straight.episodicPretrainPending)
        let start = Array(UnsafeBufferPointer(start: soft.values.pointer, count: soft.count))
        let e0 = try straight.evaluate()
        XCTAssertNotNil(e0.softReadout)
        XCTAssertNotNil(e0.softNLL["state_on"])
        XCTAssertNotNil(e0.softNLL["state_oracle"])
        try straight.run()
        XCTAssertFalse(straight.episodicPretrainPending, "the read-out pre-training ran before the first step")
        let end = Array(UnsafeBufferPointer(start: soft.values.pointer, count: soft.count))
        func moved(_ name: String) -> Bool {
            guard let i = soft.names.firstIndex(of: name) else { return false }
            let n = soft.shapes[i].reduce(1, *)
            return (soft.offsets[i]..<(soft.offsets[i] + n)).contains { start[$0] != end[$0] }
        }
        XCTAssertTrue(moved("soft_tokens.weight") && moved("soft_tokens.bias") && moved("soft_tokens.queries"))
        XCTAssertTrue(moved("mixer.in_proj.weight") && moved("mixer.A_log") && moved("mixer.x_proj.weight"), "the SSM must train")
        let lines = try FileIO.readText(dir + "/a/metrics.jsonl").split(separator: "\n")
        XCTAssertTrue(lines.last?.contains("answer_nll_state_on") ?? false)

        // stored with the checkpoint and loaded with the model
        let m = try LanguageModel.load(path: dir + "/a/final")
        let loaded = try XCTUnwrap(m.episodicSoftTokens)
        XCTAssertEqual(memcmp(loaded.values.pointer, soft.values.pointer, soft.count * 4), 0)
        // an episodic memory built for that model scans with the trained mixer
        let mem = try EpisodicMemory(model: m, config: { var c = EpisodicMemoryConfig(); c.stateSize = 256; return c }())
        XCTAssertTrue(loaded.hasMixer(mem.weights))

        // resume half way: the same model and soft tokens, bit for bit
        let first = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: nil, outputDir: dir + "/b", options: o)
        try first.run { p in p.step < 5 }
        let second = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: nil, outputDir: dir + "/c", options: o)
        try second.resume(from: dir + "/b/final")
        try second.run()
        XCTAssertEqual(memcmp(second.params.values.pointer, straight.params.values.pointer, p0.count * 4), 0)
        let s2 = try XCTUnwrap(second.episodic?.softTokens)
        XCTAssertEqual(memcmp(s2.values.pointer, soft.values.pointer, soft.count * 4), 0)
        // a save over the checkpoint resumed from (train-memory --resume OUT/final --output OUT)
        // replaces its copy head, soft tokens and their optimizers' files
        try second.save(to: dir + "/b/final", withState: true)
        XCTAssertEqual(try TrainingCheckpoint.verify(dir + "/b/final", required: [CopyHead.weightsName, EpisodicSoftTokens.weightsName]), 8)

        // resuming without the soft tokens, or with another K, is refused
        var none = o
        none.episodicSoftTokens = 0
        let plain = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: nil, outputDir: dir + "/d", options: none)
        XCTAssertThrowsError(try plain.resume(from: dir + "/b/final")) {
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("--episodic-soft-tokens") ?? false, "\($0)")
        }
        var other = o
        other.episodicSoftTokens = 1
        XCTAssertThrowsError(try MemoryTrainer(model: m, facts: corpus, lmData: data, lmVal: nil, outputDir: dir + "/e", options: other)) {
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("K = 2") ?? false, "\($0)")
        }
    }

    /// The readout loss's gradient into the soft rows against central differences (Double
    /// sums over the Float forward; eps 1e-2, |a−n| / max(1,|a|,|n|) < 3e-3); tokens past the
    /// value's length or outside the vocabulary carry none.
    func testReadoutGradientMatchesFiniteDifferences() throws {
        let (p, tok, corpus, _) = try setUpRun()
        let soft = try EpisodicSoftTokens.initialised(C: 16, K: 2, scale: 0.5, seed: 3)
        let ep = try EpisodicSoftTraining(softTokens: soft, params: p, tokenizer: tok, options: ModelGradOptions(), adam: AdamWConfig())
        ep.enableReadout(weight: 0.7, corpus: corpus)
        let fact = corpus.facts[0]
        let targets = try XCTUnwrap(ep.valueTokens[fact.text])
        XCTAssertEqual(targets, tok.encode(" " + fact.value))
        var rng = RNG(seed: 8)
        var rows = (0..<(2 * 16)).map { _ in rng.nextGaussian() }
        var g = [Float](repeating: 0, count: rows.count)
        _ = ep.readout(rows: rows[...], targets: targets, count: 3, into: &g)
        XCTAssertTrue(g.contains { $0 != 0 })
        let eps: Float = 1e-2
        var worst = 0.0
        for i in 0..<rows.count {
            let keep = rows[i]
            var scratch = [Float](repeating: 0, count: rows.count)
            rows[i] = keep + eps
            let lp = ep.readout(rows: rows[...], targets: targets, count: 3, into: &scratch)
            rows[i] = keep - eps
            let lm = ep.readout(rows: rows[...], targets: targets, count: 3, into: &scratch)
            rows[i] = keep
            // the loss is unscaled; its gradient carries weight / count
            let n = (lp - lm) / Double(2 * eps) * 0.7 / 3, a = Double(g[i])
            worst = max(worst, abs(a - n) / max(1, abs(a), abs(n)))
        }
        XCTAssertLessThan(worst, 3e-3)
        // one target: only the first soft token gets a gradient; an id outside the vocabulary: none
        var one = [Float](repeating: 0, count: rows.count)
        _ = ep.readout(rows: rows[...], targets: [targets[0]], count: 1, into: &one)
        XCTAssertTrue(one[16...].allSatisfy { $0 == 0 } && one[..<16].contains { $0 != 0 })
        var none = [Float](repeating: 0, count: rows.count)
        XCTAssertEqual(ep.readout(rows: rows[...], targets: [-1, 99_999], count: 1, into: &none), 0)
        XCTAssertTrue(none.allSatisfy { $0 == 0 })
    }

    func testBadOptionsAreErrors() throws {
        let (p, tok, corpus, data) = try setUpRun()
        for (k, f, r) in [(9, 0.5, 0.0), (-1, 0.5, 0.0), (2, 1.5, 0.0), (2, -0.1, 0.0), (2, 0.5, 1.5)] {
            var o = options()
            o.episodicSoftTokens = k
            o.episodicFraction = f
            o.episodicReconstruction = r
            XCTAssertThrowsError(try MemoryTrainer(params: p, tokenizer: tok, facts: corpus, lmData: data, lmVal: nil,
                                                   outputDir: dir + "/x", options: o)) {
                XCTAssertEqual(($0 as? HMSTError)?.status, .invalidArgument)
            }
        }
    }
}

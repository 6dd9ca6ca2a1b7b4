// The critic: features read off a tiny random model against independent computations (the
// training loss, Session logits, model.encode's hidden states), sampled agreement, fitting on a
// synthetic pool whose labels depend on known features, the entity split, save/load round trip,
// a critic of another model refused, malformed files and empty pools getting clear errors.
import XCTest
@testable import HMSTCore

final class CriticObserverTests: XCTestCase {
    func tokens(_ s: String) -> [Int32] { Array(s.utf8).map(Int32.init) }

    func testFeaturesMatchIndependentComputations() throws {
        let model = try byteModel()
        let prompt = tokens("Question: What is the capital of Zorbia?\nAnswer:"), answer = tokens(" Quil")
        let P = prompt.count, A = answer.count
        var settings = CriticSettings()
        settings.samples = 0
        let e = CriticEvidence(promptTokens: prompt, answerTokens: answer, answerText: " Quil",
                               memories: [MemoryStoreHit(tier: .semantic, id: 3, score: 0.9, text: "The capital of Zorbia is Quil.")],
                               retrievalScores: [0.9, 0.5, 0.2])
        let o = try CriticObserver.observe(model: model, evidence: e, settings: settings, seed: 0)
        // log-probs of the answer tokens: model.encode's next-token log-probs at rows P-1 ..< P+A-1
        let enc = try model.encode(tokens: prompt + answer)
        let lps = Array(enc.nextTokenLogProbs[(P - 1)..<(P + A - 1)])
        XCTAssertEqual(Double(o.features.answerLogProbMean), lps.reduce(0, +) / Double(A), accuracy: 1e-4)
        XCTAssertEqual(Double(o.features.answerLogProbMin), lps.min()!, accuracy: 1e-4)
        // ... and their sum is the log-likelihood Evaluator scores
        let ll = try Session(decoder: model.decoder, params: SessionParams()).logLikelihood(prompt + answer, from: P)
        XCTAssertEqual(Double(o.features.answerLogProbMean) * Double(A), ll.logprob, accuracy: 1e-3)
        // entropy where the answer starts, from the logits of the prompt's last row
        let s = try Session(decoder: model.decoder, params: SessionParams())
        try s.evaluate(prompt)
        let row = try s.logits()
        let m = row.max()!
        let z = row.reduce(0.0) { $0 + exp(Double($1 - m)) }
        var h = 0.0
        for v in row { let p = exp(Double(v - m)) / z; if p > 0 { h -= p * log(p) } }
        XCTAssertEqual(Double(o.features.firstTokenEntropy), h, accuracy: 1e-4)
        XCTAssertGreaterThan(h, 0)
        // the pooled hidden state: the mean of the rows that predict the answer tokens
        let C = model.dims.C
        XCTAssertEqual(o.hidden.count, C)
        for c in [0, 7, C - 1] {
            var mean: Float = 0
            for t in (P - 1)..<(P + A - 1) { mean += enc.hidden[t * C + c] }
            XCTAssertEqual(o.hidden[c], mean / Float(A), accuracy: 1e-4)
        }
        // evidence features
        XCTAssertEqual(o.features.answerLength, Float(A))
        XCTAssertEqual(o.features.hasRetrieval, 1)
        XCTAssertEqual(o.features.retrievalTop, 0.9)
        XCTAssertEqual(o.features.retrievalGap, 0.4, accuracy: 1e-6)
        XCTAssertEqual(o.features.hasMemory, 1)
        XCTAssertEqual(o.features.answerInMemory, 1)
        XCTAssertEqual(o.features.sampleAgreement, 1)   // no samples: agreement is not measured
        XCTAssertEqual(o.cost.tokensEncoded, P + A - 1)
        XCTAssertEqual(o.cost.tokensSampled, 0)
        // one retrieval score: the gap is the score; none: all zero
        var e1 = e
        e1.retrievalScores = [0.3]
        e1.memories = []
        let o1 = try CriticObserver.observe(model: model, evidence: e1, settings: settings, seed: 0)
        XCTAssertEqual(o1.features.retrievalGap, 0.3)
        XCTAssertEqual(o1.features.hasMemory, 0)
        XCTAssertEqual(o1.features.answerInMemory, 0)
        // an empty answer: the row before it alone, log-prob features 0
        let o0 = try CriticObserver.observe(model: model, evidence: CriticEvidence(promptTokens: prompt, answerTokens: [], answerText: ""),
                                            settings: settings, seed: 0)
        XCTAssertEqual(o0.features.answerLogProbMean, 0)
        XCTAssertEqual(o0.features.answerLength, 0)
        XCTAssertEqual(Double(o0.features.firstTokenEntropy), h, accuracy: 1e-4)
        for c in [0, C - 1] { XCTAssertEqual(o0.hidden[c], enc.hidden[(P - 1) * C + c], accuracy: 1e-4) }
    }

    func testAnswerContainment() {
        XCTAssertTrue(CriticObserver.answerOccurs(" Quil.", in: "The capital of Zorbia is Quil."))
        XCTAssertTrue(CriticObserver.answerOccurs("the Dryveth Flasis", in: "Velel was founded by Dryveth Flasis."))
        XCTAssertFalse(CriticObserver.answerOccurs(" Qui", in: "The capital of Zorbia is Quil."))   // whole words only
        XCTAssertFalse(CriticObserver.answerOccurs("", in: "anything"))
        XCTAssertFalse(CriticObserver.answerOccurs(" the", in: "the cat"))                          // normalises to nothing
    }

    func testSampledAgreement() throws {
        let model = try byteModel()
        let prompt = "Question: Who?\nAnswer:"
        // the greedy answer, cut as the critic's samples are
        let s = try Session(decoder: model.decoder, params: SessionParams())
        var req = TextGenerationRequest()
        req.maxTokens = 4
        req.sampling.temperature = 0
        req.stopStrings = CriticSettings().stopStrings
        let g = try s.generate(prompt: Array(prompt.utf8), tokenizer: model.tokenizer!, req)
        var settings = CriticSettings()
        settings.samples = 3
        settings.maxTokens = 4
        settings.temperature = 1e-6   // as good as greedy: every sample agrees
        let e = CriticEvidence(promptTokens: tokens(prompt), answerTokens: Array(g.tokens.prefix(g.text.count)), answerText: g.string)
        let cold = try CriticObserver.observe(model: model, evidence: e, settings: settings, seed: 1)
        XCTAssertEqual(cold.features.sampleAgreement, 1)
        XCTAssertGreaterThanOrEqual(cold.cost.tokensSampled, 3)
        XCTAssertLessThanOrEqual(cold.cost.tokensSampled, 12)
        XCTAssertEqual(cold.cost.forwardPasses, 2 + cold.cost.tokensEncoded - (prompt.utf8.count - 1) - max(1, e.answerTokens.count))
        // hot samples of a random model disagree; seeded, so the same seed gives the same result
        settings.temperature = 5
        let hot = try CriticObserver.observe(model: model, evidence: e, settings: settings, seed: 2)
        XCTAssertLessThan(hot.features.sampleAgreement, 1)
        XCTAssertEqual(hot.features, try CriticObserver.observe(model: model, evidence: e, settings: settings, seed: 2).features)
        // a wrong given answer never agrees with cold samples
        settings.temperature = 1e-6
        var wrong = e
        wrong.answerText = "zzzz"
        wrong.answerTokens = tokens("zzzz")
        XCTAssertEqual(try CriticObserver.observe(model: model, evidence: wrong, settings: settings, seed: 1).features.sampleAgreement, 0)
    }

    func testBadEvidence() throws {
        let model = try byteModel()
        let s = CriticSettings()
        assertStatus(.invalidArgument, try CriticObserver.observe(model: model, evidence: CriticEvidence(promptTokens: [], answerTokens: [], answerText: ""),
                                                                  settings: s, seed: 0), "no prompt tokens")
        assertStatus(.invalidArgument, try CriticObserver.observe(model: model, evidence: CriticEvidence(promptTokens: [1, 999], answerTokens: [], answerText: ""),
                                                                  settings: s, seed: 0), "999 is outside the vocabulary")
        assertStatus(.invalidArgument, try CriticObserver.observe(model: model, evidence: CriticEvidence(promptTokens: [1], answerTokens: [-1], answerText: ""),
                                                                  settings: s, seed: 0), "answer token id -1")
        let long = [Int32](repeating: 65, count: 600)
        assertStatus(.invalidArgument, try CriticObserver.observe(model: model, evidence: CriticEvidence(promptTokens: long, answerTokens: [], answerText: ""),
                                                                  settings: s, seed: 0), "exceed the model's context 512")
        assertStatus(.invalidArgument, try CriticObserver.observe(model: model, evidence: CriticEvidence(promptTokens: [1], answerTokens: [], answerText: "", retrievalScores: [.nan]),
                                                                  settings: s, seed: 0), "not finite")
        var bad = s
        bad.samples = -1
        assertStatus(.invalidArgument, try CriticObserver.observe(model: model, evidence: CriticEvidence(promptTokens: [1], answerTokens: [], answerText: ""),
                                                                  settings: bad, seed: 0), "samples -1")
    }
}

final class CriticTrainingTests: XCTestCase {
    /// A pool whose correctness depends on known features: log-prob mean (strong), agreement
    /// (medium), hidden dimension 0 (the probe's), and noise elsewhere; entities of 4 rows each.
    static func syntheticPool(n: Int, C: Int, seed: UInt64, allWrong: Bool = false) -> [CriticPoolRow] {
        var rng = RNG(seed: seed)
        var rows: [CriticPoolRow] = []
        let strata = CriticStratum.allCases
        for i in 0..<n {
            let correct = !allWrong && rng.nextDouble() < 0.4
            let sgn: Float = correct ? 1 : -1
            var f = CriticFeatures()
            f.answerLogProbMean = -1.5 + 0.8 * sgn + rng.nextGaussian()
            f.answerLogProbMin = f.answerLogProbMean - abs(rng.nextGaussian())
            f.firstTokenEntropy = 2 + rng.nextGaussian()
            f.answerLength = Float(1 + Int(rng.nextDouble() * 4))
            f.sampleAgreement = Float(min(4, max(0, Int((2 + 0.5 * sgn + rng.nextGaussian()).rounded())))) / 4
            var hidden = (0..<C).map { _ in rng.nextGaussian() }
            hidden[0] += 0.5 * sgn
            let stratum = strata[i % strata.count]
            f.hasMemory = stratum == .goldRetrieved || stratum == .distractorsOnly ? 1 : 0
            rows.append(CriticPoolRow(task: "facts_heldout_gen", itemId: "q\(i)", entity: "entity\(i / 4)",
                                      condition: ["on", "deleted", "off", "off"][i % 4], stratum: stratum, correct: correct,
                                      answer: "a", target: correct ? "a" : "b",
                                      observation: CriticObservation(features: f, hidden: hidden, cost: CriticCost())))
        }
        return rows
    }

    func testFitOnASyntheticPool() throws {
        let C = 16
        let rows = CriticTrainingTests.syntheticPool(n: 4000, C: C, seed: 1)
        let fp = CriticModelFingerprint(hiddenSize: C, vocabSize: 100, nLayers: 2, weightsHash: "0123456789abcdef")
        var o = CriticTrainingOptions()
        o.noiseDraws = 50
        let (critic, r) = try CriticTraining.fit(fingerprint: fp, rows: rows, settings: CriticSettings(), options: o)
        // no entity in two splits, shares near 60/20/20
        let splitOf = Dictionary(rows.map { ($0.entity, CriticTraining.split($0.entity, o).0) }, uniquingKeysWith: { a, b in
            XCTAssertEqual(a, b)
            return a
        })
        XCTAssertEqual(r.splits.map(\.entities).reduce(0, +), splitOf.count)
        XCTAssertEqual(Double(r.splits[0].n) / 4000, 0.6, accuracy: 0.05)
        XCTAssertEqual(Double(r.splits[2].n) / 4000, 0.2, accuracy: 0.05)
        // the combination beats every single feature; the probe found hidden dimension 0
        XCTAssertGreaterThan(r.test.auroc, 0.85)
        let best = try XCTUnwrap(r.bestSingleFeature)
        XCTAssertEqual(best.name, "answer_logprob_mean")
        XCTAssertGreaterThan(r.test.auroc, best.auroc + 0.02)
        XCTAssertGreaterThan(r.probeOutOfFoldAUROC, 0.65)
        XCTAssertGreaterThan(abs(critic.probeWeights[0]), 3 * critic.probeWeights[1...].map(abs).max()!)
        XCTAssertEqual(r.singleFeatures.first { $0.name == "first_token_entropy" }!.auroc, 0.5, accuracy: 0.06)   // pure noise
        // calibrated within a few noise floors, Brier below the base rate's
        XCTAssertLessThan(r.test.ece, max(0.05, 3 * r.test.eceFloor))
        let base = Double(r.test.positives) / Double(r.test.n)
        XCTAssertLessThan(r.test.brier, base * (1 - base))
        XCTAssertEqual(Set(r.strata.map(\.stratum)), Set(CriticStratum.allCases.map(\.rawValue)))
        XCTAssertTrue(r.lines().contains { $0.hasPrefix("test: AUROC") })
        XCTAssertNotNil(r.json()["best_single_feature"])
        // the critic scores a row as the report did: a positive row above a negative one on average
        let pos = rows.filter(\.correct).prefix(200).map { Double(critic.score($0.observation).probability) }
        let neg = rows.filter { !$0.correct }.prefix(200).map { Double(critic.score($0.observation).probability) }
        XCTAssertGreaterThan(pos.reduce(0, +) / 200, neg.reduce(0, +) / 200 + 0.2)
    }

    func testPoolsThatCannotTrainACritic() throws {
        let fp = CriticModelFingerprint(hiddenSize: 8, vocabSize: 100, nLayers: 2, weightsHash: "x")
        let wrong = CriticTrainingTests.syntheticPool(n: 200, C: 8, seed: 2, allWrong: true)
        assertStatus(.invalidArgument, try CriticTraining.fit(fingerprint: fp, rows: wrong, settings: CriticSettings(), options: CriticTrainingOptions()),
                     "the pool has no correct answers: 0 of 200")
        XCTAssertTrue(CriticTraining.poolProblem(wrong)!.contains("off 0/100"))
        assertStatus(.invalidArgument, try CriticTraining.fit(fingerprint: fp, rows: [], settings: CriticSettings(), options: CriticTrainingOptions()),
                     "empty")
        // a pool of another hidden size
        let rows = CriticTrainingTests.syntheticPool(n: 200, C: 4, seed: 3)
        assertStatus(.invalidArgument, try CriticTraining.fit(fingerprint: fp, rows: rows, settings: CriticSettings(), options: CriticTrainingOptions()),
                     "hidden size is 8")
        // too few positives for the validation split
        var few = CriticTrainingTests.syntheticPool(n: 200, C: 8, seed: 4, allWrong: true)
        few[0].correct = true
        XCTAssertThrowsError(try CriticTraining.fit(fingerprint: fp, rows: few, settings: CriticSettings(), options: CriticTrainingOptions())) { e in
            XCTAssertTrue("\(e)".contains("split has"), "\(e)")
        }
        var o = CriticTrainingOptions()
        o.fitFraction = 0.9
        assertStatus(.invalidArgument, try CriticTraining.fit(fingerprint: fp, rows: rows, settings: CriticSettings(), options: o), "leave a test share")
    }

    func testPoolJSONLRoundTrip() throws {
        let rows = CriticTrainingTests.syntheticPool(n: 12, C: 4, seed: 5)
        let dir = tempDirectory("critic-pool")
        defer { removeTree(dir) }
        try FileIO.makeDirectories(dir)
        try FileIO.writeAtomically(dir + "/pool.jsonl", text: CriticPool.jsonl(rows))
        let back = try CriticPool.read(path: dir + "/pool.jsonl")
        XCTAssertEqual(back.count, 12)
        for (a, b) in zip(rows, back) {
            XCTAssertEqual(a.observation.features, b.observation.features)
            XCTAssertEqual(a.observation.hidden, b.observation.hidden)
            XCTAssertEqual(a.correct, b.correct)
            XCTAssertEqual(a.stratum, b.stratum)
            XCTAssertEqual(a.entity, b.entity)
        }
        try FileIO.writeAtomically(dir + "/bad.jsonl", text: CriticPool.jsonl(rows).replacingOccurrences(of: "\"sample_agreement\"", with: "\"agreement\""))
        assertStatus(.badFormat, try CriticPool.read(path: dir + "/bad.jsonl"), "bad.jsonl line 1: features: missing or non-finite \"sample_agreement\"")
        XCTAssertEqual(CriticPool.stratum(task: "facts_known_gen", memories: [], gold: ["g"]), .knownNoMemory)
        XCTAssertEqual(CriticPool.stratum(task: "facts_heldout_gen", memories: [], gold: ["g"]), .noMemory)
        XCTAssertEqual(CriticPool.stratum(task: "facts_heldout_gen", memories: ["x", "g"], gold: ["g"]), .goldRetrieved)
        XCTAssertEqual(CriticPool.stratum(task: "facts_known_gen", memories: ["x"], gold: ["g"]), .distractorsOnly)
    }

    /// Confidently wrong, by hand: per condition, wrong answers (not " unknown") whose
    /// geometric-mean token probability, or critic probability, is at least 0.5, over all answers.
    func testConfidentWrongRates() {
        func row(_ condition: String, correct: Bool, answer: String, meanLogProb: Float) -> CriticPoolRow {
            var f = CriticFeatures()
            f.answerLogProbMean = meanLogProb
            return CriticPoolRow(task: "t", itemId: "i", entity: "e", condition: condition, stratum: .noMemory, correct: correct,
                                 answer: answer, target: "x", observation: CriticObservation(features: f, hidden: [], cost: CriticCost()))
        }
        let rows = [row("deleted", correct: false, answer: "Vamoth", meanLogProb: log(0.9)),   // wrong, sure, critic sure
                    row("deleted", correct: false, answer: "Vamoth", meanLogProb: log(0.8)),   // wrong, sure, critic unsure
                    row("deleted", correct: false, answer: " Unknown.", meanLogProb: log(0.9)), // abstains
                    row("deleted", correct: true, answer: "x", meanLogProb: log(0.9)),
                    row("on", correct: false, answer: "y", meanLogProb: log(0.2)),             // wrong, unsure, critic sure
                    row("on", correct: true, answer: "x", meanLogProb: log(0.7))]
        let r = CriticTraining.confidentWrongRates(rows: rows, critic: [0.9, 0.3, 0.9, 0.9, 0.6, 0.9])
        XCTAssertEqual(r.map(\.condition), ["deleted", "on"])
        XCTAssertEqual(r[0].n, 4); XCTAssertEqual(r[0].withoutCritic, 0.5, accuracy: 1e-12); XCTAssertEqual(r[0].withCritic, 0.25, accuracy: 1e-12)
        XCTAssertEqual(r[1].n, 2); XCTAssertEqual(r[1].withoutCritic, 0, accuracy: 1e-12); XCTAssertEqual(r[1].withCritic, 0.5, accuracy: 1e-12)
    }
}

final class CriticFileTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = tempDirectory("critic-files-\(name.filter { $0.isLetter })"); try? FileIO.makeDirectories(dir) }
    override func tearDown() { removeTree(dir + "/critic"); removeTree(dir) }

    func trainedCritic(_ model: LanguageModel) throws -> Critic {
        let rows = CriticTrainingTests.syntheticPool(n: 600, C: model.dims.C, seed: 7)
        var o = CriticTrainingOptions()
        o.noiseDraws = 10
        o.probeL2Grid = [10]
        return try CriticTraining.fit(model: model, rows: rows, settings: CriticSettings(), options: o).0
    }

    func testSaveLoadRoundTripAndAssess() throws {
        let model = try byteModel()
        XCTAssertNil(try Critic.load(checkpoint: dir, model: model))   // none yet
        let critic = try trainedCritic(model)
        try critic.save(checkpoint: dir)
        XCTAssertTrue(Critic.exists(checkpoint: dir))
        XCTAssertTrue(FileIO.exists(dir + "/critic/critic.safetensors"))
        let back = try XCTUnwrap(try Critic.load(checkpoint: dir, model: model))
        XCTAssertEqual(back.headWeights, critic.headWeights)
        XCTAssertEqual(back.probeWeights, critic.probeWeights)
        XCTAssertEqual(back.featureScaling, critic.featureScaling)
        XCTAssertEqual(back.calibration, critic.calibration)
        XCTAssertEqual(back.settings, critic.settings)
        XCTAssertEqual(back.hash, critic.hash)
        XCTAssertNotNil(back.training["test"])
        // the config names the features, the model and the calibration
        let j = try JSONValue.parse(bytes: try FileIO.readAll(dir + "/critic/config.json"))
        XCTAssertEqual(j["feature_names"]?.array?.count, CriticFeatures.names.count)
        XCTAssertEqual(j["model"]?["hidden_size"]?.int, 32)
        XCTAssertEqual(j["calibration"]?["kind"]?.string, "platt")
        // both score the same evidence the same way, deterministically for a seed
        let e = CriticEvidence(promptTokens: Array("<q>Who?<a>".utf8).map(Int32.init), answerTokens: Array(" Ann".utf8).map(Int32.init),
                               answerText: " Ann", memories: [], retrievalScores: [])
        let a1 = try critic.assess(model: model, evidence: e, seed: 9), a2 = try back.assess(model: model, evidence: e, seed: 9)
        XCTAssertEqual(a1.probability, a2.probability)
        XCTAssertEqual(a1.features, a2.features)
        XCTAssertTrue(a1.probability > 0 && a1.probability < 1)
        XCTAssertEqual(Double(a1.probability), critic.calibration.probability(logit: Double(a1.logit)), accuracy: 1e-6)
        XCTAssertEqual(a1.cost.tokensSampled >= critic.settings.samples, true)
        XCTAssertEqual(a1.features.probeScore, critic.probeScore(hidden: try CriticObserver.observe(model: model, evidence: e, settings: critic.settings, seed: 9).hidden))
        // a bf16 copy of the same weights has the same fingerprint
        let m = try LanguageModel.random(config: try MixtralConfig(vocabSize: 257, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2,
                                                                 numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 512,
                                                                 ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2), seed: 5, bf16: true)
        XCTAssertEqual(CriticModelFingerprint(model: m), CriticModelFingerprint(model: model))
    }

    func testACriticOfAnotherModelIsRefused() throws {
        let model = try byteModel()
        try trainedCritic(model).save(checkpoint: dir)
        for (other, says) in [(try byteModel(seed: 6), "trained for another model: weights hash"), (try byteModel(hidden: 16), "hidden size 32, the model's is 16")] {
            XCTAssertThrowsError(try Critic.load(checkpoint: dir, model: other)) { e in
                XCTAssertTrue((e as? CriticForAnotherModel)?.message.contains(says) ?? false, "\(e)")
            }
        }
        // a checkpoint whose critic was made for other weights (another model, or these in
        // int8) loads without it, saying why, as with a stale controller
        func weightsOnly(_ m: LanguageModel) -> LanguageModel {   // ByteTokenizer has no tokenizer.json form
            LanguageModel(decoder: m.decoder, tokenizer: nil, config: m.config, report: LoadReport(), storage: [m])
        }
        try weightsOnly(try byteModel(seed: 6)).save(directory: dir + "/other")
        try trainedCritic(model).save(checkpoint: dir + "/other")
        let loaded = try LanguageModel.load(path: dir + "/other")
        XCTAssertNil(loaded.critic)
        XCTAssertTrue(loaded.criticProblem?.contains("trained for another model") ?? false, "\(String(describing: loaded.criticProblem))")
        try weightsOnly(model).save(directory: dir + "/same")
        try trainedCritic(model).save(checkpoint: dir + "/same")
        XCTAssertNotNil(try LanguageModel.load(path: dir + "/same").critic)
        let critic = try XCTUnwrap(try Critic.load(checkpoint: dir, model: model))
        let e = CriticEvidence(promptTokens: [65], answerTokens: [], answerText: "")
        assertStatus(.invalidArgument, try critic.assess(model: try byteModel(seed: 6), evidence: e, seed: 0), "another model")
    }

    func testMalformedFilesGetClearErrors() throws {
        let model = try byteModel()
        let critic = try trainedCritic(model)
        let config = dir + "/critic/config.json", weights = dir + "/critic/critic.safetensors"
        func reset() throws { try critic.save(checkpoint: dir) }
        func editConfig(_ f: (String) -> String) throws {
            try FileIO.writeAtomically(config, text: f(try FileIO.readText(config)))
        }
        try reset()
        try FileIO.writeAtomically(config, text: "{ not json")
        assertStatus(.badFormat, try Critic.load(checkpoint: dir, model: model) as Any, "config.json: not valid JSON")
        try reset()
        try editConfig { $0.replacingOccurrences(of: "hmst-critic", with: "hmst-retriever") }
        assertStatus(.badFormat, try Critic.load(checkpoint: dir, model: model) as Any, "not a critic description")
        try reset()
        try editConfig { $0.replacingOccurrences(of: "\"version\":1", with: "\"version\":7") }
        assertStatus(.unsupported, try Critic.load(checkpoint: dir, model: model) as Any, "version 7 is newer")
        try reset()
        try editConfig { $0.replacingOccurrences(of: "\"probe_score\"", with: "\"vibes\"") }
        assertStatus(.badFormat, try Critic.load(checkpoint: dir, model: model) as Any, "retrain the critic")
        try reset()
        try editConfig { $0.replacingOccurrences(of: "\"kind\":\"platt\"", with: "\"kind\":\"isotonic\"") }
        assertStatus(.badFormat, try Critic.load(checkpoint: dir, model: model) as Any, "unknown calibration kind \"isotonic\"")
        try reset()
        try editConfig { $0.replacingOccurrences(of: "\"samples\":4", with: "\"samples\":-4") }
        assertStatus(.badFormat, try Critic.load(checkpoint: dir, model: model) as Any, "samples -4")
        // weights: missing, truncated, tampered
        try reset()
        unlink(weights)
        assertStatus(.notFound, try Critic.load(checkpoint: dir, model: model) as Any, "critic.safetensors: missing")
        try reset()
        let bytes = try FileIO.readAll(weights)
        try FileIO.writeAtomically(weights, Array(bytes.prefix(bytes.count - 8)))
        assertStatus(.badFormat, try Critic.load(checkpoint: dir, model: model) as Any, "critic.safetensors")
        try reset()
        var tampered = bytes
        tampered[tampered.count - 1] ^= 0x40   // a bit of the last probe weight
        try FileIO.writeAtomically(weights, tampered)
        assertStatus(.badFormat, try Critic.load(checkpoint: dir, model: model) as Any, "does not match")
        // saving into a directory that does not exist
        assertStatus(.notFound, try critic.save(checkpoint: dir + "/nope"), "no such checkpoint directory")
    }
}

final class CriticEvalTests: XCTestCase {
    /// hmst eval with a critic: generate_until answers get critic_p, the task the critic's metrics,
    /// equal to CriticMetrics on the per-item values.
    func testEvalReportsTheCriticsMetrics() throws {
        let model = try byteModel()
        let dir = tempDirectory("critic-eval")
        defer { removeTree(dir + "/critic"); removeTree(dir) }
        try FileIO.makeDirectories(dir)
        let rows = CriticTrainingTests.syntheticPool(n: 600, C: model.dims.C, seed: 8)
        var o = CriticTrainingOptions()
        o.noiseDraws = 10
        o.probeL2Grid = [10]
        var settings = CriticSettings()
        settings.samples = 2
        try CriticTraining.fit(model: model, rows: rows, settings: settings, options: o).0.save(checkpoint: dir)
        // items whose target is the model's own greedy answer (correct) or not (wrong)
        let ev = try Evaluator(model: model)
        var lines: [String] = []
        for i in 0..<8 {
            let q = "Question \(i)?"
            let greedy = try ev.generate(prompt: ev.prompt(memories: [], question: q), until: ["\n"], maxTokens: 3)
            let target = i % 2 == 0 && !EvalMetrics.normalizeAnswer(greedy).isEmpty ? greedy : "zzz"
            lines.append(JSONValue.object([("id", .string("q\(i)")), ("prompt", .string(q)), ("target", .string(target))]).serialized)
        }
        try FileIO.writeAtomically(dir + "/items.jsonl", text: lines.joined(separator: "\n") + "\n")
        try FileIO.writeAtomically(dir + "/gen.json", text: #"{"name": "gen", "output_type": "generate_until", "data": "items.jsonl", "until": ["\n"], "max_gen_tokens": 3}"#)
        var req = EvalRunRequest()
        req.taskPaths = [dir + "/gen.json"]
        req.options.resamples = 50
        req.options.keepItems = true
        req.criticCheckpoint = dir
        let report = try EvalRun.run(model: model, req)
        let r = try XCTUnwrap(report.result(task: "gen", condition: .off))
        let p = report.items.map { $0.fields.first { $0.0 == "critic_p" }!.1.number! }
        let y = report.items.map { $0.fields.first { $0.0 == "exact_match" }!.1.bool! }
        XCTAssertEqual(p.count, 8)
        XCTAssertTrue(y.contains(true) && y.contains(false))
        XCTAssertTrue(p.allSatisfy { $0 > 0 && $0 < 1 })
        XCTAssertEqual(r.metric("critic_auroc")!.value, CriticMetrics.auroc(scores: p, labels: y), accuracy: 1e-12)
        XCTAssertEqual(r.metric("critic_ece")!.value, CriticMetrics.ece(probabilities: p, labels: y), accuracy: 1e-12)
        XCTAssertEqual(r.metric("critic_brier")!.value, CriticMetrics.brier(probabilities: p, labels: y), accuracy: 1e-12)
        XCTAssertNotNil(r.metric("critic_ece_noise_floor"))
        // the answers are the ones eval gives without a critic
        req.criticCheckpoint = nil
        let plain = try EvalRun.run(model: model, req)
        XCTAssertNil(plain.result(task: "gen", condition: .off)!.metric("critic_auroc"))
        XCTAssertEqual(plain.items.map { $0.fields.first { $0.0 == "generation" }!.1 }, report.items.map { $0.fields.first { $0.0 == "generation" }!.1 })
        // a checkpoint without a critic is an error when one is asked for
        req.criticCheckpoint = dir + "/nothing"
        assertStatus(.notFound, try EvalRun.run(model: model, req), "has no critic")
    }
}

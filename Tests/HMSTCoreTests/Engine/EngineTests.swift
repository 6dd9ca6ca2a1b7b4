// The engine's parts that need no trained model: the compute budget against decoders built
// with fewer layers / experts, decision indexing and policy parsing, the state summary, the
// controller's files (round trip, another model, tampering), the reward and its baselines on a
// hand-made outcome table, the ridge regressor, and PPO solving the controller bandit.
import XCTest
@testable import HMSTCore

final class EngineTests: XCTestCase {
    let tokens: [Int32] = [3, 17, 60, 0, 5, 5, 42, 9, 1, 33]

    func logits(_ dec: Decoder, budget: ComputeBudget = ComputeBudget()) throws -> [[Float]] {
        let s = try Session(decoder: dec, params: SessionParams())
        try s.setBudget(budget)
        try s.evaluate(tokens, allLogits: true)
        return try (0..<tokens.count).map { Array(try s.logits(row: $0)) }
    }

    func testBudgetEqualsSmallerDecoders() throws {
        let d = DecoderTests.dims
        let (w, _) = try RandomWeights.make(dims: d, seed: 11, std: 0.3, bf16: false)
        let full = Decoder(dims: d, weights: w)
        // the model's own budget changes nothing
        XCTAssertEqual(try logits(full), try logits(full, budget: ComputeBudget(layers: d.L, expertsPerToken: d.K)))
        // early exit after layer 1 == a one-layer model with the same weights and head
        var d1 = d
        d1.L = 1
        let one = Decoder(dims: d1, weights: DecoderWeights(embed: w.embed, layers: [w.layers[0]], finalNorm: w.finalNorm,
                                                            lmHead: w.lmHead, tied: d.tiedEmbeddings))
        let exit = try logits(full, budget: ComputeBudget(layers: 1))
        XCTAssertEqual(exit, try logits(one))
        XCTAssertNotEqual(exit, try logits(full))
        // one expert per token == the same model declared top-1 (gate renormalised to 1)
        var dk = d
        dk.K = 1
        let top1 = Decoder(dims: dk, weights: w)
        let sel = try logits(full, budget: ComputeBudget(expertsPerToken: 1))
        XCTAssertEqual(sel, try logits(top1))
        XCTAssertNotEqual(sel, try logits(full))
        // decode under a budget matches prefill under it
        let s = try Session(decoder: full, params: SessionParams())
        try s.setBudget(ComputeBudget(layers: 1, expertsPerToken: 1))
        for t in tokens { try s.evaluate([t]) }
        let last = Array(try s.logits())
        let both = try logits(full, budget: ComputeBudget(layers: 1, expertsPerToken: 1)).last!
        for (a, b) in zip(last, both) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        // a budget changes only on an empty context, and must fit the model
        XCTAssertThrowsError(try s.setBudget(ComputeBudget()))
        s.reset()
        XCTAssertNoThrow(try s.setBudget(ComputeBudget()))
        XCTAssertThrowsError(try s.setBudget(ComputeBudget(layers: 0)))
        XCTAssertThrowsError(try s.setBudget(ComputeBudget(layers: d.L + 1)))
        XCTAssertThrowsError(try s.setBudget(ComputeBudget(expertsPerToken: d.K + 1)))
    }

    func testBudgetFLOPs() {
        let d = DecoderTests.dims   // C 32, H 4, KV 2, Dh 8, F 48, E 8, K 2, V 61, L 2
        let attn = 32.0 * 32 * 2 + 32.0 * 16 * 2
        let ffn = { (k: Double) in k * 3 * 32 * 48 + 32.0 * 8 }
        XCTAssertEqual(ComputeBudget().matmulFLOPsPerToken(d), 2 * (2 * (attn + ffn(2)) + 32 * 61))
        XCTAssertEqual(ComputeBudget(layers: 1, expertsPerToken: 1).matmulFLOPsPerToken(d), 2 * (1 * (attn + ffn(1)) + 32 * 61))
    }

    func testDecisionsIndexAndPolicies() throws {
        for i in 0..<EngineDecisions.count { XCTAssertEqual(EngineDecisions(index: i).index, i) }
        XCTAssertEqual(EngineDecisions(semantic: true).index, 4)
        XCTAssertEqual(EngineDecisions.allOn.index, 31)
        XCTAssertEqual(EngineDecisions.full.summary, "episodic+semantic+verify")
        XCTAssertEqual(EngineDecisions().summary, "none")
        XCTAssertEqual(try EnginePolicy.parse("semantic+verify"), .fixed(EngineDecisions(semantic: true, verify: true)))
        XCTAssertEqual(try EnginePolicy.parse("auto"), .automatic)
        XCTAssertEqual(try EnginePolicy.parse("full"), .fixed(.full))
        XCTAssertThrowsError(try EnginePolicy.parse("semantic+psychic"))
        XCTAssertThrowsError(try EnginePolicy.parse(""))
    }

    func testStateSummaryIsFiniteAndSized() {
        var s = QuerySignals()
        s.queryTokens = 12
        s.firstTokenEntropy = .nan
        s.queryEncoding = [Float](repeating: 0.1, count: 32)
        s.semantic = TierSignals(hits: [
            RetrievalHit(id: 1, score: 0.03, dense: RetrievalPart(score: 0.9, rank: 0), lexical: RetrievalPart(score: 10, rank: 0), text: "a"),
            RetrievalHit(id: 2, score: 0.02, dense: RetrievalPart(score: 0.7, rank: 1), lexical: nil, text: "b"),
        ], entries: 10, capacity: 10, coverage: LexicalCoverage(terms: ["cat", "zebra"], n: 2, df: [1, 0], best: "cat"))
        XCTAssertEqual(s.semantic.topDense, 0.9)
        XCTAssertEqual(s.semantic.coverage.seenCoverage, 1)
        XCTAssertGreaterThan(s.semantic.coverage.novelty, 0.5)
        XCTAssertEqual(s.semantic.denseGap, 0.9 - 0.7, accuracy: 1e-6)
        XCTAssertEqual(s.semantic.topLexical, 10)
        let v = StateSummary.vector(s, projection: StateSummary.projection(C: 32, seed: 1))
        XCTAssertEqual(v.count, StateSummary.size)
        XCTAssertEqual(StateSummary.featureNames.count, StateSummary.size)
        XCTAssertTrue(v.allSatisfy(\.isFinite))
        XCTAssertEqual(v[StateSummary.featureNames.firstIndex(of: "semantic_top_lexical")!], 10 / 15, accuracy: 1e-6)
        // the same seed, the same projection
        XCTAssertEqual(StateSummary.projection(C: 32, seed: 1), StateSummary.projection(C: 32, seed: 1))
    }

    /// A table of two query kinds where the best action differs: known queries are right with no
    /// memory; semantic ones only with semantic retrieval.
    func makeTable(n: Int) -> OutcomeTable {
        var t = OutcomeTable()
        for i in 0..<n {
            let kind: QueryKind = i % 2 == 0 ? .known : .semantic
            t.queries.append(ControlQuery(text: "q\(i)", answer: "a", kind: kind, entity: "e\(i)"))
            var obs = [Float](repeating: 0, count: StateSummary.size)
            obs[3] = kind == .known ? 0.1 : 0.9   // the "unknown" probability tells them apart
            t.observations.append(obs)
            t.outcomes.append((0..<EngineDecisions.count).map { a in
                let d = EngineDecisions(index: a)
                let right = kind == .known ? !d.earlyExit : d.semantic
                let flops = (d.semantic ? 2.0 : 1.0) * (d.earlyExit ? 0.5 : 1)
                return ActionOutcome(correct: right, modelCorrect: right, abstained: false, confidence: right ? 0.9 : 0.2,
                                     latencyUnits: d.semantic ? 8 : 4, flops: flops, ms: 1, answer: right ? "a" : "b")
            })
        }
        return t
    }

    /// outcomes.jsonl reads back into the same outcomes, and only for the query mix it was made for.
    func testOutcomesRoundTripAndRefuseAnotherQueryMix() throws {
        let t = makeTable(n: 4)
        let path = NSTemporaryDirectory() + "hmst-outcomes-\(getpid()).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try FileIO.writeAtomically(path, text: EngineReport.outcomesJSONL(t))
        XCTAssertEqual(try OutcomeTable.readOutcomes(path: path, queries: t.queries), t.outcomes)
        var other = t.queries
        other[2].text = "another question"
        XCTAssertThrowsError(try OutcomeTable.readOutcomes(path: path, queries: other)) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("line 3") ?? false, "\(e)")
        }
        XCTAssertThrowsError(try OutcomeTable.readOutcomes(path: path, queries: Array(t.queries.prefix(3))))
        try FileIO.writeAtomically(path, text: EngineReport.outcomesJSONL(t).replacingOccurrences(of: "\"flops\"", with: "\"flop\""))
        XCTAssertThrowsError(try OutcomeTable.readOutcomes(path: path, queries: t.queries))

        // the whole table (queries, observations, outcomes) reads back without a query mix
        try FileIO.writeAtomically(path, text: EngineReport.outcomesJSONL(t))
        let back = try OutcomeTable.read(path: path)
        XCTAssertEqual(back.queries, t.queries)
        XCTAssertEqual(back.observations, t.observations)
        XCTAssertEqual(back.outcomes, t.outcomes)
        for (bad, what) in [("\"kind\":\"known\"", "\"kind\":\"famous\""), ("\"observation\":[", "\"observation\":[\"x\","),
                            ("\"entity\"", "\"entityx\"")] {
            try FileIO.writeAtomically(path, text: EngineReport.outcomesJSONL(t).replacingOccurrences(of: bad, with: what))
            XCTAssertThrowsError(try OutcomeTable.read(path: path), what) { e in
                XCTAssertTrue((e as? HMSTError)?.message.contains("line 1") ?? false, "\(e)")
            }
        }
        try FileIO.writeAtomically(path, text: "")
        XCTAssertThrowsError(try OutcomeTable.read(path: path))
    }

    /// acrossSplits: split 0 is train(table:options:) itself; other splits draw other entities;
    /// the spread is the sample standard deviation.
    func testAcrossSplits() throws {
        let t = makeTable(n: 120)
        var o = ControllerTrainingOptions()
        o.ppo.totalSteps = 8_192
        o.seed = 5
        var tests: [Int] = []
        let s = try ControllerTraining.acrossSplits(table: t, options: o, splits: 3) { _, _, r in tests.append(r.testQueries) }
        XCTAssertEqual(s.gapClosed.count, 3)
        XCTAssertEqual(tests.count, 3)
        let (_, first) = try ControllerTraining.train(table: t, options: o)
        XCTAssertEqual(s.gapClosed[0], first.gapClosed, accuracy: 1e-12)
        let splits = (0..<3).map { ControllerTraining.split(t.queries, testFraction: 0.3, seed: 5 + UInt64($0)).test }
        XCTAssertNotEqual(splits[0], splits[1])
        XCTAssertEqual(tests, splits.map(\.count))
        let (m, sd) = SplitSummary.meanSD([0.2, 0.4, 0.9])
        XCTAssertEqual(m, 0.5, accuracy: 1e-12)
        XCTAssertEqual(sd, (0.13 / 1).squareRoot(), accuracy: 1e-12)   // ((0.09 + 0.01 + 0.16) / 2)
        XCTAssertThrowsError(try ControllerTraining.acrossSplits(table: t, options: o, splits: 0) { _, _, _ in })
    }

    func testRewardByHand() {
        let t = makeTable(n: 4)
        let norm = t.normalisers()
        // full action: semantic on -> latency 8, flops 2 for both kinds
        XCTAssertEqual(norm[.known]!.latency, 8)
        XCTAssertEqual(norm[.semantic]!.flops, 2)
        // known query, no memory, full depth: right; latency 4/8, compute 1/2, calibration 1 - 0.1²
        let (r, parts) = t.reward(0, EngineDecisions().index, RewardWeights(), norm)
        XCTAssertEqual(parts, [1, 0.5, 0.5, 0.99])
        let want: Float = 1 - 0.15 - 0.1 + 0.495
        XCTAssertEqual(r, want, accuracy: 1e-6)
        // semantic query without retrieval: wrong, confident 0.2 -> calibration 1 - 0.04
        let (r2, _) = t.reward(1, EngineDecisions().index, RewardWeights(), norm)
        let want2: Float = -0.25 + 0.48
        XCTAssertEqual(r2, want2, accuracy: 1e-6)
    }

    func testRegressorRecoversALinearReward() throws {
        var obs: [[Float]] = [], rewards: [[Float]] = []
        var rng = RNG(seed: 3)
        for _ in 0..<200 {
            let x = (0..<4).map { _ in rng.nextFloat() }
            obs.append(x)
            rewards.append([2 * x[0] - x[1] + 0.5, -x[0] + 3 * x[2]])
        }
        let reg = try RewardRegressor(observations: obs, rewards: rewards, ridge: 1e-8)
        XCTAssertEqual(reg.best([1, 0, 0, 0]), 0)     // 2.5 vs -1
        XCTAssertEqual(reg.best([0, 0, 1, 0]), 1)     // 0.5 vs 3
        XCTAssertEqual(reg.weights[0][0], 2, accuracy: 1e-3)
        XCTAssertEqual(reg.weights[1][2], 3, accuracy: 1e-3)
        XCTAssertEqual(reg.weights[0][4], 0.5, accuracy: 1e-3)
    }

    func testPPOLearnsTheControllerBanditAndBeatsFixedPolicies() throws {
        for joint in [false, true] { try checkPPOLearnsTheBandit(joint: joint) }
    }

    func checkPPOLearnsTheBandit(joint: Bool) throws {
        let t = makeTable(n: 200)
        var o = ControllerTrainingOptions()
        o.ppo.totalSteps = 40_000
        o.seed = 2
        o.jointActions = joint
        let (net, report) = try ControllerTraining.train(table: t, options: o)
        XCTAssertEqual(net.actionHeads, joint ? [32] : [2, 2, 2, 2, 2])
        let ppo = report.scores.first { $0.name == "PPO controller" }!
        let oracle = report.scores.first { $0.name == "per-query best action" }!
        // the best action is: known -> nothing, semantic -> semantic alone, no early exit on known
        // 32 joint actions take longer to explore than five binary heads in the same 40k steps
        XCTAssertGreaterThan(report.gapClosed, joint ? 0.6 : 0.8, "\(EngineReport.controllerText(report))")
        XCTAssertGreaterThan(ppo.mean, report.scores.first { $0.name == report.bestFixed }!.mean)
        XCTAssertLessThanOrEqual(ppo.mean, oracle.mean + 1e-9)
        XCTAssertGreaterThan(report.ppoMinusBestFixed.1, 0)   // the paired interval excludes 0
        XCTAssertEqual(net.observationSize, StateSummary.size)
        // the report names every fixed policy and the baselines
        XCTAssertEqual(report.scores.count, 4 + 32)
    }

    func testControllerFilesRoundTripAndRefuseOtherModels() throws {
        let dir = NSTemporaryDirectory() + "hmst-controller-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let model = try LanguageModel.random(config: try MixtralConfig.preset("micro", vocabSize: 300), seed: 1)
        let net = try ActorCritic(observationSize: StateSummary.size, actionHeads: [2, 2, 2, 2, 2], hidden: [16, 16], seed: 5)
        let c = try MetaController(network: net, hidden: [16, 16], model: model, exitLayer: 1, projectionSeed: 77)
        try c.save(checkpoint: dir)
        let back = try XCTUnwrap(try MetaController.load(checkpoint: dir, model: model))
        XCTAssertEqual(back.exitLayer, 1)
        XCTAssertEqual(back.projectionSeed, 77)
        let obs = (0..<StateSummary.size).map { Float($0) / 10 }
        XCTAssertEqual(try back.decide(obs).1, try c.decide(obs).1)
        XCTAssertThrowsError(try back.decide([1, 2]))
        // an older hmst's state summary: stale, not malformed (the checkpoint loads without it)
        let cfg = dir + "/controller/config.json"
        let original = try FileIO.readAll(cfg)
        let text = String(decoding: original, as: UTF8.self).replacingOccurrences(of: "\"semantic_novelty\",", with: "")
        try FileIO.writeAtomically(cfg, text: text)
        XCTAssertThrowsError(try MetaController.load(checkpoint: dir, model: model)) { e in
            XCTAssertTrue((e as? StaleController)?.message.contains("retrain") ?? false, "\(e)")
        }
        try FileIO.writeAtomically(cfg, original)
        // another model's shape
        let other = try LanguageModel.random(config: try MixtralConfig.preset("micro", vocabSize: 301), seed: 1)
        XCTAssertThrowsError(try MetaController.load(checkpoint: dir, model: other)) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("trained for a model") ?? false, "\(e)")
        }
        // weights changed behind the config's back
        let w = dir + "/controller/controller.safetensors"
        var bytes = try FileIO.readAll(w)
        bytes[bytes.count - 1] ^= 0x40
        try FileIO.writeAtomically(w, bytes)
        XCTAssertThrowsError(try MetaController.load(checkpoint: dir, model: model))
        // no controller: nil
        XCTAssertNil(try MetaController.load(checkpoint: dir + "/nothing", model: model))
        // one joint head: greedy is the likeliest of the 32, the probabilities its marginals
        let jnet = try ActorCritic(observationSize: StateSummary.size, actionHeads: [32], hidden: [16], seed: 6)
        let jc = try MetaController(network: jnet, hidden: [16], model: model, exitLayer: 1, projectionSeed: 77)
        XCTAssertTrue(jc.joint)
        try jc.save(checkpoint: dir)
        let jback = try XCTUnwrap(try MetaController.load(checkpoint: dir, model: model))
        XCTAssertTrue(jback.joint)
        let (d, p) = try jback.decide(obs)
        XCTAssertEqual(p, try jc.decide(obs).1)
        let (logits, _) = obs.withUnsafeBufferPointer { jnet.forward($0.baseAddress!, B: 1) }
        let z = (0..<32).map { exp(Double(logits[$0])) }, total = z.reduce(0, +)
        XCTAssertEqual(d.index, (0..<32).max { z[$0] < z[$1] })
        for (h, yes) in p.yes.enumerated() {
            let want = (0..<32).filter { EngineDecisions(index: $0).bits[h] }.reduce(0.0) { $0 + z[$1] } / total
            XCTAssertEqual(Double(yes), want, accuracy: 1e-5)
        }
        XCTAssertThrowsError(try MetaController(network: try ActorCritic(observationSize: StateSummary.size, actionHeads: [4, 8],
                                                                           hidden: [16], seed: 1),
                                                hidden: [16], model: model, exitLayer: 1, projectionSeed: 1))

        // observation scaling (version 3): stored, read back, applied before the network
        let scaling = try ObservationScaling(mean: (0..<StateSummary.size).map { Float($0) / 20 },
                                             scale: (0..<StateSummary.size).map { 1 + Float($0 % 3) })
        let sc = try MetaController(network: jnet, hidden: [16], model: model, exitLayer: 1, projectionSeed: 77, scaling: scaling)
        try sc.save(checkpoint: dir)
        let sback = try XCTUnwrap(try MetaController.load(checkpoint: dir, model: model))
        XCTAssertEqual(sback.scaling, scaling)
        XCTAssertEqual(try sback.decide(obs).1, try jc.decide(scaling.apply(obs)).1)
        XCTAssertNotEqual(try sback.decide(obs).1, try jc.decide(obs).1)
        XCTAssertThrowsError(try MetaController(network: jnet, hidden: [16], model: model, exitLayer: 1, projectionSeed: 77,
                                                scaling: try ObservationScaling(mean: [0, 0], scale: [1, 1])))
        // the scaling is covered by the hash: changed behind the config's back, refused
        let sw = dir + "/controller/controller.safetensors"
        var sbytes = try FileIO.readAll(sw)
        sbytes[sbytes.count - 1] ^= 0x40
        try FileIO.writeAtomically(sw, sbytes)
        XCTAssertThrowsError(try MetaController.load(checkpoint: dir, model: model))
        // a controller saved without scaling reads back without it (version 2 files behave the same)
        try jc.save(checkpoint: dir)
        XCTAssertNil(try XCTUnwrap(try MetaController.load(checkpoint: dir, model: model)).scaling)
    }

    /// ObservationScaling.fit: mean and 1/population-std per feature, 1 for a constant feature.
    func testObservationScalingByHand() throws {
        let s = try ObservationScaling.fit([[1, 5, 2], [3, 5, 4], [5, 5, 9]])
        XCTAssertEqual(s.mean, [3, 5, 5])
        XCTAssertEqual(s.scale[0], Float(1 / (8.0 / 3).squareRoot()), accuracy: 1e-6)
        XCTAssertEqual(s.scale[1], 1)
        XCTAssertEqual(s.scale[2], Float(1 / (26.0 / 3).squareRoot()), accuracy: 1e-6)
        XCTAssertEqual(s.apply([3, 6, 5]), [0, 1, 0])
        XCTAssertThrowsError(try ObservationScaling.fit([]))
        XCTAssertThrowsError(try ObservationScaling.fit([[1, 2], [1]]))
        XCTAssertThrowsError(try ObservationScaling(mean: [0], scale: [0]))
        XCTAssertThrowsError(try ObservationScaling(mean: [.nan], scale: [1]))
    }

    func testExitHeadStartsAtTheEarlyReadOutAndRoundTrips() throws {
        let d = DecoderTests.dims
        let (w, _) = try RandomWeights.make(dims: d, seed: 11, std: 0.3, bf16: false)
        let dec = Decoder(dims: d, weights: w)
        let plain = try logits(dec, budget: ComputeBudget(layers: 1))
        guard case let .f32(g) = w.finalNorm.storage else { return XCTFail("f32 norm expected") }
        var eye = [Float](repeating: 0, count: d.C * d.C)
        for i in 0..<d.C { eye[i * d.C + i] = 1 }
        dec.exitHead = try ExitHead(layer: 1, C: d.C, norm: Array(UnsafeBufferPointer(start: g, count: d.C)), adapter: eye)
        let viaHead = try logits(dec, budget: ComputeBudget(layers: 1))
        for (a, b) in zip(viaHead.joined(), plain.joined()) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        // the full depth ignores the head; a changed adapter changes the early logits
        XCTAssertEqual(try logits(dec), try logits(Decoder(dims: d, weights: w)))
        var half = eye
        for i in 0..<(d.C * d.C) { half[i] *= 0.5 }
        dec.exitHead = try ExitHead(layer: 1, C: d.C, norm: Array(UnsafeBufferPointer(start: g, count: d.C)), adapter: half)
        XCTAssertNotEqual(try logits(dec, budget: ComputeBudget(layers: 1)), viaHead)
        // files: round trip, another model refused, tampering caught
        let dir = NSTemporaryDirectory() + "hmst-exit-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let h = try XCTUnwrap(dec.exitHead)
        try h.save(checkpoint: dir)
        // the description as format 1 writes it, byte for byte (field order, compact, one newline)
        XCTAssertEqual(try FileIO.readText(dir + "/" + ExitHead.configName),
                       #"{"format":"hmst-exit-head","version":1,"layer":1,"hidden_size":"# + "\(d.C)" + #","hash":""# + h.hash + #"","training":{}}"# + "\n")
        let back = try XCTUnwrap(try ExitHead.load(checkpoint: dir, dims: d))
        XCTAssertEqual(back.adapter, h.adapter)
        XCTAssertEqual(back.layer, 1)
        var other = d
        other.C = 16
        XCTAssertThrowsError(try ExitHead.load(checkpoint: dir, dims: other))
        var shallow = d
        shallow.L = 1
        XCTAssertThrowsError(try ExitHead.load(checkpoint: dir, dims: shallow))
        var bytes = try FileIO.readAll(dir + "/" + ExitHead.weightsName)
        bytes[bytes.count - 1] ^= 0x20
        try FileIO.writeAtomically(dir + "/" + ExitHead.weightsName, bytes)
        XCTAssertThrowsError(try ExitHead.load(checkpoint: dir, dims: d))
        XCTAssertThrowsError(try ExitHead(layer: 1, C: 2, norm: [1, .nan], adapter: [1, 0, 0, 1]))
    }
}

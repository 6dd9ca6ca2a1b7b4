// EngineAbstention (hmst abstention): the tally's rates against hand-counted results, the
// question selection (critic's test entities, gold in memory, the even-stride limit), the
// deleted copy (gold gone from both tiers of the copy, the original untouched), and the
// measurement through a real engine with a verifier that always doubts (every answer
// abstained with it; nothing abstained for doubt without it; a retry when memory was left out).
import Foundation
import XCTest
@testable import HMSTCore

final class EngineAbstentionTests: XCTestCase {
    func result(_ answer: String, confidence: Float, abstained: Bool = false, cites: [String] = [], ms: Double = 0) -> EngineResult {
        var r = EngineResult()
        r.modelAnswer = answer
        r.answer = abstained ? "I am not sure." : answer
        r.abstained = abstained
        r.confidence = confidence
        r.citations = cites.enumerated().map { Citation(tier: .semantic, id: Int64($0.offset), score: 1, text: $0.element) }
        r.times.generate = ms
        r.times.total = 2 * ms
        return r
    }

    func testTallyRatesByHand() throws {
        let q = AbstentionQuestion(task: "t", id: "1", entity: "E", text: "Where?", target: " Oslo", gold: ["E is in Oslo."])
        var t = AbstentionTally(memory: "deleted", critic: false, policy: "full", threshold: 0.5)
        t.add(result("Oslo", confidence: 0.9, cites: ["E is in Oslo."], ms: 10), q)   // right, gold cited
        t.add(result("Bergen", confidence: 0.8, cites: ["F is in Bergen."], ms: 20), q) // confidently wrong
        t.add(result("Rome", confidence: 0.3, ms: 30), q)                              // wrong, unsure, no citation
        t.add(result("unknown", confidence: 0.1, abstained: true, ms: 40), q)          // the model's abstention
        XCTAssertEqual(t.n, 4)
        XCTAssertEqual(t.accuracy, 0.25)
        XCTAssertEqual(t.abstentionRate, 0.25)
        XCTAssertEqual(t.answeredWrongRate, 0.5)
        XCTAssertEqual(t.confidentWrongRate, 0.25)
        XCTAssertEqual(t.saidUnknown, 1)
        XCTAssertEqual(t.citationRate, 2.0 / 3.0, accuracy: 1e-12)    // 2 of the 3 answers given cite something
        XCTAssertEqual(t.goldCitedRate, 0.25)
        XCTAssertEqual(t.meanConfidence, Double(Float(0.9) + Float(0.8) + Float(0.3) + Float(0.1)) / 4, accuracy: 1e-6)
        XCTAssertEqual(t.confidenceAUROC, 1.0)                            // the right answer is the most confident
        let j = t.json()
        XCTAssertEqual(j["mean_ms"]?["generate"]?.number, 25)
        XCTAssertEqual(j["mean_ms"]?["total"]?.number, 50)
        XCTAssertEqual(j["confident_wrong_rate"]?.number, 0.25)
        XCTAssertEqual(j["critic"]?.bool, false)
        // an abstention is never wrong, whatever its confidence; the threshold is inclusive
        var u = AbstentionTally(memory: "present", critic: true, policy: "full", threshold: 0.8)
        u.add(result("Bergen", confidence: 0.99, abstained: true), q)
        u.add(result("Bergen", confidence: 0.8), q)
        XCTAssertEqual(u.answeredWrong, 1)
        XCTAssertEqual(u.confidentWrong, 1)
        XCTAssertTrue(u.confidenceAUROC.isNaN)   // no right answer to rank
        XCTAssertNil(u.json()["confidence_auroc"]?.number)
    }

    func item(_ id: String, entity: String, memory: [String]) -> EvalItem {
        var i = EvalItem(id: id, line: 1)
        i.prompt = "Q \(id)?"
        i.target = " a"
        i.memory = memory
        i.metadata = [("entity", .string(entity))]
        return i
    }

    func testSelection() {
        let entities = (0..<200).map { "entity\($0)" }
        let items = entities.map { item($0, entity: $0, memory: ["fact of \($0)"]) }
        let memory = Set(entities.map { "fact of \($0)" })
        var o = EngineAbstentionOptions()
        let sel = EngineAbstention.select(tasks: [("facts_heldout_gen", items)], memoryTexts: memory, options: o)
        let expected = entities.filter { CriticTraining.split($0, CriticTrainingOptions()).0 == 2 }
        XCTAssertEqual(sel.questions.map(\.entity), expected)   // train-critic's own split, test share
        XCTAssertEqual(sel.otherSplit, 200 - expected.count)
        XCTAssertGreaterThan(expected.count, 20)                 // ~20% of 200
        XCTAssertLessThan(expected.count, 60)
        // another split seed is another test split
        o.criticSplit.splitSeed = 7
        XCTAssertNotEqual(EngineAbstention.select(tasks: [("t", items)], memoryTexts: memory, options: o).questions.map(\.entity), expected)
        // every entity; gold missing from memory, or no gold at all, is dropped
        o.criticTestOnly = false
        let some = [item("a", entity: "A", memory: ["in"]), item("b", entity: "B", memory: ["in", "out"]),
                    item("c", entity: "C", memory: []), item("d", entity: "D", memory: ["in"])]
        let s2 = EngineAbstention.select(tasks: [("t", some)], memoryTexts: ["in"], options: o)
        XCTAssertEqual(s2.questions.map(\.id), ["a", "d"])
        XCTAssertEqual(s2.notInMemory, 2)
        XCTAssertEqual(s2.items, 4)
        XCTAssertEqual(s2.questions[0].gold, ["in"])
        XCTAssertEqual(s2.questions[0].task, "t")
        // limit: an even stride (i * count / limit) over the selection
        o.limit = 4
        let ten = (0..<10).map { item("q\($0)", entity: "E\($0)", memory: ["in"]) }
        XCTAssertEqual(EngineAbstention.select(tasks: [("t", ten)], memoryTexts: ["in"], options: o).questions.map(\.id), ["q0", "q2", "q5", "q7"])
    }

    /// A random micro model with the golden BPE tokenizer (the engine needs a Tokenizer).
    func engineModel() throws -> LanguageModel {
        let tok = try Tokenizer(jsonPath: Golden.root + "/tokenizer/hmst_tokenizer.json")
        let c = try MixtralConfig(vocabSize: tok.vocabSize, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 512, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        return try LanguageModel.random(config: c, seed: 5, tokenizer: tok)
    }

    let facts = ["alice keeps her red bicycle in the garage", "alice was born in lisbon", "alice drinks green tea",
                 "bob was born in oslo", "bob keeps a blue kayak"]

    func makeMemory(_ model: LanguageModel, at dir: String) throws {
        let store = try MemoryStore(directory: dir)
        let e = try store.episodic(creatingFor: model)
        let s = try store.semantic(creatingFor: model, description: "Flat")
        for f in facts {
            _ = try e.add(text: f, model: model)
            _ = try s.add(text: f, model: model)
        }
        try store.save()
    }

    func testDeletedCopyRemovesTheGoldFromBothTiersOfTheCopyOnly() throws {
        let model = try engineModel()
        let dir = NSTemporaryDirectory() + "hmst-abstention-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeMemory(model, at: dir + "/mem")
        let gone: Set<String> = [facts[1], facts[3], "a text the memory never held"]
        let removed = try EngineAbstention.deletedCopy(from: dir + "/mem", to: dir + "/deleted", texts: gone)
        XCTAssertEqual(removed.episodic, 2)
        XCTAssertEqual(removed.semantic, 2)
        let copy = try MemoryStore(directory: dir + "/deleted", mustExist: true)
        XCTAssertEqual(copy.episodic?.count, 3)
        XCTAssertEqual(copy.semantic?.count, 3)
        XCTAssertTrue(try copy.allEntries().allSatisfy { !gone.contains($0.text) })
        let original = try MemoryStore(directory: dir + "/mem", mustExist: true)
        XCTAssertEqual(original.count, 10)
        // a second copy over the first replaces it
        XCTAssertEqual(try EngineAbstention.deletedCopy(from: dir + "/mem", to: dir + "/deleted", texts: [facts[0]]).semantic, 1)
        XCTAssertEqual(try MemoryStore(directory: dir + "/deleted", mustExist: true).count, 8)
        XCTAssertThrowsError(try EngineAbstention.deletedCopy(from: dir + "/no-such", to: dir + "/d2", texts: []))
        // the copy never replaces the memory it copies, nor goes inside it (the memory was removed first)
        for to in [dir + "/mem", dir + "/mem/", dir + "/mem/inner"] {
            XCTAssertThrowsError(try EngineAbstention.deletedCopy(from: dir + "/mem", to: to, texts: [])) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument, "\(e)")
            }
            XCTAssertTrue(FileIO.isDirectory(dir + "/mem/semantic"), to)
        }
    }

    /// Always says the answer is right with probability p.
    final class FixedVerifier: EngineVerifier {
        let p: Float
        init(_ p: Float) { self.p = p }
        func verify(_ input: VerificationInput, model: LanguageModel, seed: UInt64) throws -> Verification {
            Verification(probability: p, calibrated: true, cost: CostAccount())
        }
    }

    func testMeasureThroughTheEngine() throws {
        let model = try engineModel()
        let dir = NSTemporaryDirectory() + "hmst-abstention-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeMemory(model, at: dir)
        let store = try MemoryStore(directory: dir, mustExist: true)
        let qs = facts.prefix(3).enumerated().map {
            AbstentionQuestion(task: "t", id: "\($0.offset)", entity: "alice", text: $0.element + "?", target: " lisbon", gold: [$0.element])
        }
        var eo = EngineOptions()
        eo.nCtx = 256
        // a verifier that always doubts: every answer abstained, none confidently wrong
        let doubt = try EngineAbstention.measure(model: model, questions: qs, store: store, memory: "present", verifier: FixedVerifier(0.2),
                                                 controller: nil, policy: ("full", .fixed(.full)), engineOptions: eo, maxTokens: 4)
        XCTAssertEqual(doubt.n, 3)
        XCTAssertEqual(doubt.abstentionRate, 1)
        XCTAssertEqual(doubt.confidentWrong, 0)
        XCTAssertEqual(doubt.criticCalls, 3)          // full already has both memories: no retry
        XCTAssertEqual(doubt.retried, 0)
        XCTAssertTrue(doubt.critic)
        XCTAssertEqual(doubt.meanConfidence, Double(Float(0.2)), accuracy: 1e-6)
        XCTAssertEqual(doubt.goldCitedRate, 1)        // the question is its gold fact: retrieval ranks it first
        // with memory left out, a doubted answer is retried with both memories, then abstained
        let retry = try EngineAbstention.measure(model: model, questions: qs, store: store, memory: "present", verifier: FixedVerifier(0.2),
                                                 controller: nil, policy: ("verify", .fixed(EngineDecisions(verify: true))),
                                                 engineOptions: eo, maxTokens: 4)
        XCTAssertEqual(retry.retried, 3)
        XCTAssertEqual(retry.criticCalls, 6)
        XCTAssertEqual(retry.abstentionRate, 1)
        // without a verifier: the same decisions, no abstention for doubt; every question is one of
        // right, abstained ("unknown" or empty) or answered wrong
        let off = try EngineAbstention.measure(model: model, questions: qs, store: store, memory: "present", verifier: nil,
                                               controller: nil, policy: ("full", .fixed(.full)), engineOptions: eo, maxTokens: 4)
        XCTAssertFalse(off.critic)
        XCTAssertEqual(off.criticCalls, 0)
        XCTAssertEqual(off.correct + off.abstained + off.answeredWrong, 3)
        XCTAssertLessThanOrEqual(off.confidentWrong, off.answeredWrong)
        XCTAssertGreaterThan(off.stageMs.total, 0)
        // the controller policy without a controller is a named error
        XCTAssertThrowsError(try EngineAbstention.measure(model: model, questions: qs, store: store, memory: "present", verifier: nil,
                                                          controller: nil, policy: ("controller", .controller), engineOptions: eo, maxTokens: 4)) {
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("controller") ?? false)
        }
    }
}

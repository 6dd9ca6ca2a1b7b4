// Stage 2 memory fine-tuning: the markers as special tokens (tokenizer.json round trip, never
// produced by BPE from plain text), the vocabulary resize (old logits unchanged), the loss mask
// (masked positions contribute nothing; gradient check of a masked loss), the curriculum's mix,
// the facts reader, exact resume, and a short run that learns.
import XCTest
@testable import HMSTCore

final class MemoryTuningTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = "/tmp/hmst-stage2-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    /// The 40-entity fixture's facts and a tokenizer with Stage 2's markers.
    func markedFixture() throws -> (FactsCorpus, Tokenizer) {
        let (facts, questions) = FactsFixture.make(entities: 40, seed: 2)
        return (try FactsCorpus(facts: facts, questions: questions), try StageTwoFixture.tokenizer(facts).addingSpecialTokens(MemoryPrompt.markers))
    }

    // MARK: special tokens

    func testSpecialTokensRoundTripThroughTokenizerJSON() throws {
        let (facts, _) = FactsFixture.make(entities: 8, seed: 1)
        let base = try StageTwoFixture.tokenizer(facts)
        let tok = try base.addingSpecialTokens(MemoryPrompt.markers)
        XCTAssertEqual(tok.vocabSize, base.vocabSize + 5)
        for (i, m) in MemoryPrompt.markers.enumerated() {
            XCTAssertEqual(tok.id(for: m), Int32(base.vocabSize + i), m)
            XCTAssertEqual(tok.piece(for: Int32(base.vocabSize + i)), m)
        }
        XCTAssertTrue(MemoryPrompt.isSupported(by: tok))
        XCTAssertFalse(MemoryPrompt.isSupported(by: base))
        // adding them again changes nothing
        XCTAssertTrue(try tok.addingSpecialTokens(MemoryPrompt.markers) === tok)

        try tok.save(path: dir + "/tokenizer.json")
        let json = try FileIO.readText(dir + "/tokenizer.json")
        XCTAssertTrue(json.contains("\"content\":\"<mem>\""), "tokenizer.json lists the markers as added tokens")
        let back = try Tokenizer(jsonPath: dir + "/tokenizer.json")
        XCTAssertEqual(back.vocabSize, tok.vocabSize)
        XCTAssertEqual(back.addedTokens, tok.addedTokens)
        XCTAssertTrue(back.addedTokens.filter { MemoryPrompt.markers.contains($0.content) }.allSatisfy(\.special))

        // a rendered prompt: each marker is one token, the rest is the base tokenizer's BPE
        let prompt = MemoryPrompt.render(memories: [facts[0].text, facts[1].text], question: "Where does he live?") + " Paris</a>"
        let ids = back.encode(prompt)
        XCTAssertEqual(ids, tok.encode(prompt))
        let markerIds = Set((0..<5).map { Int32(base.vocabSize + $0) })
        XCTAssertEqual(ids.filter { markerIds.contains($0) }, [0, 1, 0, 1, 2, 3, 4].map { Int32(base.vocabSize + $0) })
        XCTAssertEqual(try back.decodeString(ids), prompt)
        XCTAssertEqual(back.encode(facts[0].text), base.encode(facts[0].text))

        // plain text never yields a marker, even text that nearly spells one
        for text in ["< mem > a </ mem> <q a>", "mem q a /a", "<me m>x</mem >", "<<q>", facts[2].text] {
            let plain = text.contains("<q>") ? [] : back.encode(text)
            XCTAssertFalse(plain.contains { markerIds.contains($0) }, text)
        }
        XCTAssertEqual(back.encode("<<q>").filter { markerIds.contains($0) }, [Int32(base.vocabSize + 2)])
        XCTAssertThrowsError(try base.addingSpecialTokens(["a"]))   // already a plain piece
        XCTAssertThrowsError(try base.addingSpecialTokens([""]))
    }

    func testVocabularyResizeKeepsOldLogits() throws {
        let (facts, _) = FactsFixture.make(entities: 8, seed: 1)
        let tok = try StageTwoFixture.tokenizer(facts)
        let model = try LanguageModel.random(config: try StageTwoFixture.tinyConfig(vocab: tok.vocabSize), seed: 5, tokenizer: tok)
        let (params, t2, added) = try MemoryTokens.prepare(model: model)
        XCTAssertEqual(added, 5)
        XCTAssertEqual(params.config.vocabSize, tok.vocabSize + 5)
        XCTAssertEqual(t2.vocabSize, tok.vocabSize + 5)
        let old = try Parameters(model: model)
        let input: [Int32] = tok.encode("the cat sat on the mat")
        func logits(_ p: Parameters) throws -> [[Float]] {
            let s = try Session(decoder: try p.decoder(), params: SessionParams())
            try s.evaluate(input, allLogits: true)
            return try (0..<input.count).map { Array(try s.logits(row: $0)) }
        }
        let a = try logits(old), b = try logits(params)
        for t in 0..<input.count {
            XCTAssertEqual(b[t].count, a[t].count + 5)
            XCTAssertEqual(Array(b[t].prefix(a[t].count)), a[t], "old logits are bit for bit the same at \(t)")
        }
        // new rows: the mean of the rows of each marker's plain counterpart ("Fact:" for <mem>,
        // "\nAnswer:" for <a>, "\n" for </a>), in the embedding and in the LM head
        let C = params.config.hiddenSize
        for table in ["model.embed_tokens.weight", "lm_head.weight"] {
            let e = params.value(table)
            for (k, marker) in MemoryPrompt.markers.enumerated() {
                let seeds = tok.encode(MemoryPrompt.plainCounterparts[marker]!)
                XCTAssertFalse(seeds.isEmpty)
                for c in [0, C / 2, C - 1] {
                    let mean = seeds.map { Double(e[Int($0) * C + c]) }.reduce(0, +) / Double(seeds.count)
                    XCTAssertEqual(Double(e[(tok.vocabSize + k) * C + c]), mean, accuracy: 1e-6, "\(table) \(marker) column \(c)")
                }
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: e + (tok.vocabSize + 1) * C, count: C)),
                           Array(UnsafeBufferPointer(start: e + (tok.vocabSize + 4) * C, count: C)), "</mem> and </a> both start as a newline")
        }
        // without seeds, a new row is the mean of all old rows
        let plainGrown = try MemoryTokens.resized(old, vocabSize: tok.vocabSize + 1)
        let e0 = plainGrown.value("model.embed_tokens.weight"), eOld = old.value("model.embed_tokens.weight")
        let mean0 = (0..<tok.vocabSize).map { Double(eOld[$0 * C]) }.reduce(0, +) / Double(tok.vocabSize)
        XCTAssertEqual(Double(e0[tok.vocabSize * C]), mean0, accuracy: 1e-6)
        // saved, it loads with the new vocabulary and markers; prepared again, nothing changes
        let m2 = LanguageModel(decoder: try params.decoder(), tokenizer: t2, config: params.config.json(), report: LoadReport(), storage: [params])
        try m2.save(directory: dir + "/ck")
        let loaded = try LanguageModel.load(path: dir + "/ck")
        XCTAssertEqual(try loaded.modelConfig().vocabSize, tok.vocabSize + 5)
        let again = try MemoryTokens.prepare(model: loaded)
        XCTAssertEqual(again.added, 0)
        XCTAssertEqual(again.params.count, params.count)
        XCTAssertEqual(memcmp(again.params.values.pointer, params.values.pointer, params.count * 4), 0)
    }

    // MARK: loss mask

    func randomParams(_ c: MixtralConfig, seed: UInt64) -> Parameters { randomParameters(c, seed: seed) }

    /// A batch whose last two positions are masked gives the loss and gradients of the batch
    /// cut before them: masked positions contribute nothing (causal attention; aux loss off).
    func testMaskedPositionsContributeNothing() throws {
        let c = try StageTwoFixture.tinyConfig(vocab: 13, aux: 0)
        let p = randomParams(c, seed: 4)
        let mg = ModelGrad(params: p)
        let inputs: [Int32] = [1, 5, 7, 2, 9, 3], full: [Int32] = [5, 7, 2, 9, 3, 11]
        var masked = full
        masked[4] = -1; masked[5] = -1
        masked[0] = -1
        p.zeroGrads()
        let a = try mg.step(inputs: inputs, targets: masked, B: 1, T: 6, backward: true)
        let ga = Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count))
        p.zeroGrads()
        var cutTargets = Array(full.prefix(4))
        cutTargets[0] = -1
        let b = try ModelGrad(params: p).step(inputs: Array(inputs.prefix(4)), targets: cutTargets, B: 1, T: 4, backward: true)
        let gb = Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count))
        XCTAssertEqual(a.tokens, 3)
        XCTAssertEqual(b.tokens, 3)
        XCTAssertEqual(a.ceLoss, b.ceLoss, accuracy: 1e-6)
        var worst: Float = 0
        for i in 0..<p.count { worst = max(worst, abs(ga[i] - gb[i])) }
        XCTAssertLessThan(worst, 1e-5)
        // the embedding rows of the inputs at masked positions (9 and 3 appear only there) get no gradient
        let C = c.hiddenSize, emb = p.offsets[p.index["model.embed_tokens.weight"]!]
        for tok in [9, 3] { for j in 0..<C { XCTAssertEqual(ga[emb + tok * C + j], 0) } }
        // hand-computed: one counted row with uniform logits has loss log V
        let z = Parameters(config: c)
        for (n, role) in z.roles.enumerated() where role == .norm {
            for j in 0..<z.shapes[n][0] { z.values.pointer[z.offsets[n] + j] = 1 }
        }
        let r = try ModelGrad(params: z).step(inputs: [1, 2], targets: [-1, 4], B: 1, T: 2, backward: false)
        XCTAssertEqual(r.ceLoss, log(13.0), accuracy: 1e-6)
        XCTAssertEqual(r.tokens, 1)
        XCTAssertThrowsError(try mg.step(inputs: [1, 2], targets: [-2, 4], B: 1, T: 2, backward: false))
        XCTAssertThrowsError(try mg.step(inputs: [1, 2], targets: [1, 13], B: 1, T: 2, backward: false))
        XCTAssertThrowsError(try mg.step(inputs: [1, 2, 3], targets: [1, 2], B: 1, T: 2, backward: false))
    }

    /// Central differences of a masked loss agree with the analytic gradient.
    func testMaskedLossGradientCheck() throws {
        // ModelGradTests' shapes, small enough for f32 central differences
        let c = try MixtralConfig(vocabSize: 11, hiddenSize: 8, intermediateSize: 6, numHiddenLayers: 2, numAttentionHeads: 2,
                                numKeyValueHeads: 1, maxPositionEmbeddings: 16, ropeTheta: 10000, numLocalExperts: 4,
                                numExpertsPerTok: 2, routerAuxLossCoef: 0.05)
        let p = randomParams(c, seed: 21)
        let mg = ModelGrad(params: p)
        let inputs: [Int32] = [1, 4, 9, 2, 7, 3, 3, 10]
        let targets: [Int32] = [-1, -1, 2, 7, -1, -1, 10, 0]   // B = 2 rows of T = 4
        p.zeroGrads()
        _ = try mg.step(inputs: inputs, targets: targets, B: 2, T: 4, backward: true)
        let analytic = Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count))
        XCTAssertFalse(analytic.contains { $0.isNaN })
        let eps: Float = 3e-3
        var worst = 0.0, checked = 0
        for i in 0..<p.count {
            let keep = p.values.pointer[i]
            p.values.pointer[i] = keep + eps
            let lp = try mg.step(inputs: inputs, targets: targets, B: 2, T: 4, backward: false).loss
            let rp = mg.lastRouting
            p.values.pointer[i] = keep - eps
            let lm = try mg.step(inputs: inputs, targets: targets, B: 2, T: 4, backward: false).loss
            let rm = mg.lastRouting
            p.values.pointer[i] = keep
            if rp != rm { continue }
            let n = (lp - lm) / Double(2 * eps), a = Double(analytic[i])
            let err = abs(a - n) / max(1, abs(a), abs(n))
            worst = max(worst, err)
            checked += 1
        }
        XCTAssertLessThan(worst, 3e-3, "worst relative error \(worst) over \(checked) parameters")
        XCTAssertGreaterThan(checked, p.count * 9 / 10)
    }

    // MARK: shared training pieces

    /// A parameter set that is not the Mixtral: a matrix and an SSM-style per-channel vector.
    final class TwoTensors: ParameterSet {
        let names = ["w", "A_log"]
        let shapes = [[2, 2], [3]]
        let offsets = [0, 4]
        let count = 7
        let values = FloatBuffer(count: 7)
        let grads = FloatBuffer(count: 7)
        let roles: [ParameterRole] = [.matrix, .vector]
    }

    /// Weight decay follows the role: with zero gradients one AdamW step shrinks the matrix by
    /// lr·wd and leaves the vector alone (a name-suffix rule would have decayed A_log).
    func testWeightDecayByRoleAndTheSharedStep() throws {
        for eightBit in [false, true] {
            let p = TwoTensors()
            for i in 0..<7 { p.values.pointer[i] = 2 }
            var c = AdamWConfig()
            c.weightDecay = 0.1
            let step = OptimizerStep(params: p, optimizer: try OptimizerStep.makeOptimizer(params: p, use8bit: eightBit, config: c),
                                     schedule: LRSchedule(maxLR: 0.5, warmupSteps: 1, totalSteps: 10), gradClip: 1)
            let r = try step.run(step: 0, microBatches: 2) { i in Double(i + 1) }
            XCTAssertEqual(r.loss, 1.5)
            XCTAssertEqual(r.lr, 0.5)
            XCTAssertEqual(r.gradNorm, 0)
            for i in 0..<4 { XCTAssertEqual(p.values.pointer[i], 2 * (1 - 0.5 * 0.1), accuracy: 1e-6) }
            for i in 4..<7 { XCTAssertEqual(p.values.pointer[i], 2) }
            // a non-finite gradient stops the step before the update
            let before = Array(UnsafeBufferPointer(start: p.values.pointer, count: 7))
            XCTAssertThrowsError(try step.run(step: 1, microBatches: 1) { _ in p.grads.pointer[0] = .nan; return 0 })
            XCTAssertEqual(Array(UnsafeBufferPointer(start: p.values.pointer, count: 7)), before)
        }
        let mixtral = Parameters(config: try StageTwoFixture.tinyConfig(vocab: 10))
        for (name, role) in zip(mixtral.names, mixtral.roles) {
            XCTAssertEqual(role.decays, !name.hasSuffix("norm.weight"), name)
        }
        XCTAssertEqual(mixtral.roles.first, .embedding)
    }

    // MARK: data and curriculum

    func testFactsReaderAndFixture() throws {
        try FactsFixture.write(directory: dir + "/facts", entities: 12, seed: 3)
        let corpus = try FactsCorpus(directory: dir + "/facts")
        XCTAssertEqual(corpus.facts.count, 48)
        XCTAssertEqual(corpus.questions.count, 36)   // distractor entities have no questions
        XCTAssertEqual(Set(corpus.facts.map(\.split)), Set(FactsCorpus.splits))
        for q in corpus.questions {
            let f = corpus.fact(of: q)
            XCTAssertEqual(f.value, q.answer)
            XCTAssertTrue(f.text.contains(f.entity) && q.question.contains(f.entity))
            XCTAssertFalse(q.answer.hasPrefix(" "))
        }
        XCTAssertEqual(FactsFixture.make(entities: 12, seed: 3).facts, corpus.facts)
        // errors name the problem
        try FileIO.makeDirectories(dir + "/bad")
        try FileIO.writeAtomically(dir + "/bad/facts.jsonl", text: "{\"id\":\"a\"}\n")
        try FileIO.writeAtomically(dir + "/bad/train.jsonl", text: "")
        XCTAssertThrowsError(try FactsCorpus(directory: dir + "/bad")) { e in
            XCTAssertTrue("\(e)".contains("facts.jsonl:1") && "\(e)".contains("entity"), "\(e)")
        }
        XCTAssertThrowsError(try FactsCorpus(directory: dir + "/missing"))
        try FileIO.writeAtomically(dir + "/bad/facts.jsonl", text: "")
        try FileIO.writeAtomically(dir + "/bad/train.jsonl",
                                   text: "{\"id\":\"q\",\"fact_id\":\"nope\",\"split\":\"heldout\",\"question\":\"?\",\"answer\":\"x\"}\n")
        XCTAssertThrowsError(try FactsCorpus(directory: dir + "/bad")) { e in XCTAssertTrue("\(e)".contains("nope")) }
        // integer ids are read as their decimal text
        try FileIO.writeAtomically(dir + "/bad/facts.jsonl",
                                   text: "{\"id\":7,\"entity\":\"E\",\"relation\":\"r\",\"value\":\"v\",\"text\":\"E r v.\",\"split\":\"heldout\"}\n")
        try FileIO.writeAtomically(dir + "/bad/train.jsonl",
                                   text: "{\"id\":1,\"fact_id\":7,\"split\":\"heldout\",\"question\":\"?\",\"answer\":\"v\"}\n")
        XCTAssertEqual(try FactsCorpus(directory: dir + "/bad").questions.first?.factId, "7")
        // a question without an answer (spaces only) is refused, naming the line
        try FileIO.writeAtomically(dir + "/bad/train.jsonl",
                                   text: "\n{\"id\":1,\"fact_id\":7,\"split\":\"heldout\",\"question\":\"?\",\"answer\":\"  \"}\n")
        XCTAssertThrowsError(try FactsCorpus(directory: dir + "/bad")) { e in
            XCTAssertTrue("\(e)".contains("train.jsonl:2: \"answer\" is empty"), "\(e)")
        }
    }

    func testCurriculumMixWithASeed() throws {
        let (corpus, tok) = try markedFixture()
        let cur = try MemoryCurriculum(corpus: corpus, tokenizer: tok)
        var rng = RNG(seed: 7)
        var counts: [CurriculumCondition: Int] = [:], goldAt = [Int](repeating: 0, count: 4), memCounts: [Int: Int] = [:]
        let n = 4000
        let unknown = tok.encode(" unknown</a>")
        let heldOut = Set(corpus.facts.filter { $0.split == "heldout" }.map(\.text))
        for _ in 0..<n {
            let e = cur.sample(&rng)
            counts[e.condition, default: 0] += 1
            if let g = e.goldPosition, e.memories.count == 4 { goldAt[g] += 1 }
            if e.condition != .none { memCounts[e.memories.count, default: 0] += 1 }
            XCTAssertFalse(e.memories.contains { heldOut.contains($0) }, "held-out facts are never trained on")
            let answer = Array(e.tokens[e.answerStart...])
            XCTAssertEqual(answer.last, tok.id(for: "</a>"))
            XCTAssertEqual(e.tokens[e.answerStart - 1], tok.id(for: "<a>"))
            switch e.condition {
            case .gold: XCTAssertNotEqual(answer, unknown)
            case .none: XCTAssertTrue(e.memories.isEmpty)
            case .distractorsOnly: XCTAssertNil(e.goldPosition)
            }
        }
        XCTAssertEqual(Double(counts[.gold]!) / Double(n), 0.5, accuracy: 0.03)
        XCTAssertEqual(Double(counts[.distractorsOnly]!) / Double(n), 0.25, accuracy: 0.03)
        XCTAssertEqual(Double(counts[.none]!) / Double(n), 0.25, accuracy: 0.03)
        let fullGold = goldAt.reduce(0, +)
        for g in goldAt { XCTAssertEqual(Double(g) / Double(fullGold), 0.25, accuracy: 0.04, "gold position spread: \(goldAt)") }
        let withMemory = memCounts.values.reduce(0, +)
        XCTAssertEqual(Double(memCounts[4]!) / Double(withMemory), 0.75, accuracy: 0.03, "\(memCounts)")
        // targets: the answer when it can be known, else unknown
        let known = corpus.questions(in: "train_known")[0], memOnly = corpus.questions(in: "train_memory_only")[0]
        XCTAssertEqual(cur.target(for: known, condition: .none), known.answer)
        XCTAssertEqual(cur.target(for: memOnly, condition: .distractorsOnly), "unknown")
        XCTAssertEqual(cur.target(for: memOnly, condition: .gold), memOnly.answer)
        // the same seed gives the same examples
        var r1 = RNG(seed: 11), r2 = RNG(seed: 11)
        for _ in 0..<20 { XCTAssertEqual(cur.sample(&r1), cur.sample(&r2)) }
        // the LM steps are lmFraction of all, spread evenly
        var o = MemoryTrainerOptions()
        o.lmFraction = 0.5
        let t = try MemoryTrainer(params: Parameters(config: StageTwoFixture.tinyConfig(vocab: tok.vocabSize)), tokenizer: tok, facts: corpus,
                                  lmData: nil, lmVal: nil, outputDir: dir + "/o", options: { var x = o; x.lmFraction = 0; return x }())
        XCTAssertFalse((0..<10).contains { t.isLMStep($0) })
        XCTAssertThrowsError(try MemoryTrainer(params: Parameters(config: StageTwoFixture.tinyConfig(vocab: tok.vocabSize)), tokenizer: tok, facts: corpus,
                                               lmData: nil, lmVal: nil, outputDir: dir + "/o", options: o), "LM steps need data")
    }

    /// Hard distractors share the entity or the relation of the fact asked about, never both;
    /// with fraction 0 they are as rare as chance makes them.
    func testHardDistractors() throws {
        let (corpus, tok) = try markedFixture()
        func neighbourShare(_ fraction: Double) throws -> Double {
            var o = CurriculumOptions()
            o.hardDistractorFraction = fraction
            let cur = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o)
            let byText = Dictionary(corpus.facts.map { ($0.text, $0) }, uniquingKeysWith: { a, _ in a })
            var rng = RNG(seed: 3), near = 0, total = 0
            for q in cur.trainQuestions.prefix(200) {
                let fact = corpus.fact(of: q)
                for text in cur.distractors(excluding: fact, count: 3, rng: &rng) {
                    guard let d = byText[text] else { XCTFail("unknown distractor \(text)"); continue }
                    XCTAssertFalse(d.entity == fact.entity && d.relation == fact.relation)
                    total += 1
                    if d.entity == fact.entity || d.relation == fact.relation { near += 1 }
                }
            }
            return Double(near) / Double(max(1, total))
        }
        XCTAssertGreaterThan(try neighbourShare(1), 0.95)
        XCTAssertLessThan(try neighbourShare(0), 0.5)
        var bad = CurriculumOptions()
        bad.hardDistractorFraction = 1.5
        XCTAssertThrowsError(try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: bad))
    }

    /// Retrieved blocks are a BM25 search's hits in rank order: the gold at its rank, never a
    /// held-out fact, never another statement of the asked fact; multi-question examples ask
    /// about the hits too.
    func testRetrievedDistractors() throws {
        let (corpus, tok) = try markedFixture()
        var o = CurriculumOptions()
        o.retrievedFraction = 1
        o.fewerFraction = 0
        let cur = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o)
        let pool = corpus.facts.indices.filter { corpus.facts[$0].split != "heldout" }
        let index = try BM25Index(texts: pool.map { corpus.facts[$0].text }, ids: pool.map(Int64.init))
        let byText = Dictionary(corpus.facts.map { ($0.text, $0) }, uniquingKeysWith: { a, _ in a })
        var rng = RNG(seed: 5), goldFirst = 0
        for q in cur.trainQuestions.prefix(100) {
            let fact = corpus.fact(of: q)
            let hits = index.search(text: q.question, limit: o.k + 4).map { corpus.facts[Int($0.id)].text }
            let (texts, gold) = cur.memories(for: q, condition: .gold, rng: &rng)
            XCTAssertEqual(texts.count, o.k)
            let g = try XCTUnwrap(gold)
            XCTAssertEqual(texts[g], fact.text)
            if let r = hits.firstIndex(of: fact.text), r < o.k { XCTAssertEqual(g, r, "the gold fact stands at its rank") }
            if g == 0 { goldFirst += 1 }
            // the others in the search's order
            let others = texts.enumerated().filter { $0.offset != g }.map(\.element)
            XCTAssertEqual(others, hits.filter { t in t != fact.text && !(byText[t]!.entity == fact.entity && byText[t]!.relation == fact.relation) }
                .prefix(o.k - 1).map { $0 })
            for t in texts { XCTAssertNotEqual(byText[t]?.split, "heldout") }
            let (without, none) = cur.memories(for: q, condition: .distractorsOnly, rng: &rng)
            XCTAssertNil(none)
            XCTAssertFalse(without.contains(fact.text))
        }
        XCTAssertGreaterThan(goldFirst, 30, "lexical search ranks the asked fact first more often than chance (25 of 100)")
        var multi = o
        multi.questionsPerExample = 3
        let mcur = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: multi)
        let e = mcur.multiQuestion(first: mcur.trainQuestions[0], rng: &rng)
        XCTAssertEqual(e.answerSpans.count, 3)
        XCTAssertEqual(e.memories[try XCTUnwrap(e.goldPosition)], corpus.fact(of: mcur.trainQuestions[0]).text)
        var bad = CurriculumOptions()
        bad.retrievedFraction = -0.1
        XCTAssertThrowsError(try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: bad))
    }

    /// Dense and hybrid retrieved blocks: the dense part is every text ranked by the query
    /// vector's inner product with its document vector (checked against a plain sort), hybrid
    /// is that fused with BM25's list by RankFusion, and the curriculum lays the blocks out in
    /// that order; without an embedder the curriculum names what is missing.
    func testDenseAndHybridRetrievedBlocks() throws {
        let (corpus, tok) = try markedFixture()
        // a bag of hashed words, unit length: a stand-in retrieval projection (queries weigh
        // words a little differently from documents, as the two maps of a projection do)
        func bag(_ text: String, query: Bool) -> [Float] {
            var v = [Float](repeating: 0, count: 32)
            for w in LexicalTokenizer.terms(text) {
                var h: UInt32 = 2166136261
                for b in w.utf8 { h = (h ^ UInt32(b)) &* 16777619 }
                v[Int(h % 32)] += query ? 1 + Float(w.count % 3) * 0.25 : 1
            }
            let n = max(1e-6, v.reduce(0) { $0 + $1 * $1 }.squareRoot())
            return v.map { $0 / n }
        }
        let embedder = RetrievalEmbedder(query: { bag($0, query: true) }, document: { bag($0, query: false) })
        let pool = corpus.facts.indices.filter { corpus.facts[$0].split != "heldout" }
        let texts = pool.map { corpus.facts[$0].text }
        let questions = Array(corpus.questions.filter { $0.split == "train_known" || $0.split == "train_memory_only" }.prefix(40))
        let queries = questions.map { (id: $0.id, text: $0.question) }
        let docs = texts.map { bag($0, query: false) }
        func bruteDense(_ q: String, _ n: Int) -> [(id: Int64, score: Float)] {
            let qv = bag(q, query: true)
            let s = docs.map { d in zip(qv, d).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
            return s.indices.sorted { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }.prefix(n).map { (Int64($0), s[$0]) }
        }
        let dense = try RetrievedBlocks.lists(texts: texts, queries: queries, limit: 8, mode: .dense, embedder: embedder)
        let hybrid = try RetrievedBlocks.lists(texts: texts, queries: queries, limit: 8, mode: .hybrid, embedder: embedder)
        let lexical = try RetrievedBlocks.lists(texts: texts, queries: queries, limit: 8, mode: .lexical, embedder: nil)
        let index = try BM25Index(texts: texts, ids: texts.indices.map(Int64.init))
        var differs = 0
        for q in queries {
            let want = bruteDense(q.text, 50)
            // scores from BLAS and from the loop above may differ in the last bit: compare ranks
            // where the scores are apart
            let got = try XCTUnwrap(dense[q.id])
            XCTAssertEqual(got.count, 8)
            for (r, i) in got.enumerated() where abs(want[r].score - (r + 1 < want.count ? want[r + 1].score : -1)) > 1e-5
                && (r == 0 || abs(want[r].score - want[r - 1].score) > 1e-5) {
                XCTAssertEqual(Int64(i), want[r].id, "dense rank \(r) of \(q.text)")
            }
            let lex = index.search(text: q.text, limit: 50).map { (id: $0.id, score: $0.score) }
            XCTAssertEqual(try XCTUnwrap(lexical[q.id]), lex.prefix(8).map { Int($0.id) })
            let denseTop = try RetrievedBlocks.denseTop(texts: texts, queries: [q.text], limit: 50, embedder: embedder)[0]
            let fused = RankFusion.fuse(dense: denseTop, lexical: lex, k: 8).map { Int($0.id) }
            XCTAssertEqual(try XCTUnwrap(hybrid[q.id]), fused)
            if fused != lexical[q.id]! { differs += 1 }
        }
        XCTAssertGreaterThan(differs, 0, "the dense part changes some hybrid lists")
        // the curriculum's blocks follow the hybrid order
        var o = CurriculumOptions()
        o.retrievedFraction = 1
        o.fewerFraction = 0
        o.retrievedBy = .hybrid
        XCTAssertThrowsError(try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o)) { e in
            XCTAssertTrue("\(e)".contains("retrieval projection"), "\(e)")
        }
        let cur = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o, embedder: embedder)
        let all = try RetrievedBlocks.lists(texts: texts, queries: cur.trainQuestions.map { ($0.id, $0.question) }, limit: o.k + 4,
                                            mode: .hybrid, embedder: embedder)
        var rng = RNG(seed: 9)
        for q in cur.trainQuestions.prefix(50) {
            let fact = corpus.fact(of: q)
            let hits = all[q.id]!.map { corpus.facts[pool[$0]] }
            let (memories, gold) = cur.memories(for: q, condition: .distractorsOnly, rng: &rng)
            XCTAssertNil(gold)
            XCTAssertEqual(memories, hits.filter { $0.id != fact.id && !($0.entity == fact.entity && $0.relation == fact.relation) }
                .prefix(o.k).map(\.text))
        }
        // with retrievedLexicalWeight, the blocks follow the fusion with BM25's rank weighted so
        // (what hmst eval --lexical-weight retrieves), and that changes some of them
        o.retrievedLexicalWeight = 3
        let lexicalFirst = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o, embedder: embedder)
        var weighted = 0
        for q in lexicalFirst.trainQuestions.prefix(50) {
            let fact = corpus.fact(of: q)
            let lex = index.search(text: q.question, limit: 50).map { (id: $0.id, score: $0.score) }
            let denseTop = try RetrievedBlocks.denseTop(texts: texts, queries: [q.question], limit: 50, embedder: embedder)[0]
            let fused: [TuningFact] = RankFusion.fuse(dense: denseTop, lexical: lex, k: o.k + 4, lexicalWeight: 3)
                .map { corpus.facts[pool[Int($0.id)]] }
            let others = fused.filter { $0.id != fact.id && !($0.entity == fact.entity && $0.relation == fact.relation) }
            var r = RNG(seed: 3)
            let (memories, _) = lexicalFirst.memories(for: q, condition: .distractorsOnly, rng: &r)
            XCTAssertEqual(memories, others.prefix(o.k).map(\.text))
            r = RNG(seed: 3)
            if memories != cur.memories(for: q, condition: .distractorsOnly, rng: &r).texts { weighted += 1 }
        }
        XCTAssertGreaterThan(weighted, 0, "the lexical weight changes some blocks")
        o.retrievedLexicalWeight = -1
        XCTAssertThrowsError(try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o, embedder: embedder))
        // topN: ties by the smaller index, n past the end
        let v: [Float] = [1, 3, 3, -2, 5, 3]
        let top = v.withUnsafeBufferPointer { RetrievedBlocks.topN($0.baseAddress!, count: v.count, n: 4) }
        XCTAssertEqual(top.map(\.id), [4, 1, 2, 5])
        let every = v.withUnsafeBufferPointer { RetrievedBlocks.topN($0.baseAddress!, count: v.count, n: 10) }
        XCTAssertEqual(every.map(\.id), [4, 1, 2, 5, 0, 3])
    }

    func testBatchPackingMasksPromptAndPadding() throws {
        let e = MemoryExample(tokens: [10, 11, 12, 13, 14], answerStart: 3, condition: .gold, goldPosition: 0, memories: [])
        var inputs: [Int32] = [], targets: [Int32] = []
        MemoryBatch.pack([e, e], T: 6, pad: 0, inputs: &inputs, targets: &targets)
        XCTAssertEqual(inputs, [10, 11, 12, 13, 0, 0, 10, 11, 12, 13, 0, 0])
        XCTAssertEqual(targets, [-1, -1, 13, 14, -1, -1, -1, -1, 13, 14, -1, -1])
        // cut from the left when longer than T + 1
        MemoryBatch.pack([e], T: 3, pad: 0, inputs: &inputs, targets: &targets)
        XCTAssertEqual(inputs, [11, 12, 13])
        XCTAssertEqual(targets, [-1, 13, 14])
    }

    /// Distilled distractors-only examples (distractorDistillation): the real answer after
    /// distractors, and beside it the same question and answer without memory; DistillBatch pairs
    /// each student answer position with the teacher position predicting the same token, also
    /// when either side is cut from the left; the trainer's targets there are the model's own
    /// no-memory distribution.
    func testDistractorDistillation() throws {
        let (corpus, tok) = try markedFixture()
        var o = CurriculumOptions()
        o.distractorDistillation = 1
        let cur = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o)
        var rng = RNG(seed: 4)
        var distilled: [MemoryExample] = []
        for _ in 0..<400 {
            let e = cur.sample(&rng)
            XCTAssertEqual(e.distillFrom != nil, e.condition == .distractorsOnly)
            guard let teacher = e.distillFrom else { continue }
            distilled.append(e)
            let answer = Array(e.tokens[e.answerStart...])
            XCTAssertNotEqual(answer, tok.encode(" unknown</a>"))
            XCTAssertEqual(Array(teacher.suffix(answer.count)), answer)
            XCTAssertTrue(try tok.decodeString(teacher).hasPrefix(MemoryPrompt.question), "the teacher has no memory")
        }
        XCTAssertGreaterThan(distilled.count, 40)
        o.distractorDistillation = 0
        var r0 = RNG(seed: 4)
        let plain = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o)
        XCTAssertFalse((0..<200).contains { _ in plain.sample(&r0).distillFrom != nil })
        o.distractorDistillation = 1.5
        XCTAssertThrowsError(try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o))

        let e = distilled[0], n = e.tokens.count - e.answerStart
        let batch = [MemoryExample(tokens: [1, 2, 3], answerStart: 2, condition: .gold, goldPosition: nil, memories: []), e]
        for (studentT, T) in [(e.tokens.count + 3, 40), (e.tokens.count - 2, 6)] {
            var inputs: [Int32] = [], targets: [Int32] = []
            MemoryBatch.pack(batch, T: studentT, pad: 0, inputs: &inputs, targets: &targets)
            let db = try XCTUnwrap(DistillBatch.make(batch, studentT: studentT, rows: 3, T: T, pad: 0))
            XCTAssertEqual(db.inputs.count, 3 * T)
            XCTAssertEqual(db.pairs.count, min(n, T))
            for pair in db.pairs {
                XCTAssertEqual(pair.student / studentT, 1)
                XCTAssertEqual(targets[pair.student], db.targets[pair.teacher], "student \(pair.student) teacher \(pair.teacher)")
                XCTAssertGreaterThanOrEqual(db.targets[pair.teacher], 0)
            }
            XCTAssertEqual(db.targets.filter { $0 >= 0 }.count, db.pairs.count)
        }
        XCTAssertNil(DistillBatch.make([batch[0]], studentT: 8, rows: 2, T: 8, pad: 0))
        XCTAssertEqual(DistillBatch.make([e, e, e], studentT: 64, rows: 2, T: 40, pad: 0)?.rows, 3, "more distilled examples than rows")

        // the trainer's soft targets: the model's prediction for the teacher rows, alone
        var to = MemoryTrainerOptions()
        to.lmFraction = 0
        to.batchSize = 2
        to.curriculum.distractorDistillation = 1
        to.distilledGateTargetWeight = 2
        to.copyGateOpenWeight = 0.5
        let params = Parameters(config: try StageTwoFixture.tinyConfig(vocab: tok.vocabSize))
        var init_ = RNG(seed: 3)
        for i in 0..<params.count { params.values.pointer[i] = init_.nextGaussian() * 0.1 }
        let t = try MemoryTrainer(params: params, tokenizer: tok, facts: corpus, lmData: nil, lmVal: nil, outputDir: dir + "/distill", options: to)
        XCTAssertEqual(t.grad.softGateTargetWeight, 2, "the distilled rows' gate target reaches the step")
        XCTAssertEqual(t.grad.copyGateOpenWeight, 0.5, "the gate's opening target reaches the step")
        var bad = to
        bad.copyGateOpenWeight = -.infinity
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("opening target"), "\($0)") }
        var inputs: [Int32] = [], targets: [Int32] = []
        MemoryBatch.pack(batch, T: t.memoryT, pad: tok.eosId ?? 0, inputs: &inputs, targets: &targets)
        let soft = try XCTUnwrap(t.distillTargets(batch, studentTargets: targets))
        XCTAssertEqual(soft.rows.count, n)
        let alone = ModelGrad(params: params)
        let teacher = try XCTUnwrap(e.distillFrom)
        let tin = Array(teacher.dropLast()), V = params.config.vocabSize
        _ = try alone.step(inputs: tin, targets: [Int32](repeating: -1, count: tin.count), B: 1, T: tin.count, backward: false)
        let last = try XCTUnwrap(alone.withLastProbabilities { p, rows, _ in Array(UnsafeBufferPointer(start: p + (rows - 1) * V, count: V)) })
        for v in 0..<V { XCTAssertEqual(soft.probs[(n - 1) * V + v], last[v], accuracy: 1e-5) }
        let step = try t.trainStep()
        XCTAssertTrue(step.loss.isFinite)
    }

    /// Several questions after one memory block: each answer (and only the answers) carries
    /// loss, each asked fact is among the memories, and the first question follows the memories.
    func testMultiQuestionExamples() throws {
        let (corpus, tok) = try markedFixture()
        var o = CurriculumOptions()
        o.questionsPerExample = 3
        let cur = try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o)
        var rng = RNG(seed: 3)
        let e = cur.multiQuestion(first: cur.trainQuestions[0], rng: &rng)
        XCTAssertEqual(e.answerSpans.count, 3)
        XCTAssertEqual(e.answerSpans[0].lowerBound, e.answerStart)
        XCTAssertEqual(e.memories.count, o.k)
        let text = try tok.decodeString(e.tokens)
        XCTAssertTrue(text.hasPrefix(MemoryPrompt.memoryOpen))
        XCTAssertEqual(text.components(separatedBy: MemoryPrompt.question).count - 1, 3)
        for span in e.answerSpans {
            let answer = try tok.decodeString(Array(e.tokens[span]))
            XCTAssertTrue(answer.hasPrefix(" ") && answer.hasSuffix(MemoryPrompt.answerEnd), answer)
            let value = String(answer.dropFirst().dropLast(MemoryPrompt.answerEnd.count))
            XCTAssertTrue(e.memories.contains { $0.contains(value) }, "\(value) is not in the memories")
        }
        var inputs: [Int32] = [], targets: [Int32] = []
        MemoryBatch.pack([e], T: e.tokens.count - 1, pad: 0, inputs: &inputs, targets: &targets)
        let counted = targets.filter { $0 >= 0 }.count
        XCTAssertEqual(counted, e.answerSpans.reduce(0) { $0 + $1.count })
        for span in e.answerSpans { for i in span { XCTAssertEqual(targets[i - 1], e.tokens[i]) } }
        o.questionsPerExample = o.k + 1
        XCTAssertThrowsError(try MemoryCurriculum(corpus: corpus, tokenizer: tok, options: o))
    }

    // MARK: training

    /// The fixture, its tokenizer (with markers), a tiny model and a small pre-training set.
    func setUpRun(entities: Int = 24) throws -> (Parameters, Tokenizer, FactsCorpus, TokenDataset) {
        try StageTwoFixture.run(in: dir, entities: entities)
    }

    /// Stopping half way, resuming from final/ in a fresh trainer and finishing gives the
    /// parameters of an uninterrupted run, bit for bit (memory and LM steps interleaved).
    func testResumeIsExact() throws {
        for eightBit in [false, true] {
            var o = MemoryTrainerOptions()
            o.steps = 8
            o.batchSize = 2
            o.sequenceLength = 64
            o.memorySequenceLength = 48   // memory and LM rows of different lengths
            o.learningRate = 3e-3
            o.lmFraction = 0.5
            o.evalQuestions = 4
            o.use8bitOptimizer = eightBit
            o.seed = 9
            let (p0, tok, corpus, data) = try setUpRun()
            let snapshot = Array(UnsafeBufferPointer(start: p0.values.pointer, count: p0.count))
            func fresh() -> Parameters {
                let p = Parameters(config: p0.config)
                p.values.pointer.update(from: snapshot, count: p.count)
                return p
            }
            let straight = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: data,
                                             outputDir: dir + "/a", options: o)
            var kinds: [String] = []
            try straight.run { p in kinds.append(p.kind); return true }
            XCTAssertEqual(kinds, ["memory", "lm", "memory", "lm", "memory", "lm", "memory", "lm"])

            let first = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: data,
                                          outputDir: dir + "/b", options: o)
            try first.run { p in p.step < 5 }
            XCTAssertEqual(first.step, 5)
            let second = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: data,
                                           outputDir: dir + "/c", options: o)
            try second.resume(from: dir + "/b/final")
            XCTAssertEqual(second.step, 5)
            try second.run()
            XCTAssertEqual(memcmp(second.params.values.pointer, straight.params.values.pointer, p0.count * 4), 0, "8-bit \(eightBit)")
            // the saved final checkpoint has the markers and the grown vocabulary
            let m = try LanguageModel.load(path: dir + "/c/final")
            XCTAssertTrue(MemoryPrompt.isSupported(by: m.tokenizer as! Tokenizer))
            XCTAssertEqual(try m.modelConfig().vocabSize, tok.vocabSize)
            // resuming with the other optimizer is refused
            var other = o
            other.use8bitOptimizer = !eightBit
            let wrong = try MemoryTrainer(params: fresh(), tokenizer: tok, facts: corpus, lmData: data, lmVal: nil, outputDir: dir + "/d",
                                          options: other)
            XCTAssertThrowsError(try wrong.resume(from: dir + "/b/final"))
            XCTAssertThrowsError(try wrong.resume(from: dir + "/a"))   // no state there
            _ = system("rm -rf '\(dir)/a' '\(dir)/b' '\(dir)/c' '\(dir)/d'")
        }
    }

    /// A short memory-only run on the fixture: the answer loss drops, metrics and plot are written.
    func testShortRunLearnsToAnswer() throws {
        let (params, tok, corpus, data) = try setUpRun()
        var o = MemoryTrainerOptions()
        o.steps = 60
        o.batchSize = 8
        o.sequenceLength = 64
        o.learningRate = 1e-2
        o.lmFraction = 0
        o.evalEvery = 30
        o.seed = 1
        let t = try MemoryTrainer(params: params, tokenizer: tok, facts: corpus, lmData: nil, lmVal: data, outputDir: dir + "/out", options: o)
        let before = try t.evaluate()
        var losses: [Double] = []
        let after = try t.run { p in losses.append(p.loss); return true }
        XCTAssertNotNil(after)
        let head = losses.prefix(5).reduce(0, +) / 5, tail = losses.suffix(5).reduce(0, +) / 5
        XCTAssertLessThan(tail, head * 0.6, "answer loss \(head) -> \(tail)")
        XCTAssertLessThan(after!.nll[.oracle]!, before.nll[.oracle]! * 0.8)
        let lines = try FileIO.readText(dir + "/out/metrics.jsonl").split(separator: "\n")
        XCTAssertEqual(lines.count, 61)   // step 0 (the starting point) and 60 steps
        XCTAssertTrue(lines[0].contains("answer_nll_on") && lines[0].contains("val_bpb"))
        XCTAssertTrue(lines[30].contains("exact_match_oracle"))
        XCTAssertTrue(try FileIO.readText(dir + "/out/loss.svg").hasPrefix("<svg"))
    }
}

/// Random parameters for gradient checks: N(0, 0.25) everywhere, norm gains near 1.
func randomParameters(_ c: MixtralConfig, seed: UInt64) -> Parameters {
    let p = Parameters(config: c)
    var rng = RNG(seed: seed)
    for i in 0..<p.count { p.values.pointer[i] = rng.nextGaussian() * 0.5 }
    for (n, role) in p.roles.enumerated() where role == .norm {
        for j in 0..<p.shapes[n][0] { p.values.pointer[p.offsets[n] + j] = 1 + 0.1 * rng.nextGaussian() }
    }
    return p
}

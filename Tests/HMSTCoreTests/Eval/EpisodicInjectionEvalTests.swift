// hmst eval's --episodic-injection (Eval/EpisodicInjection.swift): the layout and rows a prompt
// with soft memories gets, scores equal to a Session given the same rows by hand, and the named
// errors (a checkpoint without trained soft tokens, a memory encoded by another SSM until it is
// re-encoded, the critic or a rolling task with soft tokens); generation with soft tokens equal to a
// Session given the rows by hand.
import XCTest
@testable import HMSTCore

final class EpisodicInjectionEvalTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = "/tmp/hmst-softeval-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    /// A checkpoint with the markers, plus (withSoft) K = 2 soft tokens trained for 2 steps; a
    /// memory directory whose episodic tier holds three facts; a loglikelihood task about them.
    func setUp(withSoft: Bool, input: EpisodicSoftTokens.Input = .pooledKey) throws
        -> (checkpoint: String, memory: String, task: String, facts: [String]) {
        let facts = ["The capital of Vorland is Kesh.", "The river of Vorland is the Ulm.", "The capital of Tarsi is Bodo."]
        var texts = facts.map { Array($0.utf8) }
        for i in 0..<40 { texts.append(Array("what is the capital of the land number \(i % 7)? it is the river".utf8)) }
        var bo = BPETrainingOptions()
        bo.vocabSize = 300
        bo.minFrequency = 2
        let base = try BPETrainer.train(texts: texts, options: bo)
        let model = try LanguageModel.random(config: try StageTwoFixture.tinyConfig(vocab: base.vocabSize), seed: 3, tokenizer: base)
        let (params, tok, _) = try MemoryTokens.prepare(model: model)
        let ck = dir + (withSoft ? "/soft-" + input.rawValue : "/plain")
        let decoded = LanguageModel(decoder: try params.decoder(), tokenizer: tok, config: params.config.json(), report: LoadReport(),
                                    storage: [params])
        try FileIO.makeDirectories(ck)
        try decoded.save(directory: ck)
        if withSoft {
            let s = try EpisodicSoftTokens.initialised(C: 16, K: 2, input: input, scale: 0.3, seed: 4)
            // as if trained: the mixer is no longer the seeded one a plain model's memory uses
            s.mixer.weights.pointer(.inProj)[0] += 0.25
            try s.save(checkpoint: ck)
        }
        let m = try LanguageModel.load(path: ck)
        let store = try MemoryStore(directory: dir + "/mem-" + (withSoft ? "soft-" + input.rawValue : "plain"))
        let ep = try store.episodic(creatingFor: m)
        for f in facts { try ep.add(text: f, model: m) }
        try store.save()
        try FileIO.writeAtomically(dir + "/ll.jsonl", text: """
            {"id": "a", "prompt": "What is the capital of Vorland?", "target": " Kesh", "memory": ["\(facts[0])"]}
            {"id": "b", "prompt": "What is the capital of Tarsi?", "target": " Bodo", "memory": ["\(facts[2])"]}

            """)
        try FileIO.writeAtomically(dir + "/ll.json", text: #"{"name": "ll", "output_type": "loglikelihood", "data": "ll.jsonl"}"#)
        return (ck, store.directory, dir + "/ll.json", facts)
    }

    func request(_ memory: String, _ task: String, _ injection: EpisodicInjection, _ conditions: [MemoryCondition]) -> EvalRunRequest {
        var req = EvalRunRequest()
        req.taskPaths = [task]
        req.memoryDirectory = memory
        req.tier = .episodic
        req.retrieval.mode = .lexical
        req.options.conditions = conditions
        req.options.k = 2
        req.options.resamples = 10
        req.options.episodicInjection = injection
        req.options.keepItems = true
        return req
    }

    /// The context an item's retrieved memories make, built by hand: each entry as <mem>▢▢</mem>
    /// (K = 2) with its stored features' rows, then the question.
    func byHandContext(_ memories: [String], question: String, model: LanguageModel, memory ep: EpisodicMemory) throws
        -> (tokens: [Int32], positions: [Int], rows: [Float]) {
        let tok = try XCTUnwrap(model.tokenizer as? Tokenizer), soft = try XCTUnwrap(model.episodicSoftTokens)
        let open = try XCTUnwrap(tok.id(for: MemoryPrompt.memoryOpen)), close = try XCTUnwrap(tok.id(for: MemoryPrompt.memoryClose))
        var tokens: [Int32] = [], positions: [Int] = [], rows: [Float] = []
        for text in memories {
            let entry = try XCTUnwrap(ep.allEntries().first { $0.text == text })
            tokens.append(open)
            positions += [tokens.count, tokens.count + 1]
            rows += try soft.project(features: try ep.softFeatures(id: entry.id, for: soft))
            tokens += [open, open, close]
        }
        return (tokens + tok.encode(MemoryPrompt.render(memories: [], question: question)), positions, rows)
    }

    func nll(_ r: EvalReport, _ c: MemoryCondition) -> Double? {
        r.results.first { $0.condition == c }?.metrics.first { $0.name == "answer_nll" }?.value
    }

    func testStateInjectionScoresWhatASessionGivenTheRowsScores() throws {
        try checkStateInjection(input: .pooledKey)
    }

    /// The same with soft tokens that read the whole state: the memory stores each entry's
    /// features (and they survive its save and load).
    func testStateReadoutInjectionScoresWhatASessionGivenTheRowsScores() throws {
        try checkStateInjection(input: .stateReadout)
    }

    func checkStateInjection(input: EpisodicSoftTokens.Input) throws {
        let (ck, mem, task, facts) = try setUp(withSoft: true, input: input)
        let model = try LanguageModel.load(path: ck)
        let soft = try XCTUnwrap(model.episodicSoftTokens)
        let text = try EvalRun.run(model: model, request(mem, task, .text, [.off, .on]))
        let state = try EvalRun.run(model: model, request(mem, task, .state, [.off, .on, .oracle]))
        let both = try EvalRun.run(model: model, request(mem, task, .both, [.on]))
        XCTAssertEqual(nll(text, .off), nll(state, .off), "off has no memories: injection changes nothing")
        let sOn = try XCTUnwrap(nll(state, .on)), tOn = try XCTUnwrap(nll(text, .on)), bOn = try XCTUnwrap(nll(both, .on))
        XCTAssertNotEqual(sOn, tOn)
        XCTAssertNotEqual(bOn, sOn)
        XCTAssertTrue(state.json().contains("\"episodic_injection\""))

        // by hand: item b, "on" retrieves (lexically, k 2) the same two entries the report lists,
        // each as <mem>▢▢</mem> with its stored features' rows
        let store = try MemoryStore(directory: mem, mustExist: true)
        let ep = try XCTUnwrap(store.episodic)
        XCTAssertEqual(ep.featureSize, input == .stateReadout ? soft.featureCount : 0)
        if input == .stateReadout {
            // what the memory stored is what the soft tokens read of the text's state
            let enc = try model.encode(text: facts[2], maxTokens: EpisodicMemoryConfig().maxTokens)
            let entry = try XCTUnwrap(ep.allEntries().first { $0.text == facts[2] })
            let x = try soft.mixerInput(hidden: enc.encoding.hidden, tokens: enc.tokens, embedding: model.decoder.weights.embed)
            XCTAssertNotEqual(x, enc.encoding.hidden, "the readout's mixer reads the embeddings too")
            let stored = try ep.softFeatures(id: entry.id, for: soft), fresh = try soft.encode(hidden: x).features
            for (a, b) in zip(stored, fresh) { XCTAssertEqual(a, b, accuracy: 1e-4) }
            // an entry added from a precomputed key has no state to inject
            let id = try ep.add(key: try ep.key(id: entry.id), text: "a key without a state")
            XCTAssertThrowsError(try ep.softFeatures(id: id, for: soft)) {
                XCTAssertTrue(($0 as? HMSTError)?.message.contains("precomputed key") ?? false, "\($0)")
            }
            XCTAssertTrue(ep.remove(ids: [id]) == 1)
            // other soft tokens (same mixer, other queries) are refused
            let other = try EpisodicSoftTokens.initialised(C: 16, K: 2, input: .stateReadout, scale: 0.3, seed: 5,
                                                           mixerWeights: soft.mixerWeightsCopy())
            XCTAssertNotEqual(other.valuesHash, soft.valuesHash)
            model.episodicSoftTokens = other
            XCTAssertThrowsError(try ep.checkSoftTokens(of: model, "mem")) {
                XCTAssertTrue(($0 as? HMSTError)?.message.contains("reencode") ?? false, "\($0)")
            }
            model.episodicSoftTokens = soft
        }
        let rec = try XCTUnwrap(state.items.first { $0.id == "b" && $0.condition == .on })
        let tok = try XCTUnwrap(model.tokenizer as? Tokenizer)
        XCTAssertTrue(rec.memories.contains(facts[2]))
        let (ctx, positions, rows) = try byHandContext(rec.memories, question: "What is the capital of Tarsi?", model: model, memory: ep)
        let cont = tok.encode(" Bodo")
        var sp = SessionParams()
        sp.nCtx = 128
        let s = try Session(decoder: model.decoder, params: sp)
        let score = try s.logLikelihood(ctx + cont, from: ctx.count, vocabLimit: tok.vocabSize,
                                        injected: InjectedEmbeddings(positions: positions, rows: rows))
        let field = rec.fields.first { $0.0 == "answer_nll" }?.1.number
        XCTAssertEqual(try XCTUnwrap(field), -score.logprob / Double(score.count), accuracy: 1e-9)
    }

    func testErrorsAreNamed() throws {
        let plain = try setUp(withSoft: false)
        let model = try LanguageModel.load(path: plain.checkpoint)
        XCTAssertThrowsError(try EvalRun.run(model: model, request(plain.memory, plain.task, .state, [.on]))) {
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("--episodic-soft-tokens") ?? false, "\($0)")
        }
        // a memory built before the soft tokens were trained: other SSM weights, until re-encoded
        let soft = try setUp(withSoft: true)
        let trained = try LanguageModel.load(path: soft.checkpoint)
        XCTAssertThrowsError(try EvalRun.run(model: trained, request(plain.memory, plain.task, .state, [.on]))) {
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("reencode") ?? false, "\($0)")
        }
        let store = try MemoryStore(directory: plain.memory, mustExist: true)
        let before = try XCTUnwrap(store.episodic).allEntries()
        XCTAssertEqual(try store.reencodeEpisodic(for: trained), 3)
        try store.save()
        let after = try XCTUnwrap(try MemoryStore(directory: plain.memory, mustExist: true).episodic)
        XCTAssertEqual(after.allEntries().map(\.id), before.map(\.id))
        XCTAssertEqual(after.allEntries().map(\.text), before.map(\.text))
        XCTAssertTrue(try XCTUnwrap(trained.episodicSoftTokens).hasMixer(after.weights))
        XCTAssertNoThrow(try EvalRun.run(model: trained, request(plain.memory, plain.task, .state, [.on])))
        // generation takes soft tokens: greedy from the context with its injected rows, as a
        // Session given the same rows by hand generates; its answer_nll is the loglikelihood task's
        try FileIO.writeAtomically(dir + "/gen.json", text: #"{"name": "gen", "output_type": "generate_until", "data": "ll.jsonl", "until": ["</a>"], "max_gen_tokens": 3}"#)
        let gen = try EvalRun.run(model: trained, request(soft.memory, dir + "/gen.json", .state, [.on]))
        let ll = try EvalRun.run(model: trained, request(soft.memory, soft.task, .state, [.on]))
        XCTAssertEqual(try XCTUnwrap(nll(gen, .on)), try XCTUnwrap(nll(ll, .on)), accuracy: 1e-9)
        let rec = try XCTUnwrap(gen.items.first { $0.id == "b" })
        let tok = try XCTUnwrap(trained.tokenizer as? Tokenizer)
        let ep = try XCTUnwrap(try MemoryStore(directory: soft.memory, mustExist: true).episodic)
        let (tokens, positions, rows) = try byHandContext(rec.memories, question: "What is the capital of Tarsi?", model: trained, memory: ep)
        var sp = SessionParams()
        sp.nCtx = 128
        let session = try Session(decoder: trained.decoder, params: sp)
        try session.evaluate(tokens, injected: InjectedEmbeddings(positions: positions, rows: rows))
        var greq = TextGenerationRequest()
        greq.maxTokens = 3
        greq.sampling.temperature = 0
        greq.stopStrings = ["</a>"]
        let byHand = try session.generate(prompt: [], tokenizer: tok, greq).string
        XCTAssertEqual(rec.fields.first { $0.0 == "generation" }?.1.string, byHand)
        // the critic judges text prompts, and a rolling text has no question: named errors
        var withCritic = request(soft.memory, dir + "/gen.json", .state, [.on])
        let F = CriticFeatures.names.count, C = trained.decoder.dims.C
        withCritic.options.critic = try Critic(
            featureScaling: Standardizer(mean: [Float](repeating: 0, count: F), std: [Float](repeating: 1, count: F)),
            headWeights: [Float](repeating: 0, count: F), headBias: 0,
            probeScaling: Standardizer(mean: [Float](repeating: 0, count: C), std: [Float](repeating: 1, count: C)),
            probeWeights: [Float](repeating: 0, count: C), probeBias: 0, calibration: .none, settings: CriticSettings(),
            fingerprint: CriticModelFingerprint(model: trained))
        XCTAssertThrowsError(try EvalRun.run(model: trained, withCritic)) {
            XCTAssertEqual(($0 as? HMSTError)?.status, .unsupported)
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("--critic") ?? false, "\($0)")
        }
        try FileIO.writeAtomically(dir + "/roll.jsonl", text: #"{"text": "The capital of Tarsi is Bodo."}"# + "\n")
        try FileIO.writeAtomically(dir + "/roll.json", text: #"{"name": "roll", "output_type": "loglikelihood_rolling", "data": "roll.jsonl"}"#)
        XCTAssertThrowsError(try EvalRun.run(model: trained, request(soft.memory, dir + "/roll.json", .state, [.on]))) {
            XCTAssertEqual(($0 as? HMSTError)?.status, .unsupported)
        }
    }
}

// Evaluation: metric arithmetic against hand-computed values, log-likelihoods against the
// training loss computed independently (ModelGrad), memory conditions on a small memory
// directory, the report and per-item files, and bad input. Random models, no downloads.
import XCTest
@testable import HMSTCore

final class EvalMetricsTests: XCTestCase {
    func testAccuracyAndNormalisedAccuracy() {
        // loglik -2 over 2 bytes (-1/byte) vs -3 over 6 bytes (-0.5/byte): acc picks 0, acc_norm picks 1
        let r = EvalMetrics.multipleChoice(logliks: [-2, -3], choiceBytes: [2, 6], gold: 1)
        XCTAssertEqual(r.acc, 0)
        XCTAssertEqual(r.accNorm, 1)
        XCTAssertEqual(r.pred, 0)
        XCTAssertEqual(r.predNorm, 1)
        XCTAssertEqual(EvalMetrics.multipleChoice(logliks: [-2, -3], choiceBytes: [2, 6], gold: 0).acc, 1)
        XCTAssertEqual(EvalMetrics.argmax([1, 3, 3, 2]), 1)   // ties: the first, as numpy
    }

    func testExactMatchNormalisation() {
        XCTAssertEqual(EvalMetrics.normalizeAnswer("  The Cat,  sat!\n"), "cat sat")
        XCTAssertEqual(EvalMetrics.normalizeAnswer("An apple a day"), "apple day")
        XCTAssertEqual(EvalMetrics.normalizeAnswer("Theatre"), "theatre")     // articles only as words
        XCTAssertEqual(EvalMetrics.normalizeAnswer("U.S.A."), "usa")
        XCTAssertTrue(EvalMetrics.exactMatch(" Tarsk.", "tarsk"))
        XCTAssertTrue(EvalMetrics.exactMatch("the Tarsk", " Tarsk"))
        XCTAssertFalse(EvalMetrics.exactMatch(" Tarsk II", " Tarsk"))
    }

    func testBitsPerBytePerplexityAndQuantile() {
        // 8 bits over 4 bytes = 2 bits per byte
        XCTAssertEqual(EvalMetrics.bitsPerByte(loglik: -8 * log(2.0), bytes: 4), 2, accuracy: 1e-12)
        XCTAssertEqual(EvalMetrics.perplexity(loglik: -2 * log(3.0), units: 2), 3, accuracy: 1e-12)
        XCTAssertEqual(EvalMetrics.wordCount(" two  words\n"), 2)
        XCTAssertEqual(EvalMetrics.quantile([1, 2, 3, 4], 0.5), 2.5)
        XCTAssertEqual(EvalMetrics.quantile([1, 2, 3, 4], 0.025), 1.075, accuracy: 1e-12)   // 1 + 0.075 · (2 − 1)
    }

    func testBootstrapInterval() {
        // a constant sample has a point interval
        let c = EvalMetrics.bootstrapMean([0.7, 0.7, 0.7], resamples: 200, seed: 1)
        XCTAssertEqual(c.low, 0.7, accuracy: 1e-12)
        XCTAssertEqual(c.high, 0.7, accuracy: 1e-12)
        // {0, 1}: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4 -> [0, 1]
        let two = EvalMetrics.bootstrapMean([0, 1], resamples: 1000, seed: 7)
        XCTAssertEqual(two.low, 0)
        XCTAssertEqual(two.high, 1)
        // 200 ones and 200 zeros: the normal approximation gives 0.5 ± 1.96·sqrt(0.25/400) = 0.5 ± 0.049
        let half = [Double](repeating: 1, count: 200) + [Double](repeating: 0, count: 200)
        let ci = EvalMetrics.bootstrapMean(half, resamples: 1000, seed: 42)
        XCTAssertEqual(ci.low, 0.451, accuracy: 0.012)
        XCTAssertEqual(ci.high, 0.549, accuracy: 0.012)
        // seeded: the same seed gives the same interval, another seed another one
        let again = EvalMetrics.bootstrapMean(half, resamples: 1000, seed: 42)
        XCTAssertEqual(ci.low, again.low)
        XCTAssertEqual(ci.high, again.high)
        let other = EvalMetrics.bootstrapMean(half, resamples: 1000, seed: 43)
        XCTAssertTrue(other.low != ci.low || other.high != ci.high)
        XCTAssertTrue(EvalMetrics.bootstrapMean([], resamples: 10, seed: 0).low.isNaN)
        // an infinite perplexity (an item of log-likelihood -inf) is an interval reaching inf,
        // not [nan, nan]; every resample infinite is [inf, inf]
        let inf = EvalMetrics.bootstrapMean([.infinity, .infinity], resamples: 100, seed: 0)
        XCTAssertEqual(inf.low, .infinity)
        XCTAssertEqual(inf.high, .infinity)
        let some = EvalMetrics.bootstrapMean([1, 1, 1, 1, .infinity], resamples: 1000, seed: 3)
        XCTAssertEqual(some.low, 1)
        XCTAssertEqual(some.high, .infinity)
        XCTAssertEqual(EvalMetrics.quantile([1, .infinity, .infinity], 0.75), .infinity)
        XCTAssertEqual(EvalMetrics.quantile([1, 2, .infinity], 0.25), 1.5)
    }
}

final class EvalScoringTests: XCTestCase {
    /// Σ over every next-token prediction of −log p, from the training forward (not the Session).
    func trainingNLL(_ model: LanguageModel, _ window: [Int32]) throws -> Double {
        let r = try ModelGrad(params: try Parameters(model: model)).step(windows: window, B: 1, T: window.count - 1, backward: false)
        return r.ceLoss * Double(window.count - 1)
    }

    func testBitsPerByteEqualsTheTrainingLossConverted() throws {
        let model = try byteModel()
        let text = "the quick brown fox jumps over the lazy dog"
        var item = EvalItem(id: "0", line: 1)
        item.text = text
        let task = EvalTask(name: "wiki", outputType: .loglikelihoodRolling, items: [item])
        let ev = try Evaluator(model: model)
        let r = try ev.run(task, condition: .off).0
        // ByteTokenizer has an end-of-text token (256): the text is scored after it, every byte predicted
        let seq: [Int32] = [256] + text.utf8.map(Int32.init)
        let nll = try trainingNLL(model, seq)
        let bytes = Double(text.utf8.count)
        XCTAssertEqual(r.metric("bits_per_byte")!.value, nll / (bytes * log(2.0)), accuracy: 1e-5)
        XCTAssertEqual(r.metric("byte_perplexity")!.value, exp(nll / bytes), accuracy: 1e-4)
        XCTAssertEqual(r.metric("token_perplexity")!.value, exp(nll / bytes), accuracy: 1e-4)  // one token per byte
        XCTAssertEqual(log(r.metric("word_perplexity")!.value), nll / 9, accuracy: 1e-6)   // 9 words
        XCTAssertEqual(r.n, 1)

        // n_ctx 16: three windows, the later ones with one token of context (lm-eval's rolling windows)
        var o = EvalOptions()
        o.nCtx = 16
        let small = try Evaluator(model: model, options: o)
        let s = try small.scoreRolling(text: text)
        XCTAssertEqual(s.count, 43)
        let windows = try trainingNLL(model, Array(seq[0...16])) + trainingNLL(model, Array(seq[16...32])) + trainingNLL(model, Array(seq[32...43]))
        XCTAssertEqual(-s.logprob, windows, accuracy: 1e-3)
    }

    func testContinuationLogLikelihoodAndGreedy() throws {
        let model = try byteModel()
        let ev = try Evaluator(model: model)
        let context = "Question: what is it?\nAnswer:", target = " a cat"
        let s = try ev.score(context: context, continuation: target)
        XCTAssertEqual(s.count, 6)
        // causal: the continuation's NLL is the whole sequence's minus the context's
        let ctx = context.utf8.map(Int32.init), cont = target.utf8.map(Int32.init)
        let expected = try trainingNLL(model, ctx + cont) - trainingNLL(model, ctx)
        XCTAssertEqual(-s.logprob, expected, accuracy: 1e-3)
        // continuations sharing the context (evaluated once) score as they do alone
        let shared = try ev.score(context: context, continuations: [target, " dogs", "!"])
        XCTAssertEqual(shared.map(\.count), [6, 5, 1])
        for (c, sc) in zip([target, " dogs", "!"], shared) {
            let alone = try ev.score(context: context, continuation: c)
            XCTAssertEqual(sc.logprob, alone.logprob, accuracy: 1e-4)
            XCTAssertEqual(sc.isGreedy, alone.isGreedy)
        }
        // the greedy continuation is greedy; change its last token and it is not
        let session = try Session(decoder: model.decoder, params: SessionParams())
        var req = GenerationRequest()
        req.maxTokens = 5
        req.sampling.temperature = 0
        req.vocabLimit = 257
        let greedy = try session.generate(prompt: ctx, req).tokens
        XCTAssertEqual(greedy.count, 5)
        XCTAssertTrue(try session.logLikelihood(ctx + greedy, from: ctx.count, vocabLimit: 257).isGreedy)
        var off = greedy
        off[4] = (off[4] + 1) % 256
        XCTAssertFalse(try session.logLikelihood(ctx + off, from: ctx.count, vocabLimit: 257).isGreedy)
        XCTAssertThrowsError(try session.logLikelihood(ctx, from: 0))
        XCTAssertThrowsError(try session.logLikelihood([1, 2, 999], from: 1))
    }
}

extension EvalScoringTests {
    func testKNNLMControl() throws {
        let model = try byteModel()
        let ev = try Evaluator(model: model)
        let context = "Question: the capital of Zorbia?\nAnswer:", target = " Quil"
        let ctx = context.utf8.map(Int32.init), cont = target.utf8.map(Int32.init)
        let store = KNNDatastore(C: model.dims.C)
        try store.add(tokens: ctx + cont, session: ev.session)   // the very sentence being scored
        XCTAssertEqual(store.count, ctx.count + cont.count - 1)
        let nll = try KNNLM.answerNLL(session: ev.session, datastore: store, context: ctx, continuation: cont, lambdas: [0, 0.5, 1], k: 1)
        // λ = 0 is the LM alone
        let lm = try ev.score(context: context, continuation: target)
        XCTAssertEqual(nll[0], -lm.logprob / Double(cont.count), accuracy: 1e-4)
        // k = 1: the nearest key is the same position (distance 0), whose value is the target: p_kNN = 1
        XCTAssertEqual(nll[2], 0, accuracy: 1e-9)
        XCTAssertLessThan(nll[1], log(2.0))
        XCTAssertLessThan(nll[1], nll[0])
        // through the evaluator: a datastore of the task's gold memories, metrics under off only
        var item = EvalItem(id: "z", line: 1)
        item.prompt = "the capital of Zorbia?"
        item.target = target
        item.memory = ["the capital of Zorbia is Quil"]
        var o = EvalOptions()
        o.knnLambdas = [0.25, 0.5]
        o.conditions = [.off, .oracle]
        let report = try Evaluator(model: model, options: o).run([EvalTask(name: "k", outputType: .loglikelihood, items: [item])])
        let off = report.result(task: "k", condition: .off)!
        XCTAssertNotNil(off.metric("knn_answer_nll@0.25"))
        XCTAssertNotNil(off.metric("knn_answer_nll@0.5"))
        XCTAssertNil(report.result(task: "k", condition: .oracle)!.metric("knn_answer_nll@0.5"))
        o.knnLambdas = [1.5]
        XCTAssertThrowsError(try Evaluator(model: model, options: o))
    }
}

final class EvalConditionTests: XCTestCase {
    let gold = "the capital of Zorbia is Quil"
    let facts = ["cats have four legs", "water boils at one hundred degrees", "the sky is blue on a clear day",
                 "bread is made from flour", "the capital of Zorbia is Quil"]

    /// A memory directory: the facts in semantic memory (Flat), the gold fact and one other in episodic.
    func makeMemory(_ model: LanguageModel, _ dir: String) throws -> MemoryStore {
        let store = try MemoryStore(directory: dir)
        let sem = try store.semantic(creatingFor: model, description: "Flat")
        for f in facts { try sem.add(text: f, model: model) }
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        let epi = try store.episodic(creatingFor: model, config: c)
        _ = try epi.add(text: gold, model: model)
        _ = try epi.add(text: "owls hunt at night", model: model)
        try store.save()
        return store
    }

    func testOffOracleOnAndDeleted() throws {
        let model = try byteModel()
        let dir = tempDirectory("eval-conditions")
        defer { removeTree(dir) }
        _ = try makeMemory(model, dir)
        let store = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertEqual(store.count, 7)
        var item = EvalItem(id: "q", line: 1)
        item.prompt = "What is the capital of Zorbia?"
        item.target = " Quil"
        item.memory = [gold]
        var o = EvalOptions()
        o.k = 7
        let ev = try Evaluator(model: model, retriever: try MemoryStoreRetriever(store: store, model: model), options: o)
        XCTAssertEqual(try ev.memories(for: item, query: item.prompt, condition: .off), [])
        XCTAssertEqual(try ev.memories(for: item, query: item.prompt, condition: .oracle), [gold])
        let on = try ev.memories(for: item, query: item.prompt, condition: .on)
        XCTAssertEqual(on.count, 7)                                   // k = 7 of 7 entries: all, both gold copies
        XCTAssertEqual(on.filter { $0 == gold }.count, 2)
        let deleted = try ev.memories(for: item, query: item.prompt, condition: .deleted)
        XCTAssertEqual(deleted.count, 5)                              // both entries with the gold text gone
        XCTAssertFalse(deleted.contains(gold))
        // the same as retrieving from a copy with the gold entries really removed
        let copy = try MemoryStore(directory: dir, mustExist: true)
        let goldIds = try copy.allEntries().filter { $0.text == gold }
        for g in goldIds { _ = try copy.remove(ids: [g.id], tier: g.tier) }
        for k in [1, 2, 3, 5] {
            let direct = try copy.search(text: item.prompt, model: model, tier: .both, k: k).map(\.text)
            XCTAssertEqual(try MemoryStoreRetriever(store: store, model: model).retrieve(query: item.prompt, k: k, excluding: [gold]), direct)
        }
        // with a coverage filter too, in every mode: the copy's own statistics (its entry count
        // and the gold's terms' document frequencies, one lower) decide what passes
        for mode in [RetrievalMode.hybrid, .lexical, .dense] {
            var ro = RetrievalOptions(mode: mode)
            ro.minCoverage = 0.3
            ro.nCandidates = 3
            for q in [item.prompt, "Which capital does Zorbia have?", "how many legs do cats have", "boils"] {
                for k in [1, 2, 4] {
                    let fromCopy = try MemoryStoreRetriever(store: copy, model: model, options: ro).retrieve(query: q, k: k, excluding: [])
                    XCTAssertEqual(try MemoryStoreRetriever(store: store, model: model, options: ro).retrieve(query: q, k: k, excluding: [gold]),
                                   fromCopy, "\(mode) \(q) k \(k)")
                }
            }
        }
        // linked memory (what gives the answer away) goes with the gold entries under deleted
        // only: oracle still injects the gold texts alone
        var linked = item
        let giveaway = try XCTUnwrap(on.first { $0 != gold })
        linked.linkedMemory = [giveaway]
        XCTAssertEqual(try ev.memories(for: linked, query: item.prompt, condition: .oracle), [gold])
        let deletedLinked = try ev.memories(for: linked, query: item.prompt, condition: .deleted)
        XCTAssertEqual(deletedLinked.count, 5 - on.filter { $0 == giveaway }.count)
        XCTAssertFalse(deletedLinked.contains(gold) || deletedLinked.contains(giveaway))
        // the user's directory is untouched
        XCTAssertEqual(try MemoryStore(directory: dir, mustExist: true).count, 7)
        // the prompt carries exactly the condition's memories (plain layout: a byte tokenizer has no markers)
        XCTAssertEqual(ev.promptFormat, "plain")
        XCTAssertEqual(ev.prompt(memories: [gold], question: item.prompt), "Fact: \(gold)\nQuestion: \(item.prompt)\nAnswer:")
        XCTAssertEqual(ev.prompt(memories: [], question: item.prompt), "Question: \(item.prompt)\nAnswer:")
        XCTAssertEqual(ev.memoryPrefix([gold]), "Fact: \(gold)\n")

        // per-item records say which memories each condition used
        var ko = o
        ko.k = 2
        ko.conditions = [.off, .oracle, .on, .deleted]
        ko.keepItems = true
        let task = EvalTask(name: "facts", outputType: .loglikelihood, items: [item])
        let report = try Evaluator(model: model, retriever: MemoryStoreRetriever(store: store, model: model), options: ko).run([task])
        XCTAssertEqual(report.items.map(\.condition), [.off, .oracle, .on, .deleted])
        XCTAssertEqual(report.items[0].memories, [])
        XCTAssertEqual(report.items[1].memories, [gold])
        XCTAssertEqual(report.items[2].memories.count, 2)
        XCTAssertFalse(report.items[3].memories.contains(gold))
        // the oracle's answer NLL is that of the target after the gold fact
        let withGold = try ev.score(context: ev.prompt(memories: [gold], question: item.prompt), continuation: " Quil")
        XCTAssertEqual(report.result(task: "facts", condition: .oracle)!.metric("answer_nll")!.value, -withGold.logprob / 5, accuracy: 1e-9)
    }

    /// Deleting the gold entry changes the statistics a coverage filter reads: in the copy
    /// (N = 4) no entry holds "capital" any more, so "Zorbia exports tin" covers all of what the
    /// copy knows of "capital of Zorbia" (1) and passes 0.5; with the memory's own statistics
    /// (N = 5, "zorbia" df 2: ln 2.4, "capital" df 1: ln 4) it would cover 0.387 and go.
    /// Deleted must see the copy's.
    func testDeletedCoverageUsesTheStatisticsOfTheCopy() throws {
        let model = try byteModel()
        let dir = tempDirectory("eval-coverage")
        defer { removeTree(dir) }
        let texts = [gold, "Zorbia exports tin", "cats have four legs", "bread is made from flour", "the sky is blue"]
        let store = try MemoryStore(directory: dir)
        let sem = try store.semantic(creatingFor: model, description: "Flat")
        for t in texts { try sem.add(text: t, model: model) }
        try store.save()
        let copyDir = tempDirectory("eval-coverage-copy")
        defer { removeTree(copyDir) }
        let copy = try MemoryStore(directory: copyDir)
        let csem = try copy.semantic(creatingFor: model, description: "Flat")
        for t in texts.dropFirst() { try csem.add(text: t, model: model) }
        for mode in [RetrievalMode.hybrid, .lexical, .dense] {
            var ro = RetrievalOptions(mode: mode)
            ro.minCoverage = 0.5
            let deleted = try MemoryStoreRetriever(store: store, model: model, options: ro).retrieve(query: "capital of Zorbia", k: 4, excluding: [gold])
            XCTAssertEqual(deleted, try MemoryStoreRetriever(store: copy, model: model, options: ro).retrieve(query: "capital of Zorbia", k: 4, excluding: []))
            XCTAssertEqual(deleted, ["Zorbia exports tin"], "\(mode)")
            // not deleted: the gold covers everything, "Zorbia exports tin" 0.387 of it
            XCTAssertEqual(try MemoryStoreRetriever(store: store, model: model, options: ro).retrieve(query: "capital of Zorbia", k: 4, excluding: []),
                           [gold], "\(mode)")
        }
        var owned = RetrievalOptions()
        owned.minCoverage = 0.5
        owned.owner = "a"
        XCTAssertThrowsError(try MemoryStoreRetriever(store: store, model: model, options: owned))
    }

    func testRetrievingConditionsNeedAMemory() throws {
        var o = EvalOptions()
        o.conditions = [.off, .deleted]
        XCTAssertThrowsError(try Evaluator(model: try byteModel(), options: o)) { e in
            XCTAssertTrue("\(e)".contains("deleted needs a memory directory"), "\(e)")
        }
        XCTAssertEqual(try MemoryCondition.parseList("off, oracle"), [.off, .oracle])
        XCTAssertThrowsError(try MemoryCondition.parseList("off,maybe")) { XCTAssertTrue("\($0)".contains("\"maybe\"")) }
        XCTAssertThrowsError(try MemoryCondition.parseList("on,on"))
    }
}

final class EvalRunTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = tempDirectory("eval-run-\(name.filter { $0.isLetter })") ; try? FileIO.makeDirectories(dir) }
    override func tearDown() { removeTree(dir) }

    func write(_ name: String, _ text: String) throws -> String {
        try FileIO.writeAtomically(dir + "/" + name, text: text)
        return dir + "/" + name
    }

    /// A random model with a BPE tokenizer trained here, the five MemoryPrompt markers added.
    func bpeModel() throws -> LanguageModel {
        var o = BPETrainingOptions()
        o.vocabSize = 300
        o.minFrequency = 1
        o.specialTokens = ["<|endoftext|>"] + MemoryPrompt.markers
        let corpus = (0..<20).map { i in Array("the capital of land \(i) is city \(i). cats and dogs. who is the king?".utf8) }
        let tok = try BPETrainer.train(texts: corpus, options: o)
        let c = try MixtralConfig(vocabSize: tok.vocabSize, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 256, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        return try LanguageModel.random(config: c, seed: 3, tokenizer: tok)
    }

    func testReportAndItemsFiles() throws {
        let model = try bpeModel()
        let mcItems = """
        {"id": "a", "prompt": "Who is the king?", "choices": [" city 1", " land 2", " cats"], "gold": 0, "memory": ["the king is city 1"], "split": "dev"}
        {"id": "b", "prompt": "What is the capital of land 3?", "choices": [" city 3", " dogs"], "gold": 1}

        {"id": "c", "prompt": "cats?", "choices": [" and", " dogs"], "gold": 1}
        """
        _ = try write("mc.jsonl", mcItems)
        let mc = try write("mc.json", #"{"name": "mc", "output_type": "multiple_choice", "data": "mc.jsonl"}"#)
        _ = try write("gen.jsonl", #"{"id": 1, "prompt": "the capital of land 4 is", "target": " city 4", "memory": ["the capital of land 4 is city 4"]}"# + "\n")
        let gen = try write("gen.json", #"{"name": "gen", "output_type": "generate_until", "data": "gen.jsonl", "until": ["</a>", "\n"], "max_gen_tokens": 4}"#)
        _ = try write("ll.jsonl", #"{"prompt": "the capital of land 5 is", "target": " city 5"}"# + "\n")
        let ll = try write("ll.json", #"{"name": "ll", "output_type": "loglikelihood", "data": "ll.jsonl"}"#)
        var req = EvalRunRequest()
        req.taskPaths = [mc, gen, ll]
        req.options.conditions = [.off, .oracle]
        req.options.resamples = 100
        req.reportPath = dir + "/report.json"
        req.itemsPath = dir + "/items.jsonl"
        let report = try EvalRun.run(model: model, req)
        XCTAssertEqual(report.promptFormat, "markers")
        let j = try JSONValue.parse(try FileIO.readText(dir + "/report.json"))
        XCTAssertEqual(j["format"]?.string, "hmst-eval-report")
        XCTAssertEqual(j["settings"]?["prompt_format"]?.string, "markers")
        let acc = j["tasks"]?["mc"]?["conditions"]?["oracle"]?["acc"]
        XCTAssertEqual(acc?["n"]?.int, 3)
        XCTAssertEqual(acc?["ci95"]?.array?.count, 2)
        let v = acc?["value"]?.number ?? -1
        XCTAssertTrue([0, 1.0 / 3, 2.0 / 3, 1].contains { abs($0 - v) < 1e-12 }, "acc \(v)")
        XCTAssertEqual(j["tasks"]?["mc"]?["n_items"]?.int, 3)
        XCTAssertNotNil(j["tasks"]?["gen"]?["conditions"]?["off"]?["exact_match"]?["value"]?.number)
        XCTAssertNotNil(j["tasks"]?["gen"]?["conditions"]?["off"]?["answer_nll"]?["value"]?.number)
        XCTAssertNotNil(j["tasks"]?["ll"]?["conditions"]?["oracle"]?["perplexity"]?["value"]?.number)
        XCTAssertEqual(j["tasks"]?["ll"]?["conditions"]?["off"]?["acc"]?["n"]?.int, 1)
        // 5 items x 2 conditions, each line JSON with its scores and metadata
        let lines = try FileIO.readText(dir + "/items.jsonl").split(separator: "\n").map { try JSONValue.parse(String($0)) }
        XCTAssertEqual(lines.count, 10)
        let a = lines.first { $0["task"]?.string == "mc" && $0["id"]?.string == "a" && $0["condition"]?.string == "oracle" }
        XCTAssertEqual(a?["memories"]?.array?.compactMap(\.string), ["the king is city 1"])
        XCTAssertEqual(a?["logprobs"]?.array?.count, 3)
        XCTAssertEqual(a?["metadata"]?["split"]?.string, "dev")
        let g = lines.first { $0["task"]?.string == "gen" }
        XCTAssertEqual(g?["id"]?.string, "1")
        XCTAssertNotNil(g?["generation"]?.string)
        // the oracle prompt is MemoryPrompt's marker layout
        let ev = try Evaluator(model: model)
        XCTAssertEqual(ev.prompt(memories: ["f"], question: "q"), "<mem>f</mem><q>q<a>")
        // --limit keeps the first items
        req.limit = 1
        req.reportPath = nil
        req.itemsPath = nil
        XCTAssertEqual(try EvalRun.run(model: model, req).result(task: "mc", condition: .off)?.n, 1)
    }

    func expectError(_ body: @autoclosure () throws -> Any, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("no error; expected one naming \(fragments)", file: file, line: line)
        } catch {
            for f in fragments { XCTAssertTrue("\(error)".contains(f), "\"\(error)\" does not mention \(f)", file: file, line: line) }
        }
    }

    func testBadInputsGiveClearErrors() throws {
        expectError(try EvalTask.load(path: dir + "/nope.json"), ["nope.json", "does not exist"])
        let t1 = try write("t1.json", #"{"name": "t", "output_type": "generate_until", "data": "missing.jsonl"}"#)
        expectError(try EvalTask.load(path: t1), ["missing.jsonl", "does not exist"])
        let t2 = try write("t2.json", #"{"name": "t", "output_type": "perplexity", "data": "x.jsonl"}"#)
        expectError(try EvalTask.load(path: t2), ["unknown output_type", "perplexity"])
        let t3 = try write("t3.json", #"{"name": "t", "data": "x.jsonl"}"#)
        expectError(try EvalTask.load(path: t3), ["missing \"output_type\""])
        let t4 = try write("t4.json", #"{"name": "t", "output_type": "loglikelihood", "#)
        expectError(try EvalTask.load(path: t4), ["t4.json", "not valid JSON"])
        // item problems name the data file and the line
        _ = try write("bad.jsonl", #"{"prompt": "p", "target": " t"}"# + "\n\n" + #"{"prompt": "p", "target": " t""# + "\n")
        let t5 = try write("t5.json", #"{"name": "t", "output_type": "loglikelihood", "data": "bad.jsonl"}"#)
        expectError(try EvalTask.load(path: t5), ["bad.jsonl line 3", "not valid JSON"])
        _ = try write("nofield.jsonl", #"{"id": "x", "prompt": "p"}"# + "\n")
        let t6 = try write("t6.json", #"{"name": "t", "output_type": "generate_until", "data": "nofield.jsonl"}"#)
        expectError(try EvalTask.load(path: t6), ["nofield.jsonl line 1", "missing \"target\""])
        _ = try write("gold.jsonl", #"{"prompt": "p", "choices": [" a", " b"], "gold": 2}"# + "\n")
        let t7 = try write("t7.json", #"{"name": "t", "output_type": "multiple_choice", "data": "gold.jsonl"}"#)
        expectError(try EvalTask.load(path: t7), ["gold.jsonl line 1", "\"gold\""])
        _ = try write("roll.jsonl", #"{"prompt": "p"}"# + "\n")
        let t8 = try write("t8.json", #"{"name": "t", "output_type": "loglikelihood_rolling", "data": "roll.jsonl"}"#)
        expectError(try EvalTask.load(path: t8), ["roll.jsonl line 1", "missing \"text\""])
        _ = try write("dup.jsonl", #"{"id": 1, "text": "a"}"# + "\n" + #"{"id": "1", "text": "b"}"# + "\n")
        let t9 = try write("t9.json", #"{"name": "t", "output_type": "loglikelihood_rolling", "data": "dup.jsonl"}"#)
        expectError(try EvalTask.load(path: t9), ["dup.jsonl line 2", "appears twice"])
        _ = try write("linked.jsonl", #"{"prompt": "p", "target": " t", "memory": ["m"], "linked_memory": ["n", 3]}"# + "\n")
        let t10 = try write("t10.json", #"{"name": "t", "output_type": "loglikelihood", "data": "linked.jsonl"}"#)
        expectError(try EvalTask.load(path: t10), ["linked.jsonl line 1", "\"linked_memory\" must be an array of strings"])
        _ = try write("linked2.jsonl", #"{"prompt": "p", "target": " t", "memory": ["m"], "linked_memory": ["n"], "x": 1}"# + "\n")
        let linked = try EvalTask.load(path: try write("t11.json", #"{"name": "t", "output_type": "loglikelihood", "data": "linked2.jsonl"}"#))
        XCTAssertEqual(linked.items[0].linkedMemory, ["n"])
        XCTAssertEqual(linked.items[0].deletedTexts, ["m", "n"])
        XCTAssertEqual(linked.items[0].metadata.map(\.0), ["x"])
        // a model without a tokenizer; a memory directory that does not exist
        let noTok = try LanguageModel.random(config: try byteModel().modelConfig(), seed: 1)
        expectError(try Evaluator(model: noTok), ["tokenizer"])
        var req = EvalRunRequest()
        _ = try write("ok.jsonl", #"{"text": "some text"}"# + "\n")
        req.taskPaths = [try write("ok.json", #"{"name": "t", "output_type": "loglikelihood_rolling", "data": "ok.jsonl"}"#)]
        req.memoryDirectory = dir + "/no-memory"
        req.options.conditions = [.off, .on]
        expectError(try EvalRun.run(model: try byteModel(), req), ["no-memory"])
    }
}

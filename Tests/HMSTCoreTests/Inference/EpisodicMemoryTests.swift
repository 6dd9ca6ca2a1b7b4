// Encoding with the base model (hidden states, surprise, pooled embedding, many texts packed into
// one forward) and the episodic memory: SSM keys, retrieval, eviction, access counts and bad input.
import XCTest
@testable import HMSTCore

/// A random model over bytes (vocabulary 257) with SamplerTests' ByteTokenizer.
func byteModel(seed: UInt64 = 5, hidden: Int = 32) throws -> LanguageModel {
    let c = try MixtralConfig(vocabSize: 257, hiddenSize: hidden, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                            numKeyValueHeads: 2, maxPositionEmbeddings: 512, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
    let m = try LanguageModel.random(config: c, seed: seed)
    return LanguageModel(decoder: m.decoder, tokenizer: ByteTokenizer(), config: m.config, report: LoadReport(), storage: [m])
}

final class EncodeTests: XCTestCase {
    func testHiddenStatesSurpriseAndEmbedding() throws {
        let model = try byteModel()
        let tokens = Array("the cat sat on the mat".utf8).map(Int32.init)
        let enc = try model.encode(tokens: tokens)
        XCTAssertEqual(enc.T, tokens.count)
        XCTAssertEqual(enc.hidden.count, tokens.count * 32)
        // the surprise is the training loss of the same window (cross-entropy part)
        let p = try Parameters(model: model)
        let r = try ModelGrad(params: p).step(windows: tokens, B: 1, T: tokens.count - 1, backward: false)
        XCTAssertEqual(enc.surprise, r.ceLoss, accuracy: 1e-4)
        // hidden states are what the LM head reads: logits = h · headᵀ
        let s = try Session(decoder: model.decoder, params: SessionParams())
        try s.evaluate(tokens, allLogits: true)
        let head = p.value("lm_head.weight")
        for t in [0, tokens.count - 1] {
            let logits = try s.logits(row: t)
            for v in [0, 97, 256] {
                var dot: Float = 0
                for c in 0..<32 { dot += enc.hidden[t * 32 + c] * head[v * 32 + c] }
                XCTAssertEqual(dot, logits[v], accuracy: 1e-4)
            }
        }
        let e = try model.embed(text: "the cat sat on the mat")
        XCTAssertEqual(e.count, 32)
        XCTAssertEqual(e.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5)
        XCTAssertEqual(e, try model.embed(text: "the cat sat on the mat"))
        XCTAssertThrowsError(try model.embed(text: ""))
        let noTok = try LanguageModel.random(config: model.modelConfig(), seed: 1)
        XCTAssertThrowsError(try noTok.embed(text: "x"))
    }

    /// Many texts packed into one forward (embed(batch:), each its own positions and
    /// attention) give each text's one-by-one embedding; longer than a packing batch, a text
    /// takes the one-by-one path; the batched retrieval features and projected embeddings
    /// agree with the single ones; bad sequences are refused by name.
    func testBatchedEmbeddingsEqualOneByOne() throws {
        let c = try MixtralConfig(vocabSize: 257, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 1024, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        let m = try LanguageModel.random(config: c, seed: 9)
        let model = LanguageModel(decoder: m.decoder, tokenizer: ByteTokenizer(), config: m.config, report: LoadReport(), storage: [m])
        var rng = RNG(seed: 3)
        // 80 texts of 1-40 tokens (several packed forwards of 512), one of 700 among them
        var seqs = (0..<80).map { _ in (0..<(1 + Int(rng.next() % 40))).map { _ in Int32(rng.next() % 256) } }
        seqs.insert((0..<700).map { _ in Int32(rng.next() % 256) }, at: 37)
        let batched = try model.embed(batch: seqs)
        XCTAssertEqual(batched.count, seqs.count)
        for (i, s) in seqs.enumerated() {
            let one = try model.embed(tokens: s)
            XCTAssertEqual(batched[i].count, one.count)
            let worst = zip(batched[i], one).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 2e-5, "sequence \(i) of \(s.count) tokens")
        }
        XCTAssertEqual(try model.embed(batch: []).count, 0)
        XCTAssertThrowsError(try model.embed(batch: [[1, 2], [3, 300]])) { e in
            XCTAssertTrue("\(e)".contains("outside the vocabulary"), "\(e)")
        }
        XCTAssertThrowsError(try model.embed(batch: [[1, 2], []]))

        // retrieval features and projected query / document vectors, batched against one by one
        let texts = ["the cat sat", "a dog", "x", "what is the capital of the moon?"]
        let f = try model.retrievalFeatures(texts: texts, pooling: .hiddenAndTokens)
        var w = RNG(seed: 4)
        model.retriever = try RetrieverProjection(C: 32, D: 8, query: (0..<64 * 8).map { _ in w.nextGaussian() },
                                                  document: (0..<64 * 8).map { _ in w.nextGaussian() }, pooling: .hiddenAndTokens)
        let q = try model.queryEmbeddings(texts: texts), d = try model.documentEmbeddings(texts: texts)
        for (i, t) in texts.enumerated() {
            let one = try model.retrievalFeatures(text: t, pooling: .hiddenAndTokens)
            for (a, b) in zip(f[i], one) { XCTAssertEqual(a, b, accuracy: 2e-5) }
            for (a, b) in zip(q[i], try model.queryEmbedding(text: t)) { XCTAssertEqual(a, b, accuracy: 1e-4) }
            for (a, b) in zip(d[i], try model.documentEmbedding(text: t)) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        }
    }
}

final class EpisodicMemoryTests: XCTestCase {
    func testAddSearchEvictAndAccessCounts() throws {
        let model = try byteModel()
        var cfg = EpisodicMemoryConfig()
        cfg.maxEntries = 4
        cfg.stateSize = 16
        let mem = try EpisodicMemory(model: model, config: cfg)
        let texts = ["the cat sat on the mat", "quantum chromodynamics of gluons", "a recipe for bread and butter", "stock prices fell sharply today"]
        var ids: [Int64] = []
        for (i, t) in texts.enumerated() { ids.append(try mem.add(text: t, model: model, importance: i == 0 ? 0.9 : 0.5, timestamp: Double(i))) }
        XCTAssertEqual(mem.count, 4)
        // an entry's own text finds it first, with cosine 1
        for (i, t) in texts.enumerated() {
            let hits = try mem.search(text: t, model: model, k: 2)
            XCTAssertEqual(hits.first?.id, ids[i])
            XCTAssertEqual(hits.first?.score ?? 0, 1, accuracy: 1e-4)
            XCTAssertEqual(hits.count, 2)
        }
        XCTAssertEqual(mem.allEntries().reduce(0) { $0 + $1.accessCount }, 8)   // 4 searches x 2 hits
        XCTAssertGreaterThanOrEqual(try mem.entry(id: ids[0]).accessCount, 1)
        XCTAssertGreaterThan(try mem.entry(id: ids[1]).surprise, 0)
        XCTAssertEqual(try mem.entry(id: ids[1]).tokens.count, texts[1].utf8.count)
        // full: the next add evicts the least important, oldest entry (ids[1])
        let five = try mem.add(text: "a fifth memory", model: model, timestamp: 10)
        XCTAssertEqual(mem.count, 4)
        XCTAssertThrowsError(try mem.entry(id: ids[1])) { XCTAssertEqual(($0 as? HMSTError)?.status, .notFound) }
        XCTAssertNoThrow(try mem.entry(id: ids[0]))
        XCTAssertEqual(mem.remove(ids: [five, 12345]), 1)
        XCTAssertEqual(mem.count, 3)
        // keys are deterministic for a seed: a second memory computes the same key
        let other = try EpisodicMemory(model: model, config: cfg)
        let (_, enc) = try model.encode(text: texts[2])
        XCTAssertEqual(try mem.key(hidden: enc.hidden), try other.key(hidden: enc.hidden))
    }

    /// Texts longer than the model's context are encoded window by window, the SSM state
    /// carried across: the key equals one scan over the concatenated windows' hidden states.
    func testLongTextsAreEncodedInWindows() throws {
        let c = try MixtralConfig(vocabSize: 257, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 1, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 16, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        let base = try LanguageModel.random(config: c, seed: 2)
        let model = LanguageModel(decoder: base.decoder, tokenizer: ByteTokenizer(), config: base.config, report: LoadReport(), storage: [base])
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 8
        cfg.maxTokens = 40
        let mem = try EpisodicMemory(model: model, config: cfg)
        let text = String(repeating: "abcdefghij", count: 5)   // 50 bytes: the last 40 kept, windows 16 + 16 + 8
        let id = try mem.add(text: text, model: model)
        let e = try mem.entry(id: id)
        XCTAssertEqual(e.tokens, Array(text.utf8.suffix(40)).map(Int32.init))
        var hidden: [Float] = []
        var surprise = 0.0
        for w in stride(from: 0, to: 40, by: 16) {
            let enc = try model.encode(tokens: Array(e.tokens[w..<min(40, w + 16)]))
            hidden += enc.hidden
            surprise += enc.surprise * Double(enc.T - 1)
        }
        XCTAssertEqual(try mem.search(key: try mem.key(hidden: hidden), k: 1).first?.score ?? 0, 1, accuracy: 1e-5)
        XCTAssertEqual(e.surprise, surprise / 37, accuracy: 1e-9)
        // embeddings of entries longer than the context pool over every window, and consolidate
        var mean = [Double](repeating: 0, count: 32)
        for t in 0..<40 { for c in 0..<32 { mean[c] += Double(hidden[t * 32 + c]) } }
        let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let embedded = try model.embed(tokens: e.tokens)
        for c in 0..<32 { XCTAssertEqual(Double(embedded[c]), mean[c] / norm, accuracy: 1e-5) }
        let semantic = try SemanticMemory(config: SemanticMemoryConfig(dim: 32, description: "Flat"))
        try mem.setImportance(id: id, 1)
        var o = ConsolidationOptions()
        o.threshold = 0.3
        XCTAssertEqual(try Consolidator.run(episodic: mem, semantic: semantic, model: model, options: o).moved.count, 1)
    }

    func testBadInput() throws {
        let model = try byteModel()
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 8
        let mem = try EpisodicMemory(model: model, config: cfg)
        func status(_ body: () throws -> Any) -> Status? {
            do { _ = try body(); return nil } catch let e as HMSTError { return e.status } catch { return nil }
        }
        XCTAssertEqual(status { try mem.add(key: [1, 2], text: "x") }, .invalidArgument)                        // wrong dimension
        XCTAssertEqual(status { try mem.add(key: [Float](repeating: .nan, count: 8), text: "x") }, .invalidArgument)  // NaN
        XCTAssertEqual(status { try mem.search(key: [Float](repeating: 1, count: 8), k: 0) }, .invalidArgument)   // k <= 0
        XCTAssertEqual(status { try mem.search(key: [1], k: 1) }, .invalidArgument)
        XCTAssertEqual(status { try mem.entry(id: 77) }, .notFound)
        XCTAssertEqual(status { try mem.key(hidden: [Float](repeating: .infinity, count: 32)) }, .invalidArgument)
        XCTAssertEqual(try mem.search(key: [Float](repeating: 1, count: 8), k: 3), [])                           // empty memory
        let wide = try byteModel(hidden: 64)
        XCTAssertEqual(status { try mem.add(text: "x", model: wide) }, .invalidArgument)                          // model mismatch
        var bad = EpisodicMemoryConfig()
        bad.maxEntries = 0
        XCTAssertEqual(status { try EpisodicMemory(inputSize: 32, config: bad) }, .invalidArgument)
    }

    func testSaveLoadRoundTripAndCorruption() throws {
        let model = try byteModel()
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 16
        cfg.seed = 9
        let mem = try EpisodicMemory(model: model, config: cfg)
        for t in ["alpha beta", "gamma delta \"quoted\"\nnew line", "épsilon ünïcode"] { try mem.add(text: t, model: model) }
        _ = try mem.search(text: "alpha", model: model, k: 1)
        let dir = "/tmp/hmst-episodic-\(getpid())"
        defer { _ = system("rm -rf '\(dir)'") }
        try mem.save(directory: dir)
        let back = try EpisodicMemory.load(directory: dir)
        XCTAssertEqual(back.allEntries(), mem.allEntries())
        XCTAssertEqual(try back.search(text: "gamma", model: model, k: 3), try mem.search(text: "gamma", model: model, k: 3))
        // the SSM weights travel with the memory: a new entry gets the same key
        let (_, enc) = try model.encode(text: "zeta")
        XCTAssertEqual(try back.key(hidden: enc.hidden), try mem.key(hidden: enc.hidden))
        // a second save replaces the first and leaves one generation of files
        try mem.add(text: "one more", model: model)
        try mem.save(directory: dir)
        XCTAssertEqual(try EpisodicMemory.load(directory: dir).count, 4)
        var names: [String] = []
        if let d = opendir(dir) {
            while let e = readdir(d) {
                names.append(withUnsafePointer(to: &e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) })
            }
            closedir(d)
        }
        XCTAssertEqual(names.filter { $0.hasPrefix("entries-") }.count, 1, "\(names)")
        // corruption is named, never a crash
        let entriesFile = names.first { $0.hasPrefix("entries-") }!
        try FileIO.writeAtomically(dir + "/" + entriesFile, text: "garbage\n")
        XCTAssertThrowsError(try EpisodicMemory.load(directory: dir)) { XCTAssertEqual(($0 as? HMSTError)?.status, .badFormat) }
        XCTAssertThrowsError(try EpisodicMemory.load(directory: dir + "/nope")) { XCTAssertEqual(($0 as? HMSTError)?.status, .notFound) }
        try FileIO.writeAtomically(dir + "/episodic.json", text: "{\"format\": 3")
        XCTAssertThrowsError(try EpisodicMemory.load(directory: dir)) { XCTAssertEqual(($0 as? HMSTError)?.status, .badFormat) }
    }
}

/// kill -9 while an episodic memory saves in a loop: every load finds the old or the new
/// memory, complete (ids 1...n, each key retrieving its own entry), never a torn one.
final class EpisodicMemoryKillTests: XCTestCase {
    static let loopDirVariable = "HMST_TEST_EPISODIC_SAVE_LOOP_DIR"

    static func key(_ id: Int64) -> [Float] {
        var rng = RNG(seed: UInt64(id) &* 7919)
        return (0..<16).map { _ in rng.nextGaussian() }
    }

    func testKillDuringSaveLeavesOldOrNew() throws {
        let dir = "/tmp/hmst-episodic-kill-\(getpid())"
        defer { _ = system("rm -rf '\(dir)'") }
        var rng = RNG(seed: 3)
        var last = 0
        for round in 0..<8 {
            let pid = try ChildProcess.spawnSelf("HMSTCoreTests.EpisodicMemorySaveLoopChild/testSaveLoop",
                                                 env: ["\(Self.loopDirVariable)=\(dir)", "HMST_NUM_THREADS=1"])
            ChildProcess.waitForChange(dir + "/episodic.json", from: (try? FileIO.readText(dir + "/episodic.json")) ?? "")
            ChildProcess.killAfter(pid, maxMicroseconds: 100_000, rng: &rng)
            let mem = try EpisodicMemory.load(directory: dir)
            let entries = mem.allEntries()
            XCTAssertEqual(entries.map(\.id), (1...Int64(entries.count)).map { $0 }, "round \(round)")
            for id in [Int64(1), Int64(entries.count)] {
                XCTAssertEqual(try mem.search(key: Self.key(id), k: 1).first?.id, id, "round \(round)")
                XCTAssertEqual(try mem.entry(id: id).text, "entry \(id)")
            }
            XCTAssertGreaterThanOrEqual(entries.count, last, "a later load never goes back in time")
            last = entries.count
        }
        XCTAssertGreaterThan(last, 3)
    }
}

/// Run only as the child of EpisodicMemoryKillTests: adds three entries and saves, forever.
final class EpisodicMemorySaveLoopChild: XCTestCase {
    func testSaveLoop() throws {
        guard let raw = getenv(EpisodicMemoryKillTests.loopDirVariable) else { throw XCTSkip("only run by the kill -9 test") }
        let dir = String(cString: raw)
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 16
        cfg.maxEntries = 1_000_000
        let mem = FileIO.exists(dir + "/episodic.json") ? try EpisodicMemory.load(directory: dir) : try EpisodicMemory(inputSize: 8, config: cfg)
        while true {
            for _ in 0..<3 {
                let id = Int64(mem.count + 1)
                try mem.add(key: EpisodicMemoryKillTests.key(id), text: "entry \(id)")
            }
            try mem.save(directory: dir)
        }
    }
}

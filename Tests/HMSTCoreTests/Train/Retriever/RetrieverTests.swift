// The retrieval projection: InfoNCE gradients (with hard-negative columns and the same-fact
// mask) against central differences, training that lifts held-out recall on a synthetic task
// (one document per question, and documents shared by several questions with hard negatives),
// the pooled features against hand-computed means, save/load of both poolings with the hash
// check, a first-format projection still loading under its old hash, and the semantic memory
// refusing a model that embeds differently from the one that built it.
import XCTest
@testable import HMSTCore

final class RetrieverTests: XCTestCase {
    /// The forward of RetrieverTrainer.lossAndGradients in Double, for central differences.
    static func referenceLoss(eq: [Float], ed: [Float], B: Int, N: Int, C: Int, D: Int, wq: [Double], wd: [Double], tau: Double,
                              excluded: [Bool]) -> Double {
        func project(_ e: [Float], _ w: [Double], rows: Int) -> [[Double]] {
            (0..<rows).map { i in
                var y = [Double](repeating: 0, count: D)
                for c in 0..<C { for d in 0..<D { y[d] += Double(e[i * C + c]) * w[c * D + d] } }
                let n = y.reduce(0) { $0 + $1 * $1 }.squareRoot()
                return y.map { $0 / n }
            }
        }
        let q = project(eq, wq, rows: B), p = project(ed, wd, rows: N)
        var loss = 0.0
        for i in 0..<B {
            let all = (0..<N).map { j in zip(q[i], p[j]).reduce(0) { $0 + $1.0 * $1.1 } / tau }
            let s = all.enumerated().filter { j, _ in j == i || !excluded[i * N + j] }.map(\.element)
            let m = s.max()!
            loss += m + log(s.reduce(0) { $0 + exp($1 - m) }) - all[i]
        }
        return loss / Double(B)
    }

    /// B questions against N = 2B documents (positives, then one hard negative each), with and
    /// without columns masked out, and the plain B = N case.
    func testGradientsMatchCentralDifferences() {
        for (B, N, mask) in [(3, 3, false), (3, 6, false), (3, 6, true)] {
            checkGradients(B: B, N: N, mask: mask)
        }
    }

    func checkGradients(B: Int, N: Int, mask: Bool) {
        let C = 5, D = 4
        var rng = RNG(seed: 7)
        let eq = (0..<B * C).map { _ in rng.nextGaussian() }, ed = (0..<N * C).map { _ in rng.nextGaussian() }
        let wq = (0..<C * D).map { _ in rng.nextGaussian() * 0.5 }, wd = (0..<C * D).map { _ in rng.nextGaussian() * 0.5 }
        let tau: Float = 0.5
        // row 0 leaves out column 4, row 2 columns 1 and 5 (as if they held the row's own fact)
        var excluded = [Bool](repeating: false, count: B * N)
        if mask { excluded[0 * N + 4] = true; excluded[2 * N + 1] = true; excluded[2 * N + 5] = true }
        var gq = [Float](repeating: 0, count: C * D), gd = gq
        let loss = RetrieverTrainer.lossAndGradients(eq: eq, ed: ed, B: B, N: N, Cin: C, D: D, wq: wq, wd: wd, tau: tau,
                                                     excluded: mask ? excluded : [], gq: &gq, gd: &gd)
        XCTAssertFalse(gq.contains { $0.isNaN } || gd.contains { $0.isNaN })
        var wqD = wq.map(Double.init), wdD = wd.map(Double.init)
        func reference() -> Double {
            Self.referenceLoss(eq: eq, ed: ed, B: B, N: N, C: C, D: D, wq: wqD, wd: wdD, tau: Double(tau), excluded: excluded)
        }
        XCTAssertEqual(Double(loss), reference(), accuracy: 1e-4, "B \(B) N \(N) mask \(mask)")
        if mask {
            // the masked loss is smaller than the unmasked one (fewer terms in each logsumexp)
            var g1 = gq, g2 = gd
            let full = RetrieverTrainer.lossAndGradients(eq: eq, ed: ed, B: B, N: N, Cin: C, D: D, wq: wq, wd: wd, tau: tau, gq: &g1, gd: &g2)
            XCTAssertLessThan(loss, full)
        }
        let eps = 1e-3
        for which in 0..<2 {
            for i in 0..<(C * D) {
                func at(_ delta: Double) -> Double {
                    if which == 0 { wqD[i] += delta } else { wdD[i] += delta }
                    defer { if which == 0 { wqD[i] -= delta } else { wdD[i] -= delta } }
                    return reference()
                }
                let numeric = (at(eps) - at(-eps)) / (2 * eps)
                let analytic = Double(which == 0 ? gq[i] : gd[i])
                XCTAssertLessThan(abs(analytic - numeric) / max(1, abs(analytic), abs(numeric)), 1e-3,
                                  "\(which == 0 ? "Wq" : "Wd")[\(i)], B \(B) N \(N) mask \(mask)")
            }
        }
    }

    /// Pairs whose question and fact share a latent z but see it through different random maps,
    /// on top of a large common direction (as pooled embeddings are): cosine alone barely finds
    /// the fact; trained projections do, on held-out pairs.
    static func syntheticPairs(n: Int, C: Int, seed: UInt64) -> (eq: [Float], ed: [Float]) {
        var maps = RNG(seed: 99), rng = RNG(seed: seed)
        let L = 8
        let aq = (0..<L * C).map { _ in maps.nextGaussian() }, ad = (0..<L * C).map { _ in maps.nextGaussian() }
        let common = (0..<C).map { _ in maps.nextGaussian() * 4 }
        var eq: [Float] = [], ed: [Float] = []
        for _ in 0..<n {
            let z = (0..<L).map { _ in rng.nextGaussian() }
            for (a, out) in [(aq, 0), (ad, 1)] {
                var v = common
                for l in 0..<L { for c in 0..<C { v[c] += z[l] * a[l * C + c] } }
                for c in 0..<C { v[c] += rng.nextGaussian() * 2 }
                let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if out == 0 { eq += v.map { $0 / norm } } else { ed += v.map { $0 / norm } }
            }
        }
        return (eq, ed)
    }

    static func recallAt1(_ eq: [Float], _ ed: [Float], n: Int, C: Int, projection: RetrieverProjection?) throws -> Double {
        func rows(_ e: [Float], query: Bool) throws -> [[Float]] {
            try (0..<n).map { i in
                let r = Array(e[(i * C)..<((i + 1) * C)])
                return try projection?.project(r, isQuery: query) ?? r
            }
        }
        let q = try rows(eq, query: true), d = try rows(ed, query: false)
        var hits = 0
        for i in 0..<n {
            let scores = d.map { zip(q[i], $0).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
            if scores.indices.max(by: { scores[$0] < scores[$1] }) == i { hits += 1 }
        }
        return Double(hits) / Double(n)
    }

    func testTrainingLiftsHeldOutRecall() throws {
        let C = 24, n = 256
        let train = Self.syntheticPairs(n: n, C: C, seed: 1), held = Self.syntheticPairs(n: 128, C: C, seed: 2)
        var o = RetrieverTrainingOptions()
        o.pooling = .hidden   // the synthetic features stand for pooled [C] embeddings
        o.steps = 300
        o.batchSize = 64
        o.learningRate = 1e-2
        var losses: [Float] = []
        let p = try RetrieverTrainer.train(eq: train.eq, ed: train.ed, n: n, C: C, options: o) { _, l in losses.append(l) }
        let before = try Self.recallAt1(held.eq, held.ed, n: 128, C: C, projection: nil)
        let after = try Self.recallAt1(held.eq, held.ed, n: 128, C: C, projection: p)
        print("synthetic held-out recall@1 before \(before), after \(after); loss \(losses.first!) -> \(losses.last!)")
        XCTAssertLessThan(losses.suffix(20).reduce(0, +) / 20, losses.prefix(20).reduce(0, +) / 20 * 0.5)
        XCTAssertGreaterThan(after, before + 0.3)
        XCTAssertEqual(p.D, C)

        o.dim = 8
        o.steps = 50
        let small = try RetrieverTrainer.train(eq: train.eq, ed: train.ed, n: n, C: C, options: o)
        XCTAssertEqual(small.D, 8)
        XCTAssertEqual(try small.project(Array(held.eq[0..<C]), isQuery: true).count, 8)
        o.batchSize = 1
        XCTAssertThrowsError(try RetrieverTrainer.train(eq: train.eq, ed: train.ed, n: n, C: C, options: o))
    }

    /// Two question views per fact (one document shared by both), hard negatives mined by raw
    /// cosine: training still lifts held-out recall, and malformed inputs are refused.
    /// Options that would train nothing (a temperature whose gradients overflow Adam) or throw
    /// the projection away (a huge step) are refused, naming the value.
    func testOptionsThatCannotTrainAreRefused() {
        for (lr, tau, says): (Float, Float, String) in [(1e-3, 1e-30, "temperature"), (1e-3, 3e38, "temperature"), (1e-3, .nan, "temperature"),
                                                        (1e30, 0.05, "learning rate"), (0, 0.05, "learning rate"), (.nan, 0.05, "learning rate")] {
            var o = RetrieverTrainingOptions()
            o.learningRate = lr
            o.temperature = tau
            XCTAssertThrowsError(try o.validate()) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
                XCTAssertTrue("\(e)".contains(says), "\(e)")
            }
        }
        var o = RetrieverTrainingOptions()
        o.learningRate = 1
        o.temperature = 1e-4
        XCTAssertNoThrow(try o.validate())
    }

    func testSharedDocumentsAndHardNegatives() throws {
        let C = 24, nFacts = 128
        // the question views of fact k are rows 2k and 2k + 1: two draws of the same latent
        func views(seed: UInt64) -> (eq: [Float], ed: [Float]) {
            let a = Self.syntheticPairs(n: nFacts, C: C, seed: seed), b = Self.syntheticPairs(n: nFacts, C: C, seed: seed)
            var eq: [Float] = []
            for k in 0..<nFacts {
                eq += a.eq[(k * C)..<((k + 1) * C)]
                // the second view: the same question with its own small perturbation
                eq += b.eq[(k * C)..<((k + 1) * C)].enumerated().map { $1 + Float(($0 * 7 + k) % 5 - 2) * 0.01 }
            }
            return (eq, a.ed)
        }
        let train = views(seed: 1), held = Self.syntheticPairs(n: 128, C: C, seed: 2)
        let n = 2 * nFacts
        let positive = (0..<n).map { $0 / 2 }
        // hard negative: the document with the highest raw cosine other than the question's own
        let hard = (0..<n).map { i -> Int in
            var best = -1, bestScore = -Float.infinity
            for d in 0..<nFacts where d != positive[i] {
                var s: Float = 0
                for c in 0..<C { s += train.eq[i * C + c] * train.ed[d * C + c] }
                if s > bestScore { best = d; bestScore = s }
            }
            return best
        }
        var o = RetrieverTrainingOptions()
        o.pooling = .hidden
        o.steps = 300
        o.learningRate = 1e-2
        var losses: [Float] = []
        let p = try RetrieverTrainer.train(queries: train.eq, documents: train.ed, n: n, m: nFacts, positive: positive, hard: hard, C: C,
                                           options: o) { _, l in losses.append(l) }
        let before = try Self.recallAt1(held.eq, held.ed, n: 128, C: C, projection: nil)
        let after = try Self.recallAt1(held.eq, held.ed, n: 128, C: C, projection: p)
        print("shared documents + hard negatives: held-out recall@1 before \(before), after \(after); loss \(losses.first!) -> \(losses.last!)")
        XCTAssertGreaterThan(after, before + 0.3)
        XCTAssertLessThan(losses.suffix(20).reduce(0, +) / 20, losses.prefix(20).reduce(0, +) / 20 * 0.5)

        func refused(_ body: () throws -> RetrieverProjection, _ needle: String) {
            XCTAssertThrowsError(try body()) { e in XCTAssertTrue("\(e)".contains(needle), "\(e)") }
        }
        refused({ try RetrieverTrainer.train(queries: train.eq, documents: train.ed, n: n, m: nFacts, positive: positive.map { $0 + nFacts },
                                             C: C, options: o) }, "one document per question")
        refused({ try RetrieverTrainer.train(queries: train.eq, documents: train.ed, n: n, m: nFacts, positive: positive,
                                             hard: Array(hard.dropLast()), C: C, options: o) }, "hard negatives")
        refused({ try RetrieverTrainer.train(queries: train.eq, documents: train.ed, n: n, m: nFacts, positive: positive,
                                             hard: hard.map { _ in nFacts }, C: C, options: o) }, "hard negatives")
        var both = o
        both.pooling = .hiddenAndTokens   // [2C] features expected, [C] given
        refused({ try RetrieverTrainer.train(queries: train.eq, documents: train.ed, n: n, m: nFacts, positive: positive, C: C,
                                             options: both) }, "[48] features")
        var bad = o
        bad.hardNegatives = -1
        refused({ try RetrieverTrainer.train(queries: train.eq, documents: train.ed, n: n, m: nFacts, positive: positive, C: C,
                                             options: bad) }, "hard negatives")
        var nan = train.eq
        nan[5] = .nan
        refused({ try RetrieverTrainer.train(queries: nan, documents: train.ed, n: n, m: nFacts, positive: positive, C: C,
                                             options: o) }, "not finite")
    }

    /// hidden-mean: the pooled embedding; hidden-mean+token-embedding-mean: it, then the unit
    /// mean of the tokens' embedding rows, computed here from the weights' rows by hand.
    func testPooledFeatures() throws {
        let model = try byteModel(hidden: 32)
        let text = "the cat sat"
        let tokens = Array(text.utf8).map(Int32.init)
        let pooled = try model.embed(tokens: tokens)
        XCTAssertEqual(try model.retrievalFeatures(tokens: tokens, pooling: .hidden), pooled)
        let f = try model.retrievalFeatures(tokens: tokens, pooling: .hiddenAndTokens)
        XCTAssertEqual(f.count, 64)
        XCTAssertEqual(Array(f[0..<32]), pooled)
        var mean = [Float](repeating: 0, count: 32), row = [Float](repeating: 0, count: 32)
        for t in tokens {
            row.withUnsafeMutableBufferPointer { model.decoder.weights.embed.copyRow(Int(t), to: $0.baseAddress!) }
            for c in 0..<32 { mean[c] += row[c] / Float(tokens.count) }
        }
        let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for c in 0..<32 { XCTAssertEqual(f[32 + c], mean[c] / norm, accuracy: 1e-5, "c \(c)") }
        XCTAssertEqual(try model.retrievalFeatures(text: text, pooling: .hiddenAndTokens), f)
        // the token half ignores order; the hidden half does not
        let shuffled = try model.retrievalFeatures(tokens: tokens.reversed(), pooling: .hiddenAndTokens)
        for c in 0..<32 { XCTAssertEqual(shuffled[32 + c], f[32 + c], accuracy: 1e-5) }
        XCTAssertNotEqual(Array(shuffled[0..<32]), Array(f[0..<32]))
        XCTAssertThrowsError(try model.retrievalFeatures(tokens: [1, 300], pooling: .hiddenAndTokens)) { e in
            XCTAssertTrue("\(e)".contains("outside the vocabulary"), "\(e)")
        }
        XCTAssertThrowsError(try model.retrievalFeatures(tokens: [], pooling: .hiddenAndTokens))
        XCTAssertEqual(try RetrieverPooling.named("hidden+tokens"), .hiddenAndTokens)
        XCTAssertEqual(try RetrieverPooling.named("hidden-mean"), .hidden)
        XCTAssertThrowsError(try RetrieverPooling.named("max")) { e in XCTAssertTrue("\(e)".contains("hidden+tokens"), "\(e)") }

        // a projected model embeds queries and documents through its pooling's features
        let projected = try byteModel(hidden: 32)
        var rng = RNG(seed: 4)
        let wq = (0..<64 * 8).map { _ in rng.nextGaussian() }, wd = (0..<64 * 8).map { _ in rng.nextGaussian() }
        projected.retriever = try RetrieverProjection(C: 32, D: 8, query: wq, document: wd, pooling: .hiddenAndTokens)
        XCTAssertEqual(try projected.queryEmbedding(text: text), try projected.retriever!.project(f, isQuery: true))
        XCTAssertEqual(try projected.documentEmbedding(tokens: tokens), try projected.retriever!.project(f, isQuery: false))
        XCTAssertEqual(try projected.documentEmbedding(text: text).count, 8)
        // from the pooled embedding a caller already has (the engine's query pass): the same vector
        XCTAssertEqual(try projected.queryEmbedding(tokens: tokens, pooled: try projected.embed(tokens: tokens)),
                       try projected.queryEmbedding(text: text))
        XCTAssertEqual(try model.queryEmbedding(tokens: tokens, pooled: pooled), try model.queryEmbedding(text: text))
        projected.retriever = try RetrieverProjection(C: 32, D: 8, query: Array(wq[0..<256]), document: Array(wd[0..<256]), pooling: .hidden)
        XCTAssertEqual(try projected.queryEmbedding(tokens: tokens, pooled: try projected.embed(tokens: tokens)),
                       try projected.queryEmbedding(text: text))
        XCTAssertThrowsError(try projected.queryEmbedding(tokens: tokens, pooled: [1, 2]))
    }

    /// A projection of the new pooling round-trips as version 2 (pooling and input size in its
    /// json, the pooling inside its hash); malformed descriptions are refused by name.
    func testPoolingRoundTrip() throws {
        let dir = NSTemporaryDirectory() + "hmst-retriever-pool-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileIO.makeDirectories(dir)
        addTeardownBlock { _ = try? FileManager.default.removeItem(atPath: dir) }
        let wq = (0..<24).map { Float($0) / 10 }, wd = (0..<24).map { Float(24 - $0) / 10 }
        let p = try RetrieverProjection(C: 4, D: 3, query: wq, document: wd, pooling: .hiddenAndTokens, steps: 7)
        XCTAssertEqual(p.inputSize, 8)
        XCTAssertThrowsError(try RetrieverProjection(C: 4, D: 3, query: Array(wq[0..<12]), document: Array(wd[0..<12]), pooling: .hiddenAndTokens)) { e in
            XCTAssertTrue("\(e)".contains("[8, 3]"), "\(e)")
        }
        XCTAssertThrowsError(try p.project([1, 0, 0, 0], isQuery: true)) { e in XCTAssertTrue("\(e)".contains("reads 8"), "\(e)") }
        // y = Wqᵀ f for f = e_0: row 0 of Wq (0, 0.1, 0.2), normalised
        let y = try p.project([1, 0, 0, 0, 0, 0, 0, 0], isQuery: true)
        let n0 = (0.01 + 0.04 as Float).squareRoot()
        XCTAssertEqual(y[0], 0, accuracy: 1e-6)
        XCTAssertEqual(y[1], 0.1 / n0, accuracy: 1e-6)
        XCTAssertEqual(y[2], 0.2 / n0, accuracy: 1e-6)
        // the pooling is part of the hash: not the weights' checksum alone
        var bytes: [UInt8] = []
        wq.withUnsafeBytes { bytes += $0 }
        wd.withUnsafeBytes { bytes += $0 }
        XCTAssertNotEqual(p.hash, FileChecksum.hex(FileChecksum.of(bytes)))

        try p.save(checkpoint: dir)
        let json = try FileIO.readText(dir + "/retriever.json")
        XCTAssertTrue(json.contains("\"version\":2"), json)
        XCTAssertTrue(json.contains("\"pooling\":\"hidden-mean+token-embedding-mean\""), json)
        XCTAssertTrue(json.contains("\"input_size\":8"), json)
        let back = try XCTUnwrap(try RetrieverProjection.load(checkpoint: dir, hiddenSize: 4))
        XCTAssertEqual(back.pooling, .hiddenAndTokens)
        XCTAssertEqual(back.inputSize, 8)
        XCTAssertEqual(back.query, wq)
        XCTAssertEqual(back.document, wd)
        XCTAssertEqual(back.hash, p.hash)
        XCTAssertEqual(back.steps, 7)

        func refusedAfter(_ from: String, _ to: String, _ needle: String) throws {
            try FileIO.writeAtomically(dir + "/retriever.json", text: json.replacingOccurrences(of: from, with: to))
            XCTAssertThrowsError(try RetrieverProjection.load(checkpoint: dir, hiddenSize: 4)) { e in XCTAssertTrue("\(e)".contains(needle), "\(e)") }
        }
        try refusedAfter("hidden-mean+token-embedding-mean", "max-pool", "pooling max-pool is not one of")
        try refusedAfter("\"input_size\":8", "\"input_size\":4", "input_size must be 8")
        try refusedAfter("\"version\":2", "\"version\":3", "newer")
        try refusedAfter("\"hidden_size\":4", "\"hidden_size\":5", "hidden_size 5")
    }

    /// A projection written by the first format (version 1, no input size, a description in
    /// "pooling", hash over the weights alone) loads as hidden-mean with the same embedder name,
    /// and that pooling is still saved so.
    func testFirstFormatStillLoads() throws {
        let dir = NSTemporaryDirectory() + "hmst-retriever-v1-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileIO.makeDirectories(dir)
        addTeardownBlock { _ = try? FileManager.default.removeItem(atPath: dir) }
        let wq = (0..<12).map { Float($0) / 10 }, wd = (0..<12).map { Float(12 - $0) / 10 }
        let p = try RetrieverProjection(C: 4, D: 3, query: wq, document: wd, steps: 5)
        try p.save(checkpoint: dir)   // the weights file; the json is replaced by the first format's text below
        // golden: the first format's hash of these weights (FileChecksum over Wq then Wd bytes)
        let v1 = #"{"format":"hmst-retriever","version":1,"pooling":"mean of final-norm hidden states, unit length","hidden_size":4,"dim":3,"temperature":0.05000000074505806,"steps":5,"hash":"HASH"}"#
        XCTAssertEqual(try FileIO.readText(dir + "/retriever.json"), v1.replacingOccurrences(of: "HASH", with: p.hash) + "\n")
        XCTAssertEqual(p.hash, "51322e734efcedf7")
        try FileIO.writeAtomically(dir + "/retriever.json", text: v1.replacingOccurrences(of: "HASH", with: "51322e734efcedf7") + "\n")
        let back = try XCTUnwrap(try RetrieverProjection.load(checkpoint: dir, hiddenSize: 4))
        XCTAssertEqual(back.pooling, .hidden)
        XCTAssertEqual(back.inputSize, 4)
        XCTAssertEqual(back.query, wq)
        XCTAssertEqual(back.embedderName, "projected-51322e734efcedf7")
    }

    func testSaveLoadAndHashCheck() throws {
        let dir = NSTemporaryDirectory() + "hmst-retriever-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileIO.makeDirectories(dir)
        addTeardownBlock { _ = try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertNil(try RetrieverProjection.load(checkpoint: dir, hiddenSize: 4))
        var rng = RNG(seed: 3)
        let p = try RetrieverProjection(C: 4, D: 3, query: (0..<12).map { _ in rng.nextGaussian() },
                                        document: (0..<12).map { _ in rng.nextGaussian() }, steps: 5)
        try p.save(checkpoint: dir)
        let back = try XCTUnwrap(try RetrieverProjection.load(checkpoint: dir, hiddenSize: 4))
        XCTAssertEqual(back.query, p.query)
        XCTAssertEqual(back.document, p.document)
        XCTAssertEqual(back.hash, p.hash)
        XCTAssertEqual(back.steps, 5)
        XCTAssertThrowsError(try RetrieverProjection.load(checkpoint: dir, hiddenSize: 5)) { e in XCTAssertTrue("\(e)".contains("hidden_size")) }
        // weights replaced without their json: the hash catches it
        let other = try RetrieverProjection(C: 4, D: 3, query: p.document, document: p.query)
        let json = try FileIO.readText(dir + "/retriever.json")
        try other.save(checkpoint: dir)
        try FileIO.writeAtomically(dir + "/retriever.json", text: json)
        XCTAssertThrowsError(try RetrieverProjection.load(checkpoint: dir, hiddenSize: 4)) { e in XCTAssertTrue("\(e)".contains("does not match"), "\(e)") }
        XCTAssertThrowsError(try RetrieverProjection(C: 4, D: 3, query: [1], document: [1]))
    }

    func testSemanticMemoryRefusesAnotherEmbedder() throws {
        let pooled = try byteModel(hidden: 32)
        let mem = try SemanticMemory(dim: 32, description: "Flat")
        XCTAssertNil(mem.embedder)
        try mem.add(text: "the cat sat on the mat", model: pooled)
        XCTAssertEqual(mem.embedder, "pooled")
        XCTAssertEqual(try mem.search(text: "cat", model: pooled, k: 1).count, 1)

        let projected = try byteModel(hidden: 32)
        var rng = RNG(seed: 1)
        projected.retriever = try RetrieverProjection(C: 32, D: 32, query: (0..<1024).map { _ in rng.nextGaussian() },
                                                      document: (0..<1024).map { _ in rng.nextGaussian() })
        XCTAssertEqual(projected.embedderName, "projected-\(projected.retriever!.hash)")
        XCTAssertThrowsError(try mem.search(text: "cat", model: projected, k: 1)) { e in
            XCTAssertTrue("\(e)".contains("built by the pooled embedder"), "\(e)")
        }
        XCTAssertThrowsError(try mem.retrieve(text: "cat", model: projected, options: RetrievalOptions(mode: .hybrid)))
        XCTAssertEqual(try mem.retrieve(text: "cat", model: nil, options: RetrievalOptions(mode: .lexical)).count, 1)

        // the embedder survives save/load; a projected memory accepts only its projection
        let dir = NSTemporaryDirectory() + "hmst-embedder-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        addTeardownBlock { _ = try? FileManager.default.removeItem(atPath: dir) }
        let pm = try SemanticMemory(dim: 32, description: "Flat")
        try pm.add(text: "a fact", model: projected)
        try pm.save(directory: dir)
        let back = try SemanticMemory.load(directory: dir)
        XCTAssertEqual(back.embedder, projected.embedderName)
        XCTAssertEqual(try back.search(text: "fact", model: projected, k: 1).count, 1)
        XCTAssertThrowsError(try back.search(text: "fact", model: pooled, k: 1))
        // the same task with the hidden+tokens pooling: another embedder, refused both ways
        let both = try byteModel(hidden: 32)
        both.retriever = try RetrieverProjection(C: 32, D: 32, query: (0..<2048).map { _ in rng.nextGaussian() },
                                                 document: (0..<2048).map { _ in rng.nextGaussian() }, pooling: .hiddenAndTokens)
        XCTAssertThrowsError(try back.search(text: "fact", model: both, k: 1)) { e in XCTAssertTrue("\(e)".contains("built by the projected-"), "\(e)") }
        let bm = try SemanticMemory(dim: 32, description: "Flat")
        try bm.add(text: "a fact", model: both)
        XCTAssertEqual(bm.embedder, both.embedderName)
        XCTAssertEqual(try bm.retrieve(text: "fact", model: both, options: RetrievalOptions(mode: .hybrid)).first?.text, "a fact")
        XCTAssertThrowsError(try bm.search(text: "fact", model: projected, k: 1))
        // projection to another size: the dimension check names both
        let narrow = try byteModel(hidden: 32)
        narrow.retriever = try RetrieverProjection(C: 32, D: 8, query: [Float](repeating: 0.1, count: 256), document: [Float](repeating: 0.1, count: 256))
        XCTAssertThrowsError(try mem.search(text: "x", model: narrow, k: 1)) { e in XCTAssertTrue("\(e)".contains("8 values"), "\(e)") }
    }
}

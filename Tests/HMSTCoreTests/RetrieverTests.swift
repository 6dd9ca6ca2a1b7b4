// The retrieval projection: InfoNCE gradients against central differences, training that
// lifts held-out recall on a synthetic task, save/load with its hash check, and the semantic
// memory refusing a model that embeds differently from the one that built it.
import XCTest
@testable import HMSTCore
#if canImport(Glibc)
import Glibc
#endif

final class RetrieverTests: XCTestCase {
    /// The forward of RetrieverTrainer.lossAndGradients in Double, for central differences.
    static func referenceLoss(eq: [Float], ed: [Float], B: Int, C: Int, D: Int, wq: [Double], wd: [Double], tau: Double) -> Double {
        func project(_ e: [Float], _ w: [Double]) -> [[Double]] {
            (0..<B).map { i in
                var y = [Double](repeating: 0, count: D)
                for c in 0..<C { for d in 0..<D { y[d] += Double(e[i * C + c]) * w[c * D + d] } }
                let n = y.reduce(0) { $0 + $1 * $1 }.squareRoot()
                return y.map { $0 / n }
            }
        }
        let q = project(eq, wq), p = project(ed, wd)
        var loss = 0.0
        for i in 0..<B {
            let s = (0..<B).map { j in zip(q[i], p[j]).reduce(0) { $0 + $1.0 * $1.1 } / tau }
            let m = s.max()!
            loss += m + log(s.reduce(0) { $0 + exp($1 - m) }) - s[i]
        }
        return loss / Double(B)
    }

    func testGradientsMatchCentralDifferences() {
        let B = 3, C = 5, D = 4
        var rng = RNG(seed: 7)
        let eq = (0..<B * C).map { _ in rng.nextGaussian() }, ed = (0..<B * C).map { _ in rng.nextGaussian() }
        let wq = (0..<C * D).map { _ in rng.nextGaussian() * 0.5 }, wd = (0..<C * D).map { _ in rng.nextGaussian() * 0.5 }
        let tau: Float = 0.5
        var gq = [Float](repeating: 0, count: C * D), gd = gq
        let loss = RetrieverTrainer.lossAndGradients(eq: eq, ed: ed, B: B, C: C, D: D, wq: wq, wd: wd, tau: tau, gq: &gq, gd: &gd)
        XCTAssertFalse(gq.contains { $0.isNaN } || gd.contains { $0.isNaN })
        var wqD = wq.map(Double.init), wdD = wd.map(Double.init)
        XCTAssertEqual(Double(loss), Self.referenceLoss(eq: eq, ed: ed, B: B, C: C, D: D, wq: wqD, wd: wdD, tau: Double(tau)), accuracy: 1e-4)
        let eps = 1e-3
        for which in 0..<2 {
            for i in 0..<(C * D) {
                func at(_ delta: Double) -> Double {
                    if which == 0 { wqD[i] += delta } else { wdD[i] += delta }
                    defer { if which == 0 { wqD[i] -= delta } else { wdD[i] -= delta } }
                    return Self.referenceLoss(eq: eq, ed: ed, B: B, C: C, D: D, wq: wqD, wd: wdD, tau: Double(tau))
                }
                let numeric = (at(eps) - at(-eps)) / (2 * eps)
                let analytic = Double(which == 0 ? gq[i] : gd[i])
                XCTAssertLessThan(abs(analytic - numeric) / max(1, abs(analytic), abs(numeric)), 1e-3, "\(which == 0 ? "Wq" : "Wd")[\(i)]")
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
        // projection to another size: the dimension check names both
        let narrow = try byteModel(hidden: 32)
        narrow.retriever = try RetrieverProjection(C: 32, D: 8, query: [Float](repeating: 0.1, count: 256), document: [Float](repeating: 0.1, count: 256))
        XCTAssertThrowsError(try mem.search(text: "x", model: narrow, k: 1)) { e in XCTAssertTrue("\(e)".contains("8 values"), "\(e)") }
    }
}

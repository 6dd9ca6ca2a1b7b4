import XCTest
@testable import HMSTCore

final class OptimizerTests: XCTestCase {
    func tinyConfig() throws -> ModelConfig {
        try ModelConfig(vocabSize: 11, hiddenSize: 8, intermediateSize: 6, numHiddenLayers: 2, numAttentionHeads: 2,
                        numKeyValueHeads: 1, maxPositionEmbeddings: 16, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
    }

    /// One AdamW step against the update written out by hand (PyTorch's AdamW formula).
    func testAdamWMatchesTheFormula() throws {
        let p = Parameters(config: try tinyConfig())
        var rng = RNG(seed: 1)
        for i in 0..<p.count { p.values.pointer[i] = rng.nextGaussian(); p.grads.pointer[i] = rng.nextGaussian() }
        let before = Array(UnsafeBufferPointer(start: p.values.pointer, count: p.count))
        let grads = Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count))
        var cfg = AdamWConfig()
        cfg.weightDecay = 0.1
        let opt = AdamW(params: p, config: cfg)
        opt.update(lr: 0.01)
        let normStart = p.offsets[p.names.firstIndex(of: "model.norm.weight")!]
        for i in [0, 5, normStart, p.count - 1] {
            let g = Double(grads[i]), w = Double(before[i])
            let m = 0.1 * g, v = 0.05 * g * g
            let mhat = m / 0.1, vhat = v / 0.05
            let wd = i == normStart ? 0 : 0.1
            let want = w - 0.01 * (mhat / (vhat.squareRoot() + 1e-8) + wd * w)
            XCTAssertEqual(Double(p.values.pointer[i]), want, accuracy: 1e-5, "param \(i)")
        }
        XCTAssertEqual(opt.stateBytes, 2 * 4 * p.count)
    }

    func testScheduleAndClipping() throws {
        let s = LRSchedule(maxLR: 1e-3, minLR: 1e-4, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(s.lr(at: 0), 1e-4, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 9), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 60), 5.5e-4, accuracy: 1e-7)
        XCTAssertEqual(s.lr(at: 110), 1e-4, accuracy: 1e-9)
        let p = Parameters(config: try tinyConfig())
        for i in 0..<p.count { p.grads.pointer[i] = 1 }
        let norm = GradClip.clip(p, maxNorm: 1)
        XCTAssertEqual(Double(norm), Double(p.count).squareRoot(), accuracy: 1e-2)
        XCTAssertEqual(Double(GradClip.clip(p, maxNorm: 1)), 1, accuracy: 1e-4)
    }

    /// The whole stack learns: a fixed batch's loss falls far below its starting value.
    func testTrainingReducesLoss() throws {
        let p = Parameters(config: try tinyConfig())
        var rng = RNG(seed: 8)
        for i in 0..<p.count { p.values.pointer[i] = rng.nextGaussian() * 0.1 }
        for (n, name) in p.names.enumerated() where name.hasSuffix("norm.weight") {
            for j in 0..<p.shapes[n][0] { p.values.pointer[p.offsets[n] + j] = 1 }
        }
        let mg = ModelGrad(params: p)
        let opt = AdamW(params: p)
        let windows: [Int32] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6, 7, 8]  // B = 2, T = 8
        var first = 0.0, last = 0.0
        for step in 0..<150 {
            p.zeroGrads()
            let r = try mg.step(windows: windows, B: 2, T: 8, backward: true)
            if step == 0 { first = r.ceLoss }
            last = r.ceLoss
            GradClip.clip(p, maxNorm: 1)
            opt.update(lr: 0.02)
        }
        XCTAssertGreaterThan(first, 2.0)
        XCTAssertLessThan(last, 0.3, "loss went from \(first) to \(last)")
    }
}

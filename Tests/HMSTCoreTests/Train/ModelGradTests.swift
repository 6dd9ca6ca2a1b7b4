// The whole decoder's training step: its loss agrees with the inference path, and its
// gradient with central differences for every parameter (coordinates whose perturbation
// changes an expert choice are skipped: routing is not differentiable there).
import XCTest
@testable import HMSTCore

final class ModelGradTests: XCTestCase {
    func makeParams(tied: Bool = false) throws -> Parameters {
        let c = try MixtralConfig(vocabSize: 11, hiddenSize: 8, intermediateSize: 6, numHiddenLayers: 2, numAttentionHeads: 2,
                                numKeyValueHeads: 1, maxPositionEmbeddings: 16, ropeTheta: 10000, numLocalExperts: 4,
                                numExpertsPerTok: 2, tieWordEmbeddings: tied, routerAuxLossCoef: 0.05)
        let p = Parameters(config: c)
        var rng = RNG(seed: 21)
        for i in 0..<p.count { p.values.pointer[i] = rng.nextGaussian() * 0.5 }
        for (n, name) in p.names.enumerated() where name.hasSuffix("norm.weight") {
            for j in 0..<p.shapes[n][0] { p.values.pointer[p.offsets[n] + j] = 1 + 0.1 * rng.nextGaussian() }
        }
        return p
    }

    let windows: [Int32] = [1, 4, 9, 2, 7, 3, 3, 10, 0, 5]  // B = 2 windows of T + 1 = 5

    func testLossMatchesTheInferencePath() throws {
        let p = try makeParams()
        let r = try ModelGrad(params: p).step(windows: windows, B: 2, T: 4, backward: false)
        let dec = try p.decoder()
        var total = 0.0
        for b in 0..<2 {
            let s = try Session(decoder: dec, params: SessionParams())
            let seq = Array(windows[(b * 5)..<(b * 5 + 4)])
            try s.evaluate(seq, allLogits: true)
            for t in 0..<4 {
                let row = try s.logits(row: t).map(Double.init)
                let m = row.max()!
                let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                total += lse - row[Int(windows[b * 5 + t + 1])]
            }
        }
        XCTAssertEqual(r.ceLoss, total / 8, accuracy: 1e-4)
        XCTAssertEqual(r.tokens, 8)
        XCTAssertGreaterThan(r.auxLoss, 0)
    }

    func testWholeModelGradientCheck() throws {
        for tied in [false, true] {
            let p = try makeParams(tied: tied)
            let mg = ModelGrad(params: p)
            p.zeroGrads()
            _ = try mg.step(windows: windows, B: 2, T: 4, backward: true)
            let analytic = Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count))
            XCTAssertFalse(analytic.contains { $0.isNaN })
            let eps: Float = 1e-2
            var worst = 0.0, checked = 0, skipped = 0
            for i in 0..<p.count {
                let keep = p.values.pointer[i]
                p.values.pointer[i] = keep + eps
                let (lp, rp) = try lossAndRouting(mg)
                p.values.pointer[i] = keep - eps
                let (lm, rm) = try lossAndRouting(mg)
                p.values.pointer[i] = keep
                if rp != rm { skipped += 1; continue }
                let n = (lp - lm) / Double(2 * eps), a = Double(analytic[i])
                worst = max(worst, abs(a - n) / max(1, abs(a), abs(n)))
                checked += 1
            }
            XCTAssertLessThan(worst, 3e-3, "tied \(tied): worst relative error \(worst) over \(checked) parameters")
            XCTAssertGreaterThan(checked, p.count * 9 / 10, "too many skipped: \(skipped)")
        }
    }

    func lossAndRouting(_ mg: ModelGrad) throws -> (Double, [Int32]) {
        let r = try mg.step(windows: windows, B: 2, T: 4, backward: false)
        return (r.loss, mg.lastRouting)
    }

    func testBadBatchesAreErrors() throws {
        let mg = ModelGrad(params: try makeParams())
        XCTAssertThrowsError(try mg.step(windows: [1, 2, 3], B: 2, T: 4, backward: false))
        XCTAssertThrowsError(try mg.step(windows: [1, 2, 3, 4, 99], B: 1, T: 4, backward: false))
        XCTAssertThrowsError(try mg.step(windows: [Int32](repeating: 1, count: 18), B: 1, T: 17, backward: false))
    }
}

// Matmul.run: chains of GEMMs run whole on the pool's threads give what running every GEMM
// in order on one thread gives, chains that accumulate into one output stay in order, and a
// training step's gradients do not depend on the thread count.
import XCTest
@testable import HMSTCore

final class MatmulTests: XCTestCase {
    override func tearDown() { try? Threads.set(0) }

    func testBalanceRule() {
        XCTAssertTrue(Matmul.balanced([10, 10], threads: 2))
        XCTAssertTrue(Matmul.balanced([20, 10, 10], threads: 2))   // q beside k then v
        XCTAssertFalse(Matmul.balanced([30, 5, 5], threads: 2))
        XCTAssertFalse(Matmul.balanced([8], threads: 2))            // one chain: split instead
        XCTAssertFalse(Matmul.balanced([10, 10, 10], threads: 2))   // 20 on one thread, 15 even
    }

    /// Four chains: two dx GEMMs accumulating into one output in order (beta 0, then 1), two
    /// weight gradients added into (beta 1). Run on 2 threads against every GEMM in order on one.
    func testChainsMatchOneThreadInOrder() throws {
        let N = 96, I = 80, O = 112
        var rng = RNG(seed: 3)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextGaussian() } }
        let x = random(N * I), w1 = random(O * I), w3 = random(O * I), dy1 = random(N * O), dy3 = random(N * O)
        let dW0 = random(O * I), dx0 = random(N * I)
        let mm = Matmul(precision: .f32)
        XCTAssertGreaterThanOrEqual(N * I * O * 4, 1 << 19, "large enough for the pool")

        func compute(threads: Int) throws -> (dx: [Float], dW1: [Float], dW3: [Float]) {
            try Threads.set(threads)
            var dx = dx0, dW1 = dW0, dW3 = dW0
            Threads.withSingleThreadedBLAS {
                x.withUnsafeBufferPointer { xp in w1.withUnsafeBufferPointer { w1p in w3.withUnsafeBufferPointer { w3p in
                dy1.withUnsafeBufferPointer { d1 in dy3.withUnsafeBufferPointer { d3 in
                dx.withUnsafeMutableBufferPointer { dxp in dW1.withUnsafeMutableBufferPointer { g1 in dW3.withUnsafeMutableBufferPointer { g3 in
                    let c1 = mm.linearBackwardCalls(dx: dxp.baseAddress!, dxBeta: 0, dW: g1.baseAddress!, dy: d1.baseAddress!,
                                                    x: xp.baseAddress!, w: w1p.baseAddress!, N: N, I: I, O: O)
                    let c3 = mm.linearBackwardCalls(dx: dxp.baseAddress!, dW: g3.baseAddress!, dy: d3.baseAddress!,
                                                    x: xp.baseAddress!, w: w3p.baseAddress!, N: N, I: I, O: O)
                    mm.run([[c1.dx, c3.dx], [c1.dW], [c3.dW]])
                } } }
                } }
                } } }
            }
            return (dx, dW1, dW3)
        }
        XCTAssertTrue(Matmul.balanced([2 * N * I * O, N * I * O, N * I * O], threads: 2))
        let one = try compute(threads: 1), two = try compute(threads: 2)
        XCTAssertEqual(one.dx, two.dx)
        XCTAssertEqual(one.dW1, two.dW1)
        XCTAssertEqual(one.dW3, two.dW3)

        // and against a plain reference: dx = dy1·W1 + dy3·W3 (the initial dx overwritten), dW += dyᵀx
        var worst: Float = 0
        for n in 0..<N {
            for i in 0..<I {
                var s: Float = 0
                for o in 0..<O { s += dy1[n * O + o] * w1[o * I + i] + dy3[n * O + o] * w3[o * I + i] }
                worst = max(worst, abs(s - one.dx[n * I + i]) / max(1, abs(s)))
            }
        }
        for o in 0..<O {
            for i in 0..<I {
                var s = dW0[o * I + i]
                for n in 0..<N { s += dy1[n * O + o] * x[n * I + i] }
                worst = max(worst, abs(s - one.dW1[o * I + i]) / max(1, abs(s)))
            }
        }
        XCTAssertLessThan(worst, 1e-4)
    }

    /// A step of a model whose projections and experts go through Matmul.run's pool path:
    /// gradients on 2 threads equal those on 1 to rounding (only GEMMs split across threads
    /// may sum in another order).
    func testStepGradientsDoNotDependOnThreads() throws {
        let c = try MixtralConfig(vocabSize: 64, hiddenSize: 128, intermediateSize: 256, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 128, ropeTheta: 10000, numLocalExperts: 4,
                                numExpertsPerTok: 2, tieWordEmbeddings: false, routerAuxLossCoef: 0.01)
        var rng = RNG(seed: 5)
        let windows = (0..<(4 * 129)).map { _ in Int32(rng.next() % 64) }
        func grads(threads: Int) throws -> [Float] {
            try Threads.set(threads)
            let p = Parameters(config: c)
            var r = RNG(seed: 9)
            for i in 0..<p.count { p.values.pointer[i] = r.nextGaussian() * 0.1 }
            p.zeroGrads()
            _ = try ModelGrad(params: p).step(windows: windows, B: 4, T: 128, backward: true)
            return Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count))
        }
        let one = try grads(threads: 1)
        var worst: Float = 0, scale: Float = 0
        for _ in 0..<4 {   // several steps: a chain split wrongly races, and a race can go either way
            let two = try grads(threads: 2)
            for i in one.indices {
                worst = max(worst, abs(one[i] - two[i]))
                scale = max(scale, abs(one[i]))
            }
        }
        XCTAssertGreaterThan(scale, 0)
        XCTAssertLessThan(worst, 1e-5 * scale, "largest difference \(worst) against largest gradient \(scale)")
    }
}

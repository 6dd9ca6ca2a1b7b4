// The bf16 GEMM (both kernels, every transpose, edge tiles, alpha/beta) against a Double
// reference on bf16-rounded operands, and its bf16-weight entry against it; mixed-precision and checkpointed training steps against
// the f32 step.
import XCTest
import CKernels
@testable import HMSTCore

final class MixedPrecisionTests: XCTestCase {
    func bf16Round(_ x: [Float]) -> [Float] {
        var h = [UInt16](repeating: 0, count: x.count), out = x
        hk_f32_to_bf16(&h, x, x.count)
        hk_bf16_to_f32(&out, h, x.count)
        return out
    }

    func testGemmBF16MatchesReferenceForEveryLayout() throws {
        defer { hk_set_max_level(-1) }
        var rng = RNG(seed: 5)
        let levels = hk_level() >= HK_LEVEL_BF16 ? [Int(HK_LEVEL_BF16), 0] : [0]
        for level in levels {
            hk_set_max_level(Int32(level))
            for (M, N, K) in [(1, 1, 1), (13, 37, 29), (70, 1100, 300), (9, 33, 2), (8, 32, 513), (24, 96, 67), (48, 64, 35)] {
                for tA in [false, true] {
                    for tB in [false, true] {
                        let A = (0..<(M * K)).map { _ in rng.nextGaussian() }, B = (0..<(K * N)).map { _ in rng.nextGaussian() }
                        let C0 = (0..<(M * N)).map { _ in rng.nextGaussian() }
                        let (alpha, beta): (Float, Float) = tA ? (0.5, 1) : (1, tB ? 0 : 0.25)
                        let lda = tA ? M : K, ldb = tB ? K : N
                        var C = C0
                        XCTAssertEqual(hk_gemm_bf16(tA ? 1 : 0, tB ? 1 : 0, M, N, K, alpha, A, lda, B, ldb, beta, &C, N), 0)
                        let Ar = bf16Round(A), Br = bf16Round(B)
                        var worst = 0.0
                        for m in 0..<M {
                            for n in 0..<N {
                                var acc = 0.0, mag = 0.0
                                for k in 0..<K {
                                    let a = Double(tA ? Ar[k * lda + m] : Ar[m * lda + k]), b = Double(tB ? Br[n * ldb + k] : Br[k * ldb + n])
                                    acc += a * b
                                    mag += abs(a * b)
                                }
                                let want = Double(alpha) * acc + Double(beta) * Double(C0[m * N + n])
                                worst = max(worst, abs(Double(C[m * N + n]) - want) / (mag + 1))
                            }
                        }
                        XCTAssertLessThan(worst, 1e-5, "level \(level) \(M)x\(N)x\(K) tA \(tA) tB \(tB)")
                    }
                }
            }
        }
    }

    /// Against weights stored as bf16 (prefill's path), the product is the f32 entry's on the
    /// widened weights bit for bit: W is already bf16, so both pack the same pairs and sum alike.
    func testGemmAgainstBF16WeightsEqualsTheF32Entry() throws {
        defer { hk_set_max_level(-1) }
        var rng = RNG(seed: 9)
        let levels = hk_level() >= HK_LEVEL_BF16 ? [Int(HK_LEVEL_BF16), Int(HK_LEVEL_AVX512), 0] : [0]
        for level in levels {
            hk_set_max_level(Int32(level))
            for (M, N, K) in [(1, 1, 1), (13, 37, 29), (70, 1100, 300), (9, 33, 2), (8, 32, 513), (64, 96, 256)] {
                let ldw = K + 3   // rows apart by more than K: the stride is honoured
                let A = (0..<(M * K)).map { _ in rng.nextGaussian() }
                var W16 = [UInt16](repeating: 0x7fc0, count: N * ldw)   // NaN outside the rows
                for n in 0..<N { hk_f32_to_bf16(&W16[n * ldw], (0..<K).map { _ in rng.nextGaussian() }, K) }
                var W32 = [Float](repeating: 0, count: N * ldw)
                hk_bf16_to_f32(&W32, W16, N * ldw)
                var want = [Float](repeating: 0, count: M * N), got = [Float](repeating: .nan, count: M * N)
                XCTAssertEqual(hk_gemm_bf16(0, 1, M, N, K, 1, A, K, W32, ldw, 0, &want, N), 0)
                XCTAssertEqual(hk_gemm_bf16_wt(M, N, K, A, K, W16, ldw, &got, N), 0)
                XCTAssertEqual(got, want, "level \(level) \(M)x\(N)x\(K)")
            }
        }
    }

    func makeParams() throws -> Parameters {
        let c = try MixtralConfig(vocabSize: 40, hiddenSize: 32, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 32, ropeTheta: 10000, numLocalExperts: 4,
                                numExpertsPerTok: 2, routerAuxLossCoef: 0.01)
        return try Parameters(model: LanguageModel.random(config: c, seed: 8))
    }

    func gradients(_ options: ModelGradOptions, _ p: Parameters, windows: [Int32]) throws -> (StepResult, [Float]) {
        p.zeroGrads()
        let r = try ModelGrad(params: p, options: options).step(windows: windows, B: 3, T: 16, backward: true)
        return (r, Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count)))
    }

    func testCheckpointingIsExactAndMixedPrecisionIsClose() throws {
        let p = try makeParams()
        var rng = RNG(seed: 3)
        let windows = (0..<(3 * 17)).map { _ in Int32(rng.next() % 40) }
        let blasBefore = Threads.blasThreads
        let (r32, g32) = try gradients(ModelGradOptions(), p, windows: windows)
        XCTAssertEqual(Threads.blasThreads, blasBefore, "the step gives OpenBLAS its thread count back")
        // checkpointing recomputes the same arithmetic: bit-identical loss and gradients
        let (rc, gc) = try gradients(ModelGradOptions(gradientCheckpointing: true), p, windows: windows)
        XCTAssertEqual(r32.loss, rc.loss)
        XCTAssertEqual(g32, gc)
        // bf16 matmuls: the same routing here, loss and gradient direction within bf16 error
        let (rb, gb) = try gradients(ModelGradOptions(precision: .bf16), p, windows: windows)
        XCTAssertEqual(rb.loss, r32.loss, accuracy: 2e-2 * r32.loss)
        var dot = 0.0, n32 = 0.0, nb = 0.0
        for i in 0..<g32.count { dot += Double(g32[i]) * Double(gb[i]); n32 += Double(g32[i] * g32[i]); nb += Double(gb[i] * gb[i]) }
        XCTAssertGreaterThan(dot / (n32.squareRoot() * nb.squareRoot()), 0.99, "cosine of bf16 and f32 gradients")
        XCTAssertTrue(gb.allSatisfy(\.isFinite))
        // checkpointing keeps less between forward and backward
        let full = ModelGrad(params: p), ckpt = ModelGrad(params: p, options: ModelGradOptions(gradientCheckpointing: true))
        _ = try full.step(windows: windows, B: 3, T: 16, backward: false)
        _ = try ckpt.step(windows: windows, B: 3, T: 16, backward: false)
        XCTAssertLessThan(ckpt.bufferBytes.activations, full.bufferBytes.activations * 2 / 3)
    }
}

import XCTest
import CKernels
@testable import HMSTCore

final class OptimizerTests: XCTestCase {
    func tinyConfig() throws -> MixtralConfig {
        try MixtralConfig(vocabSize: 11, hiddenSize: 8, intermediateSize: 6, numHiddenLayers: 2, numAttentionHeads: 2,
                        numKeyValueHeads: 1, maxPositionEmbeddings: 16, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
    }

    /// A parameter set too large for memory: the optimizers' state is OUT_OF_MEMORY naming it, not a trap.
    func testOptimizerStateBeyondMemoryIsAnError() throws {
        final class Huge: ParameterSet {
            let names = ["w"], shapes = [[1 << 40, 1 << 21]], offsets = [0], count = 1 << 61
            let values = FloatBuffer(count: 1), grads = FloatBuffer(count: 1), roles = [ParameterRole.matrix]
        }
        for eightBit in [false, true] {
            XCTAssertThrowsError(try eightBit ? AdamW8bit(params: Huge()) as Optimizer : AdamW(params: Huge())) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .outOfMemory)
                XCTAssertTrue("\(e)".contains("AdamW"), "\(e)")
            }
        }
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
        let opt = try AdamW(params: p, config: cfg)
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
        // gradScale multiplies the gradients inside the update: grads x 4 at scale 1/4 is the same step
        for eightBit in [false, true] {
            let a = Parameters(config: try tinyConfig()), b = Parameters(config: try tinyConfig())
            for i in 0..<a.count {
                a.values.pointer[i] = before[i]; b.values.pointer[i] = before[i]
                a.grads.pointer[i] = grads[i]; b.grads.pointer[i] = grads[i] * 4
            }
            let oa: Optimizer = eightBit ? try AdamW8bit(params: a) : try AdamW(params: a)
            let ob: Optimizer = eightBit ? try AdamW8bit(params: b) : try AdamW(params: b)
            oa.update(lr: 0.01)
            ob.update(lr: 0.01, gradScale: 0.25)
            XCTAssertEqual(memcmp(a.values.pointer, b.values.pointer, a.count * 4), 0, "8-bit \(eightBit)")
        }
    }

    /// The AdamW kernel's vector paths (AVX-512 with masked tails, AVX2 with a scalar tail) do
    /// the portable path's operations in its order: every element bit for bit equal, at lengths
    /// that leave every kind of tail, and equal to the formula written out in Double.
    func testAdamWKernelPathsAgreeBitForBit() {
        defer { hk_set_max_level(-1) }
        var rng = RNG(seed: 3)
        let n = 16 * 7 + 11
        let p0 = (0..<n).map { _ in rng.nextGaussian() }, g = (0..<n).map { _ in rng.nextGaussian() * 3 }
        let m0 = (0..<n).map { _ in rng.nextGaussian() * 0.1 }, v0 = (0..<n).map { _ in abs(rng.nextGaussian()) * 0.01 }
        var hp = hk_adam_params(beta1: 0.9, beta2: 0.95, eps: 1e-8, lr: 3e-3, weight_decay: 0.1, bc1: 0.271, bc2: 0.1426,
                                grad_scale: 0.7)
        func run(level: Int32, count: Int) -> [Float] {
            hk_set_max_level(level)
            var p = p0, m = m0, v = v0
            hk_adamw_update(&p, g, &m, &v, count, &hp)
            return p + m + v
        }
        let top = min(hk_level(), Int32(HK_LEVEL_AVX512))
        for count in [n, 1, 15, 17, 8 * 3 + 5] {
            let want = run(level: 0, count: count)
            for level in stride(from: Int32(1), through: top, by: 1) {
                XCTAssertEqual(run(level: level, count: count), want, "level \(level), \(count) elements")
            }
        }
        let out = run(level: top, count: n)
        for i in [0, 16, n - 1] {
            let gi = Double(g[i]) * 0.7, m = 0.9 * Double(m0[i]) + 0.1 * gi, v = 0.95 * Double(v0[i]) + 0.05 * gi * gi
            let want = Double(p0[i]) - 3e-3 * ((m / 0.271) / ((v / 0.1426).squareRoot() + 1e-8) + 0.1 * Double(p0[i]))
            XCTAssertEqual(Double(out[i]), want, accuracy: 1e-6 * max(1, abs(want)), "element \(i)")
            XCTAssertEqual(out[n + i], Float(m), accuracy: 1e-6)
        }
        let short = run(level: top, count: 15)
        XCTAssertEqual(Array(short[15..<n]), Array(p0[15...]), "parameters past count untouched")
        XCTAssertEqual(Array(short[(n + 15)..<(2 * n)]), Array(m0[15...]), "moments past count untouched")
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
        let opt = try AdamW(params: p)
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

/// 8-bit AdamW: the maps, the blockwise round trip, the state size and a loss curve that
/// tracks f32 AdamW.
final class AdamW8bitTests: XCTestCase {
    func testDynamicMapsAndBlockwiseRoundTrip() {
        var signed = [Float](repeating: 0, count: 256), unsigned = signed
        hk_dynamic_map(&signed, 1)
        hk_dynamic_map(&unsigned, 0)
        for map in [signed, unsigned] {
            XCTAssertEqual(Set(map).count, 256)
            XCTAssertEqual(map, map.sorted())
            XCTAssertEqual(map.last, 1)
            XCTAssertTrue(map.contains(0))
        }
        XCTAssertEqual(signed.first!, -signed[254], accuracy: 1e-7)  // mirrored, with 0 and 1 extra
        XCTAssertEqual(unsigned.first, 0)
        var rng = RNG(seed: 4)
        let n = 1000
        let x = (0..<n).map { _ in rng.nextGaussian() * (rng.next() % 2 == 0 ? 1 : 1e-3) }
        var q = [UInt8](repeating: 0, count: n), absmax = [Float](repeating: 0, count: 4), y = x
        hk_quantize_blockwise(&q, &absmax, x, n, signed, nil)
        hk_dequantize_blockwise(&y, q, absmax, n, signed)
        // the lookup table gives exactly the binary search's codes, for both maps, on values
        // spread over every decade, on the codes themselves and on the midpoints between them
        for map in [signed, unsigned] {
            var table = [UInt8](repeating: 0, count: 65536)
            hk_quant_table(&table, map)
            var probe: [Float] = map
            for i in 1..<256 { probe.append((map[i - 1] + map[i]) / 2); probe.append(map[i].nextDown); probe.append(map[i].nextUp) }
            for _ in 0..<20000 { probe.append(Float(rng.nextGaussian()) * powf(10, Float(Int(rng.next() % 8)) - 7)) }
            probe = probe.map { map[0] >= 0 ? abs($0) : $0 }.map { min(1, max(-1, $0)) }
            // one value per block of 256 is the block maximum (scale 1), so quantise each value alone
            var qa = [UInt8](repeating: 0, count: 1), qb = qa, am = [Float](repeating: 0, count: 1)
            for v in probe where v != 0 {
                hk_quantize_blockwise(&qa, &am, [v], 1, map, nil)
                hk_quantize_blockwise(&qb, &am, [v], 1, map, table)
                XCTAssertEqual(qa, qb, "value \(v)")
            }
            var many = [UInt8](repeating: 0, count: probe.count), manyT = many
            var maxes = [Float](repeating: 0, count: (probe.count + 255) / 256)
            hk_quantize_blockwise(&many, &maxes, probe, probe.count, map, nil)
            hk_quantize_blockwise(&manyT, &maxes, probe, probe.count, map, table)
            if let i = (0..<many.count).first(where: { many[$0] != manyT[$0] }) {
                XCTFail("element \(i): \(probe[i]) / \(maxes[i / 256]) = \(probe[i] / maxes[i / 256]): codes \(many[i]) vs \(manyT[i])")
            }
        }
        for b in 0..<4 {
            let block = (b * 256)..<min(n, (b + 1) * 256)
            XCTAssertEqual(absmax[b], block.map { abs(x[$0]) }.max()!)
            for i in block {
                // nearest code: error at most half the gap to the neighbouring codes (< 7% of absmax)
                XCTAssertLessThan(abs(y[i] - x[i]), 0.07 * absmax[b], "element \(i)")
            }
        }
    }

    func testStateIsAQuarterAndLossTracksF32() throws {
        let c = try MixtralConfig(vocabSize: 64, hiddenSize: 64, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 32, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        var curves: [[Double]] = []
        var bytes: [Int] = []
        for eightBit in [false, true] {
            let p = try Parameters(model: LanguageModel.random(config: c, seed: 2))
            let mg = ModelGrad(params: p)
            let opt: Optimizer = eightBit ? try AdamW8bit(params: p) : try AdamW(params: p)
            var rng = RNG(seed: 7)
            // a learnable stream: token t+1 = (3 t + 1) mod 64 with a random start
            var curve: [Double] = []
            for _ in 0..<40 {
                var w: [Int32] = []
                for _ in 0..<4 {
                    var t = Int32(rng.next() % 64)
                    for _ in 0..<17 { w.append(t); t = (3 * t + 1) % 64 }
                }
                p.zeroGrads()
                curve.append(try mg.step(windows: w, B: 4, T: 16, backward: true).ceLoss)
                GradClip.clip(p, maxNorm: 1)
                opt.update(lr: 3e-3)
            }
            curves.append(curve)
            bytes.append(opt.stateBytes)
        }
        let f32 = curves[0], q8 = curves[1]
        XCTAssertLessThan(f32.last!, f32.first! * 0.6, "f32 AdamW learns: \(f32)")
        XCTAssertEqual(q8.last!, f32.last!, accuracy: 0.1 * f32.first!, "8-bit \(q8.last!) vs f32 \(f32.last!)")
        let ratio = Double(bytes[1]) / Double(bytes[0])
        XCTAssertLessThan(ratio, 0.35, "8-bit state \(bytes[1]) vs \(bytes[0]) bytes")
    }
}

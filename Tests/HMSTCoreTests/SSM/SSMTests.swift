// The Mamba mixer (Sources/HMSTCore/SSM): config parsing, the three modes against each other
// (full forward, chunks with a carried state, token steps), against the Double reference
// (MambaReference.swift), the backward against central differences of that reference, and
// everything against transformers' MambaMixer (Tests/Golden/mamba, tools/golden/make_mamba_golden.py).
import CKernels
import XCTest
@testable import HMSTCore

final class SSMTests: XCTestCase {
    var rng = RNG(seed: 31)

    override func tearDown() { hk_set_max_level(-1) }

    func randn(_ n: Int, _ s: Float = 1) -> [Float] { (0..<n).map { _ in rng.nextGaussian() * s } }

    /// A small mixer with weights large enough that every term matters (δ mostly in 0.1 ... 1).
    func makeMixer(C: Int = 8, N: Int = 4, expand: Int = 2, W: Int = 4, R: Int = 2, seed: UInt64 = 5) throws -> MambaMixer {
        let cfg = try MambaConfig(hiddenSize: C, stateSize: N, expand: expand, convKernel: W, timeStepRank: R)
        let w = MambaMixerWeights.random(config: cfg, seed: seed)
        let b = w.buffer(.dtBias)
        for i in 0..<b.count { b[i] = -1 + 1.5 * rng.nextFloat() }
        let dt = w.buffer(.dtProj)
        for i in 0..<dt.count { dt[i] *= 0.5 }
        let a = w.buffer(.aLog)
        for i in 0..<a.count { a[i] += 0.3 * (rng.nextFloat() - 0.5) }
        let d = w.buffer(.d)
        for i in 0..<d.count { d[i] = 1 + 0.3 * rng.nextGaussian() }
        return MambaMixer(weights: w)
    }

    /// A state as if some tokens had been seen: non-zero conv inputs and ssm state.
    func randomState(_ c: MambaConfig) -> MambaState {
        var s = MambaState(config: c)
        s.conv = randn(s.conv.count, 0.7)
        s.ssm = randn(s.ssm.count, 0.5)
        return s
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    func maxDiff(_ a: [Float], _ b: [Double]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
    }

    // MARK: config

    func testConfigParsesTransformersJSONAndValidates() throws {
        let golden = try JSONValue.parse(bytes: try FileIO.readAll(Golden.root + "/mamba/config.json"))
        let c = try MambaConfig(json: golden)
        XCTAssertEqual([c.hiddenSize, c.stateSize, c.expand, c.intermediateSize, c.convKernel, c.timeStepRank], [32, 8, 2, 64, 4, 4])
        XCTAssertTrue(c.useConvBias)
        XCTAssertFalse(c.useBias)
        XCTAssertEqual(try MambaConfig(json: c.json()), c)

        // "auto" rank is ceil(C / 16); HF defaults fill missing keys; the preset has N = 256
        let auto = try MambaConfig(json: try JSONValue.parse(#"{"hidden_size": 40, "time_step_rank": "auto"}"#))
        XCTAssertEqual(auto.timeStepRank, 3)
        XCTAssertEqual(auto.stateSize, 16)
        XCTAssertEqual(auto.intermediateSize, 80)
        XCTAssertEqual(try MambaConfig.episodicMemory(hiddenSize: 64).stateSize, 256)

        func expect(_ text: String, _ status: Status, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try MambaConfig(json: try JSONValue.parse(text)), text, file: file, line: line) { e in
                XCTAssertEqual((e as? HMSTError)?.status, status, "\(e)", file: file, line: line)
            }
        }
        expect(#"{"state_size": 8}"#, .badFormat)                               // no hidden_size
        expect(#"{"hidden_size": 32, "state_size": 0}"#, .badFormat)
        expect(#"{"hidden_size": 32, "state_size": 8.5}"#, .badFormat)
        expect(#"{"hidden_size": 32, "expand": 0}"#, .badFormat)
        expect(#"{"hidden_size": 32, "conv_kernel": 1000}"#, .badFormat)
        expect(#"{"hidden_size": 32, "time_step_rank": "big"}"#, .badFormat)
        expect(#"{"hidden_size": 32, "intermediate_size": 63}"#, .badFormat)
        expect(#"{"hidden_size": 32, "use_conv_bias": 1}"#, .badFormat)
        expect(#"{"hidden_size": 32, "layer_norm_epsilon": 0}"#, .badFormat)
        expect(#"{"hidden_size": 1000000}"#, .badFormat)
        expect(#"{"hidden_size": 32, "use_bias": true}"#, .unsupported)
        expect(#"{"hidden_size": 32, "hidden_act": "gelu"}"#, .unsupported)
        expect(#"{"hidden_size": 32, "model_type": "mixtral"}"#, .unsupported)
        expect(#"[1, 2]"#, .badFormat)
    }

    // MARK: forward modes

    func testForwardMatchesDoubleReference() throws {
        let m = try makeMixer(C: 16, N: 8, R: 3)
        let T = 9
        let x = randn(T * 16)
        let s0 = randomState(m.config)
        var s = s0
        let out = try m.forward(x, state: &s, threads: 2)
        let ref = MambaReference(m.weights).forward(x.map(Double.init), T: T, conv0: s0.conv.map(Double.init), h0: s0.ssm.map(Double.init))
        XCTAssertLessThan(maxDiff(out, ref.out), 1e-5)
        XCTAssertLessThan(maxDiff(s.conv, ref.conv), 1e-6)
        XCTAssertLessThan(maxDiff(s.ssm, ref.h), 1e-5)
    }

    func testStepEqualsFullForwardTokenByToken() throws {
        let m = try makeMixer(C: 16, N: 8, R: 3)
        let C = 16, T = 11
        let x = randn(T * C)
        let s0 = randomState(m.config)
        var full = s0
        let out = try m.forward(x, state: &full)
        var s = s0
        var worst: Float = 0
        for t in 0..<T {
            let o = try m.step(Array(x[t * C..<(t + 1) * C]), state: &s)
            worst = max(worst, maxDiff(o, Array(out[t * C..<(t + 1) * C])))
        }
        XCTAssertLessThan(worst, 1e-5)
        XCTAssertLessThan(maxDiff(s.ssm, full.ssm), 1e-5)
        // the conv state holds in_proj outputs, which the step's GEMV rounds differently from sgemm
        XCTAssertLessThan(maxDiff(s.conv, full.conv), 1e-6)
    }

    func testChunksWithCarriedStateEqualFullForward() throws {
        let m = try makeMixer(C: 16, N: 8, R: 3)
        let C = 16, T = 12
        let x = randn(T * C)
        var full = MambaState(config: m.config)
        let out = try m.forward(x, state: &full, threads: 1)
        // chunks shorter than W-1 = 3 exercise the conv state's partial shift
        var s = MambaState(config: m.config)
        var chunked: [Float] = []
        var t0 = 0
        for len in [5, 1, 2, 4] {
            chunked += try m.forward(Array(x[t0 * C..<(t0 + len) * C]), state: &s, threads: 2)
            t0 += len
        }
        XCTAssertLessThan(maxDiff(chunked, out), 1e-5)
        XCTAssertLessThan(maxDiff(s.ssm, full.ssm), 1e-5)
        // the conv state holds in_proj rows; sgemm may round a row differently with the number of
        // rows in the call (OpenBLAS's AVX2 kernels on Zen 3 do, its AVX-512 ones did not)
        XCTAssertLessThan(maxDiff(s.conv, full.conv), 1e-6)
        // and the thread count changes nothing but the split of channels
        var s2 = MambaState(config: m.config)
        XCTAssertEqual(try m.forward(x, state: &s2, threads: 3), out)
        XCTAssertEqual(s2, full)
    }

    /// The scan's AVX-512, AVX2 and portable builds compute the same operations in the same order.
    func testScanBuildsForEachISAAgreeBitForBit() throws {
        let m = try makeMixer(C: 16, N: 40, R: 3)  // N = 40: full SIMD blocks and a tail
        let x = randn(7 * 16), dy = randn(7 * 16)
        var results: [[Float]] = []
        for level in 0...Int(hk_level()) {   // portable, then each SIMD level this CPU has
            hk_set_max_level(Int32(level))
            var s = MambaState(config: m.config)
            let tape = MambaTape(config: m.config)
            let out = try m.forward(x, state: &s, tape: tape, threads: 1)
            var dx = [Float](repeating: 0, count: x.count)
            let g = MambaMixerWeights(config: m.config)
            try m.backward(dx: &dx, grads: g, dy: dy, tape: tape, threads: 1)
            results.append(out + s.ssm + dx + Array(g.storage.buffer))
        }
        for l in results.indices.dropFirst() { XCTAssertEqual(results[l], results[0], "level \(l)") }
    }

    /// The scan's polynomial exp (CKernels/ssm.c) against libm over the range δ·A takes.
    func testScanExpIsWithinTwoULPOfExpf() {
        var worst: Float = 0
        var v: Float = -87
        while v <= 1 {
            worst = max(worst, abs(hk_ssm_exp(v) - expf(v)) / expf(v))
            v += 0.00731
        }
        XCTAssertLessThan(worst, 2.4e-7)
        XCTAssertEqual(hk_ssm_exp(-1000), hk_ssm_exp(-87))  // clamped, no NaN or denormal
    }

    func testConvKernelOneHasNoConvState() throws {
        let m = try makeMixer(C: 8, N: 4, W: 1)
        let x = randn(3 * 8)
        var a = MambaState(config: m.config), b = a
        XCTAssertTrue(a.conv.isEmpty)
        let out = try m.forward(x, state: &a)
        var steps: [Float] = []
        for t in 0..<3 { steps += try m.step(Array(x[t * 8..<(t + 1) * 8]), state: &b) }
        XCTAssertLessThan(maxDiff(steps, out), 1e-5)
    }

    func testPooledStateVectorIsTheChannelMeanOfH() throws {
        let m = try makeMixer(C: 16, N: 8, R: 3)
        var s = MambaState(config: m.config)
        _ = try m.forward(randn(6 * 16), state: &s)
        let v = s.pooled()
        XCTAssertEqual(v.count, 8)
        let Di = m.config.intermediateSize
        for n in 0..<8 {
            let mean = (0..<Di).reduce(0.0) { $0 + Double(s.ssm[$1 * 8 + n]) } / Double(Di)
            XCTAssertEqual(Double(v[n]), mean, accuracy: 1e-6)
        }
        XCTAssertEqual(MambaState(config: m.config).pooled(), [Float](repeating: 0, count: 8))
    }

    func testBadShapesThrowInsteadOfTrapping() throws {
        let m = try makeMixer()
        var s = MambaState(config: m.config)
        func expectInvalid(_ f: () throws -> Void, line: UInt = #line) {
            XCTAssertThrowsError(try f(), line: line) { XCTAssertEqual(($0 as? HMSTError)?.status, .invalidArgument, line: line) }
        }
        expectInvalid { _ = try m.forward([], state: &s) }
        expectInvalid { _ = try m.forward(self.randn(7), state: &s) }
        expectInvalid { _ = try m.step(self.randn(9), state: &s) }
        var other = MambaState(config: try MambaConfig(hiddenSize: 8, stateSize: 5))
        expectInvalid { _ = try m.forward(self.randn(8), state: &other) }
        var broken = s
        broken.ssm.removeLast()
        expectInvalid { _ = try m.step(self.randn(8), state: &broken) }
        let tape = MambaTape(config: m.config)
        var dx = [Float](repeating: 0, count: 16)
        let g = MambaMixerWeights(config: m.config)
        expectInvalid { try m.backward(dx: &dx, grads: g, dy: self.randn(16), tape: tape) }  // empty tape
        _ = try m.forward(randn(16), state: &s, tape: tape)
        expectInvalid { try m.backward(dx: &dx, grads: g, dy: self.randn(8), tape: tape) }
        // a checkpoint whose shapes do not fit the config
        let wrong = try MambaConfig(hiddenSize: 32, stateSize: 4, timeStepRank: 4)
        XCTAssertThrowsError(try MambaMixerWeights.load(path: Golden.root + "/mamba/model.safetensors",
                                                        prefix: "backbone.layers.0.mixer.", config: wrong)) {
            XCTAssertEqual(($0 as? HMSTError)?.status, .badFormat)
        }
        XCTAssertThrowsError(try MambaMixerWeights.load(path: Golden.root + "/mamba/model.safetensors",
                                                        prefix: "no.such.", config: wrong)) {
            XCTAssertEqual(($0 as? HMSTError)?.status, .badFormat)
        }
    }

    // MARK: backward

    /// Each weight's gradient in g and the input's dx against central differences (eps = 1e-3) of
    /// loss(reference, input), perturbing the Double reference's weights and input one at a time:
    /// the worst |a − n| / max(1, |a|, |n|) must stay below 1e-3.
    func checkAgainstFiniteDifferences(g: MambaMixerWeights, dx: [Float], ref r: MambaReference, x: [Double],
                                       loss: (MambaReference, [Double]) -> Double, file: StaticString = #filePath, line: UInt = #line) {
        var ref = r, xd = x
        let eps = 1e-3
        func worst(_ analytic: [Float], _ value: (Int) -> Double, _ set: (Int, Double) -> Void) -> Double {
            var w = 0.0
            for i in 0..<analytic.count {
                let keep = value(i)
                set(i, keep + eps)
                let lp = loss(ref, xd)
                set(i, keep - eps)
                let lm = loss(ref, xd)
                set(i, keep)
                let n = (lp - lm) / (2 * eps), a = Double(analytic[i])
                w = max(w, abs(a - n) / max(1, abs(a), abs(n)))
            }
            return w
        }
        for t in MambaTensor.allCases {
            let e = worst(Array(g.buffer(t)), { ref[t][$0] }, { ref[t][$0] = $1 })
            XCTAssertLessThan(e, 1e-3, "\(t.hfName): worst relative error \(e)", file: file, line: line)
        }
        let ex = worst(dx, { xd[$0] }, { xd[$0] = $1 })
        XCTAssertLessThan(ex, 1e-3, "input: worst relative error \(ex)", file: file, line: line)
    }

    /// Every weight and the input against central differences of the Double reference, from a
    /// non-zero carried state. L = Σ out · r; eps = 1e-3 (Double, so truncation error ~1e-6);
    /// pass when |a − n| / max(1, |a|, |n|) < 1e-3, after checking for NaN.
    func testGradientsMatchFiniteDifferences() throws {
        let m = try makeMixer(C: 8, N: 4, expand: 2, W: 4, R: 2)
        let c = m.config, C = c.hiddenSize, T = 5
        let x = randn(T * C)
        let r = randn(T * C)
        let s0 = randomState(c)
        var s = s0
        let tape = MambaTape(config: c)
        _ = try m.forward(x, state: &s, tape: tape, threads: 2)
        var dx = [Float](repeating: 0, count: T * C)
        let g = MambaMixerWeights(config: c)
        try m.backward(dx: &dx, grads: g, dy: r, tape: tape, threads: 2)
        XCTAssertFalse(g.buffer(.inProj).contains { $0.isNaN } || dx.contains { $0.isNaN }, "NaN in analytic gradients")

        let conv0 = s0.conv.map(Double.init), h0 = s0.ssm.map(Double.init), rd = r.map(Double.init)
        checkAgainstFiniteDifferences(g: g, dx: dx, ref: MambaReference(m.weights), x: x.map(Double.init)) { ref, xd in
            zip(ref.forward(xd, T: T, conv0: conv0, h0: h0).out, rd).reduce(0) { $0 + $1.0 * $1.1 }
        }

        // the backward accumulates: a second call doubles every gradient
        let once = Array(g.storage.buffer), dxOnce = dx
        try m.backward(dx: &dx, grads: g, dy: r, tape: tape, threads: 1)
        XCTAssertLessThan(maxDiff(Array(g.storage.buffer), once.map { 2 * $0 }), 1e-5)
        XCTAssertLessThan(maxDiff(dx, dxOnce.map { 2 * $0 }), 1e-5)
    }

    /// A loss that also reads the final ssm state, L = Σ out·r + Σ h_T·q: every weight and the
    /// input against central differences of the Double reference (same tolerance as above), and
    /// dState = nil still gives the out-only gradients bit for bit.
    func testFinalStateGradientMatchesFiniteDifferences() throws {
        let m = try makeMixer(C: 8, N: 4, expand: 2, W: 4, R: 2, seed: 9)
        let c = m.config, C = c.hiddenSize, T = 4
        let x = randn(T * C), r = randn(T * C), q = randn(c.intermediateSize * c.stateSize)
        let s0 = randomState(c)
        var s = s0
        let tape = MambaTape(config: c)
        _ = try m.forward(x, state: &s, tape: tape, threads: 2)
        var dx = [Float](repeating: 0, count: T * C)
        let g = MambaMixerWeights(config: c)
        try m.backward(dx: &dx, grads: g, dy: r, tape: tape, dState: q, threads: 2)
        XCTAssertFalse(g.storage.buffer.contains { $0.isNaN } || dx.contains { $0.isNaN }, "NaN in analytic gradients")

        let conv0 = s0.conv.map(Double.init), h0 = s0.ssm.map(Double.init), rd = r.map(Double.init), qd = q.map(Double.init)
        checkAgainstFiniteDifferences(g: g, dx: dx, ref: MambaReference(m.weights), x: x.map(Double.init)) { ref, xd in
            let f = ref.forward(xd, T: T, conv0: conv0, h0: h0)
            return zip(f.out, rd).reduce(0) { $0 + $1.0 * $1.1 } + zip(f.h, qd).reduce(0) { $0 + $1.0 * $1.1 }
        }

        // the state's term matters (the test would pass vacuously otherwise) ...
        let gOut = MambaMixerWeights(config: c)
        var dxOut = [Float](repeating: 0, count: T * C)
        try m.backward(dx: &dxOut, grads: gOut, dy: r, tape: tape, threads: 2)
        XCTAssertGreaterThan(maxDiff(dx, dxOut), 1e-3)
        // ... and a zero dState equals none, bit for bit
        let gZero = MambaMixerWeights(config: c)
        var dxZero = [Float](repeating: 0, count: T * C)
        try m.backward(dx: &dxZero, grads: gZero, dy: r, tape: tape, dState: [Float](repeating: 0, count: q.count), threads: 2)
        XCTAssertEqual(dxZero, dxOut)
        XCTAssertEqual(Array(gZero.storage.buffer), Array(gOut.storage.buffer))
        // a wrongly sized dState is an error, not a trap
        XCTAssertThrowsError(try m.backward(dx: &dxZero, grads: gZero, dy: r, tape: tape, dState: [1, 2, 3])) {
            XCTAssertEqual(($0 as? HMSTError)?.status, .invalidArgument)
        }
    }

    // MARK: transformers

    func testMatchesTransformersMambaMixer() throws {
        let dir = Golden.root + "/mamba"
        let ref = try JSONValue.parse(bytes: try FileIO.readAll(dir + "/reference.json"))
        let prefix = ref["prefix"]?.string ?? ""
        let cfg = try MambaConfig(json: try JSONValue.parse(bytes: try FileIO.readAll(dir + "/config.json")))
        let m = MambaMixer(weights: try MambaMixerWeights.load(path: dir + "/model.safetensors", prefix: prefix, config: cfg))
        let C = cfg.hiddenSize, Di = cfg.intermediateSize, N = cfg.stateSize, W = cfg.convKernel
        let x = try Golden.array(dir + "/x.bin"), want = try Golden.array(dir + "/out.bin")
        let T = x.shape[0]
        XCTAssertEqual(x.shape, [T, C])

        // full forward: out and the states transformers caches after the prefill. Tolerance 1e-5
        // absolute (values are O(1)); the two agree to ~2e-7 with transformers 5.24 / torch 2.13
        var s = MambaState(config: cfg)
        let tape = MambaTape(config: cfg)
        let out = try m.forward(x.data, state: &s, tape: tape)
        XCTAssertLessThan(maxDiff(out, want.data), 1e-5, "out")
        XCTAssertLessThan(maxDiff(s.ssm, try Golden.array(dir + "/ssm_state.bin").data), 1e-5, "ssm state")
        let hfConv = try Golden.array(dir + "/conv_state.bin")  // [Di, W]: the last W inputs; ours keeps W-1
        XCTAssertEqual(hfConv.shape, [Di, W])
        var lastInputs: [Float] = []
        for d in 0..<Di { lastInputs += hfConv.data[(d * W + 1)..<((d + 1) * W)] }
        XCTAssertLessThan(maxDiff(s.conv, lastInputs), 1e-5, "conv state")

        // one more token through transformers' recurrent path
        let stepOut = try m.step(try Golden.array(dir + "/step_x.bin").data, state: &s)
        XCTAssertLessThan(maxDiff(stepOut, try Golden.array(dir + "/step_out.bin").data), 1e-5, "step out")
        XCTAssertLessThan(maxDiff(s.ssm, try Golden.array(dir + "/step_ssm_state.bin").data), 1e-5, "step ssm state")
        XCTAssertEqual(s.pooled().count, N)

        // gradients of Σ out · dy, from torch autograd (relative to the largest |gradient|, at least 1)
        let dy = try Golden.array(dir + "/dy.bin").data
        var dx = [Float](repeating: 0, count: T * C)
        let g = MambaMixerWeights(config: cfg)
        try m.backward(dx: &dx, grads: g, dy: dy, tape: tape)
        func relErr(_ a: [Float], _ b: [Float]) -> Float {
            let scale = max(1, b.map { abs($0) }.max() ?? 1)
            return maxDiff(a, b) / scale
        }
        XCTAssertLessThan(relErr(dx, try Golden.array(dir + "/dx.bin").data), 1e-5, "dx")
        let hfGrads = try MambaMixerWeights.load(path: dir + "/grads.safetensors", prefix: prefix, config: cfg)
        for t in MambaTensor.allCases {
            let e = relErr(Array(g.buffer(t)), Array(hfGrads.buffer(t)))
            XCTAssertLessThan(e, 1e-5, "d \(t.hfName)")
        }
    }
}

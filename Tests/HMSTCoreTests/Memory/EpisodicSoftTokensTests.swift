// The episodic tier's soft tokens (Memory/EpisodicSoftTokens.swift, issue 11): the gradient of
// injected embedding rows in the training step against central differences, the inference path
// reading the same rows, the projection and SSM's gradient against a Double reference, the
// stored set round-tripping (and a tampered one refused), and Stage 2 training them.
import XCTest
@testable import HMSTCore

final class EpisodicSoftTokensTests: XCTestCase {
    let config = try! MixtralConfig(vocabSize: 11, hiddenSize: 8, intermediateSize: 6, numHiddenLayers: 2, numAttentionHeads: 2,
                                  numKeyValueHeads: 1, maxPositionEmbeddings: 16, ropeTheta: 10000, numLocalExperts: 4,
                                  numExpertsPerTok: 2, routerAuxLossCoef: 0.05)
    // token 10 is the placeholder: it stands only where rows are injected (positions 2, 3 of row
    // 0 and 1 of row 1), so its embedding row must get no gradient
    let inputs: [Int32] = [5, 1, 10, 10, 2, 3, 6, 7,
                           1, 10, 2, 8, 6, 4, 3, 9]
    let targets: [Int32] = [-1, -1, -1, -1, -1, 6, 7, 0,
                            -1, -1, -1, 6, 4, 3, 9, 5]
    let B = 2, T = 8
    let positions = [2, 3, 9]

    func randomRows(_ n: Int, seed: UInt64) -> [Float] {
        var rng = RNG(seed: seed)
        return (0..<n).map { _ in rng.nextGaussian() * 0.7 }
    }

    // MARK: the training step and inference

    func testInjectedRowsGradientMatchesFiniteDifferences() throws {
        let p = randomParameters(config, seed: 4)
        let mg = ModelGrad(params: p)
        let C = config.hiddenSize
        var rows = randomRows(positions.count * C, seed: 3)
        p.zeroGrads()
        let r = try mg.step(inputs: inputs, targets: targets, B: B, T: T,
                            injected: InjectedEmbeddings(positions: positions, rows: rows), backward: true)
        let analytic = mg.injectedGradient
        XCTAssertEqual(analytic.count, rows.count)
        XCTAssertFalse(analytic.contains { $0.isNaN })
        XCTAssertTrue(analytic.contains { $0 != 0 })
        // the placeholder's embedding row learns nothing from the positions it stands in for
        let embedGrad = p.grad("model.embed_tokens.weight")
        XCTAssertTrue((0..<C).allSatisfy { embedGrad[10 * C + $0] == 0 })
        XCTAssertTrue((0..<C).contains { embedGrad[5 * C + $0] != 0 })

        let eps: Float = 1e-2
        var worst = 0.0, checked = 0
        for i in 0..<rows.count {
            let keep = rows[i]
            rows[i] = keep + eps
            let lp = try mg.step(inputs: inputs, targets: targets, B: B, T: T,
                                 injected: InjectedEmbeddings(positions: positions, rows: rows), backward: false).loss
            let rp = mg.lastRouting
            rows[i] = keep - eps
            let lm = try mg.step(inputs: inputs, targets: targets, B: B, T: T,
                                 injected: InjectedEmbeddings(positions: positions, rows: rows), backward: false).loss
            let rm = mg.lastRouting
            rows[i] = keep
            if rp != rm { continue }
            let n = (lp - lm) / Double(2 * eps), a = Double(analytic[i])
            worst = max(worst, abs(a - n) / max(1, abs(a), abs(n)))
            checked += 1
        }
        XCTAssertLessThan(worst, 3e-3, "injected rows: worst relative error \(worst) over \(checked)")
        XCTAssertGreaterThan(checked, rows.count * 8 / 10)

        // rows equal to the placeholders' own embeddings give the token-only loss exactly
        let embed = p.value("model.embed_tokens.weight")
        let own = positions.flatMap { pos in (0..<C).map { embed[Int(inputs[pos]) * C + $0] } }
        let same = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: InjectedEmbeddings(positions: positions, rows: own),
                               backward: false)
        let plain = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertEqual(same.loss, plain.loss)
        XCTAssertNotEqual(r.loss, plain.loss)
    }

    /// A Session given the same rows (in one batch and in chunks of 3) computes the logits the
    /// training step does.
    func testInferenceReadsInjectedRowsLikeTraining() throws {
        let p = randomParameters(config, seed: 12)
        let C = config.hiddenSize
        let rows = randomRows(positions.count * C, seed: 5)
        let mg = ModelGrad(params: p)
        _ = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: InjectedEmbeddings(positions: positions, rows: rows),
                        backward: false)
        let expected: [[Float]] = mg.withLastProbabilities { probs, n, V in (0..<n).map { r in (0..<V).map { logf(probs[r * V + $0]) } } } ?? []
        let dec = try p.decoder()
        for nBatch in [T, 3] {
            var sp = SessionParams()
            sp.nBatch = nBatch
            let s = try Session(decoder: dec, params: sp)
            for b in 0..<B {
                let local = positions.enumerated().filter { $0.element / T == b }
                let inj = InjectedEmbeddings(positions: local.map { $0.element - b * T },
                                             rows: local.flatMap { rows[($0.offset * C)..<(($0.offset + 1) * C)] })
                s.reset()
                // the last chunk's rows: compare the final row's log-probabilities
                try s.evaluate(Array(inputs[(b * T)..<((b + 1) * T)]), allLogits: false, injected: inj)
                let lg = try s.logits().map(Double.init)
                let m = lg.max()!
                let lse = m + log(lg.reduce(0) { $0 + exp($1 - m) })
                for v in 0..<config.vocabSize {
                    XCTAssertEqual(lg[v] - lse, Double(expected[b * T + T - 1][v]), accuracy: 1e-3, "nBatch \(nBatch) row \(b) token \(v)")
                }
            }
        }
        // the token-only path is unchanged by an empty injection
        let s = try Session(decoder: dec, params: SessionParams())
        try s.evaluate(Array(inputs[0..<T]))
        let a = Array(try s.logits())
        s.reset()
        try s.evaluate(Array(inputs[0..<T]), injected: InjectedEmbeddings(positions: [], rows: []))
        XCTAssertEqual(a, Array(try s.logits()))
    }

    func testBadInjectionsAreErrors() throws {
        let mg = ModelGrad(params: randomParameters(config, seed: 1))
        let C = config.hiddenSize
        func step(_ pos: [Int], _ n: Int) throws {
            _ = try mg.step(inputs: inputs, targets: targets, B: B, T: T,
                            injected: InjectedEmbeddings(positions: pos, rows: [Float](repeating: 0.1, count: n)), backward: false)
        }
        for (pos, n, what) in [([2, 3], C, "values for"), ([3, 2], 2 * C, "increasing"), ([16], C, "outside"), ([-1], C, "outside")] {
            XCTAssertThrowsError(try step(pos, n)) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
                XCTAssertTrue((e as? HMSTError)?.message.contains(what) ?? false, "\(e)")
            }
        }
        XCTAssertThrowsError(try step([1], C - 1))
        var nan = [Float](repeating: 0, count: C)
        nan[0] = .nan
        XCTAssertThrowsError(try mg.step(inputs: inputs, targets: targets, B: B, T: T,
                                         injected: InjectedEmbeddings(positions: [1], rows: nan), backward: false))
        let s = try Session(decoder: try randomParameters(config, seed: 1).decoder(), params: SessionParams())
        XCTAssertThrowsError(try s.evaluate([1, 2, 3], injected: InjectedEmbeddings(positions: [3], rows: [Float](repeating: 0, count: C))))
    }

    // MARK: the projection and the SSM

    func makeSoft(K: Int = 2, seed: UInt64 = 7, input: EpisodicSoftTokens.Input = .pooledKey) throws -> EpisodicSoftTokens {
        let s = try EpisodicSoftTokens.initialised(C: 8, N: 4, K: K, input: input, scale: 0.5, seed: seed)
        // weights large enough that every term matters (δ mostly in 0.1 ... 1), as SSMTests does
        var rng = RNG(seed: seed ^ 0x99)
        let w = s.mixer.weights
        for i in 0..<w.count(.dtBias) { w.pointer(.dtBias)[i] = -1 + 1.5 * rng.nextFloat() }
        for i in 0..<w.count(.dtProj) { w.pointer(.dtProj)[i] *= 0.5 }
        for i in 0..<(s.K * s.C) { s.projectionBias[i] = 0.1 * rng.nextGaussian() }
        return s
    }

    /// soft = W · unit(pooled(h_T)) + b, L = Σ soft · r: every SSM weight and the projection
    /// against central differences of the Double reference (eps 1e-3, |a−n| / max(1,|a|,|n|) < 1e-3).
    func testSoftTokenGradientMatchesFiniteDifferences() throws {
        try checkGradient(input: .pooledKey)
    }

    /// soft_k = W_k · (r_k / rms(r_k)) + b_k with r_k = h_T · q_k: every SSM weight, the queries
    /// and the projection against central differences of the Double reference.
    func testStateReadoutGradientMatchesFiniteDifferences() throws {
        try checkGradient(input: .stateReadout)
    }

    func checkGradient(input: EpisodicSoftTokens.Input) throws {
        let s = try makeSoft(input: input)
        let C = s.C, N = s.N, K = s.K, Di = s.Di, Tf = 5, cols = s.projectionColumns
        let hidden = randomRows(Tf * C, seed: 11), r = randomRows(K * C, seed: 13)
        let (key, features, trace) = try s.encode(hidden: hidden, trace: true)
        XCTAssertEqual(features.count, input == .pooledKey ? N : K * Di)
        if input == .pooledKey { XCTAssertEqual(features, key) }
        let soft = try s.project(features: features)
        s.zeroGrads()
        try s.backward(dSoft: r, features: features, trace: try XCTUnwrap(trace))
        let analytic = Array(UnsafeBufferPointer(start: s.grads.pointer, count: s.count))
        XCTAssertFalse(analytic.contains { $0.isNaN })

        var ref = MambaReference(s.mixer.weights)
        var W = (0..<(K * C * cols)).map { Double(s.projection[$0]) }, b = (0..<(K * C)).map { Double(s.projectionBias[$0]) }
        var Q = s.queries.map { q in (0..<(K * N)).map { Double(q[$0]) } } ?? []
        let xd = hidden.map(Double.init), rd = r.map(Double.init)
        let W1 = s.mixerConfig.convKernel
        func forward() -> [Double] {
            let h = ref.forward(xd, T: Tf, conv0: [Double](repeating: 0, count: Di * (W1 - 1)), h0: [Double](repeating: 0, count: Di * N)).h
            switch input {
            case .pooledKey:
                var v = [Double](repeating: 0, count: N)
                for d in 0..<Di { for n in 0..<N { v[n] += h[d * N + n] / Double(Di) } }
                let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let k = v.map { $0 / norm }
                return (0..<(K * C)).map { o in b[o] + (0..<N).reduce(0.0) { $0 + W[o * N + $1] * k[$1] } }
            case .stateReadout:
                var out: [Double] = []
                for k in 0..<K {
                    let rk = (0..<Di).map { d in (0..<N).reduce(0.0) { $0 + h[d * N + $1] * Q[k * N + $1] } }
                    let rms = (rk.reduce(0) { $0 + $1 * $1 } / Double(Di) + Double(EpisodicSoftTokens.rmsEpsilon)).squareRoot()
                    for c in 0..<C {
                        let o = k * C + c
                        out.append(b[o] + (0..<Di).reduce(0.0) { $0 + W[o * Di + $1] * rk[$1] / rms })
                    }
                }
                return out
            }
        }
        func loss() -> Double { zip(forward(), rd).reduce(0) { $0 + $1.0 * $1.1 } }
        // the Float forward agrees with the reference
        for (a, e) in zip(soft, forward()) { XCTAssertEqual(Double(a), e, accuracy: 1e-4) }
        let eps = 1e-3
        /// the worst relative error of analytic[off ..< off + count] against central differences in
        /// the parameters `value` reads and `set` writes; and how many analytic entries are non-zero
        func worst(_ count: Int, at off: Int, _ value: (Int) -> Double, _ set: (Int, Double) -> Void) -> (error: Double, nonZero: Int) {
            var w = 0.0, nonZero = 0
            for i in 0..<count {
                let keep = value(i)
                set(i, keep + eps); let lp = loss()
                set(i, keep - eps); let lm = loss()
                set(i, keep)
                let n = (lp - lm) / (2 * eps), a = Double(analytic[off + i])
                w = max(w, abs(a - n) / max(1, abs(a), abs(n)))
                if a != 0 { nonZero += 1 }
            }
            return (w, nonZero)
        }
        var touched = 0
        for t in MambaTensor.allCases {
            let (w, nonZero) = worst(s.mixer.weights.count(t), at: s.offsets[t.rawValue], { ref[t][$0] }, { ref[t][$0] = $1 })
            touched += nonZero
            XCTAssertLessThan(w, 1e-3, "mixer.\(t.hfName): worst relative error \(w)")
        }
        XCTAssertGreaterThan(touched, 100, "the SSM must receive gradient through the state")
        let ow = s.offsets[s.projectionIndex], ob = s.offsets[s.projectionIndex + 1]
        let wW = worst(K * C * cols, at: ow, { W[$0] }, { W[$0] = $1 }).error
        let wb = worst(K * C, at: ob, { b[$0] }, { b[$0] = $1 }).error
        XCTAssertLessThan(wW, 1e-3, "soft_tokens.weight: worst relative error \(wW)")
        XCTAssertLessThan(wb, 1e-3, "soft_tokens.bias: worst relative error \(wb)")
        if input == .stateReadout {
            let (wQ, nonZero) = worst(K * N, at: s.offsets[MambaTensor.allCases.count], { Q[$0] }, { Q[$0] = $1 })
            XCTAssertLessThan(wQ, 1e-3, "soft_tokens.queries: worst relative error \(wQ)")
            XCTAssertEqual(nonZero, K * N, "every query weight must receive gradient")
        }
    }

    /// A state_readout set stores its embedding scale and copy flag, and its mixer reads the
    /// hidden states plus the scaled embeddings (pooled sets read the hidden states alone).
    func testStateReadoutDescriptionAndMixerInput() throws {
        let dir = NSTemporaryDirectory() + "hmst-soft-\(UUID().uuidString)"
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        try FileIO.makeDirectories(dir)
        let s = try EpisodicSoftTokens.initialised(C: 8, N: 4, K: 2, input: .stateReadout, scale: 0.25, seed: 3)
        XCTAssertEqual(s.embeddingScale, 4)
        s.copySources = true
        try s.save(checkpoint: dir)
        let back = try XCTUnwrap(try EpisodicSoftTokens.load(checkpoint: dir, dims: config.dims))
        XCTAssertEqual(back.input, .stateReadout)
        XCTAssertEqual(back.embeddingScale, 4)
        XCTAssertTrue(back.copySources)
        XCTAssertEqual(back.featureCount, 2 * back.Di)
        let hidden = randomRows(2 * 8, seed: 1)
        let x = try back.mixerInput(hidden: hidden, tokens: [3, 5]) { id, row in
            for c in 0..<8 { row[c] = Float(id) + Float(c) / 10 }
        }
        for t in 0..<2 { for c in 0..<8 { XCTAssertEqual(x[t * 8 + c], hidden[t * 8 + c] + 4 * (Float([3, 5][t]) + Float(c) / 10), accuracy: 1e-5) } }
        XCTAssertThrowsError(try back.mixerInput(hidden: hidden, tokens: [3]) { _, _ in })
        let pooled = try makeSoft()
        XCTAssertEqual(try pooled.mixerInput(hidden: hidden, tokens: [3, 5]) { _, _ in XCTFail("pooled sets read no embeddings") }, hidden)
        // a readout description without its scale is refused
        let jsonPath = dir + "/" + EpisodicSoftTokens.configName
        let text = try FileIO.readText(jsonPath)
        try FileIO.writeAtomically(jsonPath, text: text.replacingOccurrences(of: #""embedding_scale":4.0,"#, with: ""))
        XCTAssertThrowsError(try EpisodicSoftTokens.load(checkpoint: dir, dims: config.dims)) {
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("embedding_scale") ?? false, "\($0)")
        }
    }

    /// The key is EpisodicMemory's key for the same mixer weights (what a memory stores).
    func testKeyIsTheEpisodicMemorysKey() throws {
        let s = try makeSoft()
        let memory = try EpisodicMemory(inputSize: 8, config: { var c = EpisodicMemoryConfig(); c.stateSize = 4; return c }(),
                                        weights: s.mixerWeightsCopy())
        let hidden = randomRows(6 * 8, seed: 2)
        XCTAssertEqual(try s.encode(hidden: hidden).key, try memory.key(hidden: hidden))
        XCTAssertTrue(s.hasMixer(memory.weights))
        XCTAssertFalse(s.hasMixer(MambaMixerWeights.random(config: s.mixerConfig, seed: 99)))
    }

    func testStoredSoftTokensRoundTripAndTamperingIsRefused() throws {
        let dir = NSTemporaryDirectory() + "hmst-soft-\(UUID().uuidString)"
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        try FileIO.makeDirectories(dir)
        XCTAssertNil(try EpisodicSoftTokens.load(checkpoint: dir, dims: config.dims))
        let s = try makeSoft(K: 1)
        try s.save(checkpoint: dir)
        // the description as format 1 writes it, byte for byte (field order, compact, one newline)
        let hash = FileChecksum.hex(FileChecksum.of(UnsafeRawBufferPointer(start: s.values.pointer, count: s.count * 4)))
        XCTAssertEqual(try FileIO.readText(dir + "/" + EpisodicSoftTokens.configName),
                       #"{"format":"hmst-episodic-soft-tokens","version":1,"hidden_size":8,"state_size":4,"tokens":1,"input":"pooled_unit_key","hash":""#
                       + hash + #"","training":{}}"# + "\n")
        let back = try XCTUnwrap(try EpisodicSoftTokens.load(checkpoint: dir, dims: config.dims))
        XCTAssertEqual(back.K, 1)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: back.values.pointer, count: back.count)),
                       Array(UnsafeBufferPointer(start: s.values.pointer, count: s.count)))
        // another model's width
        var wide = config
        wide.hiddenSize = 16
        XCTAssertThrowsError(try EpisodicSoftTokens.load(checkpoint: dir, dims: wide.dims)) {
            XCTAssertEqual(($0 as? HMSTError)?.status, .invalidArgument)
        }
        // weights changed behind the description's back
        s.projection[0] += 1
        try SafeTensorsWriter.writeRaw(path: dir + "/" + EpisodicSoftTokens.weightsName, tensors: s.rawTensors)
        XCTAssertThrowsError(try EpisodicSoftTokens.load(checkpoint: dir, dims: config.dims)) {
            XCTAssertEqual(($0 as? HMSTError)?.status, .badFormat)
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("hash") ?? false)
        }
        XCTAssertThrowsError(try EpisodicSoftTokens(C: 8, N: 4, K: 0))
        XCTAssertThrowsError(try EpisodicSoftTokens(C: 8, N: 4, K: 9))
    }
}

// The copy head (Copy/): its gradient (the span-mass, context, agreement and overlap features included), with the model's,
// against central differences; the inference path's mixture equal to the training step's; a
// context without memory tokens left as the LM made it; injected rows with copy tokens (the episodic soft tokens' copy path) as
// sources, in training and inference; the stored head round-tripping and a tampered one refused.
import XCTest
@testable import HMSTCore

final class CopyHeadTests: XCTestCase {
    let config = try! MixtralConfig(vocabSize: 11, hiddenSize: 8, intermediateSize: 6, numHiddenLayers: 2, numAttentionHeads: 2,
                                  numKeyValueHeads: 1, maxPositionEmbeddings: 16, ropeTheta: 10000, numLocalExperts: 4,
                                  numExpertsPerTok: 2, routerAuxLossCoef: 0.05)
    // markers: 1 opens a memory span, 2 closes it. Row 0 holds two spans, memory tokens 7 9 and
    // 4, and asks for 7 9 0 (two copyable, one not); row 1 has no memory.
    let inputs: [Int32] = [5, 1, 7, 9, 2, 1, 4, 2, 7, 9,
                           3, 5, 8, 6, 4, 3, 10, 7, 9, 8]
    let targets: [Int32] = [-1, -1, -1, -1, -1, -1, -1, 7, 9, 0,
                            -1, -1, -1, -1, -1, 10, 7, 9, 8, -1]
    let B = 2, T = 10

    func randomParams(seed: UInt64) -> Parameters { randomParameters(config, seed: seed) }

    /// overlap: with the lexical-overlap term, its questions opened by token 5 and closed by 8
    /// (row 0's question is then every token from its first, so it shares 7 9 and 4 with the spans)
    /// missing: with the overlap's missing terms too
    func randomHead(seed: UInt64, agreement A: Int = 0, overlap: Bool = false, missing: Bool = false) throws -> CopyHead {
        let h = try CopyHead(C: 8, D: 4, A: A, overlapVocabulary: overlap ? 11 : 0, missingTerms: missing, openMarker: 1, closeMarker: 2,
                             questionMarker: 5, answerMarker: 8)
        var rng = RNG(seed: seed)
        for i in 0..<h.count { h.values.pointer[i] = rng.nextGaussian() * 0.6 }
        return h
    }

    /// Row 1 (no memory span) gets two injected rows at its positions 2 and 3 that carry copy
    /// tokens 10 and 7: the next two targets.
    var injectedCopy: InjectedEmbeddings {
        var rng = RNG(seed: 77)
        return InjectedEmbeddings(positions: [T + 2, T + 3], rows: (0..<16).map { _ in rng.nextGaussian() * 0.5 }, copyTokens: [10, 7])
    }

    func testGradientCheckWithTheModel() throws {
        try checkGradient(injected: nil)
    }

    /// The gate's agreement term (P·h_t)·Σ_j α_j (R·h_j): its gradient, and the model's through it,
    /// with both gate targets and the injected rows' copy tokens as sources.
    func testGradientCheckWithAgreement() throws {
        try checkGradient(injected: injectedCopy, gateTarget: 2, openTarget: 1, agreement: 3)
    }

    /// The gate's lexical overlap (a learned weight per token shared by a span and the question):
    /// its gradient and the model's, with the agreement term and both targets.
    func testGradientCheckWithOverlap() throws {
        try checkGradient(injected: injectedCopy, gateTarget: 2, openTarget: 1, agreement: 3, overlap: true)
    }

    /// The overlap's missing terms (a learned weight per question token a span lacks): their
    /// gradient and the model's, with both targets.
    func testGradientCheckWithMissingTerms() throws {
        try checkGradient(injected: injectedCopy, gateTarget: 2, openTarget: 1, overlap: true, missing: true)
    }

    /// ... and with the overlap's fixed scale s (o = s·(Σ λ + Σ ν)).
    func testGradientCheckWithOverlapScale() throws {
        try checkGradient(injected: injectedCopy, gateTarget: 2, openTarget: 1, overlap: true, missing: true, overlapScale: 3)
    }

    /// With ν = 0 the missing terms change nothing: the same loss as the overlap alone, bit for bit.
    /// With ν on a question token that one span lacks, the loss moves.
    func testMissingTermsAtZeroAreTheOverlap() throws {
        let p = randomParams(seed: 21)
        let plain = try randomHead(seed: 6, overlap: true)
        let missing = try CopyHead(C: 8, D: 4, overlapVocabulary: 11, missingTerms: true, openMarker: 1, closeMarker: 2, questionMarker: 5, answerMarker: 8)
        missing.values.pointer.update(from: plain.values.pointer, count: plain.count)
        XCTAssertEqual(missing.count, plain.count + 11)
        let mg = ModelGrad(params: p)
        mg.copyHead = plain
        let a = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        mg.copyHead = missing
        let b = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertEqual(a.loss, b.loss)
        missing.missingWeight[4] = -3   // token 4: in the second span, missing from the first
        let c = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertNotEqual(c.loss, a.loss)
        XCTAssertThrowsError(try CopyHead(C: 8, D: 4, missingTerms: true, openMarker: 1, closeMarker: 2), "missing terms without the overlap")
    }

    /// The gate target (−λ·log(1 − g) on target 0 of row 0, which no memory token holds) is an
    /// auxiliary loss: the answer's cross-entropy is unchanged, the total grows by what the gate
    /// costs, and the gradient with it matches central differences.
    func testGateTargetIsAnAuxiliaryLossWithAGradient() throws {
        let mg = ModelGrad(params: randomParams(seed: 21))
        mg.copyHead = try randomHead(seed: 6)
        let plain = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        mg.copyGateTargetWeight = 2
        let with = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertEqual(with.ceLoss, plain.ceLoss)
        XCTAssertGreaterThan(with.auxLoss, plain.auxLoss)
        XCTAssertEqual(with.loss - plain.loss, with.auxLoss - plain.auxLoss, accuracy: 1e-12)
        try checkGradient(injected: nil, gateTarget: 2)
    }

    /// The opening target (−μ·log g on row 0's targets 7 and 9, which the memory holds) is an
    /// auxiliary loss too, on other rows than the closing target's: with both on, the auxiliary
    /// loss is the sum of each alone, and the gradient matches central differences.
    func testOpeningTargetIsAnAuxiliaryLossWithAGradient() throws {
        let mg = ModelGrad(params: randomParams(seed: 21))
        mg.copyHead = try randomHead(seed: 6)
        let plain = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        mg.copyGateOpenWeight = 3
        let opening = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertEqual(opening.ceLoss, plain.ceLoss)
        XCTAssertGreaterThan(opening.auxLoss, plain.auxLoss)
        mg.copyGateTargetWeight = 2
        let both = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        mg.copyGateOpenWeight = 0
        let closing = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertEqual(both.auxLoss - plain.auxLoss, (opening.auxLoss - plain.auxLoss) + (closing.auxLoss - plain.auxLoss), accuracy: 1e-9)
        try checkGradient(injected: nil, gateTarget: 2, openTarget: 3)
    }

    /// Copy tokens of injected rows are sources: the loss of row 1 changes with them, and the
    /// gradient (head, model) still matches central differences.
    func testInjectedCopyTokensAreSources() throws {
        let mg = ModelGrad(params: randomParams(seed: 21))
        mg.copyHead = try randomHead(seed: 6)
        var plain = injectedCopy
        plain.copyTokens = []
        let with = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: injectedCopy, backward: false).ceLoss
        let without = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: plain, backward: false).ceLoss
        XCTAssertNotEqual(with, without, "the copy tokens must change the loss of row 1")
        var bad = injectedCopy
        bad.copyTokens = [10, 11]
        XCTAssertThrowsError(try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: bad, backward: false)) {
            XCTAssertTrue(($0 as? HMSTError)?.message.contains("outside the vocabulary") ?? false, "\($0)")
        }
        try checkGradient(injected: injectedCopy)
    }

    /// Soft targets (Stage 2's distilled rows) on a row the head covers whose hard target the
    /// memory holds (row 0, t = 8) and on a row without memory (row 1, t = 16): the loss of the
    /// second is KL(q ‖ p) of the LM's softmax; the distilled rows' own gate target (0 by default)
    /// is an auxiliary loss on the covered row; and the gradient with both soft rows, both gate
    /// targets on, matches central differences.
    func testSoftTargetsAreKLWithAGradient() throws {
        var rng = RNG(seed: 5)
        var q = (0..<22).map { _ in Float(rng.nextDouble()) + 0.05 }
        for r in 0..<2 { let z = q[(r * 11)..<(r * 11 + 11)].reduce(0, +); for v in 0..<11 { q[r * 11 + v] /= z } }
        let soft = ModelGrad.SoftTargets(rows: [8, 16], probs: q)
        let mg = ModelGrad(params: randomParams(seed: 21))
        let hard = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        let p16 = try XCTUnwrap(mg.withLastProbabilities { p, _, V in Array(UnsafeBufferPointer(start: p + 16 * V, count: V)) })
        mg.softTargets = ModelGrad.SoftTargets(rows: [16], probs: Array(q[11...]))
        let distilled = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        var kl = 0.0
        for v in 0..<11 {
            let qv = Double(q[11 + v])
            kl += qv * log(qv / Double(p16[v]))
        }
        XCTAssertEqual((distilled.ceLoss - hard.ceLoss) * Double(hard.tokens), kl + log(Double(p16[7])), accuracy: 1e-5)
        mg.softTargets = ModelGrad.SoftTargets(rows: [3], probs: Array(q[11...]))
        XCTAssertThrowsError(try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false), "a row without a target")
        // the soft rows' gate target: nothing on row 16 (no memory before it), −λ_s·log(1 − g) on row 8
        mg.copyHead = try randomHead(seed: 6)
        mg.softTargets = soft
        let open = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        mg.softGateTargetWeight = 3
        let shut = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertEqual(shut.ceLoss, open.ceLoss)
        XCTAssertGreaterThan(shut.auxLoss, open.auxLoss)
        mg.copyGateTargetWeight = 2   // the hard rows' target leaves the soft row's alone
        let both = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        mg.softGateTargetWeight = 0
        let hardOnly = try mg.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        XCTAssertEqual(both.auxLoss - hardOnly.auxLoss, shut.auxLoss - open.auxLoss, accuracy: 1e-9)
        try checkGradient(injected: nil, gateTarget: 2, soft: soft, softGateTarget: 3)
    }

    func checkGradient(injected: InjectedEmbeddings?, gateTarget: Float = 0, soft: ModelGrad.SoftTargets? = nil,
                       softGateTarget: Float = 0, openTarget: Float = 0, agreement: Int = 0, overlap: Bool = false,
                       missing: Bool = false, overlapScale: Float = 1) throws {
        let p = randomParams(seed: 21), head = try randomHead(seed: 6, agreement: agreement, overlap: overlap, missing: missing)
        head.overlapScale = overlapScale
        let mg = ModelGrad(params: p)
        mg.copyHead = head
        mg.copyGateTargetWeight = gateTarget
        mg.copyGateOpenWeight = openTarget
        mg.softGateTargetWeight = softGateTarget
        mg.softTargets = soft
        p.zeroGrads(); head.zeroGrads()
        let withHead = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: injected, backward: true)
        mg.copyHead = nil
        let without = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: injected, backward: false)
        XCTAssertNotEqual(withHead.ceLoss, without.ceLoss, "the head must change the loss of row 0")
        mg.copyHead = head
        let analyticModel = Array(UnsafeBufferPointer(start: p.grads.pointer, count: p.count))
        let analyticHead = Array(UnsafeBufferPointer(start: head.grads.pointer, count: head.count))
        XCTAssertTrue(analyticHead.contains { $0 != 0 })
        XCTAssertTrue(analyticHead[head.offsets[6]..<(head.offsets[6] + 8)].contains { $0 != 0 }, "the gate's context weight has no gradient")
        if agreement > 0 {
            XCTAssertTrue(analyticHead[head.offsets[7]..<head.offsets[8]].contains { $0 != 0 }, "the agreement query has no gradient")
            XCTAssertTrue(analyticHead[head.offsets[8]..<(head.offsets[8] + agreement * 8)].contains { $0 != 0 }, "the agreement key has no gradient")
        }
        if overlap {   // the tokens row 0's spans share with its question, and no other
            let l = head.offsets[head.overlapIndex]
            XCTAssertEqual((0..<11).filter { analyticHead[l + $0] != 0 }, [4, 7, 9])
        }
        if missing {   // row 0's question tokens (1 2 4 7 9: each span lacks some of them)
            let l = head.offsets[head.missingIndex]
            XCTAssertEqual((0..<11).filter { analyticHead[l + $0] != 0 }, [1, 2, 4, 7, 9])
        }
        let eps: Float = 3e-3
        func check(_ values: UnsafeMutablePointer<Float>, _ analytic: [Float], _ what: String) throws {
            var worst = 0.0, checked = 0, worstAt = ""
            for i in 0..<analytic.count {
                let keep = values[i]
                values[i] = keep + eps
                let lp = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: injected, backward: false).loss
                let rp = mg.lastRouting
                values[i] = keep - eps
                let lm = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: injected, backward: false).loss
                let rm = mg.lastRouting
                values[i] = keep
                if rp != rm { continue }
                let n = (lp - lm) / Double(2 * eps), a = Double(analytic[i])
                let err = abs(a - n) / max(1, abs(a), abs(n))
                if err > worst { worst = err; worstAt = "\(i): analytic \(a) numeric \(n)" }
                checked += 1
            }
            XCTAssertLessThan(worst, 3e-3, "\(what): worst relative error \(worst) at \(worstAt) over \(checked)")
            XCTAssertGreaterThan(checked, analytic.count * 8 / 10, what)
        }
        try check(head.values.pointer, analyticHead, "copy head")
        try check(p.values.pointer, analyticModel, "model")
    }

    /// A Session over a decoder with the head returns log p of the same mixture the training
    /// step evaluates; without memory tokens its logits are the LM's, bit for bit.
    func testInferenceMatchesTraining() throws {
        try checkInference(injected: nil)
    }

    /// The same with row 1's injected rows and their copy tokens (given to the Session in the
    /// second evaluate, at positions relative to the row).
    func testInferenceMatchesTrainingWithCopyTokens() throws {
        try checkInference(injected: injectedCopy)
    }

    /// The same with the gate's agreement term (its per-source keys kept, and dropped on rewind, by the Session).
    func testInferenceMatchesTrainingWithAgreement() throws {
        try checkInference(injected: injectedCopy, agreement: 3)
    }

    /// ... and with the lexical overlap (the question scanned across the two evaluate calls).
    func testInferenceMatchesTrainingWithOverlap() throws {
        try checkInference(injected: injectedCopy, agreement: 3, overlap: true)
    }

    /// ... and with its missing terms.
    func testInferenceMatchesTrainingWithMissingTerms() throws {
        try checkInference(injected: injectedCopy, overlap: true, missing: true)
    }

    func checkInference(injected: InjectedEmbeddings?, agreement: Int = 0, overlap: Bool = false, missing: Bool = false) throws {
        let p = randomParams(seed: 8), head = try randomHead(seed: 9, agreement: agreement, overlap: overlap, missing: missing)
        let mg = ModelGrad(params: p)
        mg.copyHead = head
        _ = try mg.step(inputs: inputs, targets: targets, B: B, T: T, injected: injected, backward: false)
        let expected: [[Float]] = mg.withLastProbabilities { probs, rows, V in
            (0..<rows).map { r in (0..<V).map { logf(probs[r * V + $0]) } }
        } ?? []
        XCTAssertEqual(expected.count, B * T)
        let plain = try p.decoder()
        let dec = try p.decoder()
        dec.copyHead = head
        for b in 0..<B {
            let row = Array(inputs[(b * T)..<((b + 1) * T)])
            let s = try Session(decoder: dec, params: SessionParams())
            let ref = try Session(decoder: plain, params: SessionParams())
            // in two calls, so the head's state crosses an evaluate (injected rows of this row
            // fall in the first)
            let rowInjected = injected.map { $0.slice((b * T)..<(b * T + 4), C: config.hiddenSize) }
            try s.evaluate(Array(row[0..<4]), injected: rowInjected)
            try s.evaluate(Array(row[4...]), allLogits: true)
            try ref.evaluate(Array(row[0..<4]), injected: rowInjected.map { var r = $0; r.copyTokens = []; return r })
            try ref.evaluate(Array(row[4...]), allLogits: true)
            for t in 4..<T {
                let got = try s.logits(row: t - 4).map { $0 }
                let lse = log(got.reduce(0) { $0 + exp(Double($1)) })
                if b == 1 && injected == nil {   // no memory: untouched
                    XCTAssertEqual(got, try ref.logits(row: t - 4).map { $0 })
                    continue
                }
                guard targets[b * T + t] >= 0 else { continue }
                XCTAssertEqual(lse, 0, accuracy: 1e-4, "row \(t) is a log-distribution")
                for v in 0..<config.vocabSize {
                    XCTAssertEqual(Double(got[v]), Double(expected[b * T + t][v]), accuracy: 2e-4, "row \(t) token \(v)")
                }
            }
            // rewinding into the memory span forgets the sources after it
            if b == 0 {
                s.rewind(to: 3)
                XCTAssertEqual(s.copy?.sources, [2])
                XCTAssertEqual(s.copy?.sourceAgreementKeys.count, agreement)
                if overlap {   // the question as positions 0...2 leave it: 5 opened it, then <mem> and 7
                    XCTAssertEqual(s.copy?.contextTokens, [5, 1, 7])
                    XCTAssertEqual(s.copy?.question.tokens, [1, 7])
                }
            } else if injected != nil {
                XCTAssertEqual(s.copy?.sources, [2, 3])
                XCTAssertEqual(s.copy?.sourceTokens, [10, 7])
                s.rewind(to: 3)
                XCTAssertEqual(s.copy?.sources, [2], "rewinding drops the injected source at 3")
            }
        }
    }

    func testStoredHeadRoundTripsAndTamperingIsRefused() throws {
        let dir = NSTemporaryDirectory() + "copyhead-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let head = try randomHead(seed: 3)
        try head.save(checkpoint: dir)
        // the description as format 4 writes it (a head without missing terms), byte for byte (field order, compact, one newline)
        let hash = FileChecksum.hex(FileChecksum.of(UnsafeRawBufferPointer(start: head.values.pointer, count: head.count * 4)))
        XCTAssertEqual(try FileIO.readText(dir + "/" + CopyHead.configName),
                       #"{"format":"hmst-copy-head","version":4,"hidden_size":8,"key_size":4,"agreement_size":0,"overlap_vocabulary":0,"open_marker_id":1,"open_marker":"<mem>","#
                       + #""close_marker_id":2,"close_marker":"</mem>","hash":""# + hash + #"","training":{}}"# + "\n")
        let dims = config.dims
        let back = try XCTUnwrap(try CopyHead.load(checkpoint: dir, dims: dims))
        XCTAssertEqual(Array(UnsafeBufferPointer(start: back.values.pointer, count: back.count)),
                       Array(UnsafeBufferPointer(start: head.values.pointer, count: head.count)))
        XCTAssertEqual(back.openMarker, 1); XCTAssertEqual(back.closeMarker, 2); XCTAssertEqual(back.D, 4)
        XCTAssertNil(try CopyHead.load(checkpoint: dir + "/none", dims: dims))
        // an older head (its hash over the tensors it stores) reads with the later weights at 0
        func older(_ version: Int, tensors: Int) throws -> CopyHead {
            let sub = dir + "/v\(version)"
            try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
            try SafeTensorsWriter.writeRaw(path: sub + "/" + CopyHead.weightsName, tensors: Array(head.rawTensors.prefix(tensors)))
            let stored = tensors < head.offsets.count ? head.offsets[tensors] : head.count
            let hash = FileChecksum.hex(FileChecksum.of(UnsafeRawBufferPointer(start: head.values.pointer, count: stored * 4)))
            try (#"{"format":"hmst-copy-head","version":"# + "\(version)" + #","hidden_size":8,"key_size":4,"open_marker_id":1,"close_marker_id":2,"hash":""#
                 + hash + #""}"#).write(toFile: sub + "/" + CopyHead.configName, atomically: true, encoding: .utf8)
            let h = try XCTUnwrap(try CopyHead.load(checkpoint: sub, dims: dims))
            XCTAssertEqual(Array(UnsafeBufferPointer(start: h.values.pointer, count: stored)),
                           Array(UnsafeBufferPointer(start: head.values.pointer, count: stored)), "version \(version)")
            XCTAssertTrue(UnsafeBufferPointer(start: h.values.pointer + stored, count: h.count - stored).allSatisfy { $0 == 0 }, "version \(version)")
            return h
        }
        XCTAssertEqual(try older(1, tensors: 5).spanWeight.pointee, 0)   // no gate.span_weight: v = 0
        XCTAssertTrue(try older(2, tensors: 6).contextWeight[0] == 0)    // no gate.context_weight: w_c = 0
        XCTAssertEqual(try older(3, tensors: 7).A, 0)                    // no agreement_size: no agreement term
        // a head with an agreement term round-trips with its rank
        let agreeing = try randomHead(seed: 4, agreement: 3)
        try FileManager.default.createDirectory(atPath: dir + "/agree", withIntermediateDirectories: true)
        try agreeing.save(checkpoint: dir + "/agree")
        let agreeBack = try XCTUnwrap(try CopyHead.load(checkpoint: dir + "/agree", dims: dims))
        XCTAssertEqual(agreeBack.A, 3)
        XCTAssertEqual(agreeBack.names.suffix(2), ["gate.agreement_query", "gate.agreement_key"])
        // and one with the lexical overlap, with its question markers; made for another vocabulary, refused
        let overlapping = try randomHead(seed: 5, agreement: 2, overlap: true)
        try FileManager.default.createDirectory(atPath: dir + "/overlap", withIntermediateDirectories: true)
        try overlapping.save(checkpoint: dir + "/overlap")
        let overlapBack = try XCTUnwrap(try CopyHead.load(checkpoint: dir + "/overlap", dims: dims))
        XCTAssertEqual([overlapBack.overlapVocabulary, Int(overlapBack.questionMarker), Int(overlapBack.answerMarker)], [11, 5, 8])
        XCTAssertEqual(overlapBack.names.last, "gate.overlap_weight")
        XCTAssertFalse(overlapBack.missingTerms)
        // with its missing terms
        let missing = try randomHead(seed: 7, overlap: true, missing: true)
        try FileManager.default.createDirectory(atPath: dir + "/missing", withIntermediateDirectories: true)
        try missing.save(checkpoint: dir + "/missing")
        XCTAssertTrue(try FileIO.readText(dir + "/missing/" + CopyHead.configName).contains(#""version":5,"#))
        XCTAssertTrue(try FileIO.readText(dir + "/overlap/" + CopyHead.configName).contains(#""version":4,"#))
        // a scaled overlap round-trips with its scale (format 5 too)
        let scaled = try randomHead(seed: 8, overlap: true)
        scaled.overlapScale = 10
        try FileManager.default.createDirectory(atPath: dir + "/scaled", withIntermediateDirectories: true)
        try scaled.save(checkpoint: dir + "/scaled")
        XCTAssertTrue(try FileIO.readText(dir + "/scaled/" + CopyHead.configName).contains(#""version":5,"#))
        XCTAssertEqual(try XCTUnwrap(try CopyHead.load(checkpoint: dir + "/scaled", dims: dims)).overlapScale, 10)
        let missingBack = try XCTUnwrap(try CopyHead.load(checkpoint: dir + "/missing", dims: dims))
        XCTAssertTrue(missingBack.missingTerms)
        XCTAssertEqual(missingBack.names.suffix(2), ["gate.overlap_weight", "gate.missing_weight"])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: missingBack.values.pointer, count: missingBack.count)),
                       Array(UnsafeBufferPointer(start: missing.values.pointer, count: missing.count)))
        var otherVocabulary = dims; otherVocabulary.V = 12
        XCTAssertThrowsError(try CopyHead.load(checkpoint: dir + "/overlap", dims: otherVocabulary))
        XCTAssertThrowsError(try CopyHead(C: 8, D: 4, overlapVocabulary: 11, openMarker: 1, closeMarker: 2, questionMarker: 5, answerMarker: 5),
                             "the question and answer markers must differ")
        XCTAssertEqual(Array(UnsafeBufferPointer(start: agreeBack.values.pointer, count: agreeBack.count)),
                       Array(UnsafeBufferPointer(start: agreeing.values.pointer, count: agreeing.count)))
        // another model's hidden size
        var wide = dims; wide.C = 16
        XCTAssertThrowsError(try CopyHead.load(checkpoint: dir, dims: wide)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
        }
        // changed weights no longer match the hash in the json
        head.values.pointer[0] += 1
        try SafeTensorsWriter.writeRaw(path: dir + "/" + CopyHead.weightsName, tensors: head.rawTensors)
        XCTAssertThrowsError(try CopyHead.load(checkpoint: dir, dims: dims)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .badFormat)
        }
        try "{\"format\": \"hmst-copy-head\"}".write(toFile: dir + "/" + CopyHead.configName, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CopyHead.load(checkpoint: dir, dims: dims))
        XCTAssertThrowsError(try CopyHead(C: 8, D: 4, openMarker: 1, closeMarker: 1))
        XCTAssertThrowsError(try CopyHead(C: 8, D: 4, A: -1, openMarker: 1, closeMarker: 2))
    }
}

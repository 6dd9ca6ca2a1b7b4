// A memory records the model its keys came from (ModelSignature): converted copies of the same
// weights still read it, another or a retrained model is refused with the way out (re-encode),
// re-encoding keeps ids, texts and owners, and memories saved before signatures load unchecked.
import XCTest
@testable import HMSTCore

final class ModelSignatureTests: XCTestCase {
    /// `model` with every weight moved by `step` (what a few optimizer steps do), through Parameters.
    static func nudged(_ model: LanguageModel, by step: Float) throws -> LanguageModel {
        let p = try Parameters(model: model)
        var rng = RNG(seed: 3)
        for i in 0..<p.count { p.values.pointer[i] += rng.next() & 1 == 0 ? -step : step }
        return LanguageModel(decoder: try p.decoder(), tokenizer: model.tokenizer, config: p.config.json(), report: LoadReport(), storage: [p])
    }

    func testConvertedCopiesMatchOtherAndRetrainedWeightsDoNot() throws {
        let bytes = try byteModel(hidden: 64)
        let model = LanguageModel(decoder: bytes.decoder, tokenizer: nil, config: bytes.config, report: LoadReport(), storage: [bytes])
        let dir = tempDirectory("signature")
        defer { removeTree(dir) }
        try model.save(directory: dir + "/f32")
        try model.save(directory: dir + "/rows4", dtype: .i8, int8Layout: .rows4)
        try model.save(directory: dir + "/f16", dtype: .f16)
        let base = ModelSignature(model: model)
        XCTAssertEqual(base.distance(to: base), 0)
        XCTAssertGreaterThan(base.counts.count, 8)
        var copies: [(String, LanguageModel)] = [("rows4", try LanguageModel.load(path: dir + "/rows4")),
                                                 ("f16 saved", try LanguageModel.load(path: dir + "/f16"))]
        for (name, wt) in [("bf16", WeightType.bf16), ("f16", .f16), ("int8", .int8)] {
            var o = ModelLoadOptions()
            o.weightType = wt
            copies.append((name, try LanguageModel.load(path: dir + "/f32", options: o)))
        }
        XCTAssertTrue(copies[0].1.weightsType.contains("int8"))
        for (name, copy) in copies {
            let d = try XCTUnwrap(base.distance(to: ModelSignature(model: copy)), name)
            print("ModelSignature distance of the \(name) copy: \(d)")
            XCTAssertGreaterThan(d, 0, name)
            XCTAssertLessThan(d, 0.02, name)   // ModelSignature's header: int8 1.1%
            XCTAssertNil(base.mismatch(with: ModelSignature(model: copy)), name)
        }
        // another initialisation, and the same weights after training-sized steps, are other models
        let other = try byteModel(seed: 6, hidden: 64)
        XCTAssertGreaterThan(try XCTUnwrap(base.distance(to: ModelSignature(model: other))), 0.5)
        let trained = try ModelSignatureTests.nudged(model, by: 3e-3)
        let dt = try XCTUnwrap(base.distance(to: ModelSignature(model: trained)))
        print("ModelSignature distance after moving every weight by 3e-3: \(dt)")
        XCTAssertGreaterThan(dt, ModelSignature.tolerance)
        XCTAssertTrue(base.mismatch(with: ModelSignature(model: trained))?.contains("differ from this model's by") == true)
        // one layer's k projection (no key chunk reads it) taken from another initialisation: the coverage sees it
        let mixed = try Parameters(model: model), donor = try Parameters(model: other)
        let kName = MixtralNames.layer(1, experts: model.dims.E).k
        mixed.value(kName).update(from: donor.value(kName), count: model.dims.kvDim * model.dims.C)
        let mixedModel = LanguageModel(decoder: try mixed.decoder(), tokenizer: nil, config: mixed.config.json(), report: LoadReport(), storage: [mixed])
        let dk = try XCTUnwrap(base.distance(to: ModelSignature(model: mixedModel)))
        print("ModelSignature distance with layer 1's k_proj from another seed: \(dk)")
        XCTAssertGreaterThan(dk, ModelSignature.tolerance)
        // another configuration or tokenizer: named, whatever the weights
        XCTAssertTrue(base.mismatch(with: ModelSignature(model: try byteModel(hidden: 32)))?.contains("another configuration (V=257,C=64") == true)
        let noTokenizer = LanguageModel(decoder: bytes.decoder, tokenizer: nil, config: bytes.config, report: LoadReport(), storage: [bytes])
        XCTAssertEqual(ModelSignature(model: noTokenizer), base)   // the same weights, config and (no) tokenizer
        XCTAssertEqual(ModelSignature(model: bytes).mismatch(with: base), "the model that built it has another tokenizer")
        func with(values: [Float]? = nil, coverage: [Float]? = nil) -> ModelSignature {
            ModelSignature(values: values ?? base.values, counts: base.counts, sizes: base.sizes, coverage: coverage ?? base.coverage,
                           groups: base.groups, coverageScale: base.coverageScale, tokenizer: base.tokenizer, config: base.config)
        }
        XCTAssertEqual(with(), base)
        // a record laid out otherwise (edited, another version) is named
        let laidOut = ModelSignature(values: base.values, counts: base.counts, sizes: base.sizes, coverage: [], groups: [],
                                     tokenizer: base.tokenizer, config: base.config)
        XCTAssertNil(laidOut.distance(to: base))
        XCTAssertTrue(laidOut.mismatch(with: base)?.contains("samples the weights differently") == true)
        // a non-finite sampled weight never matches
        var bad = base.values
        bad[0] = .nan
        XCTAssertEqual(with(values: bad).distance(to: base), .infinity)
        XCTAssertNotNil(base.mismatch(with: with(values: bad)))
        // a stored sample of denormals against normal weights: a huge ratio, named, not a trap
        let tiny = with(values: base.values.map { _ in Float.leastNonzeroMagnitude })
        XCTAssertTrue(tiny.mismatch(with: base)?.contains("more than 1000000%") == true)
        // one layer's coverage (a tensor no key chunk reads) moved far: caught
        var cov = base.coverage
        let k1 = base.groups.count / 2 + 2   // layer 1's third tensor: k
        for i in 0..<8 { cov[base.groups[..<k1].reduce(0, +) + i] *= -1 }
        XCTAssertGreaterThan(try XCTUnwrap(with(coverage: cov).distance(to: base)), ModelSignature.tolerance)
    }

    /// Trained weights have heavy tails: a large value in a block sets its int8 scale, and the
    /// other values of the block round to a coarse grid. The coverage samples 8 of a block's 32
    /// values; compared with their own norm, a block whose large value is not sampled made an
    /// int8 copy of the same weights look like another model.
    func testAnInt8CopyOfWeightsWithLargeValuesMatchesAndANudgeStillDoesNot() throws {
        let bytes = try byteModel(hidden: 64)
        let p = try Parameters(model: LanguageModel(decoder: bytes.decoder, tokenizer: nil, config: bytes.config, report: LoadReport(), storage: [bytes]))
        var outliers = 0
        for (i, name) in p.names.enumerated() where name.hasPrefix("model.layers.") && p.shapes[i].count == 2 {
            let n = p.shapes[i].reduce(1, *), blocks = n / 32
            guard blocks > 1, p.shapes[i][1] % 32 == 0 else { continue }
            // the block the coverage reads (a third of the way in); its value 1 is not sampled (every 4th is)
            let block = p.value(name) + min(blocks - 1, blocks / 3) * 32
            var largest: Float = 0
            for j in 0..<32 { largest = max(largest, abs(block[j])) }
            block[1] = 40 * largest
            outliers += 1
        }
        XCTAssertGreaterThan(outliers, 10)
        let model = LanguageModel(decoder: try p.decoder(), tokenizer: nil, config: p.config.json(), report: LoadReport(), storage: [p])
        let dir = tempDirectory("signature-outliers")
        defer { removeTree(dir) }
        try model.save(directory: dir + "/f32")
        var o = ModelLoadOptions()
        o.weightType = .int8
        let int8 = try LanguageModel.load(path: dir + "/f32", options: o)
        let base = ModelSignature(model: model), copy = ModelSignature(model: int8)
        let d = try XCTUnwrap(base.distance(to: copy))
        print("ModelSignature distance of an int8 copy of weights with a 40x value in each sampled block: \(d)")
        XCTAssertLessThan(d, 0.025)   // a block's rounding error is at most its largest value / 254: √32/254 of its norm
        XCTAssertNil(base.mismatch(with: copy))
        // compared as records written before the block scale were (the values' own norm), the copy looked like another model
        func unscaled(_ s: ModelSignature) -> ModelSignature {
            ModelSignature(values: s.values, counts: s.counts, sizes: s.sizes, coverage: s.coverage, groups: s.groups,
                           tokenizer: s.tokenizer, config: s.config)
        }
        let old = try XCTUnwrap(unscaled(base).distance(to: unscaled(copy)))
        print("... compared with the sampled values' own norm: \(old)")
        XCTAssertGreaterThan(old, ModelSignature.tolerance)
        // the scale read from either side: a record without it, checked against a model that has it
        XCTAssertEqual(try XCTUnwrap(unscaled(base).distance(to: copy)), d, accuracy: 1e-3)
        // training-sized steps are still another model
        let dt = try XCTUnwrap(base.distance(to: ModelSignature(model: try ModelSignatureTests.nudged(model, by: 3e-3))))
        print("ModelSignature distance of those weights moved by 3e-3: \(dt)")
        XCTAssertGreaterThan(dt, ModelSignature.tolerance)
    }

    func testManifestFormRoundTripsAndRejectsMalformed() throws {
        let s = ModelSignature(model: try byteModel())
        XCTAssertEqual(try ModelSignature(json: s.json), s)
        XCTAssertEqual(try ModelSignature(json: try JSONValue.parse(s.json.serialized)), s)
        let rest = #""coverage": "", "groups": [], "tokenizer": "none", "config": "x""#
        let cases: [(String, String)] = [
            (#"{"chunks": [1], "sizes": [1], "#, "needs"),
            (#"{"values": "0000803f", "chunks": [1], "#, "needs"),
            (#"{"values": "0000803f", "chunks": [2], "sizes": [2], "#, "hex digits"),
            (#"{"values": "0000803g", "chunks": [1], "sizes": [1], "#, "not a lower-case hex digit"),
            (#"{"values": "", "chunks": [-1], "sizes": [1], "#, "not a count"),
            (#"{"values": "", "chunks": ["x"], "sizes": [1], "#, "not a count"),
            (#"{"values": "", "chunks": [0], "sizes": [1, 2], "#, "but 2"),
        ]
        XCTAssertThrowsError(try ModelSignature(json: try JSONValue.parse(#"{"values": "", "chunks": [], "sizes": []}"#)))
        XCTAssertThrowsError(try ModelSignature(json: try JSONValue.parse(#"{"values": "", "chunks": [], "sizes": [], "coverage": "00", "groups": [1], "tokenizer": "none", "config": "x"}"#)))
        for (start, want) in cases {
            let text = start + rest + "}"
            XCTAssertThrowsError(try ModelSignature(json: try JSONValue.parse(text)), text) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .badFormat, text)
                XCTAssertTrue("\(e)".contains(want), "\(text): \(e)")
            }
        }
        let scaled = #"{"values": "", "chunks": [], "sizes": [], "coverage": "0000803f", "groups": [1], "tokenizer": "none", "config": "x", "coverage_scale": "#
        XCTAssertEqual(try ModelSignature(json: try JSONValue.parse(scaled + #""0000803f"}"#)).coverageScale, [1])
        XCTAssertEqual(try ModelSignature(json: try JSONValue.parse(scaled + "null}")).coverageScale, [])
        XCTAssertThrowsError(try ModelSignature(json: try JSONValue.parse(scaled + #""00"}"#))) { XCTAssertTrue("\($0)".contains("coverage_scale")) }
        XCTAssertThrowsError(try ModelSignature(json: try JSONValue.parse(scaled + "[1]}"))) { XCTAssertTrue("\($0)".contains("not a hex string")) }
        XCTAssertEqual(try ModelSignature(json: try JSONValue.parse(#"{"values": "0000803f", "chunks": [1], "sizes": [9], "#
                                                                    + rest + "}")).values, [1])
    }
}

final class MemoryModelTests: XCTestCase {
    func testEachTierRefusesAnotherModelUntilReencoded() throws {
        let model = try byteModel()
        let other = try ModelSignatureTests.nudged(model, by: 3e-3)   // "Stage 2 trained it"
        let dir = tempDirectory("memory-model")
        defer { removeTree(dir) }
        let store = try MemoryStore(directory: dir)
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        let epi = try store.episodic(creatingFor: model, config: c)
        let e1 = try epi.add(text: "the cat sat on the mat", model: model, owner: "ann")
        _ = try epi.add(text: "stock prices fell", model: model)
        let sem = try store.semantic(creatingFor: model, description: "Flat")
        _ = try sem.add(text: "bread and butter", model: model)
        let s2 = try sem.add(text: "the cat sat on the mat", model: model, owner: "bob")
        let gone = try sem.add(text: "removed before the re-encoding", model: model)
        _ = try sem.remove(ids: [gone])
        try store.save()
        for name in ["episodic/episodic.json", "semantic/memory.json"] {
            XCTAssertNotNil(try JSONValue.parse(file: dir + "/" + name)["model"], name)
        }

        let again = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertEqual(try again.search(text: "the cat sat on the mat", model: model, k: 2).count, 2)
        for tier in [MemoryTier.episodic, .semantic, .both] {
            XCTAssertThrowsError(try again.search(text: "the cat", model: other, tier: tier, k: 2), "\(tier)") { e in
                XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
                XCTAssertTrue("\(e)".contains("by another model") && "\(e)".contains("hmst memory reencode"), "\(e)")
            }
        }
        XCTAssertThrowsError(try again.episodic?.add(text: "more", model: other))
        XCTAssertThrowsError(try again.semantic?.add(text: "more", model: other))
        XCTAssertThrowsError(try Consolidator.run(episodic: XCTUnwrap(again.episodic), semantic: XCTUnwrap(again.semantic), model: other))

        // re-encoded for the other model: the same ids, texts and owners; the next id is not reused
        XCTAssertEqual(try again.reencodeEpisodic(for: other), 2)
        XCTAssertEqual(try again.reencodeSemantic(for: other), 2)
        try again.save()
        let after = try MemoryStore(directory: dir, mustExist: true)
        let hits = try after.search(text: "the cat sat on the mat", model: other, k: 3)
        XCTAssertEqual(hits.first(where: { $0.tier == .episodic })?.id, e1)
        XCTAssertEqual(hits.first(where: { $0.tier == .semantic })?.id, s2)
        XCTAssertEqual(try after.semantic?.metadata(id: s2).owner, "bob")
        XCTAssertEqual(try after.episodic?.entry(id: e1).owner, "ann")
        XCTAssertEqual(try after.semantic?.add(text: "new", model: other), gone + 1)
        XCTAssertThrowsError(try after.search(text: "the cat", model: model, tier: .semantic, k: 1))   // now the first model is the other one
    }

    func testAnEmptyMemoryTakesTheModelThatFillsIt() throws {
        let model = try byteModel()
        let other = try ModelSignatureTests.nudged(model, by: 3e-3)
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        let epi = try EpisodicMemory(model: model, config: c)   // made for model, but empty
        XCTAssertEqual(try epi.search(text: "x", model: other, k: 1), [])
        let id = try epi.add(text: "the cat sat on the mat", model: other)
        XCTAssertEqual(try epi.search(text: "the cat sat on the mat", model: other, k: 1).first?.id, id)
        XCTAssertThrowsError(try epi.search(text: "the cat", model: model, k: 1))
        _ = epi.remove(ids: [id])
        _ = try epi.add(text: "bread", model: model)   // emptied: the next text decides again
        XCTAssertThrowsError(try epi.search(text: "bread", model: other, k: 1))

        let sem = try SemanticMemory(dim: model.embeddingDim, description: "Flat")
        _ = try sem.add(text: "bread", model: model)
        XCTAssertThrowsError(try sem.add(text: "more", model: other))
        _ = try sem.remove(ids: sem.ids())
        _ = try sem.add(text: "more", model: other)
        XCTAssertEqual(try sem.search(text: "more", model: other, k: 1).count, 1)
        XCTAssertThrowsError(try sem.search(text: "more", model: model, k: 1))
        // vectors embedded before the add (checkModel passed for both while it was empty): the
        // add records or checks the model in its own critical section, so the second is refused
        let fresh = try SemanticMemory(dim: model.embeddingDim, description: "Flat")
        let va = try fresh.embedding(of: "a", model: model), vb = try fresh.embedding(of: "b", model: other)
        _ = try fresh.add(vectors: va, metadata: [MemoryMetadata(text: "a")], embeddedBy: model)
        XCTAssertThrowsError(try fresh.add(vectors: vb, metadata: [MemoryMetadata(text: "b")], embeddedBy: other)) { e in
            XCTAssertTrue("\(e)".contains("by another model"), "\(e)")
        }
        XCTAssertEqual(fresh.count, 1)
    }

    func testEntriesWithoutTextAreNamedByTheReencoding() throws {
        let model = try byteModel()
        let sem = try SemanticMemory(dim: model.embeddingDim, description: "Flat")
        _ = try sem.add(text: "bread", model: model)
        let bare = try sem.add(vectors: [Float](repeating: 0.5, count: model.embeddingDim), metadata: [MemoryMetadata(text: "")])
        XCTAssertThrowsError(try sem.reencoded(for: model)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
            XCTAssertTrue("\(e)".contains("1 semantic entry has no text") && "\(e)".contains("ids \(bare[0])"), "\(e)")
        }
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        let epi = try EpisodicMemory(model: model, config: c)
        _ = try epi.add(text: "bread", model: model)
        let k = try epi.add(key: [Float](repeating: 1, count: 16), text: "")
        XCTAssertTrue(epi.recordsModel && sem.recordsModel)
        XCTAssertThrowsError(try epi.reencoded(for: model)) { e in
            XCTAssertTrue("\(e)".contains("1 episodic entry has no text") && "\(e)".contains("ids \(k)"), "\(e)")
        }
        _ = epi.remove(ids: [k])
        XCTAssertEqual(try epi.reencoded(for: model).count, 1)
    }

    func testMemoriesSavedBeforeSignaturesLoadUnchecked() throws {
        let model = try byteModel()
        let other = try byteModel(seed: 6)
        let dir = tempDirectory("memory-model-old")
        defer { removeTree(dir) }
        let store = try MemoryStore(directory: dir)
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        _ = try store.episodic(creatingFor: model, config: c).add(text: "the cat sat on the mat", model: model)
        _ = try store.semantic(creatingFor: model, description: "Flat").add(text: "the cat sat on the mat", model: model)
        try store.save()
        // as written before session 37: no "model" in either manifest
        for name in ["episodic/episodic.json", "semantic/memory.json"] {
            guard case .object(let fields) = try JSONValue.parse(file: dir + "/" + name) else { return XCTFail(name) }
            try FileIO.writeAtomically(dir + "/" + name, text: JSONValue.object(fields.filter { $0.0 != "model" }).serialized)
        }
        let old = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertFalse(try XCTUnwrap(old.episodic).recordsModel || XCTUnwrap(old.semantic).recordsModel)
        XCTAssertEqual(try old.search(text: "the cat", model: other, k: 2).count, 2)
        _ = try old.episodic?.add(text: "added by the other", model: other)   // entries already there: nothing recorded
        try old.save()
        XCTAssertNil(try JSONValue.parse(file: dir + "/episodic/episodic.json")["model"])
        // a record of a build before the configuration was part of it (no "config"): unchecked
        guard case .object(var legacy) = try JSONValue.parse(file: dir + "/episodic/episodic.json") else { return XCTFail() }
        legacy.append(("model", .object([("values", .string("")), ("chunks", .array([]))])))
        try FileIO.writeAtomically(dir + "/episodic/episodic.json", text: JSONValue.object(legacy).serialized)
        XCTAssertFalse(try XCTUnwrap(MemoryStore(directory: dir, mustExist: true).episodic).recordsModel)
        // a malformed "model" is named
        guard case .object(var fields) = try JSONValue.parse(file: dir + "/semantic/memory.json") else { return XCTFail() }
        fields.append(("model", .object([("values", .string("zz")), ("chunks", .array([.number(1)])), ("sizes", .array([.number(1)])),
                                         ("coverage", .string("")), ("groups", .array([])), ("tokenizer", .string("none")), ("config", .string(""))])))
        try FileIO.writeAtomically(dir + "/semantic/memory.json", text: JSONValue.object(fields).serialized)
        XCTAssertThrowsError(try MemoryStore(directory: dir, mustExist: true)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .badFormat)
            XCTAssertTrue("\(e)".contains("memory.json") && "\(e)".contains("hex digits"), "\(e)")
        }
    }
}

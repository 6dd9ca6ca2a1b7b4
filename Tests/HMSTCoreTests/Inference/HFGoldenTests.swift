// hmst against Hugging Face transformers' MixtralForCausalLM on checkpoints transformers wrote
// (tools/golden/make_model_golden.py): logits within 1e-4 and identical expert routing.
import XCTest
@testable import HMSTCore

final class HFGoldenTests: XCTestCase {
    func check(_ name: String, weightType: WeightType = .asStored, tol: Float = 1e-4, routing checkRouting: Bool = true) throws {
        let dir = Golden.root + "/model/" + name
        var o = ModelLoadOptions()
        o.weightType = weightType
        let model = try LanguageModel.load(path: dir, options: o)
        let ref = try JSONValue.parse(bytes: try FileIO.readAll(dir + "/reference.json"))
        let tokens = (ref["tokens"]?.array ?? []).compactMap { $0.int }.map(Int32.init)
        let golden = try Golden.array(dir + "/logits.bin")
        XCTAssertEqual(golden.shape, [tokens.count, model.dims.V])
        var p = SessionParams()
        p.traceRoutes = true
        let s = try Session(decoder: model.decoder, params: p)
        try s.evaluate(tokens, allLogits: true)
        var worst: Float = 0
        let scale = max(1, golden.data.map { abs($0) }.max() ?? 1)
        for t in 0..<tokens.count {
            let row = try s.logits(row: t)
            for v in 0..<model.dims.V { worst = max(worst, abs(row[v] - golden.data[t * model.dims.V + v])) }
        }
        XCTAssertLessThan(worst, tol * (tol < 1e-3 ? 1 : scale), "\(name): max |logit diff| \(worst) (logit scale \(scale))")
        guard checkRouting else { return }
        // routing: the same two experts per token and layer, gates to 1e-5
        let routing = ref["routing"]?.array ?? []
        XCTAssertEqual(routing.count, model.dims.L)
        for (l, layer) in routing.enumerated() {
            let experts = layer["experts"]?.array ?? [], gates = layer["gates"]?.array ?? []
            for t in 0..<tokens.count {
                let base = (t * model.dims.L + l) * model.dims.K
                let want = experts[t].array?.compactMap { $0.int } ?? []
                let got = (0..<model.dims.K).map { Int(s.trace.experts[base + $0]) }
                XCTAssertEqual(got, want, "\(name) layer \(l) token \(t)")
                let wg = gates[t].array?.compactMap { $0.number } ?? []
                for k in 0..<model.dims.K { XCTAssertEqual(Double(s.trace.gates[base + k]), wg[k], accuracy: 1e-5) }
            }
        }
    }

    func testUntiedMatchesTransformers() throws { try check("tiny_untied") }
    func testTiedMatchesTransformers() throws { try check("tiny_tied") }
    /// Loaded as bf16, the model must compute exactly what the reference computes with the
    /// rounded weights (rounding alone can flip near-tied expert choices, so transformers'
    /// f32 logits are not the yardstick here).
    func testLoadedAsBF16MatchesReferenceOnRoundedWeights() throws {
        ComputeRates.bf16WeightComputeOverride = .f32   // prefill widens the weights (bf16 activations: DecoderTests)
        defer { ComputeRates.bf16WeightComputeOverride = nil }
        var o = ModelLoadOptions()
        o.weightType = .bf16
        let model = try LanguageModel.load(path: Golden.root + "/model/tiny_untied", options: o)
        XCTAssertTrue(model.weightsBF16)
        let tokens: [Int32] = [1, 5, 17, 90, 3]
        let ref = ReferenceDecoder(d: model.dims, w: model.decoder.weights).forward(tokens)
        let s = try Session(decoder: model.decoder, params: SessionParams())
        try s.evaluate(tokens, allLogits: true)
        for t in 0..<tokens.count {
            let row = try s.logits(row: t)
            for v in 0..<model.dims.V { XCTAssertEqual(Double(row[v]), ref[t][v], accuracy: 2e-3) }
        }
    }

    func testSaveLoadRoundTripIsBitExact() throws {
        let src = Golden.root + "/model/tiny_untied"
        let a = try LanguageModel.load(path: src)
        let dir = "/tmp/hmst-rt-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = system("rm -rf '\(dir)' '\(dir)-bf16'") }
        try a.save(directory: dir)
        let b = try LanguageModel.load(path: dir)
        let ma = try MappedFile(path: src + "/model.safetensors")
        let mb = try MappedFile(path: dir + "/model.safetensors")
        let ha = try SafeTensorsHeader(map: ma)
        let hb = try SafeTensorsHeader(map: mb)
        XCTAssertEqual(Set(ha.tensors.map(\.name)), Set(hb.tensors.map(\.name)))
        for t in ha.tensors {
            let u = hb.tensor(t.name)!
            XCTAssertEqual(t.shape, u.shape)
            XCTAssertEqual(memcmp(ma.base! + ha.dataOffset + t.begin, mb.base! + hb.dataOffset + u.begin, t.end - t.begin), 0, t.name)
        }
        XCTAssertEqual(try MixtralConfig(json: b.config), try MixtralConfig(json: a.config))
        // bf16 save: loads and stays close
        try a.save(directory: dir + "-bf16", dtype: .bf16)
        let c = try LanguageModel.load(path: dir + "-bf16")
        XCTAssertTrue(c.weightsBF16)
    }

    /// Saved as f16, the checkpoint loads in place as f16 (config torch_dtype float16) and computes
    /// what the reference computes with the rounded weights (the same file widened to f32 at
    /// load), by prefill (f16 widened for sgemm) and token by token (hk_gemv_f16).
    func testF16CheckpointLoadsInPlaceAndMatchesReference() throws {
        let a = try LanguageModel.load(path: Golden.root + "/model/tiny_untied")
        let dir = "/tmp/hmst-f16-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = system("rm -rf '\(dir)'") }
        try a.save(directory: dir, dtype: .f16)
        let config = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        XCTAssertTrue(config.contains("\"torch_dtype\": \"float16\""), config)
        let h = try LanguageModel.load(path: dir)
        XCTAssertEqual(h.weightsType, "f16")
        guard case .f16 = h.decoder.weights.layers[0].experts[0].w2.storage else { return XCTFail("w2 is not held as f16") }
        var o = ModelLoadOptions()
        o.weightType = .f32
        let widened = try LanguageModel.load(path: dir, options: o)
        XCTAssertEqual(widened.weightsType, "f32")
        let tokens: [Int32] = [1, 5, 17, 90, 3]
        let ref = ReferenceDecoder(d: h.dims, w: widened.decoder.weights).forward(tokens)
        let prompt = try Session(decoder: h.decoder, params: SessionParams())
        try prompt.evaluate(tokens, allLogits: true)
        let stepwise = try Session(decoder: h.decoder, params: SessionParams())
        for t in 0..<tokens.count {
            try stepwise.evaluate([tokens[t]])
            let rows = [try prompt.logits(row: t), try stepwise.logits()]
            for (way, row) in zip(["prompt", "decode"], rows) {
                for v in 0..<h.dims.V { XCTAssertEqual(Double(row[v]), ref[t][v], accuracy: 2e-3, "\(way) token \(t) logit \(v)") }
            }
        }
        // the f32 checkpoint held as f16 at load (--weights f16: the matrices rounded, norms and
        // routers f32, where the f16 save rounds every tensor) against the reference on its values
        var o16 = ModelLoadOptions()
        o16.weightType = .f16
        let rounded = try LanguageModel.load(path: Golden.root + "/model/tiny_untied", options: o16)
        XCTAssertEqual(rounded.weightsType, "f16")
        guard case .f32 = rounded.decoder.weights.layers[1].attnNorm.storage else { return XCTFail("a norm is not f32") }
        let ref16 = ReferenceDecoder(d: rounded.dims, w: rounded.decoder.weights).forward(tokens)
        let again = try Session(decoder: rounded.decoder, params: SessionParams())
        try again.evaluate(tokens, allLogits: true)
        for t in 0..<tokens.count {
            let row = try again.logits(row: t)
            for v in 0..<h.dims.V { XCTAssertEqual(Double(row[v]), ref16[t][v], accuracy: 2e-3, "held as f16: token \(t) logit \(v)") }
        }
    }

    /// A weight beyond half's range fails an f16 save with a message naming it, and leaves no file;
    /// rounding it to f16 at load fails alike.
    func testF16SaveRefusesOverflow() throws {
        let values: [Float] = [0.5, .nan, -70000, 1]   // a NaN before it does not hide it
        let buf = FloatBuffer(count: values.count)
        for (i, v) in values.enumerated() { buf.pointer[i] = v }
        let w = Weight(.f32(UnsafePointer(buf.pointer)), rows: 1, cols: 4, owner: buf)
        let path = "/tmp/hmst-f16-overflow-\(UInt32.random(in: 0...UInt32.max)).safetensors"
        XCTAssertThrowsError(try SafeTensorsWriter.write(path: path, tensors: [TensorToWrite(name: "w", shape: [1, 4], weight: w)], dtype: .f16)) {
            XCTAssertTrue("\($0)".contains("tensor w: element 2 is -70000.0, beyond f16's range"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        // and holding it as f16 at load (WeightType.f16) refuses it the same way
        XCTAssertThrowsError(try halfWeight(w, name: "w")) { XCTAssertTrue("\($0)".contains("tensor w: element 2 is -70000.0"), "\($0)") }
    }
}

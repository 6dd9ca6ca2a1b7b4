// GGUF import: a small GGUF writer (this file's own, after the format's description) turns a
// random hmst model into llama.cpp's layout (q/k rows permuted, ggml dims order, F32 / BF16 /
// Q8_0 blocks, byte-level BPE tokenizer in tokenizer.ggml.*); importing it must give the logits
// of the same model loaded from safetensors. Malformed files are rejected, and random
// corruption of the header only ever throws.
import CKernels
import XCTest
@testable import HMSTCore

/// Writes GGUF v3 files for the tests.
struct GGUFTestWriter {
    enum Value {
        case u32(UInt32), i32(Int32), f32(Float), string(String), strings([String]), i32s([Int32])
    }
    var kv: [(String, Value)] = []
    var tensors: [(name: String, dims: [Int], type: UInt32, data: [UInt8])] = []
    var alignment = 32

    static func le<T: FixedWidthInteger>(_ x: T) -> [UInt8] { withUnsafeBytes(of: x.littleEndian) { Array($0) } }
    static func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    func bytes() -> [UInt8] {
        var out = Array("GGUF".utf8) + GGUFTestWriter.le(UInt32(3)) + GGUFTestWriter.le(UInt64(tensors.count)) + GGUFTestWriter.le(UInt64(kv.count))
        for (k, v) in kv {
            out += GGUFTestWriter.str(k)
            switch v {
            case let .u32(x): out += GGUFTestWriter.le(UInt32(4)) + GGUFTestWriter.le(x)
            case let .i32(x): out += GGUFTestWriter.le(UInt32(5)) + GGUFTestWriter.le(x)
            case let .f32(x): out += GGUFTestWriter.le(UInt32(6)) + GGUFTestWriter.le(x.bitPattern)
            case let .string(s): out += GGUFTestWriter.le(UInt32(8)) + GGUFTestWriter.str(s)
            case let .strings(a):
                out += GGUFTestWriter.le(UInt32(9)) + GGUFTestWriter.le(UInt32(8)) + GGUFTestWriter.le(UInt64(a.count))
                for s in a { out += GGUFTestWriter.str(s) }
            case let .i32s(a):
                out += GGUFTestWriter.le(UInt32(9)) + GGUFTestWriter.le(UInt32(5)) + GGUFTestWriter.le(UInt64(a.count))
                for x in a { out += GGUFTestWriter.le(x) }
            }
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, o) in zip(tensors, offsets) {
            out += GGUFTestWriter.str(t.name) + GGUFTestWriter.le(UInt32(t.dims.count))
            for d in t.dims { out += GGUFTestWriter.le(UInt64(d)) }
            out += GGUFTestWriter.le(t.type) + GGUFTestWriter.le(UInt64(o))
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out += t.data
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    static func f32Bytes(_ x: [Float]) -> [UInt8] { x.withUnsafeBytes { Array($0) } }
    static func bf16Bytes(_ x: [Float]) -> [UInt8] {
        var b = [UInt16](repeating: 0, count: x.count)
        hk_f32_to_bf16(&b, x, x.count)
        return b.withUnsafeBytes { Array($0) }
    }
    static func f16Bytes(_ x: [Float]) -> [UInt8] {
        var b = [UInt16](repeating: 0, count: x.count)
        hk_f32_to_f16(&b, x, x.count)
        return b.withUnsafeBytes { Array($0) }
    }
    /// Q8_0 blocks: f16 scale (hmst's scale rounded to half) then 32 int8 values.
    static func q8Bytes(_ x: [Float]) -> [UInt8] {
        var q = [Int8](repeating: 0, count: x.count), s = [Float](repeating: 0, count: x.count / 32)
        hk_q8_quantize(&q, &s, x, x.count)
        var out: [UInt8] = []
        for b in 0..<(x.count / 32) {
            out += le(Float16(s[b]).bitPattern)
            out += q[(b * 32)..<(b * 32 + 32)].map { UInt8(bitPattern: $0) }
        }
        return out
    }
}

final class GGUFTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = "/tmp/hmst-gguf-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
    }
    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    enum Storage { case f32, bf16, f16, q8 }

    /// The model's tensors in llama.cpp's layout. Matrices in `storage`, norms and router F32.
    func gguf(_ m: LanguageModel, storage: Storage, mergedExperts: Bool = true, tokenizer: Tokenizer? = nil) throws -> GGUFTestWriter {
        let c = try m.modelConfig()
        let d = c.dims
        let w = m.decoder.weights
        var g = GGUFTestWriter()
        let dense = d.E == 1
        g.kv = [("general.architecture", .string("llama")), ("general.name", .string("hmst test")),
                ("llama.context_length", .u32(UInt32(d.maxPositions))), ("llama.embedding_length", .u32(UInt32(d.C))),
                ("llama.block_count", .u32(UInt32(d.L))), ("llama.feed_forward_length", .u32(UInt32(d.F))),
                ("llama.attention.head_count", .u32(UInt32(d.H))), ("llama.attention.head_count_kv", .u32(UInt32(d.KV))),
                ("llama.rope.dimension_count", .u32(UInt32(d.Dh))), ("llama.rope.freq_base", .f32(Float(d.ropeTheta))),
                ("llama.attention.layer_norm_rms_epsilon", .f32(d.eps)), ("general.file_type", .u32(0))]
        if !dense { g.kv += [("llama.expert_count", .u32(UInt32(d.E))), ("llama.expert_used_count", .u32(UInt32(d.K)))] }
        if let tokenizer {
            let pieces = tokenizer.model.pieces
            let addedIds = Set(tokenizer.addedTokens.map(\.id))
            g.kv += [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("default")),
                     ("tokenizer.ggml.tokens", .strings(pieces.enumerated().map { i, p in
                         addedIds.contains(Int32(i)) ? String(decoding: p, as: UTF8.self) : ByteLevel.encode(p) })),
                     ("tokenizer.ggml.token_type", .i32s(pieces.indices.map { addedIds.contains(Int32($0)) ? 3 : 1 })),
                     ("tokenizer.ggml.merges", .strings(tokenizer.model.mergeList.map { a, b in
                         ByteLevel.encode(pieces[Int(a)]) + " " + ByteLevel.encode(pieces[Int(b)]) })),
                     ("tokenizer.ggml.eos_token_id", .u32(0))]
        }
        func rows(_ x: Weight) -> [Float] {
            var out = [Float](repeating: 0, count: x.count)
            out.withUnsafeMutableBufferPointer { x.copyRows(0, x.rows, to: $0.baseAddress!) }
            return out
        }
        /// llama.cpp's permute: GGUF row 2i + j of a head = HF row j·Dh/2 + i
        func permute(_ x: [Float], rows n: Int, cols: Int) -> [Float] {
            var out = x
            let half = d.Dh / 2
            for r in 0..<n {
                let h = r / d.Dh, k = r % d.Dh, i = k / 2, j = k % 2
                let src = h * d.Dh + j * half + i
                out.replaceSubrange((r * cols)..<(r * cols + cols), with: x[(src * cols)..<(src * cols + cols)])
            }
            return out
        }
        func add(_ name: String, _ values: [Float], dims: [Int], matrix: Bool) {
            let (type, data): (UInt32, [UInt8])
            switch matrix ? storage : .f32 {
            case .f32: (type, data) = (0, GGUFTestWriter.f32Bytes(values))
            case .bf16: (type, data) = (30, GGUFTestWriter.bf16Bytes(values))
            case .f16: (type, data) = (1, GGUFTestWriter.f16Bytes(values))
            case .q8: (type, data) = (8, GGUFTestWriter.q8Bytes(values))
            }
            g.tensors.append((name, dims, type, data))
        }
        add("token_embd.weight", rows(w.embed), dims: [d.C, d.V], matrix: true)
        add("output_norm.weight", rows(w.finalNorm), dims: [d.C], matrix: false)
        if !d.tiedEmbeddings { add("output.weight", rows(w.lmHead), dims: [d.C, d.V], matrix: true) }
        for (l, lw) in w.layers.enumerated() {
            let b = "blk.\(l)."
            add(b + "attn_norm.weight", rows(lw.attnNorm), dims: [d.C], matrix: false)
            add(b + "attn_q.weight", permute(rows(lw.q), rows: d.qDim, cols: d.C), dims: [d.C, d.qDim], matrix: true)
            add(b + "attn_k.weight", permute(rows(lw.k), rows: d.kvDim, cols: d.C), dims: [d.C, d.kvDim], matrix: true)
            add(b + "attn_v.weight", rows(lw.v), dims: [d.C, d.kvDim], matrix: true)
            add(b + "attn_output.weight", rows(lw.o), dims: [d.qDim, d.C], matrix: true)
            add(b + "ffn_norm.weight", rows(lw.ffnNorm), dims: [d.C], matrix: false)
            if dense {
                add(b + "ffn_gate.weight", rows(lw.experts[0].w1), dims: [d.C, d.F], matrix: true)
                add(b + "ffn_down.weight", rows(lw.experts[0].w2), dims: [d.F, d.C], matrix: true)
                add(b + "ffn_up.weight", rows(lw.experts[0].w3), dims: [d.C, d.F], matrix: true)
                continue
            }
            add(b + "ffn_gate_inp.weight", rows(lw.router), dims: [d.C, d.E], matrix: false)
            if mergedExperts {
                add(b + "ffn_gate_exps.weight", lw.experts.flatMap { rows($0.w1) }, dims: [d.C, d.F, d.E], matrix: true)
                add(b + "ffn_down_exps.weight", lw.experts.flatMap { rows($0.w2) }, dims: [d.F, d.C, d.E], matrix: true)
                add(b + "ffn_up_exps.weight", lw.experts.flatMap { rows($0.w3) }, dims: [d.C, d.F, d.E], matrix: true)
            } else {
                for (e, ex) in lw.experts.enumerated() {
                    add(b + "ffn_gate.\(e).weight", rows(ex.w1), dims: [d.C, d.F], matrix: true)
                    add(b + "ffn_down.\(e).weight", rows(ex.w2), dims: [d.F, d.C], matrix: true)
                    add(b + "ffn_up.\(e).weight", rows(ex.w3), dims: [d.C, d.F], matrix: true)
                }
            }
        }
        return g
    }

    func logits(_ m: LanguageModel, _ tokens: [Int32]) throws -> [[Float]] {
        var p = SessionParams()
        p.nCtx = 64
        p.nThreads = 2
        let s = try Session(decoder: m.decoder, params: p)
        try s.evaluate(tokens, allLogits: true)
        var out = try (0..<tokens.count).map { Array(try s.logits(row: $0)) }
        s.reset()
        for t in tokens { try s.evaluate([t]) }
        out.append(Array(try s.logits()))
        return out
    }

    func write(_ g: GGUFTestWriter, _ name: String) throws -> String {
        let path = dir + "/" + name + ".gguf"
        try FileIO.writeAtomically(path, g.bytes())
        return path
    }

    static func config(V: Int, E: Int, K: Int, tied: Bool) throws -> MixtralConfig {
        try MixtralConfig(vocabSize: V, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4,
                        numKeyValueHeads: 2, maxPositionEmbeddings: 128, numLocalExperts: E, numExpertsPerTok: K,
                        tieWordEmbeddings: tied)
    }

    func testF32MixtralAndDenseEqualTheSafetensorsLoad() throws {
        let tok = try Tokenizer(jsonPath: Golden.root + "/tokenizer/hf_tokenizer.json")
        let toks: [Int32] = [0, 17, 300, 999, 5, 64, 2, 41]
        for (E, K, tied, merged) in [(4, 2, false, true), (4, 2, true, false), (1, 1, false, true)] {
            let c = try GGUFTests.config(V: tok.vocabSize, E: E, K: K, tied: tied)
            let m = try LanguageModel.random(config: c, seed: UInt64(E * 10 + K), tokenizer: tok)
            try m.save(directory: dir + "/st")
            let st = try LanguageModel.load(path: dir + "/st")
            let path = try write(try gguf(m, storage: .f32, mergedExperts: merged, tokenizer: tok), "f32-\(E)-\(tied)")
            let g = try LanguageModel.load(path: path)
            XCTAssertEqual(g.dims.E, E)
            XCTAssertEqual(g.dims.tiedEmbeddings, tied)
            XCTAssertEqual(g.weightsType, "f32")
            XCTAssertEqual(try logits(g, toks), try logits(st, toks), "E \(E) tied \(tied) merged \(merged)")
            // the tokenizer: the same ids as tokenizer.json's
            let text = "Hello world, the quick brown fox<|endoftext|> 123"
            XCTAssertEqual(g.tokenizer?.encode(bytes: Array(text.utf8)), tok.encode(text))
            XCTAssertEqual(try g.modelConfig().eosTokenId, 0)
        }
    }

    /// A token list that holds a control token's string twice (as some GGUF vocabularies do)
    /// still gives a tokenizer: the in-memory tokenizer.json is not re-parsed, so the JSON
    /// parser's refusal of repeated keys does not apply to it.
    func testRepeatedControlTokenStringLoads() throws {
        let tok = try Tokenizer(jsonPath: Golden.root + "/tokenizer/hf_tokenizer.json")
        let c = try GGUFTests.config(V: tok.vocabSize + 1, E: 4, K: 2, tied: false)
        let m = try LanguageModel.random(config: c, seed: 5, tokenizer: tok)
        var g = try gguf(m, storage: .f32, tokenizer: tok)
        g.kv = g.kv.map { kv in
            switch (kv.0, kv.1) {
            case ("tokenizer.ggml.tokens", .strings(let t)): return (kv.0, .strings(t + ["<|endoftext|>"]))
            case ("tokenizer.ggml.token_type", .i32s(let t)): return (kv.0, .i32s(t + [3]))
            default: return kv
            }
        }
        let loaded = try LanguageModel.load(path: try write(g, "repeated"))
        let t = try XCTUnwrap(loaded.tokenizer)
        XCTAssertEqual(t.vocabSize, tok.vocabSize + 1)
        XCTAssertEqual(try t.decode([Int32(tok.vocabSize)]), Array("<|endoftext|>".utf8))
        XCTAssertEqual(t.encode(bytes: Array("a b".utf8)), tok.encode("a b"))
    }

    /// A GGUF's tokenizer.chat_template is the model's chat template (bos/eos from its token
    /// ids), and its end-of-turn id ends chat turns.
    func testChatTemplateAndEndOfTurnFromMetadata() throws {
        let tok = try Tokenizer(jsonPath: Golden.root + "/tokenizer/hf_tokenizer.json")
        let c = try GGUFTests.config(V: tok.vocabSize, E: 4, K: 2, tied: false)
        let m = try LanguageModel.random(config: c, seed: 5, tokenizer: tok)
        var g = try gguf(m, storage: .f32, tokenizer: tok)
        g.kv += [("tokenizer.chat_template", .string("{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}")),
                 ("tokenizer.ggml.eot_token_id", .u32(7))]
        let loaded = try LanguageModel.load(path: try write(g, "chat"))
        let t = try loaded.chatTemplate()
        XCTAssertTrue(t.isJinja)
        XCTAssertTrue(t.origin.hasSuffix("(tokenizer.chat_template)"), t.origin)
        let eos = String(decoding: try XCTUnwrap(loaded.tokenizer).decode([0]), as: UTF8.self)
        XCTAssertEqual(t.eosToken, eos)
        let p = try t.render(messages: [.object([("role", .string("user")), ("content", .string("hi"))])], addGenerationPrompt: false)
        XCTAssertEqual(p.string, "[user] hi" + eos)
        XCTAssertTrue(loaded.endOfTurnTokens().isSuperset(of: [0, 7]))
        // a chat template that is not a string is left out with a warning (the model still loads)
        g.kv = g.kv.map { $0.0 == "tokenizer.chat_template" ? ($0.0, .u32(1)) : $0 }
        let bad = try LanguageModel.load(path: try write(g, "chat-bad"))
        XCTAssertTrue(bad.report.warnings.contains { $0.contains("tokenizer.chat_template is not a string; ignored") })
        XCTAssertEqual(try bad.chatTemplate().origin, "built-in")
    }

    /// llama.cpp's F16 files (its converter's default for f16 sources) load in place as f16, with
    /// the logits of hmst's own f16 checkpoint of the same values, prompt and token by token.
    func testF16EqualsTheSafetensorsF16Load() throws {
        let c = try GGUFTests.config(V: 320, E: 4, K: 2, tied: false)
        let m32 = try LanguageModel.random(config: c, seed: 9)
        try m32.save(directory: dir + "/f16", dtype: .f16)
        let st = try LanguageModel.load(path: dir + "/f16")
        XCTAssertEqual(st.weightsType, "f16")
        let g = try LanguageModel.load(path: try write(try gguf(st, storage: .f16), "f16"))
        XCTAssertEqual(g.weightsType, "f16")
        guard case .f16 = g.decoder.weights.layers[1].experts[3].w3.storage else { return XCTFail("ffn_up_exps[3] is not held as f16") }
        let toks: [Int32] = [3, 200, 7, 319, 1]
        XCTAssertEqual(try logits(g, toks), try logits(st, toks))
    }

    func testBF16EqualsAndQ8CloseToSafetensors() throws {
        let c = try GGUFTests.config(V: 320, E: 4, K: 2, tied: false)
        let m32 = try LanguageModel.random(config: c, seed: 7)
        try m32.save(directory: dir + "/bf16", dtype: .bf16)
        // the bf16 checkpoint's own values (norms too), so GGUF's F32 norms hold the same numbers
        var o = ModelLoadOptions()
        o.weightType = .bf16
        let st16 = try LanguageModel.load(path: dir + "/bf16", options: o)
        let toks: [Int32] = [3, 200, 7, 319, 1]
        let g16 = try LanguageModel.load(path: try write(try gguf(st16, storage: .bf16), "bf16"))
        XCTAssertEqual(g16.weightsType, "bf16")
        XCTAssertEqual(try logits(g16, toks), try logits(st16, toks))

        let g8 = try LanguageModel.load(path: try write(try gguf(m32, storage: .q8), "q8"))
        XCTAssertEqual(g8.weightsType, "int8")
        // a Q8_0 row comes back as f16(scale) · q exactly
        var x = [Float](repeating: 0, count: 64)
        g8.decoder.weights.layers[1].v.copyRow(5, to: &x)
        var row = [Float](repeating: 0, count: 64)
        m32.decoder.weights.layers[1].v.copyRow(5, to: &row)
        var q = [Int8](repeating: 0, count: 64), s = [Float](repeating: 0, count: 2)
        hk_q8_quantize(&q, &s, row, 64)
        for i in 0..<64 { XCTAssertEqual(x[i], Float(Float16(s[i / 32])) * Float(q[i])) }
        let a = try logits(g8, toks), b = try logits(m32, toks)
        for (ra, rb) in zip(a, b) {
            let scale = rb.map { abs($0) }.max()!
            for (u, v) in zip(ra, rb) { XCTAssertEqual(u, v, accuracy: 0.05 * scale) }
        }
        // imported Q8_0, saved as hmst int8 and loaded again: identical
        try g8.save(directory: dir + "/q8st", dtype: .i8)
        XCTAssertEqual(try logits(try LanguageModel.load(path: dir + "/q8st"), toks), a)
        // weights chosen at load: int8 from an F32 GGUF
        o.weightType = .int8
        o.checkTensors = true
        let gi = try LanguageModel.load(path: try write(try gguf(m32, storage: .f32), "f32q"), options: o)
        XCTAssertEqual(gi.weightsType, "int8")
    }

    func expectBad(_ bytes: [UInt8], _ fragment: String, status: Status = .badFormat, options: ModelLoadOptions = ModelLoadOptions(),
                   file: StaticString = #filePath, line: UInt = #line) throws {
        let path = dir + "/bad\(line).gguf"
        try FileIO.writeAtomically(path, bytes)
        XCTAssertThrowsError(try LanguageModel.load(path: path, options: options), file: file, line: line) { e in
            let h = e as? HMSTError
            XCTAssertEqual(h?.status, status, h?.message ?? "", file: file, line: line)
            XCTAssertTrue(h?.message.contains(fragment) == true, "\"\(h?.message ?? "\(e)")\" lacks \"\(fragment)\"", file: file, line: line)
        }
    }

    func testMalformedFilesAndFuzz() throws {
        let c = try GGUFTests.config(V: 320, E: 4, K: 2, tied: true)
        let m = try LanguageModel.random(config: c, seed: 3)
        let g = try gguf(m, storage: .f32)
        let good = g.bytes()
        XCTAssertNoThrow(try LanguageModel.load(path: try write(g, "good")))
        var b = good
        b[0] = UInt8(ascii: "X")
        try expectBad(b, "not a GGUF file")
        b = good
        b[4] = 9
        try expectBad(b, "GGUF version 9 is not supported", status: .unsupported)
        try expectBad(Array(good[0..<20]), "too short")
        try expectBad(Array(good.dropLast(64)), "runs past the data section")
        var h = g
        h.kv[0] = ("general.architecture", .string("gpt2"))
        try expectBad(h.bytes(), "architecture \"gpt2\" is not supported", status: .unsupported)
        h = g
        h.kv.removeAll { $0.0 == "llama.block_count" }
        try expectBad(h.bytes(), "metadata llama.block_count is missing")
        h = g
        h.tensors[3].dims = [64, 63]
        try expectBad(h.bytes(), "has dims [64, 63] but the metadata implies [64, 64]")
        h = g
        h.tensors[3].type = 2  // Q4_0
        h.tensors[3].data = [UInt8](repeating: 0, count: 64 * 64 / 32 * 18)
        try expectBad(h.bytes(), "is Q4_0; hmst imports F32, F16, BF16 and Q8_0", status: .unsupported)
        h = g
        h.tensors.append(("blk.0.extra.weight", [32], 0, [UInt8](repeating: 0, count: 128)))
        try expectBad(h.bytes(), "does not use: blk.0.extra.weight", status: .unsupported)
        h = g
        h.tensors[2].data = GGUFTestWriter.f32Bytes([Float.nan] + [Float](repeating: 0, count: 64 * 64 - 1))
        var check = ModelLoadOptions()
        check.checkTensors = true
        try expectBad(h.bytes(), "tensor \(h.tensors[2].name) has NaN at index 0", options: check)
        h = g
        h.kv.append(("tokenizer.ggml.model", .string("llama")))  // SentencePiece: loads, without a tokenizer
        let sp = try LanguageModel.load(path: try write(h, "sp"))
        XCTAssertNil(sp.tokenizer)
        XCTAssertTrue(sp.report.warnings.contains { $0.contains("tokenizer model \"llama\" is not supported") }, "\(sp.report.warnings)")
        h = g
        h.tensors.swapAt(1, 2)  // offsets follow the list order: still valid
        XCTAssertNoThrow(try LanguageModel.load(path: try write(h, "swapped")))

        // random corruption of the header and metadata: a clean error or a load, never a crash
        let headerEnd = try GGUFFile(file: good.withUnsafeBytes { $0 }, source: "x").dataOffset
        var rng = RNG(seed: 99)
        var rejected = 0
        for i in 0..<150 {
            var f = good
            if i % 10 == 9 {
                f = Array(f[0..<Int(rng.next() % UInt64(headerEnd))])
            } else {
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    f[Int(rng.next() % UInt64(headerEnd))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            let path = dir + "/fuzz.gguf"
            try FileIO.writeAtomically(path, f)
            do { _ = try LanguageModel.load(path: path) } catch is HMSTError { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 100)
    }
}

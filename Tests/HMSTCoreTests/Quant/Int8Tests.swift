// int8 (Q8_0) weights: the quantizer on hand-computed blocks, every GEMV variant against an
// exact integer reference, a random model's logits against f32, the save/load round trip and
// each malformed int8 checkpoint rejected with its own message.
import CKernels
import XCTest
@testable import HMSTCore

final class Int8Tests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = "/tmp/hmst-int8-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
    }
    override func tearDown() {
        hk_q8_set_max_level(-1)
        _ = system("rm -rf '\(dir)'")
    }

    static func smallConfig(tied: Bool = false) throws -> MixtralConfig {
        try MixtralConfig(vocabSize: 320, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4,
                        numKeyValueHeads: 2, maxPositionEmbeddings: 128, numLocalExperts: 4, numExpertsPerTok: 2,
                        tieWordEmbeddings: tied)
    }

    func testQuantizerOnHandValues() {
        // block: x[i] = i - 16 for i < 32: max |x| = 16, scale 16/127, q = round(x · 127/16)
        var x = (0..<32).map { Float($0 - 16) }
        x += [Float](repeating: 0, count: 32)  // an all-zero block: scale 0, values 0
        var q = [Int8](repeating: 99, count: 64), s = [Float](repeating: -1, count: 2)
        hk_q8_quantize(&q, &s, x, 64)
        XCTAssertEqual(s[0], 16 / 127, accuracy: 1e-7)
        XCTAssertEqual(s[1], 0)
        XCTAssertEqual(q[0], -127)                 // -16
        XCTAssertEqual(q[17], 8)                   // 1 · 7.9375 -> 8
        XCTAssertEqual(q[18], 16)                  // 2 · 7.9375 = 15.875 -> 16
        XCTAssertEqual(q[31], 119)                 // 15 · 7.9375 = 119.06 -> 119
        XCTAssertEqual(q[16], 0)
        XCTAssertTrue(q[32...].allSatisfy { $0 == 0 })
        // ties round to even: with max |x| = 127 the scale is 1
        var t = [Float](repeating: 0, count: 32)
        t[0] = 127; t[1] = 2.5; t[2] = 3.5; t[3] = -2.5; t[4] = 0.5; t[5] = -126.5
        var tq = [Int8](repeating: 9, count: 32), ts: [Float] = [0]
        hk_q8_quantize(&tq, &ts, t, 32)
        XCTAssertEqual(ts[0], 1)
        XCTAssertEqual(Array(tq[0..<6]), [127, 2, 4, -2, 0, -126])
        var back = [Float](repeating: 0, count: 64)
        hk_q8_dequantize(&back, q, s, 64)
        XCTAssertEqual(back[17], 8 * 16 / 127, accuracy: 1e-6)
        for i in 0..<32 { XCTAssertEqual(back[i], x[i], accuracy: 16 / 127 / 2 + 1e-6) }
        // a NaN keeps its block's scale NaN (a finite 0 would hide it from --check-tensors);
        // an infinity makes it +inf; the next block is untouched
        var n = [Float](repeating: 1, count: 96)
        n[5] = .nan; n[40] = -.infinity
        var nq = [Int8](repeating: 7, count: 96), ns = [Float](repeating: 0, count: 3)
        hk_q8_quantize(&nq, &ns, n, 96)
        XCTAssertTrue(ns[0].isNaN)
        XCTAssertTrue(nq[0..<32].allSatisfy { $0 == 0 })
        XCTAssertEqual(ns[1], .infinity)
        XCTAssertEqual(ns[2], 1 / 127)
        var nb = [Float](repeating: 0, count: 96)
        hk_q8_dequantize(&nb, nq, ns, 96)
        XCTAssertTrue(nb[0..<32].allSatisfy(\.isNaN))
        XCTAssertFalse(nb[64...].contains { !$0.isFinite })
    }

    /// y[r] of an int8 GEMV as exact int32 block sums of the row-major values q (scales s) with x
    /// quantized the same way, scaled in double.
    func integerReference(_ q: [Int8], _ s: [Float], x: [Float], rows: Int, cols: Int) -> [Double] {
        let nb = cols / 32
        var xq = [Int8](repeating: 0, count: cols), xs = [Float](repeating: 0, count: nb)
        hk_q8_quantize(&xq, &xs, x, cols)
        var want = [Double](repeating: 0, count: rows)
        for r in 0..<rows {
            for b in 0..<nb {
                var dot = 0
                for i in 0..<32 { dot += Int(q[r * cols + b * 32 + i]) * Int(xq[b * 32 + i]) }
                want[r] += Double(s[r * nb + b]) * Double(xs[b]) * Double(dot)
            }
        }
        return want
    }

    func testGEMVVariantsAgreeWithIntegerReference() {
        var rng = RNG(seed: 11)
        let levels = [0, 1, 2].filter { $0 <= hk_q8_level() }
        XCTAssertGreaterThanOrEqual(levels.count, 1)
        for rows in [1, 3, 7] {
            // odd block counts, more than 16 blocks (the AVX-512 scale group), a partial group
            for cols in [32, 64, 96, 160, 512, 544, 1056] {
                let w = (0..<(rows * cols)).map { _ in rng.nextGaussian() * (rng.next() % 7 == 0 ? 5 : 1) }
                let x = (0..<cols).map { _ in rng.nextGaussian() }
                var wq = [Int8](repeating: 0, count: w.count), ws = [Float](repeating: 0, count: w.count / 32)
                hk_q8_quantize(&wq, &ws, w, w.count)
                let act = UnsafeMutableRawPointer.allocate(byteCount: hk_q8_act_bytes(cols), alignment: 64)
                defer { act.deallocate() }
                hk_q8_quantize_act(act, x, cols)
                let want = integerReference(wq, ws, x: x, rows: rows, cols: cols)
                for level in levels {
                    hk_q8_set_max_level(Int32(level))
                    var y = [Float](repeating: .nan, count: rows + 1)
                    hk_gemv_q8(&y, wq, ws, act, cols, 0, rows)
                    for r in 0..<rows {
                        XCTAssertEqual(Double(y[r]), want[r], accuracy: 1e-5 * (1 + abs(want[r])), "level \(level) rows \(rows) cols \(cols)")
                    }
                    XCTAssertTrue(y[rows].isNaN, "wrote past row_end")
                    // a row range in the middle
                    if rows > 2 {
                        var y2 = [Float](repeating: .nan, count: rows)
                        hk_gemv_q8(&y2, wq, ws, act, cols, 1, 2)
                        XCTAssertTrue(y2[0].isNaN && y2[2].isNaN)
                        XCTAssertEqual(Double(y2[1]), want[1], accuracy: 1e-5 * (1 + abs(want[1])))
                    }
                }
            }
        }
    }

    func testRowQuadLayout() {
        XCTAssertEqual(hk_q8_packable(3, 64), 0)
        XCTAssertEqual(hk_q8_packable(4, 32), 0)
        XCTAssertEqual(hk_q8_packable(4, 64), 1)
        var rng = RNG(seed: 12)
        let levels = [0, 1, 2].filter { $0 <= hk_q8_level() }
        // whole quads and 1-3 row-major rows after them; one run of 16 blocks, a partial run (18
        // and 34 blocks), fewer than 16 (2 blocks)
        for rows in [4, 5, 7, 8, 13] {
            for cols in [64, 512, 576, 1088] {
                let nb = cols / 32
                let w = (0..<(rows * cols)).map { _ in rng.nextGaussian() }
                let x = (0..<cols).map { _ in rng.nextGaussian() }
                var q = [Int8](repeating: 0, count: w.count), s = [Float](repeating: 0, count: w.count / 32)
                hk_q8_quantize(&q, &s, w, w.count)
                var pq = [Int8](repeating: 0, count: q.count), ps = [Float](repeating: 0, count: s.count)
                hk_q8_pack_rows4(&pq, &ps, q, s, rows, cols, 0, rows)
                // the layout itself: row 1's first 64 values follow row 0's; row 1's first scale
                // follows row 0's run of min(16, nb) scales; row 4 of 5 stays where it was
                XCTAssertEqual(Array(pq[64..<128]), Array(q[cols..<(cols + 64)]), "rows \(rows) cols \(cols)")
                XCTAssertEqual(ps[min(16, nb)], s[nb])
                if rows % 4 != 0 {
                    let r = rows - 1
                    XCTAssertEqual(Array(pq[(r * cols)..<((r + 1) * cols)]), Array(q[(r * cols)..<((r + 1) * cols)]))
                }
                // (with 64 columns a quad's four chunks are its four rows: nothing moves)
                XCTAssertEqual(pq == q, cols == 64, "rows \(rows) cols \(cols)")
                var uq = [Int8](repeating: 0, count: q.count), us = [Float](repeating: 0, count: s.count)
                hk_q8_unpack_rows4(&uq, &us, pq, ps, rows, cols)
                XCTAssertTrue(uq == q && us == s, "rows \(rows) cols \(cols): unpacking does not restore the matrix")
                // dequantized rows equal the row-major dequantization exactly
                for (r0, r1) in [(0, rows), (1, rows - 1), (rows - 1, rows)] where r1 > r0 {
                    var a = [Float](repeating: 0, count: (r1 - r0) * cols), b = a
                    hk_q8_dequantize_rows4(&a, pq, ps, rows, cols, r0, r1)
                    q.withUnsafeBufferPointer { qb in
                        s.withUnsafeBufferPointer { sb in
                            hk_q8_dequantize(&b, qb.baseAddress! + r0 * cols, sb.baseAddress! + r0 * nb, (r1 - r0) * cols)
                        }
                    }
                    XCTAssertTrue(a == b, "rows \(r0)..<\(r1) of \(rows), cols \(cols): dequantized rows differ")
                }
                // the GEMV against the exact integer reference, at every level and on ranges that
                // start inside a quad
                let act = UnsafeMutableRawPointer.allocate(byteCount: hk_q8_act_bytes(cols), alignment: 64)
                defer { act.deallocate() }
                hk_q8_quantize_act(act, x, cols)
                let want = integerReference(q, s, x: x, rows: rows, cols: cols)
                // values 64-byte aligned (as Q8Tensor's: the four-row AVX-512 path) and not (row by row)
                let aligned = UnsafeMutableRawPointer.allocate(byteCount: pq.count + 64, alignment: 64)
                defer { aligned.deallocate() }
                let pa = aligned.bindMemory(to: Int8.self, capacity: pq.count + 64)
                pa.update(from: pq, count: pq.count)
                for level in levels {
                    hk_q8_set_max_level(Int32(level))
                    for (r0, r1, offset) in [(0, rows, 0), (1, rows, 0), (2, rows - 1, 0), (4, rows, 0), (0, rows, 1)] where r1 > r0 {
                        (pa + offset).update(from: pq, count: pq.count)
                        var y = [Float](repeating: .nan, count: rows)
                        hk_gemv_q8_rows4(&y, pa + offset, ps, act, rows, cols, r0, r1)
                        for r in 0..<rows {
                            if r < r0 || r >= r1 {
                                XCTAssertTrue(y[r].isNaN, "level \(level): row \(r) outside \(r0)..<\(r1) written")
                            } else {
                                XCTAssertEqual(Double(y[r]), want[r], accuracy: 1e-5 * (1 + abs(want[r])),
                                               "level \(level) rows \(rows) cols \(cols) row \(r) of \(r0)..<\(r1), offset \(offset)")
                            }
                        }
                    }
                }
                hk_q8_set_max_level(-1)
            }
        }
    }

    func testNonFiniteScans() {
        var x = [Float](repeating: 1, count: 3000)
        XCTAssertEqual(hk_find_nonfinite_f32(x, x.count), -1)
        x[2049] = .infinity
        x[2500] = .nan
        XCTAssertEqual(hk_find_nonfinite_f32(x, x.count), 2049)
        XCTAssertEqual(hk_find_nonfinite_f32(x, 2049), -1)
        var h = [UInt16](repeating: 0x3C00, count: 100)  // f16 1.0
        XCTAssertEqual(hk_find_nonfinite_16(h, 100, 0), -1)
        h[77] = 0x7E00  // f16 NaN
        XCTAssertEqual(hk_find_nonfinite_16(h, 100, 0), 77)
        var b = [UInt16](repeating: 0x3F80, count: 100)  // bf16 1.0
        b[5] = 0xFF80  // bf16 -Inf
        XCTAssertEqual(hk_find_nonfinite_16(b, 100, 1), 5)
        XCTAssertEqual(hk_find_i8_value([1, -127, 3, -128], 4, -128), 3)
        XCTAssertEqual(hk_find_i8_value([1, -127, 3], 3, -128), -1)
    }

    func maxDiff(_ a: [[Float]], _ b: [[Float]]) -> Float {
        XCTAssertEqual(a.count, b.count)
        var m: Float = 0
        for (x, y) in zip(a, b) { for (u, v) in zip(x, y) { m = max(m, abs(u - v)) } }
        print("max |Δ| \(m)")
        return m
    }

    /// Logits of every position (prefill, T > 1) and of token-by-token decode (T == 1).
    func logits(_ weights: DecoderWeights, dims: DecoderDims, tokens: [Int32]) throws -> (prefill: [[Float]], decode: [[Float]]) {
        let dec = Decoder(dims: dims, weights: weights)
        var p = SessionParams()
        p.nCtx = 64
        p.nThreads = 2
        let s = try Session(decoder: dec, params: p)
        try s.evaluate(tokens, allLogits: true)
        let pre = try (0..<tokens.count).map { Array(try s.logits(row: $0)) }
        s.reset()
        var dcd: [[Float]] = []
        for t in tokens {
            try s.evaluate([t])
            dcd.append(Array(try s.logits()))
        }
        return (pre, dcd)
    }

    func testInt8LogitsCloseToF32() throws {
        let c = try Int8Tests.smallConfig()
        let (w32, _) = try RandomWeights.make(dims: c.dims, seed: 4, std: 0.1)
        let w8 = try w32.converted(to: .int8)
        XCTAssertEqual(w8.typeDescription, "int8")
        XCTAssertEqual(w8.layers[0].router.typeName, "f32")
        // the decoder reorders the int8 matrices its GEMVs read whose width is a multiple of 64
        // (q: 64 columns) and leaves the others row-major (w2: 96; the embedding, read by row)
        // on CPUs with AVX-512 VNNI (the four-row kernel; elsewhere everything stays row-major)
        let packed = Decoder(dims: c.dims, weights: w8).weights
        if hk_q8_level() >= 2 {
            if case .q8Rows4 = packed.layers[0].q.storage {} else { XCTFail("q is not in the row-quad layout") }
            if case .q8Rows4 = packed.lmHead.storage {} else { XCTFail("the untied LM head is not in the row-quad layout") }
        } else {
            if case .q8 = packed.layers[0].q.storage {} else { XCTFail("q was reordered without the VNNI kernel") }
        }
        if case .q8 = packed.layers[0].experts[0].w2.storage {} else { XCTFail("w2 (96 columns) was reordered") }
        if case .q8 = packed.embed.storage {} else { XCTFail("the embedding was reordered") }
        let tokens: [Int32] = [5, 17, 300, 2, 99, 42, 7, 256, 1, 130, 64, 8]
        let ref = try logits(w32, dims: c.dims, tokens: tokens)
        let got = try logits(w8, dims: c.dims, tokens: tokens)
        // stated tolerance: every logit within 5% of that row's largest |f32 logit|, and the
        // mean error under 1% of it (measured: worst 3.2%, mean 0.5%; prefill, where only the
        // weights are rounded, is closer than decode, which also rounds the activations)
        var worst = 0.0, sum = 0.0, n = 0.0
        for (a, b) in zip(ref.prefill + ref.decode, got.prefill + got.decode) {
            let scale = Double(a.map { abs($0) }.max()!)
            for (x, y) in zip(a, b) {
                let e = Double(abs(x - y)) / scale
                worst = max(worst, e)
                sum += e
                n += 1
            }
            XCTAssertEqual(a.indices.max { a[$0] < a[$1] }, b.indices.max { b[$0] < b[$1] }, "argmax differs")
        }
        print("int8 vs f32 logits: worst \(worst), mean \(sum / n) of the row's max |logit|")
        XCTAssertLessThan(worst, 0.05)
        XCTAssertLessThan(sum / n, 0.01)
        // prefill (dequantized sgemm) and decode (integer GEMV) agree with each other as closely
        for (a, b) in zip(got.prefill, got.decode) {
            let scale = a.map { abs($0) }.max()!
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 0.05 * scale) }
        }
    }

    func testSaveLoadRoundTripAndQuantizeAtLoad() throws {
        // prefill dequantizes to f32 here, so int8 and its f32 dequantization agree closely (the
        // bf16 prefill of CPUs that multiply in bf16 is checked at the end)
        ComputeRates.bf16WeightComputeOverride = .f32
        // and through the GEMM even for this 8-token prompt (short prompts run int8 GEMVs:
        // testShortPromptsRunTheInt8GEMV)
        let gemvMaxT = int8GEMVMaxT
        int8GEMVMaxT = 1
        defer {
            ComputeRates.bf16WeightComputeOverride = nil
            int8GEMVMaxT = gemvMaxT
        }
        let c = try Int8Tests.smallConfig(tied: true)
        let m32 = try LanguageModel.random(config: c, seed: 9)
        try m32.save(directory: dir + "/f32")
        try m32.save(directory: dir + "/i8", dtype: .i8)
        // the file: I8 values and F32 block scales for matrices, F32 norms and router
        let h = try SafeTensorsHeader(map: try MappedFile(path: dir + "/i8/model.safetensors"))
        XCTAssertEqual(h.tensor("model.layers.0.self_attn.q_proj.weight")?.dtype, .i8)
        XCTAssertEqual(h.tensor("model.layers.0.self_attn.q_proj.weight_scale")?.shape, [64, 2])
        XCTAssertEqual(h.tensor("model.layers.0.self_attn.q_proj.weight_scale")?.dtype, .f32)
        XCTAssertEqual(h.tensor("model.layers.1.block_sparse_moe.experts.3.w2.weight_scale")?.shape, [64, 3])
        XCTAssertEqual(h.tensor("model.layers.0.block_sparse_moe.gate.weight")?.dtype, .f32)
        XCTAssertEqual(h.tensor("model.norm.weight")?.dtype, .f32)
        XCTAssertNil(h.tensor("lm_head.weight"))
        // the data starts on a 64-byte boundary (SafeTensorsWriter's padding), as in every file we write
        XCTAssertEqual(h.dataOffset % 64, 0)
        XCTAssertEqual(try SafeTensorsHeader(map: try MappedFile(path: dir + "/f32/model.safetensors")).dataOffset % 64, 0)
        let cfg = try JSONValue.parse(bytes: try FileIO.readAll(dir + "/i8/config.json"))
        XCTAssertEqual(cfg["quantization"]?["method"]?.string, "q8_0")
        XCTAssertEqual(cfg["quantization"]?["block_size"]?.int, 32)

        // loaded as stored: int8 in place, the same logits as the in-memory int8 conversion
        let loaded = try LanguageModel.load(path: dir + "/i8")
        XCTAssertEqual(loaded.weightsType, "int8")
        let mem8 = try m32.decoder.weights.converted(to: .int8)
        let toks: [Int32] = [3, 1, 4, 1, 5, 9, 2, 6]
        let a = try logits(loaded.decoder.weights, dims: c.dims, tokens: toks)
        let b = try logits(mem8, dims: c.dims, tokens: toks)
        XCTAssertEqual(a.prefill, b.prefill)
        XCTAssertEqual(a.decode, b.decode)
        // quantized while loading an f32 checkpoint: the same values again
        var o = ModelLoadOptions()
        o.weightType = .int8
        let q = try LanguageModel.load(path: dir + "/f32", options: o)
        XCTAssertEqual(q.weightsType, "int8")
        XCTAssertEqual(try logits(q.decoder.weights, dims: c.dims, tokens: toks).decode, b.decode)
        // saving int8 again is exact (no second rounding); saving as f32 dequantizes
        try loaded.save(directory: dir + "/i8b", dtype: .i8)
        XCTAssertEqual(try FileIO.readAll(dir + "/i8/model.safetensors"), try FileIO.readAll(dir + "/i8b/model.safetensors"))
        try loaded.save(directory: dir + "/back", dtype: .f32)
        let back = try LanguageModel.load(path: dir + "/back")
        XCTAssertEqual(back.weightsType, "f32")
        XCTAssertNil(try JSONValue.parse(bytes: try FileIO.readAll(dir + "/back/config.json"))["quantization"])
        // (not bit-equal: in prefill an expert that gets a single token runs the int8 GEMV,
        // which also rounds its input; measured 2e-4 on logits of about 0.5)
        XCTAssertLessThan(maxDiff(try logits(back.decoder.weights, dims: c.dims, tokens: toks).prefill, a.prefill), 1e-3)
        // int8 loaded as f32 (dequantized): the same prefill logits too
        o.weightType = .f32
        let widened = try LanguageModel.load(path: dir + "/i8", options: o)
        XCTAssertEqual(widened.weightsType, "f32")
        XCTAssertLessThan(maxDiff(try logits(widened.decoder.weights, dims: c.dims, tokens: toks).prefill, a.prefill), 1e-3)
        // prefill with the int8 weights dequantized to bf16 and the bf16 GEMM (Zen 4/5's choice):
        // within 1% of the largest logit of the f32 prefill (weights and activations rounded to
        // 8 bits of mantissa; measured 0.5%), and not the same numbers (the path did run)
        ComputeRates.bf16WeightComputeOverride = .bf16
        let viaBF16 = try logits(loaded.decoder.weights, dims: c.dims, tokens: toks).prefill
        let scale = a.prefill.flatMap { $0 }.map { abs($0) }.max()!
        let d = maxDiff(viaBF16, a.prefill)
        XCTAssertLessThan(d, 0.01 * scale)
        XCTAssertGreaterThan(d, 0)
    }

    /// Files saved with the row-quad layout ("rows4") load in place: every decode matrix is a
    /// `.q8Rows4` view of the mapping (no copy, on any CPU), the embedding stays row-major, the
    /// values are those of the row-major file, the logits those of its load, and saving in
    /// either layout gives back the bytes of that layout's file.
    func testRowQuadFilesLoadInPlace() throws {
        let c = try Int8Tests.smallConfig()
        let m32 = try LanguageModel.random(config: c, seed: 9)
        try m32.save(directory: dir + "/rm", dtype: .i8)
        try m32.save(directory: dir + "/rq", dtype: .i8, int8Layout: .rows4)
        let cfg = try JSONValue.parse(bytes: try FileIO.readAll(dir + "/rq/config.json"))
        XCTAssertEqual(cfg["quantization"]?["layout"]?.string, "rows4")
        XCTAssertNil(try JSONValue.parse(bytes: try FileIO.readAll(dir + "/rm/config.json"))["quantization"]?["layout"])
        let rm = try LanguageModel.load(path: dir + "/rm"), rq = try LanguageModel.load(path: dir + "/rq")
        let a = rq.decoder.weights, b = rm.decoder.weights
        var matrices = [(a.lmHead, b.lmHead)]
        for (la, lb) in zip(a.layers, b.layers) {
            matrices += [(la.q, lb.q), (la.k, lb.k), (la.v, lb.v), (la.o, lb.o)]
            for (ea, eb) in zip(la.experts, lb.experts) { matrices += [(ea.w1, eb.w1), (ea.w2, eb.w2), (ea.w3, eb.w3)] }
        }
        var packed = 0
        for (x, y) in matrices {
            if hk_q8_packable(x.rows, x.cols) != 0 {   // w2 [64, 96] is not: 96 columns are not whole 64-column chunks
                guard case .q8Rows4 = x.storage else { return XCTFail("a decode matrix of the rows4 file is not row-quad") }
                packed += 1
            } else {
                guard case .q8 = x.storage else { return XCTFail("a matrix the layout does not cover is not row-major") }
            }
            XCTAssertFalse(x.owner is Q8Tensor, "a rows4 file's matrix was copied at load")
            var u = [Float](repeating: 0, count: x.count), v = u
            x.copyRows(0, x.rows, to: &u)
            y.copyRows(0, y.rows, to: &v)
            XCTAssertEqual(u, v)
        }
        XCTAssertEqual(packed, 1 + 2 * (4 + 2 * 4))
        guard case .q8 = a.embed.storage else { return XCTFail("the embedding is stored row-major") }
        let toks: [Int32] = [3, 1, 4, 1, 5, 9, 2, 6]
        let la = try logits(a, dims: c.dims, tokens: toks), lb = try logits(b, dims: c.dims, tokens: toks)
        if hk_q8_level() >= 2 {   // the row-major file was reordered at load: the same kernel on the same bytes
            XCTAssertEqual(la.decode, lb.decode)
        } else {                  // row by row over either layout: the same block sums, another order
            XCTAssertLessThan(maxDiff(la.decode, lb.decode), 1e-4)
        }
        XCTAssertLessThan(maxDiff(la.prefill, lb.prefill), 1e-4)
        // where the VNNI kernel does not run (AVX2 here), decode reads row-major: a rows4 file's
        // matrices are copied back to it at load, and decode equals the row-major file's
        hk_q8_set_max_level(1)
        do {
            defer { hk_q8_set_max_level(-1) }
            let rq1 = try LanguageModel.load(path: dir + "/rq"), rm1 = try LanguageModel.load(path: dir + "/rm")
            guard case .q8 = rq1.decoder.weights.layers[0].q.storage else { return XCTFail("AVX2 decodes row-major matrices") }
            XCTAssertTrue(rq1.decoder.weights.layers[0].q.owner is Q8Tensor)
            XCTAssertEqual(try logits(rq1.decoder.weights, dims: c.dims, tokens: toks).decode,
                           try logits(rm1.decoder.weights, dims: c.dims, tokens: toks).decode)
        }
        try rq.save(directory: dir + "/rq-rm", dtype: .i8)
        XCTAssertEqual(try FileIO.readAll(dir + "/rm/model.safetensors"), try FileIO.readAll(dir + "/rq-rm/model.safetensors"))
        try rm.save(directory: dir + "/rm-rq", dtype: .i8, int8Layout: .rows4)
        XCTAssertEqual(try FileIO.readAll(dir + "/rq/model.safetensors"), try FileIO.readAll(dir + "/rm-rq/model.safetensors"))
        try rq.save(directory: dir + "/rq-rq", dtype: .i8, int8Layout: .rows4)
        XCTAssertEqual(try FileIO.readAll(dir + "/rq/model.safetensors"), try FileIO.readAll(dir + "/rq-rq/model.safetensors"))
    }

    func testShortPromptsRunTheInt8GEMV() throws {
        // a prompt of at most int8GEMVMaxT tokens multiplies int8 weights by integer GEMVs (one
        // per token) instead of dequantizing them for a GEMM: its logits are then those of decoding
        // it token by token up to the order in which the experts' outputs are summed (8 tokens:
        // per-query attention either way), and within 5% of the GEMM's (which differ by ~3%)
        XCTAssertGreaterThanOrEqual(int8GEMVMaxT, 8)
        let c = try Int8Tests.smallConfig()
        let (w32, _) = try RandomWeights.make(dims: c.dims, seed: 6, std: 0.1)
        let w8 = try w32.converted(to: .int8)
        let toks: [Int32] = [3, 99, 12, 250, 7, 7, 64, 1]
        let viaGEMV = try logits(w8, dims: c.dims, tokens: toks)
        let top = viaGEMV.decode.flatMap { $0 }.map { abs($0) }.max()!
        XCTAssertLessThan(maxDiff(viaGEMV.prefill, viaGEMV.decode), 1e-5 * top)
        let gemvMaxT = int8GEMVMaxT
        int8GEMVMaxT = 1
        defer { int8GEMVMaxT = gemvMaxT }
        let viaGEMM = try logits(w8, dims: c.dims, tokens: toks)
        let scale = viaGEMM.prefill.flatMap { $0 }.map { abs($0) }.max()!
        XCTAssertNotEqual(viaGEMM.prefill, viaGEMV.prefill)
        XCTAssertLessThan(maxDiff(viaGEMM.prefill, viaGEMV.prefill), 0.05 * scale)
    }

    /// Prompts with int8 weights dequantize each weight as the GEMM packs it, in whichever layout
    /// this CPU keeps the int8 rows. Multiplied in f32 (CPUs without fast bf16; hk_gemm_f32_q8): the
    /// logits are those of the f32 model holding the dequantized weights through the same GEMM, bit
    /// for bit, and OpenBLAS on the dequantized weights sums in another order only. Multiplied in
    /// bf16 (hk_gemm_bf16_q8): those of the model holding the weights rounded to bf16. Three
    /// threads: row ranges that do not start on a quad.
    func testInt8PromptsDequantizeAsTheyPack() throws {
        guard hk_gemm_f32_level() > 0 else { throw XCTSkip("hmst's f32 GEMM does not run on this CPU") }
        ComputeRates.bf16WeightComputeOverride = .f32
        let gemvMaxT = int8GEMVMaxT
        int8GEMVMaxT = 1
        defer {
            ComputeRates.bf16WeightComputeOverride = nil
            ComputeRates.f32GEMMOverride = nil
            int8GEMVMaxT = gemvMaxT
        }
        // rows of 128 and 192 weights: whole 64-column chunks, so the row-quad layout (CPUs with VNNI) differs from row-major
        let c = try MixtralConfig(vocabSize: 320, hiddenSize: 128, intermediateSize: 192, numHiddenLayers: 2, numAttentionHeads: 4,
                                  numKeyValueHeads: 2, maxPositionEmbeddings: 128, numLocalExperts: 4, numExpertsPerTok: 2)
        let (w32, _) = try RandomWeights.make(dims: c.dims, seed: 8, std: 0.1)
        let w8 = try w32.converted(to: .int8), dequantized = try w8.converted(to: .f32)
        let toks: [Int32] = [3, 99, 12, 250, 7, 7, 64, 1, 300, 5, 18]
        func prefill(_ w: DecoderWeights, _ gemm: F32GEMM, threads: Int) throws -> [[Float]] {
            ComputeRates.f32GEMMOverride = gemm
            var p = SessionParams()
            p.nCtx = 64
            p.nThreads = threads
            let s = try Session(decoder: Decoder(dims: c.dims, weights: w), params: p)
            try s.evaluate(toks, allLogits: true)
            return try (0..<toks.count).map { Array(try s.logits(row: $0)) }
        }
        for threads in [1, 3] {
            let viaHMST = try prefill(w8, .hmst, threads: threads)
            XCTAssertTrue(viaHMST == (try prefill(dequantized, .hmst, threads: threads)), "\(threads) threads: not the dequantized model's bits")
            let viaOpenBLAS = try prefill(w8, .openblas, threads: threads)
            let top = viaOpenBLAS.flatMap { $0 }.map { abs($0) }.max()!
            XCTAssertLessThan(maxDiff(viaHMST, viaOpenBLAS), 1e-5 * top)
        }
        // multiplied in bf16 (Zen 4 and 5; the portable kernels elsewhere): the bf16 GEMM dequantizes
        // to bf16 as it packs (hk_gemm_bf16_q8), giving the logits of the model holding those bf16 values
        ComputeRates.bf16WeightComputeOverride = .bf16
        // (the embedding rows stay the int8 model's: they are copied, not multiplied)
        let b16 = try w8.converted(to: .bf16)
        let roundedToBF16 = DecoderWeights(embed: w8.embed, layers: b16.layers, finalNorm: b16.finalNorm, lmHead: b16.lmHead, tied: false)
        for threads in [1, 3] {
            XCTAssertTrue(try prefill(w8, .hmst, threads: threads) == (try prefill(roundedToBF16, .hmst, threads: threads)),
                          "\(threads) threads: not the bf16 model's bits")
        }
    }

    func testRowQuadCopiesDropOnlyMappedPages() throws {
        // matrices of many pages (q: 256 x 256 int8 = 16 pages), so dropping them shows
        let c = try MixtralConfig(vocabSize: 320, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 1, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 64, numLocalExperts: 2, numExpertsPerTok: 1)
        let m32 = try LanguageModel.random(config: c, seed: 3)
        try m32.save(directory: dir + "/big8", dtype: .i8)
        let toks: [Int32] = [7, 1, 300, 42, 9]
        let want = try logits(try m32.decoder.weights.converted(to: .int8), dims: c.dims, tokens: toks)
        // mapped: the decoder's row-quad copies replace the int8 matrices, whose file pages are
        // then dropped (read again from the file if anything touches them)
        let mapped = try LanguageModel.load(path: dir + "/big8")
        if hk_q8_level() >= 2, case .q8 = mapped.decoder.weights.layers[0].q.storage { XCTFail("q was not reordered") }
        XCTAssertEqual(try logits(mapped.decoder.weights, dims: c.dims, tokens: toks).decode, want.decode)
        // loaded into an anonymous copy (NUMA copy placement), nothing may be dropped: its pages
        // would read back as zeros
        var o = ModelLoadOptions()
        o.placement.strategy = .isolate
        o.placement.copyToAnonymous = true
        let copied = try LanguageModel.load(path: dir + "/big8", options: o)
        if NUMATopology.current.available && NUMATopology.current.policyPermitted { XCTAssertTrue(copied.report.placement.copied) }
        XCTAssertEqual(try logits(copied.decoder.weights, dims: c.dims, tokens: toks).decode, want.decode)
        // dropPages itself: a file mapping reads dropped pages again from the file; an anonymous
        // copy is left alone (dropped, it would read back as zeros)
        let n = 16 * Placement.pageSize
        let pattern = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        try FileIO.writeAtomically(dir + "/pages.bin", pattern)
        let map = try MappedFile(path: dir + "/pages.bin")
        let fileRegion = PlacedRegion(base: map.base, count: 0, anonymous: nil, lockedCount: 0)
        XCTAssertEqual(Array(map.bytes), pattern)
        fileRegion.dropPages(map.bytes)
        XCTAssertEqual(Array(map.bytes), pattern)
        let anon = try XCTUnwrap(mmap(nil, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        anon.copyMemory(from: pattern, byteCount: n)
        let anonRegion = PlacedRegion(base: UnsafeRawPointer(anon), count: n, anonymous: anon, lockedCount: 0)   // unmaps it
        anonRegion.dropPages(UnsafeRawBufferPointer(start: anon, count: n))
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: anon, count: n)), pattern)
        // the embedding (not reordered) in the same mapping reads as stored
        var row = [Float](repeating: 0, count: c.hiddenSize), ref = row
        copied.decoder.weights.embed.copyRow(5, to: &row)
        try m32.decoder.weights.converted(to: .int8).embed.copyRow(5, to: &ref)
        XCTAssertEqual(row, ref)
    }

    /// Rewrites dir/i8 into dir/<case> with tensors and config changed, and expects a failure.
    func expectRejected(_ label: String, config: (String) -> String = { $0 },
                        tensors: (inout [(name: String, dtype: SafeTensorDType, shape: [Int], bytes: [UInt8])]) -> Void,
                        _ fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let src = try SafeTensorsFile(path: dir + "/i8/model.safetensors")
        let raw = try FileIO.readAll(dir + "/i8/model.safetensors")
        var list = src.header.tensors.map { t in
            (name: t.name, dtype: t.dtype, shape: t.shape, bytes: Array(raw[(src.header.dataOffset + t.begin)..<(src.header.dataOffset + t.end)]))
        }
        tensors(&list)
        let d = dir + "/" + label
        try FileIO.makeDirectories(d)
        let owners = list.map { _ in Owners([FloatBuffer(count: 0)]) }
        var buffers: [UnsafeMutableRawBufferPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        var rawTensors: [RawTensor] = []
        for (i, t) in list.enumerated() {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, t.bytes.count), alignment: 64)
            buffers.append(b)
            b.copyBytes(from: t.bytes)
            rawTensors.append(RawTensor(name: t.name, dtype: t.dtype, shape: t.shape,
                                        bytes: UnsafeRawBufferPointer(start: b.baseAddress, count: t.bytes.count), owner: owners[i]))
        }
        try SafeTensorsWriter.writeRaw(path: d + "/model.safetensors", tensors: rawTensors)
        try FileIO.writeAtomically(d + "/config.json", text: config(try FileIO.readText(dir + "/i8/config.json")))
        XCTAssertThrowsError(try LanguageModel.load(path: d), label, file: file, line: line) { e in
            let msg = (e as? HMSTError)?.message ?? "\(e)"
            XCTAssertTrue(msg.contains(fragment), "\(label): message \"\(msg)\" lacks \"\(fragment)\"", file: file, line: line)
        }
    }

    /// A NaN weight is refused by an int8 save, naming the tensor and the block, with no file
    /// written (a NaN scale would be refused by every reader; a finite 0 would hide it).
    func testInt8SaveRefusesNonFiniteWeights() throws {
        let c = try Int8Tests.smallConfig()
        let m = try LanguageModel.random(config: c, seed: 3)
        let q = "model.layers.0.self_attn.q_proj.weight"
        let w = try XCTUnwrap(m.decoder.weights.named(tied: c.tieWordEmbeddings).first { $0.name == q }?.weight)
        guard case let .f32(p) = w.storage else { return XCTFail("not f32") }
        UnsafeMutablePointer(mutating: p)[w.cols + 40] = .nan
        XCTAssertThrowsError(try m.save(directory: dir + "/nan8", dtype: .i8)) { e in
            let msg = (e as? HMSTError)?.message ?? "\(e)"
            XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument, msg)
            XCTAssertTrue(msg.contains("tensor \(q) holds NaN or Inf (row 1, column 40: nan)"), msg)
        }
        XCTAssertFalse(FileIO.exists(dir + "/nan8/model.safetensors"))
        XCTAssertThrowsError(try m.save(directory: dir + "/nan8r4", dtype: .i8, int8Layout: .rows4)) { e in
            XCTAssertTrue("\(e)".contains("row 1, column 40"), "\(e)")   // the same place in the row-quad layout
        }
    }

    func testMalformedInt8CheckpointsAreRejected() throws {
        let c = try Int8Tests.smallConfig()
        try LanguageModel.random(config: c, seed: 2).save(directory: dir + "/i8", dtype: .i8)
        let q = "model.layers.0.self_attn.q_proj.weight"
        try expectRejected("noconfig", config: { $0.replacingOccurrences(of: "\"quantization\"", with: "\"quantization_off\"") },
                           tensors: { _ in }, "config.json has no \"quantization\"")
        try expectRejected("method", config: { $0.replacingOccurrences(of: "\"q8_0\"", with: "\"q4_k\"") },
                           tensors: { _ in }, "method \"q4_k\" is not supported")
        try expectRejected("noscale", tensors: { $0.removeAll { $0.name == q + "_scale" } }, "\(q)_scale is missing")
        try expectRejected("scaleshape", tensors: { l in
            let i = l.firstIndex { $0.name == q + "_scale" }!
            l[i].shape = [l[i].shape[1], l[i].shape[0]]
        }, "needs [64, 2]")
        try expectRejected("scaledtype", tensors: { l in
            let i = l.firstIndex { $0.name == q + "_scale" }!
            l[i].dtype = .i32
        }, "int8 scales are F32")
        try expectRejected("nanscale", tensors: { l in
            let i = l.firstIndex { $0.name == q + "_scale" }!
            withUnsafeBytes(of: Float.nan) { l[i].bytes.replaceSubrange(12..<16, with: $0) }
        }, "tensor \(q)_scale has NaN at index 3 (row 1, column 1)")
        try expectRejected("minus128", tensors: { l in
            let i = l.firstIndex { $0.name == q }!
            l[i].bytes[70] = 0x80
        }, "\(q) holds -128 at index 70 (row 1, column 6)")
        let rows4: (String) -> String = { $0.replacingOccurrences(of: "\"scale_dtype\"", with: "\"layout\":\"rows4\",\"scale_dtype\"") }
        try expectRejected("minus128rows4", config: rows4, tensors: { l in
            let i = l.firstIndex { $0.name == q }!
            l[i].bytes[70] = 0x80
        }, "\(q) holds -128 at byte 70 of the row-quad layout")
        try expectRejected("layout", config: { $0.replacingOccurrences(of: "\"scale_dtype\"", with: "\"layout\":\"cols8\",\"scale_dtype\"") },
                           tensors: { _ in }, "quantization layout \"cols8\" is not supported")
        try expectRejected("oddwidth", tensors: { l in
            let i = l.firstIndex { $0.name == "model.norm.weight" }!
            l[i] = (l[i].name, .i8, [64], [UInt8](repeating: 1, count: 64))
        }, "is not a matrix whose width is a multiple of 32")
        try expectRejected("strayscale", tensors: { l in
            l.append((name: "model.norm.weight_scale", dtype: .f32, shape: [1, 2], bytes: [UInt8](repeating: 0, count: 8)))
        }, "this config does not use: model.norm.weight_scale")
        try expectRejected("i8notquantizable", tensors: { l in
            let i = l.firstIndex { $0.name == q }!
            l[i].shape = [32, 128]
        }, "has shape [32, 128] but the config implies [64, 64]")
    }
}

/// The bf16 KV cache: logits close to the f32 cache's, decode and prefill agreeing, half the bytes.
final class KVCacheBF16Tests: XCTestCase {
    func testBF16CacheIsCloseToF32() throws {
        let c = try Int8Tests.smallConfig()
        let (w, _) = try RandomWeights.make(dims: c.dims, seed: 12, std: 0.1)
        let dec = Decoder(dims: c.dims, weights: w)
        var rng = RNG(seed: 4)
        let toks = (0..<40).map { _ in Int32(rng.next() % 320) }
        func run(_ kv: KVCacheType) throws -> (pre: [Float], dec: [Float], bytes: Int) {
            var p = SessionParams()
            p.nCtx = 64
            p.nThreads = 2
            p.kvType = kv
            let s = try Session(decoder: dec, params: p)
            try s.evaluate(toks)
            let pre = Array(try s.logits())
            s.reset()
            for t in toks { try s.evaluate([t]) }
            return (pre, Array(try s.logits()), s.cache.bytes)
        }
        let a = try run(.f32), b = try run(.bf16)
        XCTAssertEqual(b.bytes * 2, a.bytes)
        let scale = a.dec.map { abs($0) }.max()!
        var worst: Float = 0
        for (x, y) in zip(a.dec, b.dec) { worst = max(worst, abs(x - y)) }
        print("bf16 KV vs f32 KV, decode after 40 tokens: max |Δ| \(worst / scale) of max |logit|")
        XCTAssertLessThan(worst, 0.03 * scale)
        XCTAssertGreaterThan(worst, 0, "the cache really is rounded")
        for (x, y) in zip(b.pre, b.dec) { XCTAssertEqual(x, y, accuracy: 1e-4 * scale) }
        // the kernel against a hand loop: scores from bf16 keys, softmax, bf16 values
        let n = 5, Dh = 20
        let K = (0..<(n * Dh)).map { _ in rng.nextGaussian() }, V = (0..<(n * Dh)).map { _ in rng.nextGaussian() }
        let q = (0..<Dh).map { _ in rng.nextGaussian() }
        var K16 = [UInt16](repeating: 0, count: K.count), V16 = K16
        hk_f32_to_bf16(&K16, K, K.count)
        hk_f32_to_bf16(&V16, V, V.count)
        var Kr = [Float](repeating: 0, count: K.count), Vr = Kr
        hk_bf16_to_f32(&Kr, K16, K.count)
        hk_bf16_to_f32(&Vr, V16, V.count)
        for level in [0, -1] {
            hk_set_max_level(Int32(level))
            var out = [Float](repeating: .nan, count: Dh), scratch = [Float](repeating: 0, count: n)
            hk_attend_bf16(&out, &scratch, q, K16, V16, n, Dh, 0.3)
            var want = [Float](repeating: 0, count: Dh), sc = [Float](repeating: 0, count: n)
            hk_attend(&want, &sc, q, Kr, Vr, n, Dh, 0.3)
            for i in 0..<Dh { XCTAssertEqual(out[i], want[i], accuracy: 1e-5, "level \(level)") }
        }
        hk_set_max_level(-1)
    }
}

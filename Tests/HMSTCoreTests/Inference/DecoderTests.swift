// The fast decoder against the reference, and against itself: cached decode vs full recompute,
// chunked prefill vs one batch, bf16 weights vs their f32 values, thread counts.
import XCTest
@testable import HMSTCore

final class DecoderTests: XCTestCase {
    static let dims = DecoderDims(C: 32, H: 4, KV: 2, Dh: 8, F: 48, E: 8, K: 2, V: 61, L: 2, eps: 1e-5,
                                  ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: false)
    let tokens: [Int32] = [3, 17, 60, 0, 5, 5, 42, 9, 1, 33]

    func makeDecoder(bf16: Bool = false, tied: Bool = false) throws -> Decoder {
        var d = DecoderTests.dims
        d.tiedEmbeddings = tied
        let (w, _) = try RandomWeights.make(dims: d, seed: 11, std: 0.3, bf16: bf16)
        return Decoder(dims: d, weights: w)
    }

    func allLogits(_ dec: Decoder, _ toks: [Int32], nBatch: Int = 64, threads: Int = 2) throws -> [[Float]] {
        var p = SessionParams()
        p.nBatch = nBatch
        p.nThreads = threads
        let s = try Session(decoder: dec, params: p)
        try s.evaluate(toks, allLogits: true)
        return try (0..<toks.count).map { Array(try s.logits(row: $0)) }
    }

    func assertClose(_ a: [[Float]], _ b: [[Double]], tol: Double, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        var worst = 0.0
        for (ra, rb) in zip(a, b) { for (x, y) in zip(ra, rb) { worst = max(worst, abs(Double(x) - y)) } }
        XCTAssertLessThan(worst, tol, "max |diff| \(worst)", file: file, line: line)
    }

    func testMatchesReferenceForwardUntiedAndTied() throws {
        for tied in [false, true] {
            let dec = try makeDecoder(tied: tied)
            let ref = ReferenceDecoder(d: dec.dims, w: dec.weights).forward(tokens)
            assertClose(try allLogits(dec, tokens), ref, tol: 1e-4)
        }
    }

    func testCachedDecodeEqualsFullRecompute() throws {
        let dec = try makeDecoder()
        let full = try allLogits(dec, tokens)
        var p = SessionParams()
        p.nThreads = 2
        let s = try Session(decoder: dec, params: p)
        for (i, t) in tokens.enumerated() {
            try s.evaluate([t])
            let row = Array(try s.logits())
            let worst = zip(row, full[i]).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-4, "position \(i)")
        }
    }

    func testChunkedPrefillAndThreadCountsAgree() throws {
        let dec = try makeDecoder()
        var p = SessionParams()
        p.nBatch = 3  // prompt split into chunks of 3
        let s = try Session(decoder: dec, params: p)
        try s.evaluate(tokens)
        let last = Array(try s.logits())
        for threads in [1, 2, 3] {
            let one = try allLogits(dec, tokens, threads: threads).last!
            XCTAssertLessThan(zip(one, last).map { abs($0 - $1) }.max()!, 1e-4, "threads \(threads)")
        }
    }

    /// Prompts of 16 tokens or more take the blocked GEMM attention (query blocks of 128):
    /// against the reference, and against the per-query path (chunks of 8), with a prompt of
    /// three blocks and a continuation whose keys start past the first chunk.
    func testBlockedPrefillAttentionMatchesPerQueryAttention() throws {
        var d = DecoderTests.dims
        d.maxPositions = 320
        let (w, _) = try RandomWeights.make(dims: d, seed: 12, std: 0.3, bf16: false)
        let dec = Decoder(dims: d, weights: w)
        var rng = RNG(seed: 3)
        let toks = (0..<300).map { _ in Int32(rng.next() % UInt64(d.V)) }
        // every row's logits, the prompt given in calls of `chunk` tokens
        func rows(chunk: Int, threads: Int = 2, kv: KVCacheType = .f32) throws -> [[Float]] {
            var p = SessionParams()
            p.nBatch = chunk
            p.nThreads = threads
            p.kvType = kv
            let s = try Session(decoder: dec, params: p)
            var out: [[Float]] = []
            for c in stride(from: 0, to: toks.count, by: chunk) {
                let part = Array(toks[c..<min(toks.count, c + chunk)])
                try s.evaluate(part, allLogits: true)
                out += try part.indices.map { Array(try s.logits(row: $0)) }
            }
            return out
        }
        let blocked = try rows(chunk: 300)                 // heads in groups, one a thread
        let blockedOne = try rows(chunk: 300, threads: 1)  // every head in turn on one thread
        let perQuery = try rows(chunk: 8)
        let chunked = try rows(chunk: 200, threads: 3)
        var worst: Float = 0, worstChunked: Float = 0, worstOne: Float = 0
        for i in toks.indices {
            worst = max(worst, zip(blocked[i], perQuery[i]).map { abs($0 - $1) }.max()!)
            worstChunked = max(worstChunked, zip(chunked[i], perQuery[i]).map { abs($0 - $1) }.max()!)
            worstOne = max(worstOne, zip(blockedOne[i], perQuery[i]).map { abs($0 - $1) }.max()!)
        }
        XCTAssertLessThan(worst, 1e-4)
        XCTAssertLessThan(worstChunked, 1e-4)
        XCTAssertLessThan(worstOne, 1e-4)
        // a bf16 cache: its keys and values widened for the GEMMs give what the per-query bf16
        // kernel gives, on two threads and on one, in one call and in chunks past the first block.
        // Rounding to bf16 at the store is a step function: a last-bit difference upstream (the
        // GEMMs' summation order) can flip one stored value by 2⁻⁸ of itself, and this random
        // model (weights of std 0.3) amplifies that, so the paths are held to a hundredth of
        // the distance between the bf16 and f32 caches rather than to f32 rounding.
        let perQuery16 = try rows(chunk: 8, kv: .bf16)
        var cacheGap: Float = 0
        for i in toks.indices { cacheGap = max(cacheGap, zip(perQuery16[i], perQuery[i]).map { abs($0 - $1) }.max()!) }
        XCTAssertGreaterThan(cacheGap, 0.1)
        for (threads, chunk) in [(2, 300), (1, 300), (3, 200)] {
            let got = try rows(chunk: chunk, threads: threads, kv: .bf16)
            var worst16: Float = 0
            for i in toks.indices { worst16 = max(worst16, zip(got[i], perQuery16[i]).map { abs($0 - $1) }.max()!) }
            XCTAssertLessThan(worst16, 1e-2 * cacheGap, "bf16 cache, \(threads) threads, chunks of \(chunk)")
        }
        assertClose(blocked, ReferenceDecoder(d: dec.dims, w: dec.weights).forward(toks), tol: 2e-4)
    }

    /// Widened for prefill (the path of CPUs whose bf16 dot products are slow), bf16 weights give
    /// what their f32 values give.
    func testBF16WeightsMatchTheirF32Values() throws {
        ComputeRates.bf16WeightComputeOverride = .f32
        defer { ComputeRates.bf16WeightComputeOverride = nil }
        let dec16 = try makeDecoder(bf16: true)
        let ref = ReferenceDecoder(d: dec16.dims, w: dec16.weights).forward(tokens)  // reads the bf16 values
        assertClose(try allLogits(dec16, tokens), ref, tol: 1e-3)
        // decode path (GEMV) too
        let s = try Session(decoder: dec16, params: SessionParams())
        for t in tokens { try s.evaluate([t]) }
        assertClose([Array(try s.logits())], [ref.last!], tol: 1e-3)
    }

    /// Prompts through either f32 GEMM (hmst's hk_gemm_f32_wt, which widens 16-bit weights as it
    /// packs them, or OpenBLAS on widened weights) give the reference's logits for f32, f16 and
    /// (widened) bf16 weights, on 1 to 3 threads; the two GEMMs differ only in summation order.
    func testPromptGEMMsAgreeForEveryWeightType() throws {
        ComputeRates.bf16WeightComputeOverride = .f32
        defer { ComputeRates.bf16WeightComputeOverride = nil; ComputeRates.f32GEMMOverride = nil }
        let base = try makeDecoder()
        for type in [WeightType.f32, .f16, .bf16] {
            let dec = Decoder(dims: base.dims, weights: try base.weights.converted(to: type))
            let ref = ReferenceDecoder(d: dec.dims, w: dec.weights).forward(tokens)
            var byGEMM: [F32GEMM: [[Float]]] = [:]
            for gemm in [F32GEMM.hmst, .openblas] {
                ComputeRates.f32GEMMOverride = gemm
                for threads in [1, 2, 3] {
                    let got = try allLogits(dec, tokens, threads: threads)
                    assertClose(got, ref, tol: 1e-3)
                    byGEMM[gemm] = got
                }
            }
            let apart = zip(byGEMM[.hmst]!, byGEMM[.openblas]!).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
            XCTAssertLessThan(apart, 1e-4, "\(type)")
        }
    }

    /// Multiplied in bf16 (ComputeRates.bf16WeightCompute; the portable kernels where the CPU
    /// lacks AVX512-BF16), prefill's GEMMs and decode's GEMVs compute what the reference computes
    /// with the input of every bf16 product rounded to bf16, and visibly not the unrounded values.
    func testBF16WeightsMultipliedInBF16MatchRoundedInputs() throws {
        ComputeRates.bf16WeightComputeOverride = .bf16
        defer { ComputeRates.bf16WeightComputeOverride = nil }
        let dec16 = try makeDecoder(bf16: true)
        var ref = ReferenceDecoder(d: dec16.dims, w: dec16.weights)
        let plain = ref.forward(tokens)
        ref.roundInputs = true
        let rounded = ref.forward(tokens)
        assertClose(try allLogits(dec16, tokens), rounded, tol: 1e-4)
        let s = try Session(decoder: dec16, params: SessionParams())
        for t in tokens { try s.evaluate([t]) }
        assertClose([Array(try s.logits())], [rounded.last!], tol: 1e-4)
        let apart = zip(rounded, plain).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
        XCTAssertGreaterThan(apart, 1e-2, "the rounding must be visible at this tolerance")
    }

    func testExpertTraceMatchesReferenceRouting() throws {
        let dec = try makeDecoder()
        var p = SessionParams()
        p.traceRoutes = true
        let s = try Session(decoder: dec, params: p)
        try s.evaluate(Array(tokens[0..<4]))
        try s.evaluate(Array(tokens[4...]))
        XCTAssertEqual(s.trace.count, tokens.count)
        for t in 0..<tokens.count {
            for l in 0..<dec.dims.L {
                let base = (t * dec.dims.L + l) * dec.dims.K
                let e0 = s.trace.experts[base], e1 = s.trace.experts[base + 1]
                XCTAssertNotEqual(e0, e1)
                XCTAssertTrue((0..<8).contains(e0) && (0..<8).contains(e1))
                XCTAssertEqual(Double(s.trace.gates[base] + s.trace.gates[base + 1]), 1, accuracy: 1e-5)
                XCTAssertGreaterThanOrEqual(s.trace.gates[base], s.trace.gates[base + 1])
            }
        }
    }

    /// Share of (token, layer) expert choices that the previous token also made, over a decode
    /// of `n` tokens of a moe512-like shape (hidden 128 here) initialised as `scales` says.
    func expertRepeatShare(_ scales: RandomInit, n: Int = 96) throws -> Double {
        let d = DecoderDims(C: 128, H: 4, KV: 4, Dh: 32, F: 192, E: 8, K: 2, V: 500, L: 4, eps: 1e-5,
                            ropeTheta: 10000, maxPositions: 256, tiedEmbeddings: false)
        let (w, _) = try RandomWeights.make(dims: d, seed: 3, init: scales)
        var p = SessionParams()
        p.nCtx = n + 1
        p.traceRoutes = true
        let s = try Session(decoder: Decoder(dims: d, weights: w), params: p)
        var tok: Int32 = 1
        for _ in 0..<n {
            try s.evaluate([tok])
            tok = (tok &* 31 &+ 7) % Int32(d.V)
        }
        let e = s.trace.experts, per = d.L * d.K
        var same = 0, total = 0
        for t in 1..<n {
            for l in 0..<d.L {
                let prev = e[((t - 1) * d.L + l) * d.K ..< ((t - 1) * d.L + l + 1) * d.K]
                for k in 0..<d.K {
                    total += 1
                    if prev.contains(e[t * per + l * d.K + k]) { same += 1 }
                }
            }
        }
        return Double(same) / Double(total)
    }

    /// hmst-bench's decode models (RandomInit.routed) route by token, as a trained model does:
    /// consecutive tokens share experts about as often as chance (2/8 for top-2 of 8), so decode
    /// rates are not lifted by rereading the same experts from the cache, which the plain init
    /// (every matrix 0.02, norms 1) does.
    func testRoutedInitRoutesByToken() throws {
        let routed = try expertRepeatShare(.routed), plain = try expertRepeatShare(.plain(std: 0.02))
        XCTAssertLessThan(routed, 0.38, "routed init: consecutive tokens share \(routed) of their experts")
        XCTAssertGreaterThan(plain, 0.38, "plain init: consecutive tokens share \(plain) of their experts")
    }

    func testBadInputsAreErrors() throws {
        let dec = try makeDecoder()
        var p = SessionParams()
        p.nCtx = 8
        let s = try Session(decoder: dec, params: p)
        XCTAssertThrowsError(try s.evaluate([]))
        XCTAssertThrowsError(try s.evaluate([61]))
        XCTAssertThrowsError(try s.evaluate([-1]))
        XCTAssertThrowsError(try s.logits())
        XCTAssertThrowsError(try s.evaluate([Int32](repeating: 1, count: 9)))
        try s.evaluate([Int32](repeating: 1, count: 8))
        XCTAssertThrowsError(try s.evaluate([1]))  // full
        s.reset()
        try s.evaluate([1])
        p.nCtx = 1000
        XCTAssertThrowsError(try Session(decoder: dec, params: p))
    }

    /// A context whose buffers cannot be had (a batch and vocabulary whose logits alone need
    /// 512 TiB, or sizes that overflow) is OUT_OF_MEMORY naming the buffer, not a trap.
    func testContextBuffersTooLargeAreErrors() throws {
        var d = DecoderTests.dims
        d.V = 1 << 31
        XCTAssertThrowsError(try Workspace(dims: d, maxT: 65536, nCtx: 64, widenCount: 1)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .outOfMemory)
            XCTAssertTrue((e as? HMSTError)?.message.contains("logits buffer (n_batch 65536") ?? false, "\(e)")
        }
        XCTAssertThrowsError(try FloatBuffer(count: Int.max / 2, for: "a test")) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("overflows") ?? false, "\(e)")
        }
        XCTAssertNoThrow(try Workspace(dims: DecoderTests.dims, maxT: 16, nCtx: 64, widenCount: 1))
    }
}

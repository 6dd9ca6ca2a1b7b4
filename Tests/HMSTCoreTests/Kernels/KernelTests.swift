// The C kernels: every SIMD variant the CPU has (AVX2, AVX-512) against the portable one, on
// shapes with row and column tails; conversions against Swift's own Float16 and bf16 rounding;
// the gradient norm's blocked sum of squares against Double.
import CKernels
import XCTest
@testable import HMSTCore

final class KernelTests: XCTestCase {
    override func tearDown() { hk_set_max_level(-1); hk_set_gemv_rows(0) }

    /// hk_gemv_f32, hk_gemv_bf16 and hk_gemv_f16 at every level this CPU has (portable, AVX2,
    /// AVX-512) against the portable one and against the exact sum over the stored (rounded)
    /// weights; a row's value independent of the range it was computed in and of the rows per pass.
    func testGEMVVariantsAgreeOnOddShapes() {
        var rng = RNG(seed: 3)
        for rows in [1, 3, 4, 5, 9, 17] {
            for cols in [1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96, 130, 160, 200] {
                let w = (0..<(rows * cols)).map { _ in rng.nextGaussian() }
                let x = (0..<cols).map { _ in rng.nextGaussian() }
                var wb = [UInt16](repeating: 0, count: w.count), wh = wb
                hk_f32_to_bf16(&wb, w, w.count)
                hk_f32_to_f16(&wh, w, w.count)
                var wbf = [Float](repeating: 0, count: w.count), whf = wbf
                hk_bf16_to_f32(&wbf, wb, w.count)
                hk_f16_to_f32(&whf, wh, w.count)
                // each kernel with the weights it reads, as f32
                let kernels: [(name: String, stored: [Float], run: (UnsafeMutablePointer<Float>, Int, Int) -> Void)] = [
                    ("f32", w, { hk_gemv_f32($0, w, x, cols, $1, $2) }),
                    ("bf16", wbf, { hk_gemv_bf16($0, wb, x, cols, $1, $2) }),
                    ("f16", whf, { hk_gemv_f16($0, wh, x, cols, $1, $2) }),
                ]
                func all(_ k: Int, _ r0: Int, _ r1: Int) -> [Float] {
                    var y = [Float](repeating: .nan, count: rows)
                    y.withUnsafeMutableBufferPointer { kernels[k].run($0.baseAddress!, r0, r1) }
                    return y
                }
                for k in kernels.indices {
                    let name = kernels[k].name
                    // every level this CPU has, each against the portable one
                    var results: [[Float]] = []
                    for level in 0...Int(hk_level()) {
                        hk_set_max_level(Int32(level))
                        let y = all(k, 0, rows)
                        results.append(y)
                        // the SIMD kernels take four rows at a time: a row's value must not depend on
                        // the range it was computed in (task boundaries, hence thread counts, differ)
                        for r in 0..<rows {
                            XCTAssertEqual(all(k, r, r + 1)[r], y[r], "level \(level): \(name) row \(r) of \(rows) x \(cols) alone")
                        }
                    }
                    hk_set_max_level(-1)
                    // the AVX-512 GEMVs read one or four rows per pass: the same values, bit for bit
                    if hk_level() >= Int32(HK_LEVEL_AVX512) {
                        var byRows: [[Float]] = []
                        for perPass in [1, 4] {
                            hk_set_gemv_rows(Int32(perPass))
                            XCTAssertEqual(hk_gemv_rows(0), Int32(perPass))
                            XCTAssertEqual(hk_gemv_rows(1), Int32(perPass))
                            XCTAssertEqual(hk_gemv_rows(2), Int32(perPass))
                            byRows.append(all(k, 0, rows))
                        }
                        hk_set_gemv_rows(0)
                        XCTAssertEqual(byRows[0], byRows[1], "\(name) rows per pass 1 vs 4: \(rows) x \(cols)")
                    }
                    for r in 0..<rows {
                        let exact = (0..<cols).reduce(0.0) { $0 + Double(kernels[k].stored[r * cols + $1]) * Double(x[$1]) }
                        XCTAssertEqual(Double(results[0][r]), exact, accuracy: 1e-4 * Double(cols), "portable \(name) rows \(rows) cols \(cols)")
                        for l in results.indices.dropFirst() {
                            XCTAssertEqual(results[l][r], results[0][r], accuracy: 1e-4 * Float(cols), "level \(l): \(name) rows \(rows) cols \(cols)")
                        }
                    }
                }
            }
        }
    }

    /// Attention over an f32 KV cache (hk_attend): at every SIMD level each output element is the
    /// fma chain Σ_s p_s·V[s, d] in s order over the probabilities the call left in its scratch, bit
    /// for bit, on head sizes with every kind of 16- and 64-column tail (a faster accumulation must
    /// keep that arithmetic; session 25's register-held AVX-512 one did, and measured no faster, since
    /// it reads the same values); nothing past the head is written; the portable level agrees within
    /// rounding.
    func testAttendF32AccumulatesInOrder() {
        guard hk_level() >= Int32(HK_LEVEL_AVX2) else { return }
        var rng = RNG(seed: 11)
        for Dh in [8, 16, 40, 64, 80, 96, 128, 200] {
            for n in [1, 2, 7, 33, 300] {
                let q = (0..<Dh).map { _ in rng.nextGaussian() }
                let K = (0..<(n * Dh)).map { _ in rng.nextGaussian() }, V = (0..<(n * Dh)).map { _ in rng.nextGaussian() }
                var outs: [[Float]] = []
                for level in 0...Int(hk_level()) {
                    hk_set_max_level(Int32(level))
                    var out = [Float](repeating: .nan, count: Dh + 1), p = [Float](repeating: 0, count: n)
                    out[Dh] = 7
                    hk_attend(&out, &p, q, K, V, n, Dh, 0.125)
                    XCTAssertEqual(out[Dh], 7, "Dh \(Dh) n \(n) level \(level): wrote past the head")
                    outs.append(Array(out[0..<Dh]))
                    guard level >= 1 else { continue }
                    let want = (0..<Dh).map { d -> Float in
                        var a: Float = 0
                        for s in 0..<n { a.addProduct(p[s], V[s * Dh + d]) }
                        return a
                    }
                    XCTAssertEqual(outs[level], want, "Dh \(Dh) n \(n) level \(level): not the fma chain in order")
                }
                hk_set_max_level(-1)
                for d in 0..<Dh { XCTAssertEqual(outs[1][d], outs[0][d], accuracy: 1e-4, "Dh \(Dh) n \(n) d \(d): AVX2 against portable") }
            }
        }
    }

    /// The GEMV that rounds x to bf16 (hk_gemv_bf16_dot), vdpbf16ps and portable: Σ bf16(w)·bf16(x)
    /// on shapes with tails of every size, past its 8192-column block and at many offsets from a
    /// cache line; rows outside the range asked for are left alone.
    func testBF16DotGEMVMatchesRoundedProducts() {
        var rng = RNG(seed: 4)
        // many offsets from a cache line (the sums must not depend on it: a GGUF file's weights, 32
        // bytes off a line, give what a safetensors file's aligned weights give, GGUFTests)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * 20000 * 3 + 128, alignment: 64)
        defer { buffer.deallocate() }
        for (i, (rows, cols)) in [(2, 1), (3, 7), (5, 31), (4, 32), (2, 33), (7, 127), (3, 128), (9, 200), (3, 8192 + 45), (2, 20000),
                                  (4, 64), (3, 96), (2, 8192 + 64)].enumerated() {
            let w = (0..<(rows * cols)).map { _ in rng.nextGaussian() }
            let x = (0..<cols).map { _ in rng.nextGaussian() }
            var w16 = [UInt16](repeating: 0, count: w.count)
            hk_f32_to_bf16(&w16, w, w.count)
            let wb = (buffer + (i * 10) % 64).bindMemory(to: UInt16.self, capacity: w.count)
            wb.update(from: w16, count: w.count)
            for level in Set([0, Int(hk_level())]).sorted() {
                hk_set_max_level(Int32(level))
                var y = [Float](repeating: .nan, count: rows)
                hk_gemv_bf16_dot(&y, wb, x, cols, 1, rows)
                XCTAssertTrue(y[0].isNaN, "level \(level): row 0 is outside the range")
                for r in 1..<rows {
                    var exact = 0.0, mag = 0.0
                    for c in 0..<cols {
                        let p = Double(bf16Round(w[r * cols + c])) * Double(bf16Round(x[c]))
                        exact += p
                        mag += abs(p)
                    }
                    XCTAssertEqual(Double(y[r]), exact, accuracy: 1e-5 * mag, "level \(level): row \(r) of \(rows) x \(cols)")
                }
            }
            hk_set_max_level(-1)
        }
        // rows of whole cache lines 32 bytes off a line (GGUF's alignment, loaded line by line and
        // spliced) give, bit for bit, what the same rows on a line give
        let aligned = UnsafeMutableRawPointer.allocate(byteCount: 2 * 40000 + 128, alignment: 64)
        defer { aligned.deallocate() }
        for (rows, cols) in [(3, 32), (4, 64), (5, 160), (3, 8192 + 96), (2, 19968)] {
            let w = (0..<(rows * cols)).map { _ in rng.nextGaussian() }
            let x = (0..<cols).map { _ in rng.nextGaussian() }
            var w16 = [UInt16](repeating: 0, count: w.count)
            hk_f32_to_bf16(&w16, w, w.count)
            let onLine = aligned.bindMemory(to: UInt16.self, capacity: w.count)
            onLine.update(from: w16, count: w.count)
            let off = (buffer + 32).bindMemory(to: UInt16.self, capacity: w.count)
            off.update(from: w16, count: w.count)
            var want = [Float](repeating: 0, count: rows), got = [Float](repeating: .nan, count: rows)
            hk_gemv_bf16_dot(&want, onLine, x, cols, 0, rows)
            hk_gemv_bf16_dot(&got, off, x, cols, 1, rows)
            XCTAssertTrue(got[0].isNaN)
            for r in 1..<rows { XCTAssertEqual(got[r].bitPattern, want[r].bitPattern, "row \(r) of \(rows) x \(cols), 32 bytes off") }
        }
    }

    private func bf16Round(_ v: Float) -> Float {
        var h: UInt16 = 0, out: Float = 0
        var x = v
        hk_f32_to_bf16(&h, &x, 1)
        hk_bf16_to_f32(&out, &h, 1)
        return out
    }

    func testConversions() {
        // f16: every bit pattern against Swift's Float16, portable and (where the CPU has it) F16C
        let all = (0...UInt16.max).map { $0 }
        for level in [0, -1] {
            hk_set_max_level(Int32(level))
            var f = [Float](repeating: 0, count: all.count)
            hk_f16_to_f32(&f, all, all.count)
            for (i, h) in all.enumerated() {
                let want = Float(Float16(bitPattern: h))
                XCTAssertTrue(want.isNaN ? f[i].isNaN : f[i].bitPattern == want.bitPattern, "level \(level): f16 \(h)")
            }
            var back = [UInt16](repeating: 0, count: all.count)
            hk_f32_to_f16(&back, f, f.count)
            for (i, h) in all.enumerated() where !f[i].isNaN { XCTAssertEqual(back[i], h, "level \(level)") }
            // narrowing rounds to nearest even and overflows to inf, as Float16(_: Float) does
            var rng = RNG(seed: 9)
            let wide = (0..<1003).map { i in i % 97 == 0 ? 70000 * (i % 2 == 0 ? 1 : -1) : rng.nextGaussian() * 300 }
            var narrow = [UInt16](repeating: 0, count: wide.count)
            hk_f32_to_f16(&narrow, wide, wide.count)
            for (i, v) in wide.enumerated() { XCTAssertEqual(narrow[i], Float16(v).bitPattern, "level \(level): \(v)") }
        }
        hk_set_max_level(-1)
        // bf16: widening then rounding is the identity; ties round to even
        var b = [UInt16](repeating: 0, count: 3)
        hk_f32_to_bf16(&b, [Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), 1.0], 3)
        XCTAssertEqual(b, [0x3F80, 0x3F82, 0x3F80])
        let raw = (0..<4096).map { UInt16($0 * 16) }
        var wide = [Float](repeating: 0, count: raw.count)
        hk_bf16_to_f32(&wide, raw, raw.count)
        var again = [UInt16](repeating: 0, count: raw.count)
        hk_f32_to_bf16(&again, wide, wide.count)
        for i in 0..<raw.count where !wide[i].isNaN { XCTAssertEqual(again[i], raw[i]) }
    }

    /// The levels whose f32 GEMM kernel this CPU runs: AVX-512 and AVX2 (with FMA and F16C).
    var gemmLevels: [Int32] {
        defer { hk_set_max_level(-1) }
        return [Int32(HK_LEVEL_AVX512), Int32(HK_LEVEL_AVX2)].filter { level in
            hk_set_max_level(level)
            return hk_level() == level && hk_gemm_f32_level() > 0
        }
    }

    /// The worst |C[m, n] - (alpha · Σ_k a(m, k) · b(k, n) + beta · c0(m, n))| over the sum of the
    /// terms' magnitudes, in double.
    func worstGemmError(_ C: [Float], ldc: Int, M: Int, N: Int, K: Int, a: (Int, Int) -> Double, b: (Int, Int) -> Double,
                        alpha: Double = 1, beta: Double = 0, c0: (Int, Int) -> Double = { _, _ in 0 }) -> Double {
        var worst = 0.0
        for m in 0..<M {
            for n in 0..<N {
                var sum = 0.0, mag = 0.0
                for k in 0..<K {
                    let p = a(m, k) * b(k, n)
                    sum += p
                    mag += abs(p)
                }
                let want = alpha * sum + beta * c0(m, n)
                worst = max(worst, abs(Double(C[m * ldc + n]) - want) / (abs(alpha) * mag + abs(beta * c0(m, n)) + 1e-30))
            }
        }
        return worst
    }

    /// hk_gemm_f32_wt (prefill's f32 product against stored weights): against a double-precision
    /// sum for f32, bf16 and f16 rows on ragged shapes (rows not a multiple of the 8-row tile,
    /// columns not of the 32-wide panel nor of its 16-row halves, depths not of 16, several
    /// 256-deep blocks); the 16-bit weights give the f32 entry's result on their widened values
    /// bit for bit (they are widened exactly as packed); rows are read ldw apart, C is written
    /// ldc apart and never read; the AVX2 kernel gives the AVX-512 one's bits; at the portable
    /// level the kernel declines.
    func testF32GemmAgainstStoredWeights() {
        var rng = RNG(seed: 21)
        for (M, N, K) in [(1, 1, 1), (13, 37, 29), (70, 1100, 300), (9, 33, 2), (8, 32, 513), (64, 96, 256), (17, 48, 16), (3, 20, 600)] {
            let ldw = K + 3, ldc = N + 5
            let A = (0..<(M * K)).map { _ in rng.nextGaussian() }
            let values = (0..<(N * K)).map { _ in rng.nextGaussian() }
            var W32 = [Float](repeating: .nan, count: N * ldw)   // NaN outside the rows
            var results: [Int32: [Float]] = [:]
            for type in [Int32(HK_WT_F32), Int32(HK_WT_BF16), Int32(HK_WT_F16)] {
                var W16 = [UInt16](repeating: 0x7fff, count: N * ldw)   // NaN in both 16-bit types
                for n in 0..<N {
                    let row = Array(values[(n * K)..<((n + 1) * K)])
                    if type == Int32(HK_WT_BF16) { hk_f32_to_bf16(&W16[n * ldw], row, K) }
                    if type == Int32(HK_WT_F16) { hk_f32_to_f16(&W16[n * ldw], row, K) }
                    if type == Int32(HK_WT_F32) { for k in 0..<K { W32[n * ldw + k] = row[k] } }
                }
                var wide = W32
                if type != Int32(HK_WT_F32) {
                    hk_set_max_level(-1)
                    type == Int32(HK_WT_BF16) ? hk_bf16_to_f32(&wide, W16, N * ldw) : hk_f16_to_f32(&wide, W16, N * ldw)
                }
                hk_set_max_level(0)
                var C = [Float](repeating: .nan, count: M * ldc)
                let declined = type == Int32(HK_WT_F32) ? hk_gemm_f32_wt(M, N, K, A, K, W32, type, ldw, &C, ldc)
                                                        : hk_gemm_f32_wt(M, N, K, A, K, W16, type, ldw, &C, ldc)
                hk_set_max_level(-1)
                XCTAssertEqual(declined, Int32(HK_GEMM_WT_UNAVAILABLE), "no kernel at the portable level: the caller's OpenBLAS path")
                for level in gemmLevels {
                    hk_set_max_level(level)
                    C = [Float](repeating: .nan, count: M * ldc)
                    for n in N..<ldc { for m in 0..<M { C[m * ldc + n] = 7 } }
                    let status = type == Int32(HK_WT_F32) ? hk_gemm_f32_wt(M, N, K, A, K, W32, type, ldw, &C, ldc)
                                                          : hk_gemm_f32_wt(M, N, K, A, K, W16, type, ldw, &C, ldc)
                    var same = [Float](repeating: .nan, count: M * ldc)
                    XCTAssertEqual(hk_gemm_f32_wt(M, N, K, A, K, wide, Int32(HK_WT_F32), ldw, &same, ldc), 0)
                    hk_set_max_level(-1)
                    XCTAssertEqual(status, 0)
                    for m in 0..<M { for n in N..<ldc { XCTAssertEqual(C[m * ldc + n], 7, "written past the row's N columns") } }
                    let got = (0..<M).flatMap { m in C[(m * ldc)..<(m * ldc + N)] }
                    if let first = results[type] {
                        // another kernel: the same FMAs in the same order per element, so the same bits
                        XCTAssertEqual(got, first, "level \(level) type \(type) \(M)x\(N)x\(K)")
                    } else {
                        let worst = worstGemmError(C, ldc: ldc, M: M, N: N, K: K, a: { Double(A[$0 * K + $1]) }, b: { Double(wide[$1 * ldw + $0]) })
                        XCTAssertLessThan(worst, 1e-5, "level \(level) type \(type) \(M)x\(N)x\(K)")
                        results[type] = got
                    }
                    // 16-bit weights: the f32 entry's result on their widened values, bit for bit
                    XCTAssertEqual((0..<M).flatMap { m in same[(m * ldc)..<(m * ldc + N)] }, got, "level \(level) type \(type) \(M)x\(N)x\(K)")
                }
            }
        }
        XCTAssertEqual(hk_gemm_f32_wt(2, 2, 2, [1, 1, 1, 1], 2, [Float](repeating: 1, count: 4), 7, 2, nil, 2), Int32(HK_GEMM_WT_UNAVAILABLE), "an unknown weight type")
    }

    /// Int8 matrices for the int8 GEMMs' tests: rows x K Gaussian values quantized to Q8_0, row-major
    /// and (where the layout applies: K a multiple of 64, at least 4 rows) row-quad, with the row
    /// ranges to multiply: the whole matrix, one starting inside a quad, the last rows (the
    /// row-major tail of a row-quad matrix).
    private struct Int8Matrix {
        let rows: Int, K: Int
        var q: [Int8], scales: [Float], quadQ: [Int8], quadScales: [Float]
        let quads: Bool
        var ranges: [(r0: Int, n: Int)] {
            [(0, rows), (min(rows - 1, 3), max(1, rows - 9)), (max(0, rows - 3), min(rows, 3))].filter { $0.n >= 1 && $0.r0 + $0.n <= rows }
        }
        /// (values, scales) of each layout this matrix has, with rows4
        var layouts: [(q: [Int8], scales: [Float], rows4: Bool)] {
            [(q, scales, false)] + (quads ? [(quadQ, quadScales, true)] : [])
        }

        init(rows: Int, K: Int, rng: inout RNG) {
            self.rows = rows
            self.K = K
            let values = (0..<(rows * K)).map { _ in rng.nextGaussian() }
            q = [Int8](repeating: 0, count: rows * K)
            scales = [Float](repeating: 0, count: rows * K / 32)
            hk_q8_quantize(&q, &scales, values, rows * K)
            quads = hk_q8_packable(rows, K) != 0
            (quadQ, quadScales) = (q, scales)
            if quads { hk_q8_pack_rows4(&quadQ, &quadScales, q, scales, rows, K, 0, rows) }
        }
    }

    /// Runs body(M, matrix, A[M, K], r0, N, values, scales, rows4) for every shape, row range and
    /// layout of the int8 GEMM tests.
    private func forEachInt8Case(seed: UInt64, _ body: (Int, Int8Matrix, [Float], Int, Int, [Int8], [Float], Bool) -> Void) {
        var rng = RNG(seed: seed)
        for (M, rows, K) in [(13, 37, 64), (70, 300, 576), (9, 6, 128), (8, 41, 1088), (1, 5, 32)] {
            let m = Int8Matrix(rows: rows, K: K, rng: &rng)
            let A = (0..<(M * K)).map { _ in rng.nextGaussian() }
            for (r0, N) in m.ranges {
                for (q, scales, rows4) in m.layouts { body(M, m, A, r0, N, q, scales, rows4) }
            }
        }
    }

    /// An int8 GEMM entry (hk_gemm_f32_q8 or hk_gemm_bf16_q8) declines a depth that is not whole
    /// blocks, a range past the matrix and a row-quad matrix whose depth is not a multiple of 64,
    /// leaving C alone.
    private func assertInt8GemmDeclinesBadShapes(_ gemm: (Int, Int, Int, [Float], Int, [Int8], [Float], Int, Int, Int32, inout [Float], Int) -> Int32,
                                                 _ name: String) {
        var C = [Float](repeating: 0, count: 4)
        let q = [Int8](repeating: 1, count: 256), sc = [Float](repeating: 1, count: 8)
        XCTAssertEqual(gemm(1, 1, 48, [Float](repeating: 1, count: 48), 48, q, sc, 4, 0, 0, &C, 1), Int32(HK_GEMM_WT_UNAVAILABLE),
                       name + ": a depth that is not whole blocks of 32")
        XCTAssertEqual(gemm(1, 2, 64, [Float](repeating: 1, count: 64), 64, q, sc, 4, 3, 0, &C, 2), Int32(HK_GEMM_WT_UNAVAILABLE),
                       name + ": rows 3 ..< 5 of a 4-row matrix")
        XCTAssertEqual(gemm(1, 1, 32, [Float](repeating: 1, count: 32), 32, q, sc, 8, 0, 1, &C, 1), Int32(HK_GEMM_WT_UNAVAILABLE),
                       name + ": a row-quad layout needs a depth that is a multiple of 64")
        XCTAssertEqual(C, [0, 0, 0, 0], name + ": a declined call leaves C alone")
    }

    /// hk_gemm_f32_q8 (int8 prompts on CPUs that multiply in f32): in both layouts and over every
    /// range, the result equals hk_gemm_f32_wt's over the dequantized rows bit for bit at every
    /// kernel level, and that is within 1e-5 of a double sum; C is written only within its N
    /// columns; the kernel declines at the portable level and for shapes that do not fit.
    func testF32GemmAgainstInt8Weights() {
        forEachInt8Case(seed: 29) { M, m, A, r0, N, wq, ws, rows4 in
            let rows = m.rows, K = m.K, ldc = N + 4
            var wide = [Float](repeating: 0, count: rows * K)
            hk_q8_dequantize(&wide, m.q, m.scales, rows * K)
            hk_set_max_level(0)
            var C = [Float](repeating: .nan, count: M * ldc)
            XCTAssertEqual(hk_gemm_f32_q8(M, N, K, A, K, wq, ws, rows, r0, rows4 ? 1 : 0, &C, ldc), Int32(HK_GEMM_WT_UNAVAILABLE),
                           "no kernel at the portable level")
            hk_set_max_level(-1)
            var first: [Float]? = nil
            for level in gemmLevels {
                hk_set_max_level(level)
                C = [Float](repeating: .nan, count: M * ldc)
                for m in 0..<M { for n in N..<ldc { C[m * ldc + n] = 7 } }
                let status = hk_gemm_f32_q8(M, N, K, A, K, wq, ws, rows, r0, rows4 ? 1 : 0, &C, ldc)
                var same = [Float](repeating: .nan, count: M * ldc)
                let sameStatus = wide.withUnsafeBufferPointer {
                    hk_gemm_f32_wt(M, N, K, A, K, $0.baseAddress! + r0 * K, Int32(HK_WT_F32), K, &same, ldc)
                }
                hk_set_max_level(-1)
                XCTAssertEqual(status, 0)
                XCTAssertEqual(sameStatus, 0)
                let label = "level \(level) rows4 \(rows4) \(M)x\(N) of \(rows) rows from \(r0), depth \(K)"
                for m in 0..<M { for n in N..<ldc { XCTAssertEqual(C[m * ldc + n], 7, "written past N: " + label) } }
                let got = (0..<M).flatMap { m in C[(m * ldc)..<(m * ldc + N)] }
                let sameRows = (0..<M).flatMap { m in same[(m * ldc)..<(m * ldc + N)] }
                XCTAssertTrue(got == sameRows, "the dequantized rows' bits: \(zip(got, sameRows).filter { $0 != $1 }.count) differ, " + label)
                if let first {
                    XCTAssertTrue(got == first, "another level's bits: " + label)
                } else {
                    let worst = worstGemmError(C, ldc: ldc, M: M, N: N, K: K, a: { Double(A[$0 * K + $1]) },
                                               b: { Double(wide[(r0 + $1) * K + $0]) })
                    XCTAssertLessThan(worst, 1e-5, label)
                    first = got
                }
            }
        }
        assertInt8GemmDeclinesBadShapes({ hk_gemm_f32_q8($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, &$10, $11) }, "hk_gemm_f32_q8")
    }

    /// hk_gemm_bf16_q8 (int8 prompts on CPUs that multiply in bf16): in both layouts and over every
    /// range, at the bf16 level (where the CPU has it) and the portable one, the result equals
    /// hk_gemm_bf16_wt's over the rows dequantized to bf16 by hk_q8_dequantize_bf16, bit for bit.
    func testBF16GemmAgainstInt8Weights() {
        forEachInt8Case(seed: 31) { M, m, A, r0, N, wq, ws, rows4 in
            let rows = m.rows, K = m.K
            var w16 = [UInt16](repeating: 0, count: rows * K)
            hk_q8_dequantize_bf16(&w16, m.q, m.scales, rows * K)
            for level: Int32 in [-1, 0] {
                hk_set_max_level(level)
                var C = [Float](repeating: .nan, count: M * N), want = C
                let status = hk_gemm_bf16_q8(M, N, K, A, K, wq, ws, rows, r0, rows4 ? 1 : 0, &C, N)
                let wantStatus = w16.withUnsafeBufferPointer { hk_gemm_bf16_wt(M, N, K, A, K, $0.baseAddress! + r0 * K, K, &want, N) }
                hk_set_max_level(-1)
                XCTAssertEqual(status, 0)
                XCTAssertEqual(wantStatus, 0)
                XCTAssertTrue(C == want, "\(zip(C, want).filter { $0 != $1 }.count) differ: level \(level) rows4 \(rows4) "
                              + "\(M)x\(N) of \(rows) rows from \(r0), depth \(K)")
            }
        }
        assertInt8GemmDeclinesBadShapes({ hk_gemm_bf16_q8($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, &$10, $11) }, "hk_gemm_bf16_q8")
    }

    /// hk_gemm_f32 (training's f32 GEMMs): every transpose with alpha and beta against a
    /// double-precision sum, on ragged shapes and strides wider than the matrices; beta = 0
    /// never reads C (NaN there is overwritten); alpha = 0 scales C without reading A or B (NaN
    /// there stays out); the AVX2 kernel gives the AVX-512 one's bits; at the portable level the
    /// kernel declines. 261 rows: a transposed A is copied in column blocks of 128 (AVX2: 126), so
    /// two whole blocks and a block ending inside a tile.
    func testGeneralF32GemmEveryLayout() {
        var rng = RNG(seed: 23)
        for (M, N, K) in [(1, 1, 1), (13, 37, 29), (70, 300, 530), (9, 33, 2), (8, 32, 513), (24, 160, 67), (261, 45, 530)] {
            for tA in [false, true] {
                for tB in [false, true] {
                    let lda = (tA ? M : K) + 2, ldb = (tB ? K : N) + 3, ldc = N + 1
                    let A = (0..<((tA ? K : M) * lda)).map { _ in rng.nextGaussian() }
                    let B = (0..<((tB ? N : K) * ldb)).map { _ in rng.nextGaussian() }
                    let C0 = (0..<(M * ldc)).map { _ in rng.nextGaussian() }
                    for (alpha, beta): (Float, Float) in [(1, 0), (0.5, 1), (-2, 0.25)] {
                        var first: [Float]? = nil
                        for level in gemmLevels {
                            hk_set_max_level(level)
                            var C = beta == 0 ? [Float](repeating: .nan, count: M * ldc) : C0
                            for m in 0..<M { C[m * ldc + N] = 7 }   // the column past N
                            let status = hk_gemm_f32(tA ? 1 : 0, tB ? 1 : 0, M, N, K, alpha, A, lda, B, ldb, beta, &C, ldc)
                            hk_set_max_level(-1)
                            XCTAssertEqual(status, 0)
                            for m in 0..<M { XCTAssertEqual(C[m * ldc + N], 7) }
                            if let first {
                                XCTAssertEqual(C, first, "level \(level): the same bits as the first kernel")
                                continue
                            }
                            let worst = worstGemmError(C, ldc: ldc, M: M, N: N, K: K,
                                                       a: { m, k in Double(tA ? A[k * lda + m] : A[m * lda + k]) },
                                                       b: { k, n in Double(tB ? B[n * ldb + k] : B[k * ldb + n]) },
                                                       alpha: Double(alpha), beta: Double(beta), c0: { Double(C0[$0 * ldc + $1]) })
                            XCTAssertLessThan(worst, 1e-5, "level \(level) \(M)x\(N)x\(K) tA \(tA) tB \(tB) alpha \(alpha) beta \(beta)")
                            first = C
                        }
                    }
                }
            }
        }
        hk_set_max_level(0)
        XCTAssertEqual(hk_gemm_f32(0, 0, 1, 1, 1, 1, [1], 1, [1], 1, 0, nil, 1), Int32(HK_GEMM_WT_UNAVAILABLE), "no kernel at the portable level")
        hk_set_max_level(-1)
        guard !gemmLevels.isEmpty else { return }
        var C: [Float] = [1, 2, 3, 4]
        XCTAssertEqual(hk_gemm_f32(0, 0, 2, 2, 2, 0, [Float.nan, 1, 1, 1], 2, [1, 1, 1, Float.nan], 2, 0.5, &C, 2), 0)
        XCTAssertEqual(C, [0.5, 1, 1.5, 2], "alpha = 0: beta · C, A and B unread")
        XCTAssertEqual(hk_gemm_f32(0, 0, 2, 2, 0, 1, [], 1, [], 2, 0, &C, 2), 0)
        XCTAssertEqual(C, [0, 0, 0, 0], "K = 0, beta = 0: zeros")
    }
}

/// The AVX2 and AVX-512 exp-based ops against the portable libm loops, over ordinary and extreme inputs.
final class VectorMathTests: XCTestCase {
    func testVectorExpOpsMatchPortable() throws {
        guard hk_level() >= HK_LEVEL_AVX2 else { throw XCTSkip("no AVX2 or AVX-512 on this CPU") }
        defer { hk_set_max_level(-1) }
        var rng = RNG(seed: 12)
        for n in [1, 7, 9, 15, 16, 17, 23, 100, 4096] {
            var x = (0..<n).map { _ in rng.nextGaussian() * 8 }
            if n > 3 { x[0] = -200; x[1] = 90; x[2] = -Float.infinity }
            if n > 8 { x[n - 1] = -Float.infinity }   // a masked entry in the 8- and 16-wide tails
            let b = (0..<n).map { _ in rng.nextGaussian() }, dh = (0..<n).map { _ in rng.nextGaussian() }
            var results: [[[Float]]] = []
            for level in 0...Int(hk_level()) {   // portable first, then every SIMD level
                hk_set_max_level(Int32(level))
                var sm = x
                let lse = hk_softmax(&sm, n)
                var h = [Float](repeating: 0, count: n), da = h, db = h
                let xs = x.map { max($0, -80) }   // silu inputs: finite
                hk_silu_mul(&h, xs, b, n)
                hk_swiglu_backward(&da, &db, dh, xs, b, n)
                results.append([sm, h, da, db, [lse]])
            }
            for l in 1..<results.count {
                for (k, name) in ["softmax", "silu_mul", "swiglu da", "swiglu db", "log-sum-exp"].enumerated() {
                    for i in 0..<results[0][k].count {
                        let v = results[l][k][i], w = results[0][k][i]
                        XCTAssertEqual(v, w, accuracy: 2e-6 * max(1, abs(w)), "level \(l): \(name)[\(i)] n=\(n)")
                    }
                }
                if n > 8 { XCTAssertEqual(results[l][0][n - 1], 0, "level \(l): exp(-inf) is exactly 0") }
            }
            XCTAssertEqual(results[0][0].reduce(0, +), 1, accuracy: 1e-5)
        }
    }

    /// rows.c's backward reductions at every level against Double references, on lengths with
    /// vector tails: the dot product, a softmax row's backward, RMSNorm's backward (dx and dw
    /// accumulated onto what they held).
    func testBackwardRowKernels() {
        defer { hk_set_max_level(-1) }
        var rng = RNG(seed: 22)
        for n in [1, 7, 16, 33, 64, 100, 257] {
            let a = (0..<n).map { _ in rng.nextGaussian() }, b = (0..<n).map { _ in rng.nextGaussian() }
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let p = (0..<n).map { _ in rng.nextFloat() }
            let smb = b.indices.map { Double(p[$0]) * (Double(b[$0]) - zip(p, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }) }
            let rows = 3
            let x = (0..<(rows * n)).map { _ in rng.nextGaussian() }, dy = (0..<(rows * n)).map { _ in rng.nextGaussian() }
            let w = (0..<n).map { _ in 1 + rng.nextGaussian() * 0.1 }, rstd = (0..<rows).map { _ in 0.5 + rng.nextFloat() }
            let dx0 = (0..<(rows * n)).map { _ in rng.nextGaussian() }, dw0 = (0..<n).map { _ in rng.nextGaussian() }
            var dxRef = dx0.map(Double.init), dwRef = dw0.map(Double.init)
            for r in 0..<rows {
                let rs = Double(rstd[r])
                var s = 0.0
                for c in 0..<n { s += Double(w[c]) * Double(dy[r * n + c]) * Double(x[r * n + c]) }
                let k = rs * rs * rs * s / Double(n)
                for c in 0..<n {
                    dxRef[r * n + c] += rs * Double(w[c]) * Double(dy[r * n + c]) - k * Double(x[r * n + c])
                    dwRef[c] += Double(dy[r * n + c]) * Double(x[r * n + c]) * rs
                }
            }
            for level in 0...Int(hk_level()) {
                hk_set_max_level(Int32(level))
                XCTAssertEqual(Double(hk_dot(a, b, n)), dot, accuracy: 1e-5 * Double(n), "dot, level \(level) n \(n)")
                var d = b
                hk_softmax_backward(&d, p, n)
                for i in 0..<n { XCTAssertEqual(Double(d[i]), smb[i], accuracy: 1e-4 * Double(n).squareRoot(), "softmax backward, level \(level) n \(n)") }
                var dx = dx0, dw = dw0
                hk_rmsnorm_backward(&dx, &dw, dy, x, w, rstd, rows, n)
                let worst = max(zip(dx, dxRef).map { abs(Double($0) - $1) }.max()!, zip(dw, dwRef).map { abs(Double($0) - $1) }.max()!)
                XCTAssertLessThan(worst, 1e-4 * Double(n).squareRoot(), "rmsnorm backward, level \(level) n \(n)")
            }
        }
    }

    /// The gradient norm's blocked sum of squares: every level against a Double reference, on
    /// lengths with block and vector tails, and GradClip.norm on a parameter set by hand.
    func testSumOfSquaresBlocks() throws {
        defer { hk_set_max_level(-1) }
        var rng = RNG(seed: 21)
        for (n, block) in [(1, 4096), (15, 4), (63, 64), (64, 64), (65, 64), (200, 33), (10_000, 4096), (9_000, 1)] {
            let x = (0..<n).map { _ in rng.nextGaussian() * 3 }
            let exact = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            for level in 0...Int(hk_level()) {
                hk_set_max_level(Int32(level))
                let s = hk_sumsq_blocks(x, n, block)
                XCTAssertEqual(s, exact, accuracy: 1e-5 * exact, "level \(level) n \(n) block \(block)")
            }
        }
        XCTAssertEqual(hk_sumsq_blocks([3, 4], 2, 0), 25)   // block 0: one block
        hk_set_max_level(-1)
        let p = Parameters(config: try MixtralConfig(vocabSize: 4096, hiddenSize: 128, intermediateSize: 24, numHiddenLayers: 1,
                                                        numAttentionHeads: 2, numKeyValueHeads: 1, maxPositionEmbeddings: 32,
                                                        ropeTheta: 10000, numLocalExperts: 2, numExpertsPerTok: 1))
        var sq = 0.0
        for i in 0..<p.count {
            let v = Float(i % 7) - 3
            p.grads.pointer[i] = v
            sq += Double(v * v)
        }
        XCTAssertEqual(Double(GradClip.norm(p)), sq.squareRoot(), accuracy: 1e-5 * sq.squareRoot())
        XCTAssertGreaterThan(p.count, 1 << 19)   // zeroed in parts when there are threads
        p.zeroGrads()
        XCTAssertTrue((0..<p.count).allSatisfy { p.grads.pointer[$0] == 0 })
    }
}

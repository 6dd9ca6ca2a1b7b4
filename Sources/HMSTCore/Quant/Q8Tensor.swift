// Q8Tensor: int8 weights in Q8_0 blocks held in memory hmst owns, and the conversions of whole
// weights and decoders between f32, bf16, f16 and int8.
//
// Layout (the block format of GGUF's Q8_0 with the scale kept apart): a [rows, cols] matrix with
// cols % 32 == 0 is stored as values[rows, cols] int8 in [-127, 127] and scales[rows, cols / 32]
// f32; element (r, c) is scales[r, c / 32] · values[r, c]. A block's scale is max|x| / 127 of
// its 32 values, which are rounded to nearest (ties to even). -128 never occurs (the GEMV moves
// signs between operands and relies on it).
//
// Only projection matrices are quantized (embedding, attention, experts, LM head) and only when
// cols % 32 == 0; norms and the router stay f32, as in llama.cpp's Q8_0 files.
import CKernels

public final class Q8Tensor: @unchecked Sendable {
    public static let block = Int(HK_Q8_BLOCK)

    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    public let rows: Int
    public let cols: Int

    init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        values = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * cols), alignment: 64).bindMemory(to: Int8.self, capacity: max(1, rows * cols))
        let nScales = max(1, rows * cols / Q8Tensor.block)
        scales = UnsafeMutableRawPointer.allocate(byteCount: nScales * 4, alignment: 64).bindMemory(to: Float.self, capacity: nScales)
    }

    deinit {
        UnsafeMutableRawPointer(values).deallocate()
        UnsafeMutableRawPointer(scales).deallocate()
    }

    public var weight: Weight {
        Weight(.q8(UnsafePointer(values), scales: UnsafePointer(scales)), rows: rows, cols: cols, owner: self)
    }

    /// Whether a matrix of this width can be stored as Q8_0 blocks.
    public static func fits(cols: Int) -> Bool { cols > 0 && cols % block == 0 }

    /// The int8 matrix `w` in the row-quad layout (`.q8Rows4`: hk_q8_pack_rows4), a copy hmst
    /// owns; any other weight, and matrices of fewer than 4 rows or a width that is not a multiple
    /// of 64, as they are. One core on Zen 5 streams it from DRAM at about 44 GB/s against 30
    /// for the row-major GEMV, and 1.7x as fast from cache (benchmarks/README.md, "int8 decode").
    /// Packing runs on the pool; when the source lies in a checkpoint's file mapping, its pages
    /// are dropped afterwards (ReleasableWeightMemory), so the process holds the int8 weights once.
    /// Only where the four-row AVX-512 VNNI kernel runs: elsewhere (AVX2, portable) the
    /// row-major kernels read rows with less index arithmetic, so the matrix stays as it is.
    /// A checkpoint stored with the row-quad layout (Q8Format's "rows4") is read as it is: nothing
    /// to copy here.
    public static func packedRows4(_ w: Weight, threads: Int = Threads.count) -> Weight {
        guard case let .q8(q, s) = w.storage, hk_q8_packable(w.rows, w.cols) != 0, hk_q8_level() >= 2 else { return w }
        let packed = pack(q, s, rows: w.rows, cols: w.cols, threads: threads)
        dropSource(w, q, s)
        return packed
    }

    /// Any weight quantized (when not int8 yet) in the row-quad layout, on every CPU (files
    /// written with Q8Format's "rows4"); a row-quad matrix as it is. w must be packable.
    static func rows4(_ w: Weight, threads: Int = Threads.count) -> Weight {
        if case .q8Rows4 = w.storage { return w }
        let q8 = quantize(w, threads: threads)
        guard case let .q8(q, s) = q8.storage else { return q8 }
        return withExtendedLifetime(q8) { pack(q, s, rows: w.rows, cols: w.cols, threads: threads) }
    }

    /// After a copy of w's values q and scales s: their pages dropped when they lie in a
    /// checkpoint's file mapping (ReleasableWeightMemory), so the process holds them once.
    private static func dropSource(_ w: Weight, _ q: UnsafePointer<Int8>, _ s: UnsafePointer<Float>) {
        guard let source = w.owner as? ReleasableWeightMemory else { return }
        source.release(UnsafeRawBufferPointer(start: q, count: w.count))
        source.release(UnsafeRawBufferPointer(start: s, count: w.count / Q8Tensor.block * 4))
    }

    /// A row-quad copy of row-major values and scales, packed on the pool.
    private static func pack(_ q: UnsafePointer<Int8>, _ s: UnsafePointer<Float>, rows: Int, cols: Int, threads: Int) -> Weight {
        let t = Q8Tensor(rows: rows, cols: cols)
        let chunks = splitRange((rows + 3) / 4, parts: max(1, threads) * 4)   // in quads
        parallelFor(chunks.count, threads: threads) { c in
            let r = chunks[c]
            hk_q8_pack_rows4(t.values, t.scales, q, s, rows, cols, 4 * r.lowerBound, min(rows, 4 * r.upperBound))
        }
        return Weight(.q8Rows4(UnsafePointer(t.values), scales: UnsafePointer(t.scales)), rows: rows, cols: cols, owner: t)
    }

    /// The layout this CPU's decode GEMV reads fastest: row-major int8 matrices reordered to
    /// row-quad where the VNNI kernel runs (packedRows4); row-quad ones (mapped from a "rows4"
    /// file) copied back to row-major elsewhere, where the AVX2 kernel reads row-quad at half its
    /// row-major speed (1536 x 512: 28 against 14 µs on one Zen 5 core; benchmarks/README.md),
    /// their mapped pages then dropped as packedRows4 drops a row-major file's.
    static func forDecode(_ w: Weight, threads: Int = Threads.count) -> Weight {
        if hk_q8_level() >= 2 { return packedRows4(w, threads: threads) }
        guard case let .q8Rows4(q, s) = w.storage else { return w }
        let out = rowMajor(w)
        dropSource(w, q, s)
        return out
    }

    /// A row-quad int8 matrix back in the row-major layout files hold; any other weight as it is.
    public static func rowMajor(_ w: Weight) -> Weight {
        guard case let .q8Rows4(q, s) = w.storage else { return w }
        let t = Q8Tensor(rows: w.rows, cols: w.cols)
        hk_q8_unpack_rows4(t.values, t.scales, q, s, w.rows, w.cols)
        return t.weight
    }

    /// Quantizes any weight (f32, bf16, or int8: returned row-major) row chunk by row chunk.
    public static func quantize(_ w: Weight, threads: Int = Threads.count) -> Weight {
        if w.isQ8 { return rowMajor(w) }
        let t = Q8Tensor(rows: w.rows, cols: w.cols)
        let cols = w.cols, nb = cols / block
        let chunks = splitRange(w.rows, parts: max(1, threads) * 4)
        parallelFor(chunks.count, threads: threads) { c in
            let r = chunks[c]
            let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(1, r.count * cols))
            defer { tmp.deallocate() }
            w.copyRows(r.lowerBound, r.upperBound, to: tmp)
            hk_q8_quantize(t.values + r.lowerBound * cols, t.scales + r.lowerBound * nb, tmp, r.count * cols)
        }
        return t.weight
    }
}

/// Owned f32 or bf16 copy of any weight (dequantizing int8).
func convertWeight(_ w: Weight, toBF16: Bool) throws -> Weight {
    let t = try OwnedTensor(count: w.count, bf16: toBF16, for: "a \(w.rows) x \(w.cols) weight as \(toBF16 ? "bf16" : "f32")")
    let f = FloatBuffer(count: toBF16 ? w.cols : 0, zeroed: false)
    for r in 0..<w.rows {
        if toBF16 {
            w.copyRow(r, to: f.pointer)
            hk_f32_to_bf16(t.raw.assumingMemoryBound(to: UInt16.self) + r * w.cols, f.pointer, w.cols)
        } else {
            w.copyRow(r, to: t.raw.assumingMemoryBound(to: Float.self) + r * w.cols)
        }
    }
    return t.weight(rows: w.rows, cols: w.cols)
}

/// x[n] rounded to nearest-even IEEE half into out. A finite value beyond half's range
/// (±65504) becomes ±inf there: the index of the first such value, or nil (NaN and ±inf in x
/// stay what they are and are not counted).
func roundToHalf(_ out: UnsafeMutablePointer<UInt16>, _ x: UnsafePointer<Float>, _ n: Int) -> Int? {
    hk_f32_to_f16(out, x, n)
    var from = 0
    while from < n {
        let i = hk_find_nonfinite_16(out + from, n - from, 0)
        guard i >= 0 && i < n - from else { return nil }
        if x[from + i].isFinite { return from + i }
        from += i + 1
    }
    return nil
}

/// Owned IEEE half copy of any weight (widening or dequantizing it first). A value beyond half's
/// range throws, naming the tensor and the element: the caller keeps the weight in another type.
func halfWeight(_ w: Weight, name: String) throws -> Weight {
    if case .f16 = w.storage { return w }
    let h = try AlignedBuffer<UInt16>(count: w.count, zeroed: false, for: "\(name) as f16")
    let f = FloatBuffer(count: w.cols, zeroed: false)
    for r in 0..<w.rows {
        w.copyRow(r, to: f.pointer)
        if let bad = roundToHalf(h.pointer + r * w.cols, f.pointer, w.cols) {
            throw HMSTError.invalidArgument("tensor \(name): element \(r * w.cols + bad) is \(f.pointer[bad]), beyond f16's range (±65504); hold it as bf16 or f32")
        }
    }
    return Weight(.f16(UnsafePointer(h.pointer)), rows: w.rows, cols: w.cols, owner: h)
}

extension DecoderWeights {
    /// The same decoder with the int8 matrices its GEMVs read (attention, experts, an untied LM
    /// head) in the layout this CPU decodes fastest (Q8Tensor.forDecode); the embedding table,
    /// read a row at a time, stays row-major.
    func packedForDecode() -> DecoderWeights {
        guard matrices.contains(where: \.isQ8) else { return self }
        func p(_ w: Weight) -> Weight { Q8Tensor.forDecode(w) }
        return DecoderWeights(
            embed: embed,
            layers: layers.map { l in
                LayerWeights(attnNorm: l.attnNorm, q: p(l.q), k: p(l.k), v: p(l.v), o: p(l.o), ffnNorm: l.ffnNorm, router: l.router,
                             experts: l.experts.map { ExpertWeights(w1: p($0.w1), w2: p($0.w2), w3: p($0.w3)) })
            },
            finalNorm: finalNorm,
            lmHead: tied ? embed : p(lmHead), tied: tied)
    }

    /// The same decoder with every projection matrix in `type` (.asStored: unchanged). Norms and
    /// routers stay f32; int8 applies to matrices whose width is a multiple of 32. Throws only for
    /// .f16, when a matrix holds a value beyond half's range.
    public func converted(to type: WeightType, threads: Int = Threads.count) throws -> DecoderWeights {
        func conv(_ w: Weight, _ name: String) throws -> Weight {
            switch type {
            case .asStored: return w
            case .f32: return w.typeName == "f32" ? w : try convertWeight(w, toBF16: false)
            case .bf16: return w.isBF16 ? w : try convertWeight(w, toBF16: true)
            case .f16: return try halfWeight(w, name: name)
            case .int8: return Q8Tensor.fits(cols: w.cols) ? Q8Tensor.quantize(w, threads: threads) : w
            }
        }
        let e = try conv(embed, MixtralNames.embed)
        return DecoderWeights(
            embed: e,
            layers: try layers.enumerated().map { i, l in
                let n = MixtralNames.layer(i, experts: l.experts.count)
                return LayerWeights(attnNorm: l.attnNorm, q: try conv(l.q, n.q), k: try conv(l.k, n.k), v: try conv(l.v, n.v),
                                    o: try conv(l.o, n.o), ffnNorm: l.ffnNorm, router: l.router,
                                    experts: try l.experts.enumerated().map { e, x in
                                        ExpertWeights(w1: try conv(x.w1, n.w1[e]), w2: try conv(x.w2, n.w2[e]), w3: try conv(x.w3, n.w3[e]))
                                    })
            },
            finalNorm: finalNorm,
            lmHead: tied ? e : try conv(lmHead, MixtralNames.lmHead), tied: tied)
    }
}

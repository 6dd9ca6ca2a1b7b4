// RandomWeights: a decoder with freshly initialised weights held in memory: normal(0, std)
// matrices as HF's initializer_range does, norms at 1. For `hmst init`, benchmarks and tests.
// Deterministic for a seed whatever the thread count: each tensor chunk has its own stream.
import CKernels

/// Memory for one initialised tensor, f32 or bf16.
final class OwnedTensor: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    let count: Int
    let bf16: Bool

    init(count: Int, bf16: Bool) {
        self.count = count
        self.bf16 = bf16
        raw = .allocate(byteCount: max(1, count) * (bf16 ? 2 : 4), alignment: 64)
    }

    deinit { raw.deallocate() }

    func weight(rows: Int, cols: Int) -> Weight {
        bf16 ? Weight(.bf16(UnsafePointer(raw.assumingMemoryBound(to: UInt16.self))), rows: rows, cols: cols, owner: self)
             : Weight(.f32(UnsafePointer(raw.assumingMemoryBound(to: Float.self))), rows: rows, cols: cols, owner: self)
    }
}

public enum RandomWeights {
    /// Returns the weights and, by HF tensor name, every tensor created (for saving).
    public static func make(dims d: DecoderDims, seed: UInt64, std: Float = 0.02, bf16: Bool = false)
        throws -> (weights: DecoderWeights, tensors: [(name: String, weight: Weight)]) {
        var tensors: [(name: String, weight: Weight)] = []
        var index: UInt64 = 0
        func fill(_ name: String, _ rows: Int, _ cols: Int, asBF16: Bool, constant: Float?) -> Weight {
            index += 1
            let t = OwnedTensor(count: rows * cols, bf16: asBF16)
            let chunk = 1 << 16
            let nChunks = (t.count + chunk - 1) / chunk
            let tensorSeed = seed &* 0x9E37_79B9_7F4A_7C15 &+ index
            parallelFor(nChunks) { c in
                var rng = RNG(seed: tensorSeed &+ UInt64(c) &* 0xD1B5_4A32_D192_ED03)
                let lo = c * chunk, hi = min(t.count, lo + chunk)
                var tmp = [Float](repeating: constant ?? 0, count: hi - lo)
                if constant == nil { for i in 0..<tmp.count { tmp[i] = rng.nextGaussian() * std } }
                tmp.withUnsafeBufferPointer { src in
                    if asBF16 {
                        hk_f32_to_bf16(t.raw.assumingMemoryBound(to: UInt16.self) + lo, src.baseAddress!, src.count)
                    } else {
                        (t.raw.assumingMemoryBound(to: Float.self) + lo).update(from: src.baseAddress!, count: src.count)
                    }
                }
            }
            let w = t.weight(rows: rows, cols: cols)
            tensors.append((name, w))
            return w
        }
        let weights = try DecoderWeights(
            dims: d,
            tensor: { name, r, c in fill(name, r, c, asBF16: bf16, constant: nil) },
            f32: { name, r, c in fill(name, r, c, asBF16: false, constant: name.hasSuffix("norm.weight") ? 1 : nil) })
        return (weights, tensors)
    }
}

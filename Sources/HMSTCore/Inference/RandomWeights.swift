// RandomWeights: a decoder with freshly initialised weights held in memory: normal(0, std)
// matrices as HF's initializer_range does, norms at 1 (or, for decode benchmarks, the scales of
// llamacpp_peer.py's model, whose routing depends on the token: RandomInit). For `hmst init`,
// benchmarks and tests.
// Deterministic for a seed whatever the thread count: each tensor chunk has its own stream.
import CKernels

/// Memory for one initialised tensor, f32 or bf16.
final class OwnedTensor: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    let count: Int
    let bf16: Bool

    init(count: Int, bf16: Bool, for what: @autoclosure () -> String = "a tensor") throws {
        self.count = count
        self.bf16 = bf16
        raw = try alignedAllocate(bytes: max(1, count) * (bf16 ? 2 : 4), for: what())
    }

    deinit { free(raw) }

    func weight(rows: Int, cols: Int) -> Weight {
        bf16 ? Weight(.bf16(UnsafePointer(raw.assumingMemoryBound(to: UInt16.self))), rows: rows, cols: cols, owner: self)
             : Weight(.f32(UnsafePointer(raw.assumingMemoryBound(to: Float.self))), rows: rows, cols: cols, owner: self)
    }
}

/// How RandomWeights scales its tensors.
public enum RandomInit: Sendable {
    /// every matrix normal(0, std), norms 1 (HF's initializer_range). The residual stream of such
    /// a model is dominated by the attention output rather than the token, so every token of a
    /// text routes alike: in moe512, consecutive tokens share 74% of their expert choices, and
    /// decode rereads experts from the cache (hmst-bench's moe512 decode rates up to 12% above
    /// the same shape with balanced routing).
    case plain(std: Float)
    /// the scales of benchmarks/llamacpp_peer.py's model: embeddings normal(0, 1), q/k 0.05, the
    /// router 0.5, the LM head 0.05, other matrices 0.02, norms 1 + normal(0, 0.1). Routing is
    /// token-dependent (consecutive tokens share 25% of their experts, chance for top-2 of 8), as
    /// in a trained model with a load-balancing loss: the honest case for decode speed.
    case routed

    /// The std of the matrix `name`.
    func std(_ name: String) -> Float {
        switch self {
        case let .plain(std): return std
        case .routed:
            if name == MixtralNames.embed { return 1 }
            if name == MixtralNames.lmHead || name.hasSuffix(".q_proj.weight") || name.hasSuffix(".k_proj.weight") { return 0.05 }
            if name.hasSuffix(MixtralNames.routerSuffix) { return 0.5 }
            return 0.02
        }
    }

    /// The std of a norm weight around 1.
    var normJitter: Float {
        switch self {
        case .plain: return 0
        case .routed: return 0.1
        }
    }
}

public enum RandomWeights {
    /// Returns the weights and, by HF tensor name, every tensor created (for saving).
    public static func make(dims d: DecoderDims, seed: UInt64, std: Float = 0.02, bf16: Bool = false)
        throws -> (weights: DecoderWeights, tensors: [(name: String, weight: Weight)]) {
        try make(dims: d, seed: seed, init: .plain(std: std), bf16: bf16)
    }

    /// Returns the weights scaled as `init` says and, by HF tensor name, every tensor created.
    public static func make(dims d: DecoderDims, seed: UInt64, init scales: RandomInit, bf16: Bool = false)
        throws -> (weights: DecoderWeights, tensors: [(name: String, weight: Weight)]) {
        // a model larger than the machine's memory is refused before any of it is allocated
        try requireMemory(bytes: Double(d.parameterCount) * (bf16 ? 2 : 4), for: "a random model of \(d.parameterCount) parameters")
        var tensors: [(name: String, weight: Weight)] = []
        var index: UInt64 = 0
        func fill(_ name: String, _ rows: Int, _ cols: Int, asBF16: Bool, norm: Bool) throws -> Weight {
            index += 1
            let std = norm ? scales.normJitter : scales.std(name), mean: Float = norm ? 1 : 0
            let t = try OwnedTensor(count: rows * cols, bf16: asBF16, for: "tensor \(name) (\(rows) x \(cols))")
            let chunk = 1 << 16
            let nChunks = (t.count + chunk - 1) / chunk
            let tensorSeed = seed &* 0x9E37_79B9_7F4A_7C15 &+ index
            parallelFor(nChunks) { c in
                var rng = RNG(seed: tensorSeed &+ UInt64(c) &* 0xD1B5_4A32_D192_ED03)
                let lo = c * chunk, hi = min(t.count, lo + chunk)
                var tmp = [Float](repeating: mean, count: hi - lo)
                if std != 0 { for i in 0..<tmp.count { tmp[i] = mean + rng.nextGaussian() * std } }
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
            tensor: { name, r, c in try fill(name, r, c, asBF16: bf16, norm: false) },
            f32: { name, r, c in try fill(name, r, c, asBF16: false, norm: MixtralNames.isNorm(name)) })
        return (weights, tensors)
    }
}

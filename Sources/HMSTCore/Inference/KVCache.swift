// KVCache: keys and values of every past position, per layer and KV head, laid out
// [L, KV, nCtx, Dh] so one head's keys are a contiguous [n, Dh] matrix for the attention GEMV.
// Stored as f32 (default) or bf16 (SessionParams.kvType: half the bytes decode reads per
// token at long contexts; new keys and values are rounded to nearest-even bf16).
import CKernels

public enum KVCacheType: String, Sendable {
    case f32, bf16
}

public final class KVCache: @unchecked Sendable {
    public let nCtx: Int
    public let type: KVCacheType
    let L: Int, KV: Int, Dh: Int
    let k: UnsafeMutableRawPointer   // [L, KV, nCtx, Dh] of f32 or bf16
    let v: UnsafeMutableRawPointer
    let count: Int
    /// Positions filled (the next token goes to position `length`).
    public internal(set) var length = 0

    init(dims d: DecoderDims, nCtx: Int, type: KVCacheType = .f32) throws {
        self.nCtx = nCtx
        self.type = type
        L = d.L; KV = d.KV; Dh = d.Dh
        count = d.L * d.KV * nCtx * d.Dh
        let bytes = max(1, count) * (type == .bf16 ? 2 : 4)
        k = try alignedAllocate(bytes: bytes, for: "the KV cache's keys (n_ctx \(nCtx))")
        do {
            v = try alignedAllocate(bytes: bytes, for: "the KV cache's values (n_ctx \(nCtx))")
        } catch {
            free(k)
            throw error
        }
    }

    deinit {
        free(k)
        free(v)
    }

    @inline(__always) private func offset(_ l: Int, _ h: Int) -> Int { ((l * KV + h) * nCtx) * Dh }

    /// Start of head h's keys in layer l: [nCtx, Dh] (f32 cache)
    @inline(__always) func keys(_ l: Int, _ h: Int) -> UnsafeMutablePointer<Float> {
        k.assumingMemoryBound(to: Float.self) + offset(l, h)
    }

    @inline(__always) func values(_ l: Int, _ h: Int) -> UnsafeMutablePointer<Float> {
        v.assumingMemoryBound(to: Float.self) + offset(l, h)
    }

    /// The same for a bf16 cache.
    @inline(__always) func keys16(_ l: Int, _ h: Int) -> UnsafeMutablePointer<UInt16> {
        k.assumingMemoryBound(to: UInt16.self) + offset(l, h)
    }

    @inline(__always) func values16(_ l: Int, _ h: Int) -> UnsafeMutablePointer<UInt16> {
        v.assumingMemoryBound(to: UInt16.self) + offset(l, h)
    }

    /// Stores new keys/values of T tokens at positions pos0..<pos0+T.
    /// kNew, vNew: [T, KV*Dh]
    func store(layer l: Int, pos0: Int, T: Int, kNew: UnsafePointer<Float>, vNew: UnsafePointer<Float>) {
        for t in 0..<T {
            for h in 0..<KV {
                let src = t * KV * Dh + h * Dh, dst = (pos0 + t) * Dh
                if type == .bf16 {
                    hk_f32_to_bf16(keys16(l, h) + dst, kNew + src, Dh)
                    hk_f32_to_bf16(values16(l, h) + dst, vNew + src, Dh)
                } else {
                    (keys(l, h) + dst).update(from: kNew + src, count: Dh)
                    (values(l, h) + dst).update(from: vNew + src, count: Dh)
                }
            }
        }
    }

    public func reset() { length = 0 }

    /// Forgets positions >= n (n <= length), e.g. to rewind to a shared prompt prefix.
    public func truncate(to n: Int) { length = max(0, min(n, length)) }

    /// Replaces this cache's contents with the first n positions of another cache of the same
    /// shape and type (n <= other.length, n <= nCtx).
    func copyRows(from other: KVCache, count n: Int) {
        precondition(other.type == type && other.L == L && other.KV == KV && other.Dh == Dh && n <= other.length && n <= nCtx)
        let size = type == .bf16 ? 2 : 4
        for l in 0..<L {
            for h in 0..<KV {
                let dst = ((l * KV + h) * nCtx) * Dh * size, src = ((l * KV + h) * other.nCtx) * Dh * size
                (k + dst).copyMemory(from: other.k + src, byteCount: n * Dh * size)
                (v + dst).copyMemory(from: other.v + src, byteCount: n * Dh * size)
            }
        }
        length = n
    }

    public var bytes: Int { 2 * count * (type == .bf16 ? 2 : 4) }
}

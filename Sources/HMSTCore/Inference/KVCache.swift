// KVCache: keys and values of every past position, per layer and KV head, laid out
// [L, KV, nCtx, Dh] so one head's keys are a contiguous [n, Dh] matrix for the attention GEMV.

public final class KVCache: @unchecked Sendable {
    public let nCtx: Int
    let L: Int, KV: Int, Dh: Int
    let k: FloatBuffer   // [L, KV, nCtx, Dh]
    let v: FloatBuffer   // [L, KV, nCtx, Dh]
    /// Positions filled (the next token goes to position `length`).
    public internal(set) var length = 0

    init(dims d: DecoderDims, nCtx: Int) {
        self.nCtx = nCtx
        L = d.L; KV = d.KV; Dh = d.Dh
        k = FloatBuffer(count: d.L * d.KV * nCtx * d.Dh, zeroed: false)
        v = FloatBuffer(count: d.L * d.KV * nCtx * d.Dh, zeroed: false)
    }

    /// Start of head h's keys in layer l: [nCtx, Dh]
    @inline(__always) func keys(_ l: Int, _ h: Int) -> UnsafeMutablePointer<Float> {
        k.pointer + ((l * KV + h) * nCtx) * Dh
    }

    @inline(__always) func values(_ l: Int, _ h: Int) -> UnsafeMutablePointer<Float> {
        v.pointer + ((l * KV + h) * nCtx) * Dh
    }

    /// Stores new keys/values of T tokens at positions pos0..<pos0+T.
    /// kNew, vNew: [T, KV*Dh]
    func store(layer l: Int, pos0: Int, T: Int, kNew: UnsafePointer<Float>, vNew: UnsafePointer<Float>) {
        for t in 0..<T {
            for h in 0..<KV {
                (keys(l, h) + (pos0 + t) * Dh).update(from: kNew + t * KV * Dh + h * Dh, count: Dh)
                (values(l, h) + (pos0 + t) * Dh).update(from: vNew + t * KV * Dh + h * Dh, count: Dh)
            }
        }
    }

    public func reset() { length = 0 }

    /// Forgets positions >= n (n <= length), e.g. to rewind to a shared prompt prefix.
    public func truncate(to n: Int) { length = max(0, min(n, length)) }

    public var bytes: Int { (k.count + v.count) * 4 }
}

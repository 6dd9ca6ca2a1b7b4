// StepBuffers: every activation and gradient buffer of a training step, allocated once for a
// batch shape (B, T) and reused by every step of that shape: no allocation in the step.
// With gradient checkpointing a layer keeps only its input (and its routing, which the
// load-balancing loss needs for all layers at once); the rest lives in one LayerActs that
// backward refills by re-running each layer's forward. activationBytes measures the saving.

typealias I32Buffer = AlignedBuffer<Int32>

/// Counts the bytes of the buffers it makes; one that cannot be had is OUT_OF_MEMORY (the
/// batch shape comes from the caller; checkStepFits refuses the plainly too large up front).
struct BufferArena {
    var bytes = 0
    mutating func f(_ n: Int) throws -> FloatBuffer { bytes += n * 4; return try FloatBuffer(count: n, for: "a training step's buffers") }
    mutating func i(_ n: Int) throws -> I32Buffer { bytes += n * 4; return try I32Buffer(count: n, for: "a training step's buffers") }
}

/// A layer's activations beyond its input (N = B·T tokens, NK = N·K expert slots).
final class LayerActs {
    let xn1, rstd1: FloatBuffer      // [N, C], [N]    input RMSNorm and its 1/rms
    let q, k, v: FloatBuffer         // [N, H·Dh], [N, KV·Dh] ×2, after RoPE
    let probs: FloatBuffer           // [B, H, T, T]   attention probabilities
    let att: FloatBuffer             // [N, H·Dh]      attention output before o_proj
    let x2: FloatBuffer              // [N, C]         after the attention residual
    let xn2, rstd2: FloatBuffer      // [N, C], [N]
    let gates: FloatBuffer           // [N, K]         renormalised top-K router weights
    let order: I32Buffer             // [NK]           n·K + slot of each expert slot, grouped by expert
    let pos: I32Buffer               // [N·K]          where (n, slot) sits in that grouping
    var offsets: [Int]               // [E + 1]        expert e owns rows offsets[e] ..< offsets[e+1]
    let ea, eb: FloatBuffer          // [NK, F]        x·W1ᵀ and x·W3ᵀ per slot
    let ey: FloatBuffer              // [NK, C]        expert output before the gate

    init(_ s: StepShape, _ a: inout BufferArena) throws {
        let N = s.N, NK = s.N * s.d.K, d = s.d
        xn1 = try a.f(N * d.C); rstd1 = try a.f(N)
        q = try a.f(N * d.qDim); k = try a.f(N * d.kvDim); v = try a.f(N * d.kvDim)
        probs = try a.f(s.B * d.H * s.T * s.T); att = try a.f(N * d.qDim)
        x2 = try a.f(N * d.C); xn2 = try a.f(N * d.C); rstd2 = try a.f(N)
        gates = try a.f(N * d.K); order = try a.i(NK); pos = try a.i(NK)
        offsets = [Int](repeating: 0, count: d.E + 1)
        ea = try a.f(NK * d.F); eb = try a.f(NK * d.F); ey = try a.f(NK * d.C)
    }
}

struct StepShape: Equatable {
    let d: DecoderDims
    let B: Int
    let T: Int
    var N: Int { B * T }
}

extension StepShape {
    /// About the bytes StepBuffers allocates for this shape (the same terms, counted in Double so
    /// that absurd shapes cannot overflow): activations per layer (or one set and every layer's
    /// input with checkpointing), the logits, the backward scratch.
    func estimatedBytes(checkpointing: Bool) -> Double {
        let b = Double(B), t = Double(T), n = b * t, nk = n * Double(d.K)   // not N: B·T may overflow Int
        let c = Double(d.C), q = Double(d.qDim), kv = Double(d.kvDim), f = Double(d.F)
        let perLayerActs = n * (4 * c + 2 * q + 2 * kv + Double(d.K) + 3) + b * Double(d.H) * t * t + nk * (2 * f + c + 2)
        let layers = Double(d.L)
        let acts = checkpointing ? perLayerActs : layers * perLayerActs
        let kept = layers * n * (c + Double(d.E) + Double(d.K))
        let scratch = n * Double(d.V) + n * (10 * c + 2 * q + 2 * kv + 3 * Double(d.E)) + nk * (4 * f + 3 * c)
        return 4 * (acts + kept + scratch)
    }
}

/// OUT_OF_MEMORY before a trainer allocates anything when one step of B × T tokens needs more
/// memory than the machine has (Swift's allocations trap instead of failing).
func checkStepFits(dims d: DecoderDims, B: Int, T: Int, checkpointing: Bool) throws {
    try requireMemory(bytes: StepShape(d: d, B: B, T: T).estimatedBytes(checkpointing: checkpointing),
                      for: "a training step of \(B) x \(T) tokens (its buffers)",
                      hint: " (lower the batch size or sequence length\(checkpointing ? "" : ", or turn on gradient checkpointing"))")
}

final class StepBuffers {
    let shape: StepShape
    let checkpointing: Bool
    let xIn: [FloatBuffer]           // L × [N, C]  each layer's input (kept in both modes)
    let rprobs: FloatBuffer          // [L, N, E]   router probabilities of every layer
    let topIdx: I32Buffer            // [L, N, K]   expert choices of every layer
    let acts: [LayerActs]            // L sets, or 1 shared set refilled per layer when checkpointing
    // forward scratch
    let inputs, targets: I32Buffer   // [N]
    let cos, sin, negSin: FloatBuffer // [N, Dh/2]  RoPE tables per row (positions restart per sequence)
    let o: FloatBuffer               // [N, C]      o_proj output
    let rl: FloatBuffer              // [N, E]      router logits
    let xe: FloatBuffer              // [NK, C]     expert inputs grouped by expert
    let h: FloatBuffer               // [NK, F]     silu(a)·b
    let xOut: FloatBuffer            // [N, C]      the last layer's output (and recompute's sink)
    let xnF, rstdF: FloatBuffer      // [N, C], [N] final norm
    let logits: FloatBuffer          // [N, V]      logits, then probabilities, then dlogits
    // backward scratch
    let dx, dx2, dxn1, dxn2: FloatBuffer // [N, C]
    let dgates: FloatBuffer          // [N, K]
    let dys, dxe: FloatBuffer        // [NK, C]
    let dh, da, db: FloatBuffer      // [NK, F]
    let drl: FloatBuffer             // [N, E]
    let dAllRouter: FloatBuffer      // [L, N, E]   load-balancing loss gradient, all layers
    let datt, dq: FloatBuffer        // [N, H·Dh]
    let dk, dv: FloatBuffer          // [N, KV·Dh]
    let attScratch: FloatBuffer      // [B·KV, T, T] dS per (sequence, KV group) task
    /// Bytes of everything above.
    let bytes: Int
    /// Bytes of what is kept across layers between forward and backward (the part
    /// checkpointing shrinks): layer inputs, routing and the per-layer activation sets.
    let activationBytes: Int

    init(shape s: StepShape, checkpointing: Bool) throws {
        self.shape = s
        self.checkpointing = checkpointing
        let d = s.d, N = s.N, NK = N * d.K, half = d.Dh / 2
        var a = BufferArena()
        xIn = try (0..<d.L).map { _ in try a.f(N * d.C) }
        rprobs = try a.f(d.L * N * d.E); topIdx = try a.i(d.L * N * d.K)
        acts = try (0..<(checkpointing ? 1 : d.L)).map { _ in try LayerActs(s, &a) }
        activationBytes = a.bytes
        inputs = try a.i(N); targets = try a.i(N)
        cos = try a.f(N * half); sin = try a.f(N * half); negSin = try a.f(N * half)
        o = try a.f(N * d.C); rl = try a.f(N * d.E); xe = try a.f(NK * d.C); h = try a.f(NK * d.F)
        xOut = try a.f(N * d.C); xnF = try a.f(N * d.C); rstdF = try a.f(N); logits = try a.f(N * d.V)
        dx = try a.f(N * d.C); dx2 = try a.f(N * d.C); dxn1 = try a.f(N * d.C); dxn2 = try a.f(N * d.C)
        dgates = try a.f(N * d.K); dys = try a.f(NK * d.C); dxe = try a.f(NK * d.C)
        dh = try a.f(NK * d.F); da = try a.f(NK * d.F); db = try a.f(NK * d.F)
        drl = try a.f(N * d.E); dAllRouter = try a.f(d.L * N * d.E)
        datt = try a.f(N * d.qDim); dq = try a.f(N * d.qDim); dk = try a.f(N * d.kvDim); dv = try a.f(N * d.kvDim)
        attScratch = try a.f(s.B * d.KV * s.T * s.T)
        bytes = a.bytes
        // RoPE tables per row, fixed for the shape: positions restart in every sequence
        let T = s.T
        RoPE.tables(cos: cos.pointer, sin: sin.pointer, invFreq: RoPE.inverseFrequencies(Dh: d.Dh, theta: d.ropeTheta), pos0: 0, T: T)
        for b in 1..<max(s.B, 1) {
            (cos.pointer + b * T * half).update(from: cos.pointer, count: T * half)
            (sin.pointer + b * T * half).update(from: sin.pointer, count: T * half)
        }
        for i in 0..<(N * half) { negSin.pointer[i] = -sin.pointer[i] }
    }

    /// The activation set layer l works in.
    func layerActs(_ l: Int) -> LayerActs { checkpointing ? acts[0] : acts[l] }
}

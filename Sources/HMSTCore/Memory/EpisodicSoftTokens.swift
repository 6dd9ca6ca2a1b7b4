// EpisodicSoftTokens: how the episodic tier's SSM state reaches the model (issue 11): the key an
// entry stores (the final SSM state pooled over channels, unit length: EpisodicMemory's key) is
// projected to K soft embeddings that stand inside `<mem>` … `</mem>` in place of the fact's text:
//   h[Di, N]  = final state of the mixer over the fact's hidden states [T, C]   (MambaMixer)
//   v[N]      = (1/Di) Σ_d h[d, :]                                              (MambaState.pooled)
//   key[N]    = v / |v|                                                         (what the memory stores)
//   soft[K·C] = W[K·C, N] · key + b                                             (this file's projection)
// The input is the stored key rather than the whole state, so a retrieved entry is injected from
// what the memory already holds (no re-encoding of its text); the price is that the projection
// sees N = 256 numbers per fact. Trained in Stage 2 with the mixer (Train/MemoryTuning/,
// `--episodic-soft-tokens K`); the gradient stops at the base model's hidden states of the fact.
// One ParameterSet: the mixer's nine tensors (HF names under "mixer."), then the projection.
// Stored with the checkpoint:
//   episodic_soft_tokens.safetensors  "mixer.<HF MambaMixer name>" ..., "soft_tokens.weight" [K·C, N],
//                                     "soft_tokens.bias" [K·C]; f32
//   episodic_soft_tokens.json         format, version, hidden_size, state_size, tokens, input
//                                     ("pooled_unit_key"), the weights' hash, training summary
import CBLAS

public final class EpisodicSoftTokens: ParameterSet, @unchecked Sendable {
    public static let weightsName = "episodic_soft_tokens.safetensors"
    public static let configName = "episodic_soft_tokens.json"
    static let formatName = "hmst-episodic-soft-tokens"
    static let formatVersion = 1
    /// what the projection reads (the only summary of the state this version knows)
    public static let inputKind = "pooled_unit_key"
    public static let maxTokens = 8

    /// C: the model's hidden size, N: the SSM state size (the key's), K: soft tokens per entry
    public let C: Int, N: Int, K: Int
    public let mixerConfig: MambaConfig
    public let names: [String]
    public let shapes: [[Int]]
    public let offsets: [Int]
    public let count: Int
    public let values: FloatBuffer
    public let grads: FloatBuffer
    public let roles: [ParameterRole]
    /// the mixer over values (its weights are views of the first tensors), and its gradients
    public let mixer: MambaMixer
    let mixerGrads: MambaMixerWeights
    public var summary: JSONValue = .object([])

    public init(C: Int, N: Int = 256, K: Int) throws {
        guard K >= 1, K <= EpisodicSoftTokens.maxTokens else {
            throw HMSTError.invalidArgument("episodic soft tokens: K = \(K) must be in 1 ... \(EpisodicSoftTokens.maxTokens)")
        }
        mixerConfig = try MambaConfig.episodicMemory(hiddenSize: C, stateSize: N)
        self.C = C
        self.N = N
        self.K = K
        var n: [String] = [], sh: [[Int]] = [], r: [ParameterRole] = []
        for t in MambaTensor.allCases {
            n.append("mixer." + t.hfName)
            sh.append(t.shape(mixerConfig))
            switch t {
            case .inProj, .convWeight, .xProj, .dtProj, .outProj: r.append(.matrix)
            case .convBias, .dtBias: r.append(.bias)
            case .aLog, .d: r.append(.vector)
            }
        }
        n += ["soft_tokens.weight", "soft_tokens.bias"]
        sh += [[K * C, N], [K * C]]
        r += [.matrix, .bias]
        names = n
        shapes = sh
        roles = r
        (offsets, count, values, grads) = parameterStorage(sh)
        mixer = MambaMixer(weights: try MambaMixerWeights(config: mixerConfig, sharing: values))
        mixerGrads = try MambaMixerWeights(config: mixerConfig, sharing: grads)
    }

    /// A fresh set: the mixer from `mixerWeights` (the episodic memory's seeded weights when nil,
    /// so keys start as today's), the projection N(0, scale²): a unit key then gives rows whose
    /// RMS is `scale` (pass the token embeddings' RMS), bias 0.
    public static func initialised(C: Int, N: Int = 256, K: Int, scale: Float, seed: UInt64,
                                   mixerWeights: MambaMixerWeights? = nil) throws -> EpisodicSoftTokens {
        let s = try EpisodicSoftTokens(C: C, N: N, K: K)
        let w = mixerWeights ?? MambaMixerWeights.random(config: s.mixerConfig, seed: EpisodicMemoryConfig().seed)
        guard w.config == s.mixerConfig else { throw HMSTError.invalidArgument("episodic soft tokens: the mixer weights are for another shape") }
        s.values.pointer.update(from: w.storage.pointer, count: w.count)
        guard scale > 0, scale.isFinite else { throw HMSTError.invalidArgument("episodic soft tokens: scale \(scale) must be > 0") }
        var rng = RNG(seed: seed)
        let p = s.projection
        for i in 0..<(K * C * N) { p[i] = rng.nextGaussian() * scale }
        return s
    }

    /// W [K·C, N] and b [K·C] inside values
    var projection: UnsafeMutablePointer<Float> { values.pointer + offsets[MambaTensor.allCases.count] }
    var projectionBias: UnsafeMutablePointer<Float> { values.pointer + offsets[MambaTensor.allCases.count + 1] }

    /// The mixer's weights as a standalone copy (what an EpisodicMemory for this model uses).
    public func mixerWeightsCopy() -> MambaMixerWeights {
        let w = MambaMixerWeights(config: mixerConfig)
        w.storage.pointer.update(from: values.pointer, count: w.count)
        return w
    }

    /// Whether `w` holds exactly this set's mixer weights (an episodic memory's keys are only
    /// meaningful to the projection when they came from the same mixer).
    public func hasMixer(_ w: MambaMixerWeights) -> Bool {
        guard w.config == mixerConfig else { return false }
        return memcmp(w.storage.pointer, values.pointer, w.count * 4) == 0
    }

    // MARK: forward and backward

    /// What encode keeps for backward: the mixer's tape and the pooled state's norm.
    public struct Trace {
        let tape: MambaTape
        let T: Int
        /// |v|, the pooled state's length before normalisation
        let norm: Float
    }

    /// The key of hidden states [T, C] (the fact's final-norm hidden states): the final state,
    /// pooled over channels, unit length [N]; with trace, what backward needs.
    public func encode(hidden: [Float], trace: Bool = false, threads: Int = Threads.count) throws -> (key: [Float], trace: Trace?) {
        guard !hidden.isEmpty, hidden.count % C == 0 else {
            throw HMSTError.invalidArgument("episodic soft tokens: hidden states of \(hidden.count) values are not rows of \(C)")
        }
        var state = MambaState(config: mixerConfig)
        let tape = trace ? MambaTape(config: mixerConfig) : nil
        _ = try mixer.forward(hidden, state: &state, tape: tape, threads: threads)
        let v = state.pooled()
        var ss = 0.0
        for x in v { ss += Double(x) * Double(x) }
        let norm = Float(ss.squareRoot())
        let key = try EpisodicMemory.unit(v, "episodic soft tokens: the SSM state")   // exactly the stored key
        return (key, tape.map { Trace(tape: $0, T: hidden.count / C, norm: norm) })
    }

    /// out[K·C] = W[K·C, N] · key[N] + b: the K soft embeddings of one entry, row after row.
    public func project(key: [Float]) throws -> [Float] {
        guard key.count == N else { throw HMSTError.invalidArgument("episodic soft tokens: a key of \(key.count) values, expected N = \(N)") }
        guard key.allSatisfy(\.isFinite) else { throw HMSTError.invalidArgument("episodic soft tokens: the key is not finite") }
        var out = Array(UnsafeBufferPointer(start: projectionBias, count: K * C))
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(K * C), Int32(N), 1, projection, Int32(N), key, 1, 1, &out, 1)
        return out
    }

    /// Differentiates soft = project(encode(hidden).key) given dSoft = dL/dsoft [K·C]; adds to
    /// grads (projection and mixer). No gradient flows into the hidden states (stopped there).
    ///   dW += dsoft ⊗ key;  db += dsoft;  dkey = Wᵀ dsoft
    ///   dv = (dkey − key (key·dkey)) / |v|      (key = v / |v|)
    ///   dh[d, n] = dv[n] / Di                   (v = channel mean of h)
    public func backward(dSoft: [Float], key: [Float], trace: Trace, threads: Int = Threads.count) throws {
        guard dSoft.count == K * C, key.count == N, trace.tape.config == mixerConfig, trace.tape.T == trace.T else {
            throw HMSTError.invalidArgument("episodic soft tokens backward: dSoft has \(dSoft.count) values (expected \(K * C)), key \(key.count) (expected \(N))")
        }
        let gW = grads.pointer + offsets[MambaTensor.allCases.count], gb = grads.pointer + offsets[MambaTensor.allCases.count + 1]
        cblas_sger(CblasRowMajor, Int32(K * C), Int32(N), 1, dSoft, 1, key, 1, gW, Int32(N))
        for i in 0..<(K * C) { gb[i] += dSoft[i] }
        var dkey = [Float](repeating: 0, count: N)
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(K * C), Int32(N), 1, projection, Int32(N), dSoft, 1, 0, &dkey, 1)
        guard trace.norm > 0 else { return }   // a zero state: the key is constant there
        var dot: Float = 0
        for n in 0..<N { dot += key[n] * dkey[n] }
        let Di = mixerConfig.intermediateSize
        let scale = 1 / (trace.norm * Float(Di))
        var dh = [Float](repeating: 0, count: Di * N)
        for d in 0..<Di { for n in 0..<N { dh[d * N + n] = (dkey[n] - key[n] * dot) * scale } }
        var dx = [Float](repeating: 0, count: trace.T * C)
        try mixer.backward(dx: &dx, grads: mixerGrads, dy: [Float](repeating: 0, count: trace.T * C), tape: trace.tape,
                           dState: dh, threads: threads)
    }

    // MARK: files

    public func validate(for dims: DecoderDims) throws {
        guard C == dims.C else {
            throw HMSTError.invalidArgument("the episodic soft tokens were made for hidden size \(C), not this model's \(dims.C)")
        }
    }

    /// Writes the weights, then the json naming their hash, each atomically.
    public func save(checkpoint dir: String) throws {
        try HeadFiles.save(dir: dir, weightsName: EpisodicSoftTokens.weightsName, tensors: rawTensors, configName: EpisodicSoftTokens.configName,
                           format: EpisodicSoftTokens.formatName, version: EpisodicSoftTokens.formatVersion, hash: valuesHash,
                           training: summary) { w in
            w.field("hidden_size", C)
            w.field("state_size", N)
            w.field("tokens", K)
            w.field("input", EpisodicSoftTokens.inputKind)
        }
    }

    /// The soft tokens stored with a checkpoint, or nil. BAD_FORMAT for malformed or mismatched
    /// files; INVALID_ARGUMENT for ones made for another model.
    public static func load(checkpoint dir: String, dims: DecoderDims) throws -> EpisodicSoftTokens? {
        guard let (j, jsonPath, hash) = try HeadFiles.description(dir: dir, configName: configName, format: formatName, version: formatVersion,
                                                                  required: ["hidden_size", "state_size", "tokens", "input"],
                                                                  what: "an episodic soft-token description") else { return nil }
        guard let C = j["hidden_size"]?.int, let N = j["state_size"]?.int, let K = j["tokens"]?.int else {
            throw HMSTError.badFormat("\(jsonPath): hidden_size, state_size and tokens must be integers")
        }
        guard j["input"]?.string == inputKind else {
            throw HMSTError.unsupported("\(jsonPath): input \(j["input"]?.serialized ?? "?") is not \"\(inputKind)\"")
        }
        let s: EpisodicSoftTokens
        do { s = try EpisodicSoftTokens(C: C, N: N, K: K) } catch let e as HMSTError {
            throw HMSTError.badFormat("\(jsonPath): \(e.message)")
        }
        try s.validate(for: dims)
        let (file, weightsPath) = try HeadFiles.weights(dir: dir, weightsName: weightsName, describedBy: jsonPath)
        try HeadFiles.read(s, from: file, weightsPath: weightsPath, describedBy: jsonPath, hash: hash)
        s.summary = j["training"] ?? .object([])
        return s
    }
}

#if canImport(Glibc)
import Glibc
#endif

// EpisodicSoftTokens: how the episodic tier's SSM state reaches the model (issue 11): an entry's
// SSM state is turned into K soft embeddings that stand inside `<mem>` … `</mem>` in place of the
// fact's text. Two inputs (the description's "input"):
//
//   state_readout (the default for new training): K learned readouts of the whole final state,
//   read the way a Mamba layer reads its state (y = h·C), each RMS-normalised and projected;
//   the mixer reads each token's final-norm hidden state plus its input embedding (scaled to
//   unit RMS by embedding_scale): the last layer's state at a token mostly predicts the next
//   one, and a fact's value must be named, not predicted (with the embedding, 300 read-out
//   steps name 0.71 of held-out values' first tokens instead of 0.48):
//     x[T, C]    = hidden[T, C] + embedding_scale · embed[tokens]                 (mixerInput)
//     h[Di, N]   = final state of the mixer over x                                (MambaMixer)
//     r_k[Di]    = h · q_k,  q_k[N] learned (k < K)
//     u_k[Di]    = r_k / rms(r_k)                                    (the entry's features [K·Di])
//     soft_k[C]  = W_k[C, Di] · u_k + b_k
//   pooled_unit_key (format of the first version, still loaded): the retrieval key itself
//     key[N]     = unit((1/Di) Σ_d h[d, :])                          (EpisodicMemory's key)
//     soft[K·C]  = W[K·C, N] · key + b
//   whose N numbers are the channel mean of h: a sum over tokens of one scalar per token times
//   B_t, too little to carry an answer (Stage 2 reached only 0.94 of "off" through it).
//
// Copy path (copy_sources, with a copy head): each soft row, read by the LM head, names a token
// (its argmax), and the copy head may point at the soft row and copy that token, as it copies a
// memory's text. Stage 2's readout loss teaches row k to name the k-th token of its fact's value.
// The features are what an episodic memory stores beside its key for this model, so a retrieved
// entry is injected without encoding its text again. Trained in Stage 2 with the mixer
// (Train/MemoryTuning/, `--episodic-soft-tokens K`); the gradient stops at the base model's
// hidden states of the fact. One ParameterSet: the mixer's nine tensors (HF names under
// "mixer."), then the readout queries (state_readout only), then the projection.
// Stored with the checkpoint:
//   episodic_soft_tokens.safetensors  "mixer.<HF MambaMixer name>" ..., ["soft_tokens.queries" [K, N]],
//                                     "soft_tokens.weight" [K·C, Di] (readout) or [K·C, N] (key),
//                                     "soft_tokens.bias" [K·C]; f32
//   episodic_soft_tokens.json         format, version, hidden_size, state_size, tokens, input,
//                                     ["embedding_scale"], ["copy_sources": true], the weights'
//                                     hash, training summary
import CBLAS

public final class EpisodicSoftTokens: ParameterSet, @unchecked Sendable {
    public static let weightsName = "episodic_soft_tokens.safetensors"
    public static let configName = "episodic_soft_tokens.json"
    static let formatName = "hmst-episodic-soft-tokens"
    static let formatVersion = 1
    public static let maxTokens = 8

    /// What the projection reads of the state (see the header).
    public enum Input: String, Sendable, CaseIterable {
        case stateReadout = "state_readout"
        case pooledKey = "pooled_unit_key"
    }

    /// C: the model's hidden size, N: the SSM state size (the key's), K: soft tokens per entry,
    /// Di: the mixer's channels
    public let C: Int, N: Int, K: Int, Di: Int
    public let input: Input
    /// values per entry the projection reads: K·Di (readout) or N (key)
    public let featureCount: Int
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
    /// whether the rows carry copy tokens (the copy path above); false for sets stored without it
    public var copySources = false
    /// state_readout: the factor of the input embeddings added to the hidden states the mixer
    /// reads (1 / the embeddings' RMS when made); 0 for pooled_unit_key
    public internal(set) var embeddingScale: Float = 0
    static let rmsEpsilon: Float = 1e-12

    public init(C: Int, N: Int = 256, K: Int, input: Input = .pooledKey) throws {
        guard K >= 1, K <= EpisodicSoftTokens.maxTokens else {
            throw HMSTError.invalidArgument("episodic soft tokens: K = \(K) must be in 1 ... \(EpisodicSoftTokens.maxTokens)")
        }
        mixerConfig = try MambaConfig.episodicMemory(hiddenSize: C, stateSize: N)
        self.C = C
        self.N = N
        self.K = K
        self.input = input
        Di = mixerConfig.intermediateSize
        featureCount = input == .stateReadout ? K * Di : N
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
        if input == .stateReadout {
            n.append("soft_tokens.queries"); sh.append([K, N]); r.append(.vector)
        }
        n += ["soft_tokens.weight", "soft_tokens.bias"]
        sh += [[K * C, input == .stateReadout ? Di : N], [K * C]]
        r += [.matrix, .bias]
        names = n
        shapes = sh
        roles = r
        (offsets, count, values, grads) = parameterStorage(sh)
        mixer = MambaMixer(weights: try MambaMixerWeights(config: mixerConfig, sharing: values))
        mixerGrads = try MambaMixerWeights(config: mixerConfig, sharing: grads)
    }

    /// A fresh set: the mixer from `mixerWeights` (the episodic memory's seeded weights when nil,
    /// so keys start as today's); the projection N(0, scale² / fan-in·RMS²) so that a fresh entry's
    /// rows have RMS about `scale` (pass the token embeddings' RMS), bias 0; queries N(0, 1/N).
    public static func initialised(C: Int, N: Int = 256, K: Int, input: Input = .pooledKey, scale: Float, seed: UInt64,
                                   mixerWeights: MambaMixerWeights? = nil) throws -> EpisodicSoftTokens {
        let s = try EpisodicSoftTokens(C: C, N: N, K: K, input: input)
        let w = mixerWeights ?? MambaMixerWeights.random(config: s.mixerConfig, seed: EpisodicMemoryConfig().seed)
        guard w.config == s.mixerConfig else { throw HMSTError.invalidArgument("episodic soft tokens: the mixer weights are for another shape") }
        s.values.pointer.update(from: w.storage.pointer, count: w.count)
        guard scale > 0, scale.isFinite else { throw HMSTError.invalidArgument("episodic soft tokens: scale \(scale) must be > 0") }
        var rng = RNG(seed: seed)
        let p = s.projection
        // a unit key has RMS 1/√N, a readout RMS 1: either way the rows come out at about `scale`
        let std = input == .stateReadout ? scale / Float(s.Di).squareRoot() : scale
        for i in 0..<(K * C * s.projectionColumns) { p[i] = rng.nextGaussian() * std }
        if let q = s.queries {
            for i in 0..<(K * N) { q[i] = rng.nextGaussian() / Float(N).squareRoot() }
            s.embeddingScale = 1 / scale
        }
        return s
    }

    var projectionIndex: Int { MambaTensor.allCases.count + (input == .stateReadout ? 1 : 0) }
    /// columns of W: Di (readout) or N (key)
    var projectionColumns: Int { input == .stateReadout ? Di : N }
    /// W [K·C, columns] and b [K·C] inside values
    var projection: UnsafeMutablePointer<Float> { values.pointer + offsets[projectionIndex] }
    var projectionBias: UnsafeMutablePointer<Float> { values.pointer + offsets[projectionIndex + 1] }
    /// Q [K, N] inside values (readout only)
    var queries: UnsafeMutablePointer<Float>? { input == .stateReadout ? values.pointer + offsets[MambaTensor.allCases.count] : nil }

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

    /// What encode keeps for backward: the mixer's tape, the pooled state's norm, and for the
    /// readout the final state and each readout's RMS.
    public struct Trace {
        let tape: MambaTape
        let T: Int
        /// |v|, the pooled state's length before normalisation
        let norm: Float
        /// h [Di, N] (readout only)
        let state: [Float]
        /// rms(r_k) [K] (readout only)
        let rms: [Float]
    }

    /// What the mixer reads of a text: its final-norm hidden states [T, C], plus, for
    /// state_readout, each token's input embedding (embeddingRow writes row `id` of the model's
    /// embedding table into a buffer of C) times embeddingScale.
    public func mixerInput(hidden: [Float], tokens: [Int32], embeddingRow: (Int32, UnsafeMutablePointer<Float>) -> Void) throws -> [Float] {
        guard hidden.count == tokens.count * C else {
            throw HMSTError.invalidArgument("episodic soft tokens: \(hidden.count) hidden values for \(tokens.count) tokens of width \(C)")
        }
        guard embeddingScale != 0 else { return hidden }
        var x = hidden
        var row = [Float](repeating: 0, count: C)
        for (t, id) in tokens.enumerated() {
            row.withUnsafeMutableBufferPointer { embeddingRow(id, $0.baseAddress!) }
            for c in 0..<C { x[t * C + c] += embeddingScale * row[c] }
        }
        return x
    }

    /// mixerInput with the rows of a model's embedding table (any stored type).
    public func mixerInput(hidden: [Float], tokens: [Int32], embedding: Weight) throws -> [Float] {
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= embedding.rows }) {
            throw HMSTError.invalidArgument("episodic soft tokens: token \(bad) is outside the embedding table of \(embedding.rows)")
        }
        return try mixerInput(hidden: hidden, tokens: tokens) { id, out in embedding.copyRows(Int(id), Int(id) + 1, to: out) }
    }

    /// Of mixer inputs [T, C] (mixerInput of the fact's hidden states): the retrieval key (the final
    /// state pooled over channels, unit length [N], EpisodicMemory's key) and the features the
    /// projection reads ([K·Di] readouts, or the key itself); with trace, what backward needs.
    public func encode(hidden: [Float], trace: Bool = false, threads: Int = Threads.count) throws
        -> (key: [Float], features: [Float], trace: Trace?) {
        guard !hidden.isEmpty, hidden.count % C == 0 else {
            throw HMSTError.invalidArgument("episodic soft tokens: hidden states of \(hidden.count) values are not rows of \(C)")
        }
        var state = MambaState(config: mixerConfig)
        let tape = trace ? MambaTape(config: mixerConfig) : nil
        _ = try mixer.forward(hidden, state: &state, tape: tape, threads: threads)
        let (key, norm) = try EpisodicSoftTokens.key(state)
        guard queries != nil else {
            return (key, key, tape.map { Trace(tape: $0, T: hidden.count / C, norm: norm, state: [], rms: []) })
        }
        let (u, rms) = try readout(state)
        return (key, u, tape.map { Trace(tape: $0, T: hidden.count / C, norm: norm, state: state.ssm, rms: rms) })
    }

    /// The features the projection reads of a final state: the K unit-RMS readouts [K·Di]
    /// (state_readout) or the unit key [N] (pooled_unit_key).
    public func features(of state: MambaState) throws -> [Float] {
        guard state.Di == Di, state.N == N else {
            throw HMSTError.invalidArgument("episodic soft tokens: a state of \(state.Di) x \(state.N), expected \(Di) x \(N)")
        }
        return queries == nil ? try EpisodicSoftTokens.key(state).key : try readout(state).u
    }

    /// R[K, Di] = Q[K, N] · hᵀ, each row scaled to unit RMS; and the RMS of each.
    func readout(_ state: MambaState) throws -> (u: [Float], rms: [Float]) {
        guard let q = queries else { throw HMSTError(.internal, "episodic soft tokens: no readout queries") }
        var u = [Float](repeating: 0, count: K * Di), rms = [Float](repeating: 0, count: K)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(K), Int32(Di), Int32(N), 1, q, Int32(N), state.ssm, Int32(N),
                    0, &u, Int32(Di))
        for k in 0..<K {
            var ss: Float = 0
            for d in 0..<Di { ss += u[k * Di + d] * u[k * Di + d] }
            let s = (ss / Float(Di) + EpisodicSoftTokens.rmsEpsilon).squareRoot()
            guard s.isFinite else { throw HMSTError.invalidArgument("episodic soft tokens: the SSM state is not finite") }
            rms[k] = s
            for d in 0..<Di { u[k * Di + d] /= s }
        }
        return (u, rms)
    }

    /// EpisodicMemory's key of a state (unit, [N]) and the pooled vector's length.
    static func key(_ state: MambaState) throws -> (key: [Float], norm: Float) {
        let v = state.pooled()
        var ss = 0.0
        for x in v { ss += Double(x) * Double(x) }
        return (try EpisodicMemory.unit(v, "episodic soft tokens: the SSM state"), Float(ss.squareRoot()))
    }

    /// The K soft embeddings [K·C] of one entry's features, row after row.
    public func project(features f: [Float]) throws -> [Float] {
        guard f.count == featureCount else {
            throw HMSTError.invalidArgument("episodic soft tokens: \(f.count) feature values, expected \(featureCount) (\(input.rawValue))")
        }
        guard f.allSatisfy(\.isFinite) else { throw HMSTError.invalidArgument("episodic soft tokens: the features are not finite") }
        var out = Array(UnsafeBufferPointer(start: projectionBias, count: K * C))
        switch input {
        case .pooledKey:
            // out[K·C] += W[K·C, N] · key[N]
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(K * C), Int32(N), 1, projection, Int32(N), f, 1, 1, &out, 1)
        case .stateReadout:
            // out_k[C] += W_k[C, Di] · u_k[Di]
            f.withUnsafeBufferPointer { fp in
                out.withUnsafeMutableBufferPointer { op in
                    for k in 0..<K {
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(C), Int32(Di), 1, projection + k * C * Di, Int32(Di),
                                    fp.baseAddress! + k * Di, 1, 1, op.baseAddress! + k * C, 1)
                    }
                }
            }
        }
        return out
    }

    /// Differentiates soft = project(encode(hidden).features) given dSoft = dL/dsoft [K·C]; adds
    /// to grads (projection, queries and mixer). No gradient flows into the hidden states.
    ///   key:      dW += dsoft ⊗ key;  dkey = Wᵀ dsoft;  dv = (dkey − key (key·dkey)) / |v|;
    ///             dh[d, n] = dv[n] / Di
    ///   readout:  dW_k += dsoft_k ⊗ u_k;  du_k = W_kᵀ dsoft_k;  dr_k = (du_k − u_k mean(du_k ⊙ u_k)) / rms_k;
    ///             dQ += dR · h;  dh = dRᵀ · Q
    ///   both:     db += dsoft, then dh back through the scan (MambaMixer.backward with dState)
    public func backward(dSoft: [Float], features f: [Float], trace: Trace, threads: Int = Threads.count) throws {
        guard dSoft.count == K * C, f.count == featureCount, trace.tape.config == mixerConfig, trace.tape.T == trace.T else {
            throw HMSTError.invalidArgument("episodic soft tokens backward: dSoft has \(dSoft.count) values (expected \(K * C)), "
                                            + "features \(f.count) (expected \(featureCount))")
        }
        let gW = grads.pointer + offsets[projectionIndex], gb = grads.pointer + offsets[projectionIndex + 1]
        for i in 0..<(K * C) { gb[i] += dSoft[i] }
        var dh = [Float](repeating: 0, count: Di * N)
        switch input {
        case .pooledKey:
            cblas_sger(CblasRowMajor, Int32(K * C), Int32(N), 1, dSoft, 1, f, 1, gW, Int32(N))
            var dkey = [Float](repeating: 0, count: N)
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(K * C), Int32(N), 1, projection, Int32(N), dSoft, 1, 0, &dkey, 1)
            guard trace.norm > 0 else { return }   // a zero state: the key is constant there
            var dot: Float = 0
            for n in 0..<N { dot += f[n] * dkey[n] }
            let scale = 1 / (trace.norm * Float(Di))
            for d in 0..<Di { for n in 0..<N { dh[d * N + n] = (dkey[n] - f[n] * dot) * scale } }
        case .stateReadout:
            guard let q = queries, trace.state.count == Di * N, trace.rms.count == K else {
                throw HMSTError(.internal, "episodic soft tokens backward: the trace holds no readout state")
            }
            var dR = [Float](repeating: 0, count: K * Di)
            dSoft.withUnsafeBufferPointer { dp in
                f.withUnsafeBufferPointer { fp in
                    dR.withUnsafeMutableBufferPointer { rp in
                        for k in 0..<K {
                            let ds = dp.baseAddress! + k * C, u = fp.baseAddress! + k * Di, du = rp.baseAddress! + k * Di
                            cblas_sger(CblasRowMajor, Int32(C), Int32(Di), 1, ds, 1, u, 1, gW + k * C * Di, Int32(Di))
                            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(C), Int32(Di), 1, projection + k * C * Di, Int32(Di), ds, 1, 0, du, 1)
                            var dot: Float = 0
                            for d in 0..<Di { dot += du[d] * u[d] }
                            let m = dot / Float(Di), inv = 1 / trace.rms[k]
                            for d in 0..<Di { du[d] = (du[d] - u[d] * m) * inv }
                        }
                    }
                }
            }
            let gQ = grads.pointer + offsets[MambaTensor.allCases.count]
            // dQ[K, N] += dR[K, Di] · h[Di, N];  dh[Di, N] = dRᵀ[Di, K] · Q[K, N]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(K), Int32(N), Int32(Di), 1, dR, Int32(Di), trace.state, Int32(N),
                        1, gQ, Int32(N))
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(Di), Int32(N), Int32(K), 1, dR, Int32(Di), q, Int32(N),
                        0, &dh, Int32(N))
        }
        var dx = [Float](repeating: 0, count: trace.T * C)
        try mixer.backward(dx: &dx, grads: mixerGrads, dy: [Float](repeating: 0, count: trace.T * C), tape: trace.tape,
                           dState: dh, threads: threads)
    }

    /// The copy token of each of rows' P soft rows [P·C]: argmax_v logits[p, v], where
    /// logits [P, V] are the rows read by the LM head (`logits` fills them).
    static func copyTokens(rows P: Int, V: Int, logits fill: (UnsafeMutablePointer<Float>) -> Void) -> [Int32] {
        guard P > 0, V > 0 else { return [] }
        let buf = FloatBuffer(count: P * V)
        fill(buf.pointer)
        return (0..<P).map { p in
            let l = buf.pointer + p * V
            var best = 0
            for v in 1..<V where l[v] > l[best] { best = v }
            return Int32(best)
        }
    }

    /// The copy tokens of soft rows [P·C] through an LM head [V, C] of any stored type.
    public func copyTokens(rows: [Float], lmHead: Weight, threads: Int = Threads.count) -> [Int32] {
        let P = rows.count / C
        return EpisodicSoftTokens.copyTokens(rows: P, V: lmHead.rows) { out in
            rows.withUnsafeBufferPointer { r in
                for p in 0..<P { gemvParallel(out: out + p * lmHead.rows, x: r.baseAddress! + p * C, w: lmHead, threads: threads) }
            }
        }
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
            w.field("input", input.rawValue)
            if embeddingScale != 0 { w.field("embedding_scale", Double(embeddingScale)) }
            if copySources { w.field("copy_sources", true) }
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
        guard let input = j["input"]?.string.flatMap(Input.init(rawValue:)) else {
            throw HMSTError.unsupported("\(jsonPath): input \(j["input"]?.serialized ?? "?") is not one of "
                                        + Input.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
        }
        let s: EpisodicSoftTokens
        do { s = try EpisodicSoftTokens(C: C, N: N, K: K, input: input) } catch let e as HMSTError {
            throw HMSTError.badFormat("\(jsonPath): \(e.message)")
        }
        try s.validate(for: dims)
        let (file, weightsPath) = try HeadFiles.weights(dir: dir, weightsName: weightsName, describedBy: jsonPath)
        try HeadFiles.read(s, from: file, weightsPath: weightsPath, describedBy: jsonPath, hash: hash)
        s.summary = j["training"] ?? .object([])
        if input == .stateReadout {
            guard let e = j["embedding_scale"]?.number, e.isFinite, e > 0 else {
                throw HMSTError.badFormat("\(jsonPath): a state_readout set needs a positive embedding_scale")
            }
            s.embeddingScale = Float(e)
        }
        if let c = j["copy_sources"], !c.isNull {
            guard let b = c.bool else { throw HMSTError.badFormat("\(jsonPath): copy_sources must be true or false") }
            s.copySources = b
        }
        return s
    }
}

// MixtralConfig: a Mixtral config.json (HF MixtralConfig keys), validated, plus hmst's presets.
// The loaded JSON object is kept so that saving preserves keys hmst does not use.

public struct MixtralConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var numLocalExperts: Int
    public var numExpertsPerTok: Int
    public var tieWordEmbeddings: Bool
    public var routerAuxLossCoef: Double
    public var bosTokenId: Int?
    public var eosTokenId: Int?

    /// Limits that keep a hostile config from asking for absurd allocations.
    static let maxDim = 1 << 17, maxLayers = 1024, maxVocab = 1 << 22, maxExperts = 1024, maxPositions = 1 << 22

    public var dims: DecoderDims {
        DecoderDims(C: hiddenSize, H: numAttentionHeads, KV: numKeyValueHeads, Dh: headDim, F: intermediateSize,
                    E: numLocalExperts, K: numExpertsPerTok, V: vocabSize, L: numHiddenLayers, eps: Float(rmsNormEps),
                    ropeTheta: ropeTheta, maxPositions: maxPositionEmbeddings, tiedEmbeddings: tieWordEmbeddings)
    }

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                numKeyValueHeads: Int, headDim: Int? = nil, maxPositionEmbeddings: Int, rmsNormEps: Double = 1e-5,
                ropeTheta: Double = 10000, numLocalExperts: Int = 8, numExpertsPerTok: Int = 2,
                tieWordEmbeddings: Bool = false, routerAuxLossCoef: Double = 0.001, bosTokenId: Int? = nil,
                eosTokenId: Int? = nil) throws {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.numLocalExperts = numLocalExperts
        self.numExpertsPerTok = numExpertsPerTok
        self.tieWordEmbeddings = tieWordEmbeddings
        self.routerAuxLossCoef = routerAuxLossCoef
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        try validate()
    }

    /// Parses config.json. `source` names the file in errors.
    public init(json: JSONValue, source: String = "config.json") throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(source): \(m)") }
        guard json.object != nil else { throw bad("not a JSON object") }
        if let t = json["model_type"]?.string, t != "mixtral" {
            throw HMSTError.unsupported("\(source): model_type \"\(t)\" is not supported (hmst runs \"mixtral\" checkpoints)")
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            guard let v = json[key], !v.isNull else {
                if let d { return d }
                throw bad("missing \"\(key)\"")
            }
            guard let i = v.int else { throw bad("\"\(key)\" must be an integer, not \(v.serialized)") }
            return i
        }
        func double(_ v: JSONValue?, _ key: String, default d: Double) throws -> Double {
            guard let v, !v.isNull else { return d }
            guard let x = v.number, x.isFinite else { throw bad("\"\(key)\" must be a finite number, not \(v.serialized)") }
            return x
        }
        func optionalInt(_ key: String) throws -> Int? {
            guard let v = json[key], !v.isNull else { return nil }
            if let i = v.int { return i }
            if let a = v.array, let first = a.first?.int { return first }  // eos_token_id may be a list
            throw bad("\"\(key)\" must be an integer, not \(v.serialized)")
        }
        let heads = try int("num_attention_heads")
        var theta = try double(json["rope_theta"], "rope_theta", default: 1_000_000)
        if let rp = json["rope_parameters"], let t = rp["rope_theta"] {
            theta = try double(t, "rope_parameters.rope_theta", default: theta)
            if let kind = rp["rope_type"]?.string, kind != "default" {
                throw HMSTError.unsupported("\(source): rope_type \"\(kind)\" is not supported (only \"default\")")
            }
        }
        if let s = json["rope_scaling"], !s.isNull {
            throw HMSTError.unsupported("\(source): rope_scaling is not supported")
        }
        var tie = false
        if let t = json["tie_word_embeddings"], !t.isNull {
            guard let b = t.bool else { throw bad("\"tie_word_embeddings\" must be true or false") }
            tie = b
        }
        let hidden = try int("hidden_size")
        try self.init(vocabSize: try int("vocab_size"), hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
                      numHiddenLayers: try int("num_hidden_layers"), numAttentionHeads: heads,
                      numKeyValueHeads: try int("num_key_value_heads", default: heads),
                      headDim: try int("head_dim", default: heads > 0 ? hidden / heads : 0),
                      maxPositionEmbeddings: try int("max_position_embeddings", default: 4096 * 32),
                      rmsNormEps: try double(json["rms_norm_eps"], "rms_norm_eps", default: 1e-5), ropeTheta: theta,
                      numLocalExperts: try int("num_local_experts", default: 8),
                      numExpertsPerTok: try int("num_experts_per_tok", default: 2), tieWordEmbeddings: tie,
                      routerAuxLossCoef: try double(json["router_aux_loss_coef"], "router_aux_loss_coef", default: 0.001),
                      bosTokenId: try optionalInt("bos_token_id"), eosTokenId: try optionalInt("eos_token_id"))
    }

    public func validate() throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("config: \(m)") }
        func range(_ name: String, _ v: Int, _ lo: Int, _ hi: Int) throws {
            guard v >= lo, v <= hi else { throw bad("\(name) = \(v) is outside \(lo) ... \(hi)") }
        }
        try range("vocab_size", vocabSize, 1, MixtralConfig.maxVocab)
        try range("hidden_size", hiddenSize, 1, MixtralConfig.maxDim)
        try range("intermediate_size", intermediateSize, 1, MixtralConfig.maxDim * 4)
        try range("num_hidden_layers", numHiddenLayers, 1, MixtralConfig.maxLayers)
        try range("num_attention_heads", numAttentionHeads, 1, 1024)
        try range("num_key_value_heads", numKeyValueHeads, 1, numAttentionHeads)
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw bad("num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
        }
        try range("head_dim", headDim, 2, 4096)
        guard headDim % 2 == 0 else { throw bad("head_dim \(headDim) must be even for rotary embeddings") }
        try range("max_position_embeddings", maxPositionEmbeddings, 1, MixtralConfig.maxPositions)
        try range("num_local_experts", numLocalExperts, 1, MixtralConfig.maxExperts)
        try range("num_experts_per_tok", numExpertsPerTok, 1, numLocalExperts)
        guard rmsNormEps > 0, rmsNormEps < 1 else { throw bad("rms_norm_eps \(rmsNormEps) must be in (0, 1)") }
        guard ropeTheta > 1 else { throw bad("rope_theta \(ropeTheta) must be > 1") }
        guard routerAuxLossCoef >= 0 else { throw bad("router_aux_loss_coef must be >= 0") }
        if let e = eosTokenId { try range("eos_token_id", e, 0, vocabSize - 1) }
        if let b = bosTokenId { try range("bos_token_id", b, 0, vocabSize - 1) }
    }

    /// config.json as transformers writes a MixtralConfig.
    public func json(dtype: String = "float32") -> JSONValue {
        func n(_ x: Int) -> JSONValue { .number(Double(x)) }
        var o: [(String, JSONValue)] = [
            ("architectures", .array([.string("MixtralForCausalLM")])),
            ("model_type", .string("mixtral")),
            ("vocab_size", n(vocabSize)), ("hidden_size", n(hiddenSize)), ("intermediate_size", n(intermediateSize)),
            ("num_hidden_layers", n(numHiddenLayers)), ("num_attention_heads", n(numAttentionHeads)),
            ("num_key_value_heads", n(numKeyValueHeads)), ("head_dim", n(headDim)),
            ("max_position_embeddings", n(maxPositionEmbeddings)), ("rms_norm_eps", .number(rmsNormEps)),
            ("rope_theta", .number(ropeTheta)),
            ("rope_parameters", .object([("rope_theta", .number(ropeTheta)), ("rope_type", .string("default"))])),
            ("num_local_experts", n(numLocalExperts)), ("num_experts_per_tok", n(numExpertsPerTok)),
            ("tie_word_embeddings", .bool(tieWordEmbeddings)), ("router_aux_loss_coef", .number(routerAuxLossCoef)),
            ("hidden_act", .string("silu")), ("attention_dropout", .number(0)), ("sliding_window", .null),
            ("torch_dtype", .string(dtype)),
        ]
        if let b = bosTokenId { o.append(("bos_token_id", n(b))) }
        if let e = eosTokenId { o.append(("eos_token_id", n(e))) }
        return .object(o)
    }

    // MARK: presets

    public static let presetNames = ["nano", "micro", "tiny", "small", "base", "large"]

    /// The seed's sizes, all 8 experts top-2: micro ~15M, tiny ~100M, small ~0.9B,
    /// base ~12B (3.3B active), large ~30B (8.6B active); and nano, micro with 2 layers instead
    /// of 4, `hmst train`'s default: on a CPU budget of minutes it learns faster per second
    /// (README, "Training": 100 s on 2 threads). See `hmst info --presets`.
    public static func preset(_ name: String, vocabSize: Int? = nil) throws -> MixtralConfig {
        switch name {
        case "nano":
            return try MixtralConfig(vocabSize: vocabSize ?? 16384, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 2,
                                   numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 1024, ropeTheta: 10000)
        case "micro":
            return try MixtralConfig(vocabSize: vocabSize ?? 4096, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 4,
                                   numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 1024, ropeTheta: 10000)
        case "tiny":
            return try MixtralConfig(vocabSize: vocabSize ?? 16384, hiddenSize: 512, intermediateSize: 768, numHiddenLayers: 8,
                                   numAttentionHeads: 8, numKeyValueHeads: 4, maxPositionEmbeddings: 2048, ropeTheta: 10000)
        case "small":
            return try MixtralConfig(vocabSize: vocabSize ?? 32000, hiddenSize: 1024, intermediateSize: 2048, numHiddenLayers: 16,
                                   numAttentionHeads: 16, numKeyValueHeads: 8, maxPositionEmbeddings: 4096, ropeTheta: 10000)
        case "base":
            return try MixtralConfig(vocabSize: vocabSize ?? 32000, hiddenSize: 2048, intermediateSize: 8192, numHiddenLayers: 28,
                                   numAttentionHeads: 16, numKeyValueHeads: 8, maxPositionEmbeddings: 8192, ropeTheta: 1_000_000)
        case "large":
            return try MixtralConfig(vocabSize: vocabSize ?? 32000, hiddenSize: 4096, intermediateSize: 9216, numHiddenLayers: 32,
                                   numAttentionHeads: 32, numKeyValueHeads: 8, maxPositionEmbeddings: 8192, ropeTheta: 1_000_000)
        default:
            throw HMSTError.invalidArgument("unknown preset \"\(name)\"; choose one of \(presetNames.joined(separator: ", "))")
        }
    }

    /// Total and active parameters (Mixtral's convention): see DecoderDims.
    public var parameterCount: Int { dims.parameterCount }
    public var activeParameterCount: Int { dims.activeParameterCount }
}

// MambaConfig: the shape of one Mamba mixer (selective state-space layer), read from the keys of
// an HF MambaConfig (config.json, model_type "mamba"), validated, plus hmst's episodic-memory
// preset. Keys the mixer does not use (vocab_size, num_hidden_layers, ...) are ignored here.
// Dimension letters: C width, Di = expand·C inner width, N state, W conv width, R dt rank.

public struct MambaConfig: Sendable, Equatable {
    /// C: hidden_size
    public var hiddenSize: Int
    /// N: state_size
    public var stateSize: Int
    /// expand: Di = expand · C
    public var expand: Int
    /// W: conv_kernel
    public var convKernel: Int
    /// R: time_step_rank ("auto" in config.json means ceil(C / 16))
    public var timeStepRank: Int
    /// conv1d carries a bias [Di] (HF default true)
    public var useConvBias: Bool
    /// in_proj / out_proj carry biases; hmst supports only false, the HF default
    public var useBias: Bool
    /// layer_norm_epsilon: the RMSNorm before a Mamba block; kept so a config round-trips
    public var layerNormEpsilon: Double

    /// Di = expand · C
    public var intermediateSize: Int { expand * hiddenSize }

    /// Limits that keep a hostile config from asking for absurd allocations.
    static let maxWidth = 1 << 17, maxState = 1 << 12, maxExpand = 16, maxConv = 64

    /// R = ceil(C / 16), HF's "auto".
    public static func autoTimeStepRank(hiddenSize: Int) -> Int { (hiddenSize + 15) / 16 }

    public init(hiddenSize: Int, stateSize: Int = 16, expand: Int = 2, convKernel: Int = 4, timeStepRank: Int? = nil,
                useConvBias: Bool = true, useBias: Bool = false, layerNormEpsilon: Double = 1e-5) throws {
        self.hiddenSize = hiddenSize
        self.stateSize = stateSize
        self.expand = expand
        self.convKernel = convKernel
        self.timeStepRank = timeStepRank ?? MambaConfig.autoTimeStepRank(hiddenSize: hiddenSize)
        self.useConvBias = useConvBias
        self.useBias = useBias
        self.layerNormEpsilon = layerNormEpsilon
        try validate()
    }

    /// The episodic-memory preset: a wide state (N = 256) so the final state of a passage can
    /// serve as its memory key; HF defaults for everything else.
    public static func episodicMemory(hiddenSize: Int, stateSize: Int = 256) throws -> MambaConfig {
        try MambaConfig(hiddenSize: hiddenSize, stateSize: stateSize)
    }

    /// Parses the mixer keys of an HF config.json; missing keys take HF's defaults (state_size
    /// 16, expand 2, conv_kernel 4, time_step_rank "auto"). `source` names the file in errors.
    public init(json: JSONValue, source: String = "config.json") throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(source): \(m)") }
        guard json.object != nil else { throw bad("not a JSON object") }
        if let t = json["model_type"], !t.isNull, t.string != "mamba" {
            throw HMSTError.unsupported("\(source): model_type \(t.serialized) is not a Mamba config (expected \"mamba\")")
        }
        func int(_ key: String, default d: Int?) throws -> Int {
            guard let v = json[key], !v.isNull else {
                if let d { return d }
                throw bad("missing \"\(key)\"")
            }
            guard let i = v.int else { throw bad("\"\(key)\" must be an integer, not \(v.serialized)") }
            return i
        }
        func bool(_ key: String, default d: Bool) throws -> Bool {
            guard let v = json[key], !v.isNull else { return d }
            guard let b = v.bool else { throw bad("\"\(key)\" must be true or false, not \(v.serialized)") }
            return b
        }
        if let act = json["hidden_act"], !act.isNull, act.string != "silu" {
            throw HMSTError.unsupported("\(source): hidden_act \(act.serialized) is not supported (only \"silu\")")
        }
        let hidden = try int("hidden_size", default: nil)
        var rank: Int? = nil
        if let r = json["time_step_rank"], !r.isNull, r.string != "auto" {
            guard let i = r.int else { throw bad("\"time_step_rank\" must be an integer or \"auto\", not \(r.serialized)") }
            rank = i
        }
        var eps = 1e-5
        if let e = json["layer_norm_epsilon"], !e.isNull {
            guard let x = e.number, x.isFinite else { throw bad("\"layer_norm_epsilon\" must be a finite number, not \(e.serialized)") }
            eps = x
        }
        do {
            try self.init(hiddenSize: hidden, stateSize: try int("state_size", default: 16),
                          expand: try int("expand", default: 2), convKernel: try int("conv_kernel", default: 4),
                          timeStepRank: rank, useConvBias: try bool("use_conv_bias", default: true),
                          useBias: try bool("use_bias", default: false), layerNormEpsilon: eps)
        } catch let e as HMSTError where e.status == .badFormat {
            throw bad(e.message)
        }
        // transformers writes the derived intermediate_size too; it must agree with expand
        if let di = json["intermediate_size"], !di.isNull {
            guard di.int == intermediateSize else {
                throw bad("intermediate_size \(di.serialized) is not expand × hidden_size = \(intermediateSize)")
            }
        }
    }

    public func validate() throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("mamba config: \(m)") }
        func range(_ name: String, _ v: Int, _ lo: Int, _ hi: Int) throws {
            guard v >= lo, v <= hi else { throw bad("\(name) = \(v) is outside \(lo) ... \(hi)") }
        }
        try range("hidden_size", hiddenSize, 1, MambaConfig.maxWidth)
        try range("state_size", stateSize, 1, MambaConfig.maxState)
        try range("expand", expand, 1, MambaConfig.maxExpand)
        try range("conv_kernel", convKernel, 1, MambaConfig.maxConv)
        try range("time_step_rank", timeStepRank, 1, MambaConfig.maxWidth)
        guard intermediateSize <= MambaConfig.maxWidth else {
            throw bad("expand × hidden_size = \(intermediateSize) exceeds \(MambaConfig.maxWidth)")
        }
        // the A_log / ssm state [Di, N] must stay addressable with room to spare
        guard intermediateSize * stateSize <= 1 << 28 else {
            throw bad("intermediate_size × state_size = \(intermediateSize * stateSize) is too large")
        }
        guard layerNormEpsilon > 0, layerNormEpsilon < 1 else { throw bad("layer_norm_epsilon \(layerNormEpsilon) must be in (0, 1)") }
        guard !useBias else {
            throw HMSTError.unsupported("mamba config: use_bias = true (biases on in_proj/out_proj) is not supported")
        }
    }

    /// The mixer keys as transformers writes them in a MambaConfig's config.json.
    public func json() -> JSONValue {
        func n(_ x: Int) -> JSONValue { .number(Double(x)) }
        return .object([
            ("model_type", .string("mamba")),
            ("hidden_size", n(hiddenSize)), ("state_size", n(stateSize)), ("expand", n(expand)),
            ("intermediate_size", n(intermediateSize)), ("conv_kernel", n(convKernel)),
            ("time_step_rank", n(timeStepRank)), ("use_conv_bias", .bool(useConvBias)), ("use_bias", .bool(useBias)),
            ("hidden_act", .string("silu")), ("layer_norm_epsilon", .number(layerNormEpsilon)),
        ])
    }
}

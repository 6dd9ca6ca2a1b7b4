// LanguageModel: what a loaded checkpoint is to the rest of hmst: the decoder over its weights,
// the tokenizer if the checkpoint has one, the config it came with and the load report. The
// storage the weights point into (file maps, placed regions, owned tensors) is kept alive here.

public struct LoadReport: Sendable {
    public var path = ""
    public var loadMs = 0.0
    public var placement = PlacementReport()
    public var warnings: [String] = []
    public var untrained = false
}

public final class LanguageModel: @unchecked Sendable {
    public let decoder: Decoder
    public let tokenizer: TextTokenizer?
    /// config.json as loaded or as it will be saved
    public let config: JSONValue
    public internal(set) var report: LoadReport
    let storage: [AnyObject]

    public init(decoder: Decoder, tokenizer: TextTokenizer?, config: JSONValue, report: LoadReport, storage: [AnyObject]) {
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.config = config
        self.report = report
        self.storage = storage
    }

    public var dims: DecoderDims { decoder.dims }

    /// Total parameters, counting a tied head once.
    public var parameterCount: Int {
        let d = dims
        let perLayer = d.C * d.qDim * 2 + d.C * d.kvDim * 2 + 2 * d.C + d.E * d.C + d.E * 3 * d.C * d.F
        return d.V * d.C * (d.tiedEmbeddings ? 1 : 2) + d.L * perLayer + d.C
    }

    /// Active parameters as Mixtral counts them: all but the E - K unused experts per layer.
    public var activeParameterCount: Int { parameterCount - dims.L * (dims.E - dims.K) * 3 * dims.C * dims.F }

    public var weightsBF16: Bool { decoder.weights.hasBF16 }
}

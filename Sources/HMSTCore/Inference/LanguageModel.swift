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
    /// The retrieval projection stored with the checkpoint (retriever.json), set by load; nil:
    /// queries and documents embed as the pooled hidden state (Retrieval/RetrieverEmbedding.swift).
    public internal(set) var retriever: RetrieverProjection?
    /// The episodic tier's trained SSM and soft-token projection (Stage 2 with
    /// --episodic-soft-tokens), when the checkpoint has them: EpisodicMemory(model:) then uses
    /// this mixer, and evaluation can inject retrieved entries as soft tokens.
    public internal(set) var episodicSoftTokens: EpisodicSoftTokens?
    /// The engine's meta-controller (controller/) and critic (critic/) stored with the
    /// checkpoint, set by load; nil when absent.
    public internal(set) var controller: MetaController?
    /// Why the checkpoint's controller/ was not loaded (a StaleController), else nil.
    public internal(set) var controllerProblem: String?
    public internal(set) var critic: EngineVerifier?
    /// Why the checkpoint's critic/ was not loaded (a CriticForAnotherModel), else nil.
    public internal(set) var criticProblem: String?
    /// A GGUF file's tokenizer.chat_template, set by load; ChatTemplate.of(model:) reads it.
    public internal(set) var ggufChatTemplate: String?
    /// A GGUF file's tokenizer.ggml.eot_token_id / eom_token_id (endOfTurnTokens()).
    public internal(set) var ggufEndOfTurnIds: [Int32] = []
    let storage: [AnyObject]
    /// ModelSignature(model:), computed on first use (the weights never change after init).
    let signatureCache = Locked<ModelSignature?>(nil)
    /// ChatTemplate.of(model:), found on first use (chatTemplate()).
    let chatTemplateCache = Locked<ChatTemplate?>(nil)
    /// endOfTurnTokens(), found on first use (it reads generation_config.json).
    let endOfTurnCache = Locked<Set<Int32>?>(nil)

    public init(decoder: Decoder, tokenizer: TextTokenizer?, config: JSONValue, report: LoadReport, storage: [AnyObject]) {
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.config = config
        self.report = report
        self.storage = storage
    }

    public var dims: DecoderDims { decoder.dims }

    public var parameterCount: Int { dims.parameterCount }
    public var activeParameterCount: Int { dims.activeParameterCount }

    public var weightsBF16: Bool { decoder.weights.hasBF16 }

    /// The text of the config's bos and eos tokens ("" where there is none or no tokenizer),
    /// for chat templates' bos_token / eos_token.
    public func specialTokenTexts() -> (bos: String, eos: String) {
        func text(_ key: String) -> String {
            guard let tokenizer, let id = config[key]?.int ?? config[key]?.array?.first?.int,
                  id >= 0, id < tokenizer.vocabSize, let b = try? tokenizer.decode([Int32(id)]) else { return "" }
            return String(decoding: b, as: UTF8.self)
        }
        return (text("bos_token_id"), text("eos_token_id"))
    }

    /// "f32", "bf16", "int8" or "mixed (…)": the projection matrices' storage.
    public var weightsType: String { decoder.weights.typeDescription }
}

// ServerState: what every route shares: the loaded model (weights mapped once), its tokenizer
// and chat template, the slot pool, the memory store and its persister, the limits and metrics.
import Foundation
import HMSTCore

struct ServerLimits: Sendable {
    /// largest request body accepted (413 beyond)
    var maxBodyBytes = 1 << 20
    /// largest max_tokens a request may ask for (besides the context)
    var maxTokensCap = 4096
    /// max_tokens when a chat request gives none (clamped to the context left)
    var defaultChatMaxTokens = 256
    /// completions when a request gives no max_tokens (OpenAI's default)
    var defaultCompletionMaxTokens = 16
    /// most choices per prompt (n), prompts per request, stop strings, top log-probabilities
    var maxN = 8
    var maxPrompts = 16
    var maxStops = 4
    var maxTopLogprobs = 20
    /// most inputs per embeddings request
    var maxEmbeddingInputs = 256
    /// most results per memory search
    var maxSearchK = 100
    /// largest memory entry text, in bytes
    var maxMemoryTextBytes = 64 * 1024
    /// seconds a streaming client may leave EventStream's buffer full before its generation is cancelled
    var streamStallSeconds = 30.0

    nonisolated(unsafe) static var shared = ServerLimits()
}

final class ServerState: @unchecked Sendable {
    let model: LanguageModel
    let tokenizer: TextTokenizer
    let modelName: String
    let created: Int
    let template: ChatTemplate
    /// what ends an assistant's turn (LanguageModel.endOfTurnTokens)
    let endOfTurn: Set<Int32>
    let pool: SlotPool
    let nCtx: Int
    let limits: ServerLimits
    let metrics = Metrics()
    let memory: MemoryStore?
    let persister: MemoryPersister?
    /// One engine per slot (engines[slot.index] runs on that slot's Session), over the memory
    /// tiers and the checkpoint's controller and critic; empty when the engine could not be
    /// made (engineUnavailable says why), and POST /v1/hmst/ask answers 501.
    let engines: [Engine]
    let engineUnavailable: String

    init(model: LanguageModel, tokenizer: TextTokenizer, modelName: String, template: ChatTemplate, pool: SlotPool,
         nCtx: Int, limits: ServerLimits, memory: MemoryStore?, engines: [Engine] = [], engineUnavailable: String = "") {
        self.engines = engines
        self.engineUnavailable = engineUnavailable
        self.model = model
        self.tokenizer = tokenizer
        self.modelName = modelName
        created = Int(Date().timeIntervalSince1970)
        self.template = template
        endOfTurn = model.endOfTurnTokens()
        self.pool = pool
        pool.onBusy = { [metrics] in metrics.rejectedBusy() }
        self.nCtx = nCtx
        self.limits = limits
        self.memory = memory
        persister = memory.map { MemoryPersister(store: $0) }
    }

    /// A completion prompt: the client's whole text, special tokens included (as llama.cpp's
    /// and OpenAI's legacy completions read "<|endoftext|>").
    func encode(_ text: String) -> [Int32] { tokenizer.encode(bytes: Array(text.utf8)) }
    /// A chat prompt: the template's markup, the messages literal.
    func encode(_ prompt: PromptText) -> [Int32] { tokenizer.encode(prompt) }
}

// EngineTypes: what goes into and comes out of an engine query.

/// Engine-wide settings, fixed at creation.
public struct EngineOptions: Sendable, Equatable {
    /// memories given to the model (across the tiers chosen)
    public var k = 4
    /// the layer an early exit reads the answer from (1...L); nil: half the model's depth
    public var exitLayer: Int? = nil
    /// experts per token under expert selection
    public var selectedExperts = 1
    /// context of the engine's session (0: min(2048, the model's))
    public var nCtx = 0
    /// threads of the engine's session (0: the library's)
    public var nThreads = 0
    /// below this verified confidence the engine retries with memory, then abstains
    public var confidenceThreshold: Float = 0.5
    /// retry a low-confidence answer once with both memories at full compute before abstaining
    public var retryWithMemory = true
    /// what the engine answers when it abstains
    public var abstainText = "I am not sure."
    /// the curriculum's answer for "memory does not hold it" (Stage 2); the engine treats it as
    /// the model abstaining
    public var unknownAnswer = "unknown"
    /// retrieval for the memory signals and the memories given
    public var retrieval = RetrievalOptions()
    /// how the episodic tier is searched (retrieval's other options apply): its dense part is
    /// the cosine of SSM states, which finds a fact from a question far less often than BM25
    /// (README, "Stage 2": answer NLL 4.12 hybrid against 0.85 lexical on the episodic-only
    /// facts), so lexical by default
    public var episodicMode: RetrievalMode = .lexical
    /// seed of the state summary's encoding projection
    public var projectionSeed: UInt64 = 0x5eed
    public init() {}

    func validate() throws {
        guard k >= 1, k <= 64 else { throw HMSTError.invalidArgument("engine: k \(k) must be in 1...64") }
        guard selectedExperts >= 1 else { throw HMSTError.invalidArgument("engine: selected experts \(selectedExperts) must be >= 1") }
        guard confidenceThreshold >= 0, confidenceThreshold <= 1 else {
            throw HMSTError.invalidArgument("engine: confidence threshold \(confidenceThreshold) must be in [0, 1]")
        }
        guard nCtx >= 0, nThreads >= 0 else { throw HMSTError.invalidArgument("engine: n_ctx and n_threads must be >= 0") }
        try retrieval.validate()
    }
}

/// Who decides a query's five decisions.
public enum EnginePolicy: Sendable, Equatable {
    /// the checkpoint's trained meta-controller (an error when it has none)
    case controller
    /// the same decisions for every query
    case fixed(EngineDecisions)
    /// the controller when the checkpoint has one, else `full`
    case automatic
}

/// One query's settings.
public struct EngineQuery: Sendable {
    public var text: String
    public var policy = EnginePolicy.automatic
    public var maxTokens = 16
    /// 0: greedy
    public var temperature: Float = 0
    public var seed: UInt64 = 0
    /// Scope of the memory this query may see: only entries of this owner ("" : the entries
    /// added without one) are retrieved, scored, counted in the controller's signals, given to
    /// the model or cited, in both tiers and both retrieval parts; another owner's entries
    /// cannot change the answer, the decisions or the citations. nil: every entry (a memory
    /// with one user).
    public var owner: String? = nil
    public init(_ text: String) { self.text = text }
}

/// A memory the answer was given.
public struct Citation: Sendable, Equatable {
    public var tier: MemoryTier
    public var id: Int64
    public var score: Float
    public var text: String
    public init(tier: MemoryTier, id: Int64, score: Float, text: String) {
        self.tier = tier; self.id = id; self.score = score; self.text = text
    }
}

/// Why an answer ended: "stop" (the answer's end marker, a newline or end-of-text), "length"
/// (the token limit: EngineResult.maxTokens) or "cancelled" (the token callback said stop).
public enum EngineFinish: String, Sendable {
    case stop, length, cancelled
}

public struct EngineResult: Sendable {
    public var query = ""
    /// the memory scope of the query (EngineQuery.owner; nil: every entry)
    public var owner: String? = nil
    /// what the engine says: the model's answer, or abstainText when it abstained
    public var answer = ""
    /// the model's last answer before any abstention
    public var modelAnswer = ""
    public var abstained = false
    /// verification asked for a second attempt with memory
    public var retried = false
    /// P(correct): the critic's calibrated probability when verification ran; else the answer
    /// tokens' geometric-mean probability (not calibrated; `confidenceCalibrated` says which)
    public var confidence: Float = 0
    public var confidenceCalibrated = false
    public var decisions = EngineDecisions()
    public var probabilities = DecisionProbabilities()
    /// "controller", "fixed" or "full (no controller)"
    public var policy = ""
    public var citations: [Citation] = []
    public var tokens: [Int32] = []
    public var tokenLogProbs: [Float] = []
    /// why the last attempt's answer ended
    public var finish = EngineFinish.stop
    /// that attempt's token limit: the query's maxTokens, or less when its prompt left less
    /// room in the context (the events say so)
    public var maxTokens = 0
    public var signals = QuerySignals()
    public var cost = CostAccount()
    public var times = StageTimes()
    /// the steps taken, one line each
    public var events: [String] = []
    public init() {}

    /// The model's answer is the expected one (SQuAD normalisation, as `hmst eval`'s exact
    /// match); an abstention never matches.
    public func matches(_ expected: String) -> Bool { !abstained && EvalMetrics.exactMatch(modelAnswer, expected) }
}

/// What the verifier is shown: the prompt as the model saw it, the answer and the memories.
public struct VerificationInput: Sendable {
    public var promptTokens: [Int32]
    public var answerTokens: [Int32]
    public var answerText: String
    public var memories: [Citation]
    /// the best retrieval scores seen for the query, best first (empty: no retrieval)
    public var retrievalScores: [Float]
    public init(promptTokens: [Int32], answerTokens: [Int32], answerText: String, memories: [Citation], retrievalScores: [Float]) {
        self.promptTokens = promptTokens; self.answerTokens = answerTokens; self.answerText = answerText
        self.memories = memories; self.retrievalScores = retrievalScores
    }
}

public struct Verification: Sendable {
    public var probability: Float
    public var calibrated: Bool
    public var cost: CostAccount
    public init(probability: Float, calibrated: Bool, cost: CostAccount) {
        self.probability = probability; self.calibrated = calibrated; self.cost = cost
    }
}

/// The critic, as the engine uses it.
public protocol EngineVerifier: AnyObject {
    func verify(_ input: VerificationInput, model: LanguageModel, seed: UInt64) throws -> Verification
}

/// The meta-controller, as the engine uses it.
public protocol EngineController: AnyObject {
    /// the decisions for an observation (StateSummary.vector) and the probability of each "yes"
    func decide(_ observation: [Float]) throws -> (EngineDecisions, DecisionProbabilities)
}

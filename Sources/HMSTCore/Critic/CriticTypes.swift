// CriticTypes: what the critic is handed (CriticEvidence), what it measures (CriticFeatures,
// one named scalar each, in the order the saved head reads them), what that cost (CriticCost)
// and what it returns (CriticAssessment). Feature extraction is CriticObserver.swift; the head,
// the probe and the calibration are Critic.swift.

/// What the engine (or the pool builder) hands the critic for one answer.
public struct CriticEvidence: Sendable {
    /// the prompt as given to the model (MemoryPrompt layout, memories included)
    public var promptTokens: [Int32]
    /// the generated answer tokens, without the answer-end marker
    public var answerTokens: [Int32]
    public var answerText: String
    /// retrieved memories actually given (tier, id, score, text); empty when none
    public var memories: [MemoryStoreHit]
    /// top retrieval scores seen by the engine (may include ones not given), sorted descending;
    /// empty when nothing was retrieved
    public var retrievalScores: [Float]

    public init(promptTokens: [Int32], answerTokens: [Int32], answerText: String, memories: [MemoryStoreHit] = [],
                retrievalScores: [Float] = []) {
        self.promptTokens = promptTokens
        self.answerTokens = answerTokens
        self.answerText = answerText
        self.memories = memories
        self.retrievalScores = retrievalScores
    }
}

/// How the critic's own sampling (the agreement feature) runs. Saved with the critic: the
/// features it was fitted on depend on it.
public struct CriticSettings: Sendable, Equatable {
    /// answers sampled to compare with the given one (0 = the agreement feature is off: 1)
    public var samples = 4
    public var temperature: Float = 0.7
    /// tokens per sampled answer at most
    public var maxTokens = 8
    /// a sampled answer ends at the first of these (decoded text) or at end of text
    public var stopStrings = [MemoryPrompt.answerEnd, "\n"]

    public init() {}

    public func validate() throws {
        guard samples >= 0, samples <= 64 else { throw HMSTError.invalidArgument("critic samples \(samples) must be in 0...64") }
        guard temperature.isFinite, temperature > 0 else {
            throw HMSTError.invalidArgument("critic sampling temperature \(temperature) must be finite and > 0")
        }
        guard maxTokens >= 1, maxTokens <= 256 else { throw HMSTError.invalidArgument("critic sample max tokens \(maxTokens) must be in 1...256") }
    }
}

/// The critic's features of one answer. All but `probeScore` are read off the evidence and
/// one forward pass (CriticObserver); `probeScore` is the logit of the probe on the hidden
/// state, which needs a fitted probe.
public struct CriticFeatures: Sendable, Equatable {
    /// mean and minimum of log p(answer token | everything before), nats (0 for an empty answer)
    public var answerLogProbMean: Float = 0
    public var answerLogProbMin: Float = 0
    /// entropy of the next-token distribution where the answer starts, nats
    public var firstTokenEntropy: Float = 0
    /// answer tokens
    public var answerLength: Float = 0
    /// 1 when retrieval scores were given
    public var hasRetrieval: Float = 0
    /// the best retrieval score and its lead over the second (top alone when one; 0 without)
    public var retrievalTop: Float = 0
    public var retrievalGap: Float = 0
    /// 1 when the prompt carried memories
    public var hasMemory: Float = 0
    /// 1 when the normalised answer occurs, as whole words, in a given memory's normalised text
    public var answerInMemory: Float = 0
    /// fraction of sampled answers equal to the given one after normalisation (1 with no samples)
    public var sampleAgreement: Float = 1
    /// the probe's logit on the mean final hidden state over the answer positions
    public var probeScore: Float = 0

    public init() {}

    /// Feature names, in `vector` order (config.json lists them; the head's weights follow it).
    public static let names = ["answer_logprob_mean", "answer_logprob_min", "first_token_entropy", "answer_length",
                               "has_retrieval", "retrieval_top", "retrieval_gap", "has_memory", "answer_in_memory",
                               "sample_agreement", "probe_score"]

    public var vector: [Float] {
        [answerLogProbMean, answerLogProbMin, firstTokenEntropy, answerLength, hasRetrieval, retrievalTop, retrievalGap,
         hasMemory, answerInMemory, sampleAgreement, probeScore]
    }

    public init(vector v: [Float]) throws {
        guard v.count == CriticFeatures.names.count else {
            throw HMSTError.invalidArgument("critic features: \(v.count) values, expected \(CriticFeatures.names.count)")
        }
        answerLogProbMean = v[0]; answerLogProbMin = v[1]; firstTokenEntropy = v[2]; answerLength = v[3]
        hasRetrieval = v[4]; retrievalTop = v[5]; retrievalGap = v[6]; hasMemory = v[7]; answerInMemory = v[8]
        sampleAgreement = v[9]; probeScore = v[10]
    }

    public subscript(name: String) -> Float? {
        CriticFeatures.names.firstIndex(of: name).map { vector[$0] }
    }
}

/// The work one assessment did.
public struct CriticCost: Sendable, Equatable {
    /// tokens run through the model (prompt + answer once, then every sampled token evaluated)
    public var tokensEncoded = 0
    /// tokens drawn for the agreement samples
    public var tokensSampled = 0
    /// decoder forward calls (a prefill chunk or one decode step each)
    public var forwardPasses = 0
    public init() {}

    public static func += (a: inout CriticCost, b: CriticCost) {
        a.tokensEncoded += b.tokensEncoded
        a.tokensSampled += b.tokensSampled
        a.forwardPasses += b.forwardPasses
    }
}

public struct CriticAssessment: Sendable {
    /// calibrated P(the answer is correct)
    public var probability: Float
    /// the head's raw logit before calibration
    public var logit: Float
    public var features: CriticFeatures
    public var cost: CriticCost
}

/// What one forward pass (and the samples) tell about an answer before the probe is applied:
/// the features without probeScore, and the mean final-norm hidden state over the rows that
/// predict the answer tokens ([C]; the row before the answer alone for an empty answer).
public struct CriticObservation: Sendable {
    public var features: CriticFeatures
    public var hidden: [Float]
    public var cost: CriticCost
}

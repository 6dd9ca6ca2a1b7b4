// The critic as the engine's verifier: the engine's view of an attempt becomes the critic's
// evidence, the critic's own cost (its forward pass over prompt + answer and its agreement
// samples) joins the query's cost account.

extension Critic: EngineVerifier {
    public func verify(_ input: VerificationInput, model: LanguageModel, seed: UInt64) throws -> Verification {
        let evidence = CriticEvidence(promptTokens: input.promptTokens, answerTokens: input.answerTokens, answerText: input.answerText,
                                      memories: input.memories.map { MemoryStoreHit(tier: $0.tier, id: $0.id, score: $0.score, text: $0.text) },
                                      retrievalScores: input.retrievalScores)
        let a = try assess(model: model, evidence: evidence, seed: seed)
        var cost = CostAccount()
        let tokens = a.cost.tokensEncoded + a.cost.tokensSampled
        cost.criticTokens = tokens
        cost.matmulFLOPs = Double(tokens) * ComputeBudget().matmulFLOPsPerToken(model.dims)
        cost.latencyUnits = Double(a.cost.forwardPasses)
        let calibrated: Bool
        if case .none = calibration { calibrated = false } else { calibrated = true }
        return Verification(probability: a.probability, calibrated: calibrated, cost: cost)
    }
}

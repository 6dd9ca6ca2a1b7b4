// CriticEval: the critic inside `hmst eval`. When EvalOptions.critic is set, each generate_until
// answer is also scored by the critic (same prompt, memories and retrieval scores as the answer
// was given), and the task's metrics gain the critic's: AUROC, ECE with its noise floor, Brier
// and the mean confidence, each with a bootstrap interval. On items the critic was fitted on
// these are optimistic; `hmst train-critic` reports the held-out entity split.

extension Evaluator {
    /// The greedy answer of a prompt and, when a critic is set, its P(correct).
    func answerJudged(prompt p: String, item: EvalItem, condition: MemoryCondition, until: [String],
                      maxTokens: Int) throws -> (String, Double?) {
        guard let critic = options.critic else { return (try generate(prompt: p, until: until, maxTokens: maxTokens), nil) }
        let (text, tokens) = try answer(prompt: p, until: until, maxTokens: maxTokens)
        // the retrieval again, for its scores; the texts are the ones the prompt carries
        var (hits, scores) = try memoryHits(for: item, query: item.prompt, condition: condition)
        if p != prompt(memories: hits.map(\.text), question: item.prompt) { (hits, scores) = ([], []) }
        let seed = options.seed ^ FileChecksum.of(Array((item.id + "/" + condition.rawValue).utf8))
        let a = try critic.assess(model: model, evidence: CriticEvidence(promptTokens: encode(p), answerTokens: tokens, answerText: text,
                                                                         memories: hits, retrievalScores: scores), seed: seed)
        return (text, Double(a.probability))
    }

    /// critic_auroc, critic_ece, critic_ece_noise_floor, critic_brier and critic_confidence from
    /// the per-item columns critic_p and exact_match; none when the critic did not run. The noise
    /// floor's interval is the central 95% of ECE simulated for a perfectly calibrated critic.
    func criticMetrics(_ cols: [String: [Double]]) -> [EvalMetricValue] {
        guard let p = cols["critic_p"], let em = cols["exact_match"], p.count == em.count, !p.isEmpty else { return [] }
        let y = em.map { $0 > 0.5 }
        let B = options.resamples, seed = options.seed
        func metric(_ name: String, _ f: @escaping ([Double], [Bool]) -> Double) -> EvalMetricValue {
            let ci = EvalMetrics.bootstrapInterval(n: p.count, resamples: B, seed: seed) { idx in
                f(idx.map { p[$0] }, idx.map { y[$0] })
            }
            return EvalMetricValue(name: name, value: f(p, y), low: ci.low, high: ci.high, n: p.count)
        }
        let floor = CriticMetrics.eceNoiseFloor(probabilities: p, draws: 200, seed: seed)
        return [metric("critic_auroc") { CriticMetrics.auroc(scores: $0, labels: $1) },
                metric("critic_ece") { CriticMetrics.ece(probabilities: $0, labels: $1) },
                EvalMetricValue(name: "critic_ece_noise_floor", value: floor.mean, low: floor.low, high: floor.high, n: p.count),
                metric("critic_brier") { CriticMetrics.brier(probabilities: $0, labels: $1) },
                metric("critic_confidence") { ps, _ in ps.reduce(0, +) / Double(ps.count) }]
    }
}

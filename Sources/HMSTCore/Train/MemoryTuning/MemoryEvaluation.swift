// MemoryEvaluation: how well a model answers held-out questions from memory, in four settings:
//   oracle   the gold fact alone in memory
//   on       the gold fact among k-1 distractors (a retriever that found it)
//   off      no memory
//   deleted  the same distractors with the gold entry removed
// Answer NLL is nats per answer token (the answer and </a>, teacher-forced); exact match is
// whether greedy decoding reproduces the answer and </a>, i.e. every answer position's argmax
// is the answer's token (teacher forcing and greedy decoding agree exactly when they do).

public enum MemorySetting: String, Sendable, CaseIterable {
    case oracle, on, off, deleted
}

public struct MemoryEvaluation: Sendable {
    public var questions = 0
    /// nats per answer token, per setting
    public var nll: [MemorySetting: Double] = [:]
    /// fraction of questions answered exactly, per setting
    public var exactMatch: [MemorySetting: Double] = [:]
    /// with episodic soft tokens (EpisodicSoftTraining.evaluate): "state_oracle", "state_on"
    public var softNLL: [String: Double] = [:]
    public var softExactMatch: [String: Double] = [:]
    /// share of held-out facts whose first soft row names the value's first token (and second
    /// row its second), EpisodicSoftTraining.readoutAccuracy
    public var softReadout: (first: Double, second: Double?)? = nil
    public init() {}
}

public enum MemoryEvaluator {
    /// Evaluates `questions` (typically the held-out ones) in every setting, B examples per
    /// forward of T positions. Memories are drawn from a fixed seed, so repeated evaluations
    /// of one model give the same numbers.
    public static func evaluate(grad: ModelGrad, curriculum: MemoryCurriculum, questions: [FactQuestion], B: Int, T: Int,
                                seed: UInt64 = 0x5eed) throws -> MemoryEvaluation {
        guard !questions.isEmpty else { throw HMSTError.invalidArgument("no questions to evaluate") }
        var rng = RNG(seed: seed)
        var examples: [(MemorySetting, MemoryExample)] = []
        for q in questions {
            let (fact, distractors, on, g) = curriculum.evaluationMemories(for: q, rng: &rng)
            func ex(_ m: [String], _ gold: Int?, _ c: CurriculumCondition) -> MemoryExample {
                let e = curriculum.make(memories: m, goldPosition: gold, question: q.question, answer: q.answer, condition: c)
                return e.tokens.count > T + 1 ? curriculum.fitted(e, question: q.question, answer: q.answer, length: T + 1) : e
            }
            examples.append((.oracle, ex([fact.text], 0, .gold)))
            examples.append((.on, ex(on, g, .gold)))
            examples.append((.off, ex([], nil, .none)))
            examples.append((.deleted, ex(distractors, nil, .distractorsOnly)))
        }
        let scores = try scoreAnswers(examples, grad: grad, pad: curriculum.tokenizer.eosId ?? 0, B: B, T: T, example: { $0 }) { _, inputs, targets in
            _ = try grad.step(inputs: inputs, targets: targets, B: B, T: T, backward: false)
        }
        var r = MemoryEvaluation()
        r.questions = questions.count
        for s in MemorySetting.allCases {
            r.nll[s] = scores.nll(s)
            r.exactMatch[s] = scores.exactMatch(s, questions: questions.count)
        }
        return r
    }

    /// Teacher-forced answer scores, summed per setting.
    struct AnswerScores<Setting: Hashable> {
        var nllSum: [Setting: Double] = [:], tokens: [Setting: Int] = [:], exact: [Setting: Int] = [:]
        /// nats per answer token
        func nll(_ s: Setting) -> Double { nllSum[s, default: 0] / Double(max(1, tokens[s, default: 0])) }
        /// the fraction of `questions` whose every answer position's argmax is the answer's token
        func exactMatch(_ s: Setting, questions: Int) -> Double { Double(exact[s, default: 0]) / Double(questions) }
    }

    /// Scores `examples` B at a time: each batch is packed into T positions (a short last batch is
    /// filled with copies, ignored, to keep the batch shape), `forward` runs the model on it
    /// without backward, and every answer position of a real row adds its NLL to its setting
    /// (exact when every argmax is the target).
    static func scoreAnswers<Setting: Hashable, E>(_ examples: [(Setting, E)], grad: ModelGrad, pad: Int32, B: Int, T: Int,
                                                   example: (E) -> MemoryExample,
                                                   forward: (_ batch: [E], _ inputs: [Int32], _ targets: [Int32]) throws -> Void)
        throws -> AnswerScores<Setting> {
        var scores = AnswerScores<Setting>()
        var inputs: [Int32] = [], targets: [Int32] = []
        var i = 0
        while i < examples.count {
            let chunk = Array(examples[i..<min(examples.count, i + B)])
            var batch = chunk.map(\.1)
            while batch.count < B { batch.append(chunk[0].1) }
            MemoryBatch.pack(batch.map(example), T: T, pad: pad, inputs: &inputs, targets: &targets)
            try forward(batch, inputs, targets)
            _ = grad.withLastProbabilities { probs, _, V in
                for (b, (setting, _)) in chunk.enumerated() {
                    var nll = 0.0, n = 0, allRight = true
                    for t in 0..<T {
                        let target = Int(targets[b * T + t])
                        guard target >= 0 else { continue }
                        let row = probs + (b * T + t) * V
                        nll += -Double(log(max(row[target], Float.leastNormalMagnitude)))
                        n += 1
                        var best = 0
                        for v in 1..<V where row[v] > row[best] { best = v }
                        if best != target { allRight = false }
                    }
                    scores.nllSum[setting, default: 0] += nll
                    scores.tokens[setting, default: 0] += n
                    if allRight && n > 0 { scores.exact[setting, default: 0] += 1 }
                }
            }
            i += B
        }
        return scores
    }
}

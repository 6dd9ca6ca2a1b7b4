// EngineReport: an engine result (and a controller training report) as JSON and as text.
import Foundation

extension EnginePolicy {
    /// "auto", "controller", "full", "none", or decisions joined by + ("episodic+semantic+verify").
    public static func parse(_ s: String) throws -> EnginePolicy {
        switch s {
        case "auto", "automatic": return .automatic
        case "controller": return .controller
        case "full": return .fixed(.full)
        case "none", "off": return .fixed(.allOff)
        case "all", "all-on": return .fixed(.allOn)
        case "": throw HMSTError.invalidArgument("policy: empty (auto, controller, full, none, or decisions joined by +)")
        default:
            var d = EngineDecisions()
            var bits = d.bits
            for part in s.split(separator: "+", omittingEmptySubsequences: false) {
                if part.isEmpty { throw HMSTError.invalidArgument("policy \"\(s)\": an empty decision before, after or between + signs") }
                if ["auto", "automatic", "controller", "full", "none", "off", "all", "all-on"].contains(String(part)) {
                    throw HMSTError.invalidArgument("policy \"\(s)\": \"\(part)\" is a whole policy; only decisions (\(EngineDecisions.names.joined(separator: ", "))) are joined by +")
                }
                guard let i = EngineDecisions.names.firstIndex(of: String(part)) else {
                    throw HMSTError.invalidArgument("policy \"\(s)\": \"\(part)\" is not one of auto, controller, full, none, \(EngineDecisions.names.joined(separator: ", ")) (joined by +)")
                }
                bits[i] = true
            }
            d = EngineDecisions(bits: bits)
            return .fixed(d)
        }
    }
}

public enum EngineReport {
    public static func json(_ r: EngineResult) -> String {
        let w = JSONWriter()
        w.object {
            w.field("query", r.query)
            if let o = r.owner { w.field("owner", o) }
            w.field("answer", r.answer)
            w.field("model_answer", r.modelAnswer)
            w.field("abstained", r.abstained)
            w.field("retried", r.retried)
            w.field("confidence", Double(r.confidence))
            w.field("confidence_calibrated", r.confidenceCalibrated)
            w.field("policy", r.policy)
            w.field("decisions", object: {
                for (n, b) in zip(EngineDecisions.names, r.decisions.bits) { w.field(n, b) }
            })
            w.field("probabilities", object: {
                for (n, p) in zip(EngineDecisions.names, r.probabilities.yes) { w.field(n, Double(p)) }
            })
            w.field("citations", .array(r.citations.map { c in
                .object([("tier", .string(c.tier.rawValue)), ("id", .number(Double(c.id))), ("score", .number(Double(c.score))), ("text", .string(c.text))])
            }))
            w.field("tokens", .array(r.tokens.map { .number(Double($0)) }))
            w.field("token_logprobs", .array(r.tokenLogProbs.map { .number(Double($0)) }))
            w.field("finish_reason", r.finish.rawValue)
            w.field("max_tokens", r.maxTokens)
            let c = r.cost
            w.field("cost", object: {
                w.field("prompt_tokens", c.promptTokens)
                w.field("generated_tokens", c.generatedTokens)
                w.field("matmul_flops", c.matmulFLOPs)
                w.field("vectors_scanned", c.vectorsScanned)
                w.field("retrieval_flops", c.retrievalFLOPs)
                w.field("ssm_tokens_encoded", c.ssmTokensEncoded)
                w.field("retrievals", c.retrievals)
                w.field("critic_calls", c.criticCalls)
                w.field("critic_tokens", c.criticTokens)
                w.field("attempts", c.attempts)
                w.field("latency_units", c.latencyUnits)
            })
            w.field("stage_ms", object: {
                for (n, v) in zip(StageTimes.names, r.times.values) { w.field(n, v) }
            })
            w.field("events", r.events)
        }
        return w.output
    }

    public static func text(_ r: EngineResult) -> String {
        var s = "Q: \(r.query)\nA: \(r.answer)"
        if r.abstained && !r.modelAnswer.isEmpty { s += "   (the model said: \(r.modelAnswer))" }
        s += "\nconfidence \(String(format: "%.2f", r.confidence))\(r.confidenceCalibrated ? " (critic, calibrated)" : " (answer token probability, not calibrated)")"
        if r.retried { s += ", after a retry with memory" }
        s += "\ndecisions (\(r.policy)): "
        s += zip(EngineDecisions.names, zip(r.decisions.bits, r.probabilities.yes)).map { "\($0.0) \($0.1.0 ? "yes" : "no") (\(String(format: "%.2f", $0.1.1)))" }.joined(separator: ", ")
        for (i, c) in r.citations.enumerated() {
            s += "\n  [\(i + 1)] \(c.tier.rawValue) #\(c.id) score \(String(format: "%.3f", c.score)): \(c.text)"
        }
        let c = r.cost
        s += "\ncost: \(c.promptTokens) prompt + \(c.generatedTokens) generated tokens, \(String(format: "%.2f", c.matmulFLOPs / 1e6)) MFLOP, \(c.vectorsScanned) vectors scanned, \(c.criticCalls) critic calls"
        s += "\nms: " + zip(StageTimes.names, r.times.values).map { "\($0.0) \(String(format: "%.1f", $0.1))" }.joined(separator: ", ")
        return s
    }

    public static func outcomesJSONL(_ t: OutcomeTable) -> String {
        var out = ""
        for (q, query) in t.queries.enumerated() {
            let w = JSONWriter()
            w.object {
                w.field("query", query.text)
                w.field("answer", query.answer)
                w.field("kind", query.kind.rawValue)
                w.field("entity", query.entity)
                w.field("observation", .array(t.observations[q].map { .number(Double($0)) }))
                w.field("outcomes", .array(t.outcomes[q].enumerated().map { a, o in
                    .object([("action", .string(EngineDecisions(index: a).summary)), ("correct", .bool(o.correct)),
                             ("model_correct", .bool(o.modelCorrect)), ("abstained", .bool(o.abstained)),
                             ("confidence", .number(Double(o.confidence))), ("latency_units", .number(o.latencyUnits)),
                             ("flops", .number(o.flops)), ("ms", .number(o.ms)), ("answer", .string(o.answer))])
                }))
            }
            out += w.output + "\n"
        }
        return out
    }

    public static func controllerText(_ r: ControllerReport) -> String {
        var s = "controller: \(r.trainQueries) training and \(r.testQueries) test queries (entity-disjoint); kinds "
        s += QueryKind.allCases.map { "\($0.rawValue) \(r.kinds[$0] ?? 0)" }.joined(separator: ", ")
        s += "\nmean reward on the test queries (95% bootstrap interval), accuracy:\n"
        for p in r.scores.prefix(12) {
            s += "  \(p.name.padding(toLength: 44, withPad: " ", startingAt: 0)) \(String(format: "%+.4f", p.mean)) [\(String(format: "%+.4f", p.ci95.0)), \(String(format: "%+.4f", p.ci95.1))]  acc \(String(format: "%.3f", p.accuracy))\n"
        }
        s += "best fixed policy: \(r.bestFixed)\n"
        s += "PPO − best fixed: \(String(format: "%+.4f", r.ppoMinusBestFixed.0)) [\(String(format: "%+.4f", r.ppoMinusBestFixed.1)), \(String(format: "%+.4f", r.ppoMinusBestFixed.2))] (paired); gap to the per-query best closed: \(String(format: "%.1f%%", 100 * r.gapClosed))\n"
        s += "PPO choices on the test queries:\n"
        for k in QueryKind.allCases {
            guard let c = r.choices[k] else { continue }
            s += "  \(k.rawValue): " + c.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        }
        s += "outcome table \(String(format: "%.0f", r.tableSeconds)) s, PPO \(String(format: "%.1f", r.ppoSeconds)) s"
        return s
    }

    /// Gap closed and PPO − best fixed over the splits of ControllerTraining.acrossSplits.
    public static func splitsText(_ s: SplitSummary) -> String {
        let g = SplitSummary.meanSD(s.gapClosed), d = SplitSummary.meanSD(s.ppoMinusBestFixed)
        return String(format: "over %ld entity splits: gap to the per-query best closed %.1f%% (sd %.1f, min %.1f, max %.1f); PPO − best fixed %+.4f (sd %.4f, min %+.4f)",
                      s.gapClosed.count, g.mean * 100, g.sd * 100, (s.gapClosed.min() ?? .nan) * 100, (s.gapClosed.max() ?? .nan) * 100,
                      d.mean, d.sd, s.ppoMinusBestFixed.min() ?? .nan)
    }

    public static func controllerJSON(_ r: ControllerReport, options o: ControllerTrainingOptions, splits: SplitSummary? = nil) -> String {
        let w = JSONWriter()
        w.object {
            w.field("format", "hmst-controller-report")
            w.field("train_queries", r.trainQueries)
            w.field("test_queries", r.testQueries)
            w.field("kinds", object: { for k in QueryKind.allCases { w.field(k.rawValue, r.kinds[k] ?? 0) } })
            w.field("reward", "1.0*accuracy - 0.3*latency - 0.2*compute + 0.5*calibration")
            w.field("ppo_steps", o.ppo.totalSteps)
            w.field("seed", Int(o.seed))
            w.field("policies", .array(r.scores.map { p in
                .object([("name", .string(p.name)), ("mean_reward", .number(p.mean)), ("ci95", .array([.number(p.ci95.0), .number(p.ci95.1)])),
                         ("accuracy", .number(p.accuracy))])
            }))
            w.field("best_fixed", r.bestFixed)
            w.field("ppo_minus_best_fixed", .array([.number(r.ppoMinusBestFixed.0), .number(r.ppoMinusBestFixed.1), .number(r.ppoMinusBestFixed.2)]))
            w.field("gap_closed", r.gapClosed)
            if let splits {
                w.field("splits", object: {
                    w.field("gap_closed", .array(splits.gapClosed.map { .number($0) }))
                    w.field("ppo_minus_best_fixed", .array(splits.ppoMinusBestFixed.map { .number($0) }))
                    w.field("ppo_mean_reward", .array(splits.ppoMean.map { .number($0) }))
                    w.field("best_fixed", .array(splits.bestFixed.map { .string($0) }))
                    let g = SplitSummary.meanSD(splits.gapClosed), d = SplitSummary.meanSD(splits.ppoMinusBestFixed)
                    w.field("gap_closed_mean", g.mean); w.field("gap_closed_sd", g.sd)
                    w.field("ppo_minus_best_fixed_mean", d.mean); w.field("ppo_minus_best_fixed_sd", d.sd)
                })
            }
            w.field("table_seconds", r.tableSeconds)
            w.field("ppo_seconds", r.ppoSeconds)
            if let last = r.ppoLog.last {
                w.field("ppo_last", object: {
                    w.field("approx_kl", Double(last.approxKL))
                    w.field("clip_fraction", Double(last.clipFraction))
                    w.field("explained_variance", Double(last.explainedVariance))
                    w.field("entropy", Double(last.entropy))
                    for c in last.rewardComponents { w.field("reward_" + c.name, c.mean) }
                })
            }
        }
        return w.output
    }
}

// EvalReport: the results of a run and their two serialisations: the JSON report (per task and
// memory condition, each metric's value, 95% bootstrap interval and item count) and the
// optional per-item JSONL. Layout of the report:
//
//   {"format": "hmst-eval-report", "version": 1,
//    "settings": {"conditions": [...], "k": 4, "seed": 0, "bootstrap_resamples": 1000,
//                 "n_ctx": 1024, "prompt_format": "markers" | "plain", "memory": DIR | null,
//                 "retrieval": {"mode", "tier", "dense_weight", "lexical_weight", "min_coverage"} (when on or deleted ran)},
//    "tasks": {"NAME": {"output_type": "...", "file": "...", "n_items": N,
//              "conditions": {"off": {"METRIC": {"value": v, "ci95": [lo, hi], "n": N}, ...}, ...}}},
//    "seconds": 1.2}

public struct EvalMetricValue: Sendable, Equatable {
    public var name: String
    public var value: Double
    public var low: Double
    public var high: Double
    public var n: Int
}

public struct EvalResult: Sendable {
    public var task: String
    public var outputType: EvalOutputType
    public var file: String
    public var condition: MemoryCondition
    public var n: Int
    public var metrics: [EvalMetricValue]

    public func metric(_ name: String) -> EvalMetricValue? { metrics.first { $0.name == name } }
}

/// One scored item under one condition, for the per-item JSONL.
public struct EvalItemRecord: Sendable {
    public var task: String
    public var condition: MemoryCondition
    public var id: String
    /// the memories placed in the prompt
    public var memories: [String]
    /// scores by name, in insertion order
    public var fields: [(String, JSONValue)]
    public var metadata: [(String, JSONValue)]
}

public struct EvalReport: Sendable {
    public var results: [EvalResult] = []
    public var items: [EvalItemRecord] = []
    public var options = EvalOptions()
    public var nCtx = 0
    public var promptFormat = "plain"
    public var memoryDirectory: String?
    /// how on and deleted retrieved, when they ran
    public var retrieval: (options: RetrievalOptions, tier: MemoryTier)?
    public var seconds = 0.0

    public init() {}

    public func result(task: String, condition: MemoryCondition) -> EvalResult? {
        results.first { $0.task == task && $0.condition == condition }
    }

    public func json() -> String {
        let w = JSONWriter()
        w.object {
            w.field("format", "hmst-eval-report")
            w.field("version", 1)
            w.field("settings") {
                w.field("conditions", options.conditions.map(\.rawValue))
                w.field("k", options.k)
                if options.episodicInjection != .text { w.field("episodic_injection", options.episodicInjection.rawValue) }
                w.field("seed", JSONValue.number(Double(options.seed)))
                w.field("bootstrap_resamples", options.resamples)
                w.field("n_ctx", nCtx)
                w.field("prompt_format", promptFormat)
                w.field("memory", memoryDirectory.map(JSONValue.string) ?? .null)
                if let (r, tier) = retrieval {
                    w.field("retrieval") {
                        w.field("mode", r.mode.rawValue)
                        w.field("tier", tier.rawValue)
                        w.field("dense_weight", Double(r.denseWeight))
                        w.field("lexical_weight", Double(r.lexicalWeight))
                        w.field("min_coverage", Double(r.minCoverage))
                    }
                }
            }
            w.field("tasks") {
                var seen: [String] = []
                for r in results where !seen.contains(r.task) {
                    seen.append(r.task)
                    w.field(r.task) {
                        w.field("output_type", r.outputType.rawValue)
                        w.field("file", r.file)
                        w.field("n_items", r.n)
                        w.field("conditions") {
                            for c in results where c.task == r.task {
                                w.field(c.condition.rawValue) {
                                    for m in c.metrics {
                                        w.field(m.name) {
                                            w.field("value", m.value)
                                            w.field("ci95", JSONValue.array([.number(m.low), .number(m.high)]))
                                            w.field("n", m.n)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            w.field("seconds", seconds)
        }
        return w.output + "\n"
    }

    /// One JSON object per line: task, condition, id, memories, the scores, metadata.
    public func itemsJSONL() -> String {
        var out = ""
        for it in items {
            let w = JSONWriter()
            w.object {
                w.field("task", it.task)
                w.field("condition", it.condition.rawValue)
                w.field("id", it.id)
                w.field("memories", it.memories)
                for (k, v) in it.fields { w.field(k, v) }
                if !it.metadata.isEmpty { w.field("metadata", JSONValue.object(it.metadata)) }
            }
            out += w.output + "\n"
        }
        return out
    }
}

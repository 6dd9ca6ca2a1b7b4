// hmst eval CKPT --task FILE...: lm-evaluation-harness-style tasks under memory conditions;
// prints one line per task, condition and metric and writes the JSON report. Every action is
// HMSTCore's EvalRun.
import ArgumentParser
import Foundation
import HMSTCore

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on local tasks (loglikelihood, multiple_choice, generate_until, loglikelihood_rolling).",
        discussion: """
        A task is a JSON file {"name", "output_type", "data": "items.jsonl", "until": [...], "max_gen_tokens": N};
        its items are JSONL lines {"id", "prompt", "target", "choices", "gold", "memory": [...]} ("text" for
        loglikelihood_rolling). Conditions: off (no memories), on (k retrieved from --memory), oracle (the
        item's gold memories), deleted (retrieved after removing the gold entries; the directory is not changed).
        """)

    @Argument(help: "Checkpoint directory (with tokenizer.json).") var checkpoint: String
    @Option(name: .customLong("task"), parsing: .upToNextOption, help: "Task description files (JSON).") var tasks: [String]
    @Option(help: "Memory directory (episodic/ and semantic/) for the on and deleted conditions.") var memory: String?
    @Option(help: "Comma-separated memory conditions: off, on, oracle, deleted.") var condition = "off"
    @Option(name: [.customShort("k"), .long], help: "Memories retrieved per item.") var k = 4
    @Option(help: "How on and deleted retrieve: hybrid (BM25 and vectors, fused by reciprocal rank), dense or lexical.")
    var retrieval = "hybrid"
    @Option(name: .customLong("lexical-weight"), help: "Hybrid: weight of the BM25 rank in the reciprocal-rank fusion.")
    var lexicalWeight = RetrievalOptions().lexicalWeight
    @Option(name: .customLong("dense-weight"), help: "Hybrid: weight of the vectors' rank in the reciprocal-rank fusion.")
    var denseWeight = RetrievalOptions().denseWeight
    @Option(name: .customLong("min-coverage"),
            help: "Drop retrieved entries holding less than this share of the question's idf-weighted terms (0 keeps all; 0.5 drops entries about another entity).")
    var minCoverage = RetrievalOptions().minCoverage
    @Option(help: "Memory tier to retrieve from: episodic, semantic or both.") var tier = "both"
    @Option(name: .customLong("episodic-injection"),
            help: "How episodic entries reach the model: text, state (the checkpoint's trained soft tokens from each entry's SSM state) or both. state/both: loglikelihood, multiple_choice and generate_until tasks.")
    var episodicInjection = "text"
    @Option(help: "JSON report path.") var output: String?
    @Option(name: .customLong("items-output"), help: "Per-item JSONL path.") var itemsOutput: String?
    @Option(help: "First N items of each task (0 = all).") var limit = 0
    @Option(help: "Bootstrap seed.") var seed: UInt64 = 0
    @Option(name: .customLong("bootstrap"), help: "Bootstrap resamples for the 95% intervals.") var resamples = 1000
    @Option(name: .customLong("n-ctx"), help: "Context length (0 = the model's, at most 4096).") var nCtx = 0
    @Option(name: .customLong("knn-lambdas"), help: "kNN-LM control: comma-separated λ values (answer NLL under off, datastore of the gold memories).")
    var knnLambdas: String?
    @Flag(help: "Also score generate_until answers with the checkpoint's critic (critic_auroc, critic_ece, critic_brier; optimistic on items it was fitted on).")
    var critic = false
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            var req = EvalRunRequest()
            req.taskPaths = tasks
            req.memoryDirectory = memory
            req.options.conditions = try MemoryCondition.parseList(condition)
            req.options.k = k
            req.options.seed = seed
            req.options.resamples = resamples
            req.options.nCtx = nCtx
            if let knnLambdas {
                req.options.knnLambdas = try knnLambdas.split(separator: ",", omittingEmptySubsequences: false).map {
                    guard let v = Double($0.trimmingCharacters(in: .whitespaces)) else { throw HMSTError.invalidArgument("--knn-lambdas: \"\($0)\" is not a number") }
                    return v
                }
            }
            req.limit = limit
            guard let mode = RetrievalMode(rawValue: retrieval) else {
                throw HMSTError.invalidArgument("--retrieval \(retrieval): expected hybrid, dense or lexical")
            }
            req.retrieval.mode = mode
            req.retrieval.lexicalWeight = lexicalWeight
            req.retrieval.denseWeight = denseWeight
            req.retrieval.minCoverage = minCoverage
            guard let t = MemoryTier(rawValue: tier) else { throw HMSTError.invalidArgument("--tier \(tier): expected episodic, semantic or both") }
            req.tier = t
            guard let inj = EpisodicInjection(rawValue: episodicInjection) else {
                throw HMSTError.invalidArgument("--episodic-injection \(episodicInjection): expected text, state or both")
            }
            req.options.episodicInjection = inj
            req.reportPath = output
            req.itemsPath = itemsOutput
            if critic { req.criticCheckpoint = checkpoint }
            let model = try LanguageModel.load(path: checkpoint)
            let report = try EvalRun.run(model: model, req)
            for r in report.results {
                for m in r.metrics {
                    print(String(format: "%@  %@  %@  %.4f  [%.4f, %.4f]  n=%ld", r.task, r.condition.rawValue, m.name,
                                 m.value, m.low, m.high, m.n))
                }
            }
            printError(String(format: "evaluated %ld task(s) x %ld condition(s) in %.1f s", Set(report.results.map(\.task)).count,
                              req.options.conditions.count, report.seconds))
        }
    }
}

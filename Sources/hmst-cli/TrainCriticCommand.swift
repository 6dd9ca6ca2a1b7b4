// hmst train-critic CKPT --memory DIR --facts DIR: answers the fact benchmark's questions under
// the memory conditions, fits the critic on one entity split, calibrates it on another, prints
// its scores on a third and writes it into the checkpoint. Every action is HMSTCore's CriticTrainRun.
import ArgumentParser
import Foundation
import HMSTCore

struct TrainCriticCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-critic",
        abstract: "Fit the answer critic (P(correct)) on the fact benchmark and save it in the checkpoint.",
        discussion: """
        The pool: every question of the fact tasks (facts_heldout_gen, facts_known_gen) answered greedily under each \
        memory condition, correct when the normalised answer equals the target. Entities are split into fit, \
        validation (calibration) and test; the scores printed are the test split's. The critic is written to \
        CKPT/critic/ (or --output's). --pool-output keeps the pool (also when it cannot train a critic); --pool \
        refits from a kept one without answering again.
        """)

    @Argument(help: "Checkpoint directory (with tokenizer.json).") var checkpoint: String
    @Option(help: "Memory directory (episodic/ and semantic/) for the on and deleted conditions.") var memory: String?
    @Option(help: "Fact benchmark directory (`hmst facts generate`): its facts_*_gen tasks.") var facts: String?
    @Option(name: .customLong("task"), parsing: .upToNextOption, help: "generate_until task files instead of --facts.")
    var tasks: [String] = []
    @Option(help: "Checkpoint directory to write the critic into (default: CKPT).") var output: String?
    @Option(help: "Comma-separated memory conditions: off, on, oracle, deleted.") var condition = "off,on,oracle,deleted"
    @Option(name: [.customShort("k"), .long], help: "Memories retrieved per question.") var k = 4
    @Option(help: "How on and deleted retrieve: hybrid, dense or lexical.") var retrieval = "hybrid"
    @Option(help: "Memory tier to retrieve from: episodic, semantic or both.") var tier = "both"
    @Option(help: "First N questions of each task (0 = all).") var limit = 0
    @Option(help: "Answers the critic samples to check agreement (0 = off).") var samples = 4
    @Option(name: .customLong("sample-temperature"), help: "Temperature of those samples.") var sampleTemperature: Float = 0.7
    @Option(name: .customLong("sample-max-tokens"), help: "Tokens per sampled answer at most.") var sampleMaxTokens = 8
    @Option(help: "Calibration fitted on the validation split: platt, temperature or none.") var calibration = "platt"
    @Option(name: .customLong("fit-fraction"), help: "Share of entities the critic is fitted on.") var fitFraction = 0.6
    @Option(name: .customLong("validation-fraction"), help: "Share of entities for calibration (the rest is the test split).")
    var validationFraction = 0.2
    @Option(name: .customLong("split-seed"), help: "Seed of the entity split.") var splitSeed: UInt64 = 0
    @Option(name: .customLong("min-per-class"), help: "Correct and wrong answers each split must hold at least.") var minPerClass = 10
    @Option(help: "Seed of the critic's samples and of ECE's noise floor.") var seed: UInt64 = 0
    @Option(help: "Read the pool from this JSONL instead of answering the questions.") var pool: String?
    @Option(name: .customLong("pool-output"), help: "Write the pool (features, hidden states, labels) as JSONL.") var poolOutput: String?
    @Option(name: .customLong("report"), help: "JSON report path.") var report: String?
    @Flag(name: .customLong("no-progress"), help: "No progress lines.") var noProgress = false
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            var req = CriticTrainRequest()
            if pool == nil {
                if let facts { req.pool.taskPaths = try CriticPoolRequest.factTasks(directory: facts) }
                req.pool.taskPaths += tasks
                guard !req.pool.taskPaths.isEmpty else { throw HMSTError.invalidArgument("give --facts DIR, --task FILE... or --pool FILE") }
            }
            req.pool.memoryDirectory = memory
            req.pool.conditions = try MemoryCondition.parseList(condition)
            req.pool.k = k
            guard let mode = RetrievalMode(rawValue: retrieval) else {
                throw HMSTError.invalidArgument("--retrieval \(retrieval): expected hybrid, dense or lexical")
            }
            req.pool.retrieval.mode = mode
            guard let t = MemoryTier(rawValue: tier) else { throw HMSTError.invalidArgument("--tier \(tier): expected episodic, semantic or both") }
            req.pool.tier = t
            req.pool.limit = limit
            req.pool.settings.samples = samples
            req.pool.settings.temperature = sampleTemperature
            req.pool.settings.maxTokens = sampleMaxTokens
            req.pool.seed = seed
            req.poolInput = pool
            req.poolOutput = poolOutput
            req.options.calibration = calibration
            req.options.fitFraction = fitFraction
            req.options.validationFraction = validationFraction
            req.options.splitSeed = splitSeed
            req.options.minimumPerClass = minPerClass
            req.options.seed = seed
            req.outputCheckpoint = output ?? checkpoint
            req.reportPath = report
            let model = try LanguageModel.load(path: checkpoint)
            let t0 = Date()
            var last = Date.distantPast
            let (_, rep) = try CriticTrainRun.run(model: model, req) { done, total in
                guard !noProgress, done == total || Date().timeIntervalSince(last) > 5 else { return }
                last = Date()
                printError(String(format: "answered %ld/%ld (%.0f s)", done, total, Date().timeIntervalSince(t0)))
            }
            for line in rep.lines() { print(line) }
            printError("critic written to \(req.outputCheckpoint ?? checkpoint)/critic/ in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
        }
    }
}

// hmst ask CKPT --memory DIR "question": one engine query (decisions, citations, confidence);
// hmst rl-train --checkpoint CKPT --facts DIR: Stage 3, the meta-controller by PPO. Every
// action is HMSTCore's Engine and ControllerTraining.
import ArgumentParser
import Foundation
import HMSTCore

struct EngineOptionGroup: ParsableArguments {
    @Option(name: [.customShort("k"), .long], help: "Memories given to the model.") var k = 4
    @Option(name: .customLong("exit-layer"), help: "Layer early exit reads from (default: the controller's, else half the depth).")
    var exitLayer: Int?
    @Option(name: .customLong("confidence-threshold"), help: "Below this verified confidence: retry with memory, then abstain.")
    var threshold: Float = 0.5
    @Option(name: .customLong("n-ctx"), help: "Context length (0 = min(2048, the model's)).") var nCtx = 0

    func options() -> EngineOptions {
        var o = EngineOptions()
        o.k = k
        o.exitLayer = exitLayer
        o.confidenceThreshold = threshold
        o.nCtx = nCtx
        return o
    }
}

struct AskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Answer questions through the HMST engine: controller decisions, memory, critic, citations.",
        discussion: """
        Each question: the query's signals (encoding, uncertainty, retrieval scores), the five decisions (early exit,
        episodic, semantic, expert selection, verify) by the checkpoint's controller (or --policy), the answer with the
        chosen memories, and the critic's confidence when verification ran. Without a question, reads one per line
        from standard input.
        """)

    @Argument(help: "Checkpoint directory (with tokenizer.json; controller/ and critic/ are used when present).") var checkpoint: String
    @Argument(help: "The question (omit to read questions from standard input).") var question: String?
    @Option(help: "Memory directory (episodic/ and semantic/).") var memory: String?
    @Option(help: "Decisions: auto (controller, else full), controller, full, none, or a + list of early_exit, episodic, semantic, expert_selection, verify.")
    var policy = "auto"
    @Option(name: .customLong("max-tokens"), help: "Longest answer in tokens.") var maxTokens = 16
    @Option(help: "Only this owner's memory entries (as the server's routes set them; \"\" = entries without one). Default: every entry.")
    var owner: String?
    @Flag(help: "Print the result as JSON.") var json = false
    @OptionGroup var engine: EngineOptionGroup
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let e = try Engine.open(checkpoint: checkpoint, memory: memory, options: engine.options())
            let p = try EnginePolicy.parse(policy)
            func one(_ text: String) throws {
                var q = EngineQuery(text)
                q.policy = p
                q.owner = owner
                q.maxTokens = maxTokens
                let r = try e.ask(q)
                print(json ? EngineReport.json(r) : EngineReport.text(r))
            }
            if let question { try one(question); return }
            while let line = readLine() {
                if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
                do { try one(line) } catch let err as HMSTError { printError("error: \(err.message)") }
            }
        }
    }
}

struct RLTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rl-train",
        abstract: "Stage 3: train the meta-controller with PPO on a fact set's query mix.",
        discussion: """
        Builds the query mix (known, semantic-only, episodic-only, unanswerable), a memory directory holding it
        (OUTPUT/memory), every action's outcome for every query, then PPO with the seed's reward
        (1.0·accuracy − 0.3·latency − 0.2·compute + 0.5·calibration) on an entity-disjoint training split. Prints the
        PPO policy against every fixed policy, random, a reward regressor and the per-query best action on the test
        split; writes the controller into the checkpoint (controller/) and report.json into OUTPUT.
        """)

    @Option(help: "Checkpoint directory (Stage 2 model; its critic/ is used for verification when present).") var checkpoint: String
    @Option(help: "Fact set directory (`hmst facts generate`).") var facts: String
    @Option(help: "Output directory (memory/, outcomes.jsonl, report.json).") var output: String
    @Option(help: "PPO environment steps (one query each).") var episodes = 300_000
    @Option(name: .customLong("queries-per-kind"), help: "Queries of each kind.") var queriesPerKind = 100
    @Option(name: .customLong("semantic-distractors"), help: "Distractor facts in the semantic tier.") var semanticDistractors = 2000
    @Option(name: .customLong("episodic-distractors"), help: "Distractor facts in the episodic tier.") var episodicDistractors = 200
    @Option(help: "Seed.") var seed: UInt64 = 1
    @Flag(name: .customLong("no-save"), help: "Do not write the controller into the checkpoint.") var noSave = false
    @Option(name: .customLong("reuse-outcomes"),
            help: "outcomes.jsonl of an earlier run with the same checkpoint, facts and options: only the observations are computed again.")
    var reuseOutcomes: String?
    @Option(name: .customLong("action-heads"),
            help: "joint: one 32-way head over the decisions (default); factorized: five two-way heads, one per decision.")
    var actionHeads = "joint"
    @Option(name: .customLong("ppo-learning-rate"), help: "PPO's peak learning rate (annealed to 0).") var ppoLearningRate: Float = 1e-3
    @Option(name: .customLong("ent-coef"), help: "PPO's entropy bonus.") var entCoef: Float = 0.05
    @Option(name: .customLong("hidden"), help: "The policy's hidden layer sizes, comma-separated.") var hidden = "64,64"
    @Option(name: .customLong("ppo-seed"), help: "PPO's own seed (default: --seed); the query mix and split stay those of --seed.")
    var ppoSeed: UInt64?
    @Option(help: "Train and compare on this many entity splits of the same table (split i: split and PPO seeds + i) and report the spread; the controller saved is split 0's.")
    var splits = 1
    @Flag(name: .customLong("no-observation-scaling"), help: "Feed PPO the raw state summary instead of standardising it by the training queries' mean and spread.")
    var noObservationScaling = false
    @Option(name: .customLong("split-seed"), help: "Seed of the (first) entity split into training and test queries (default: --seed).")
    var splitSeed: UInt64?
    @OptionGroup var engine: EngineOptionGroup
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            // every option before the outcome table, which takes minutes
            guard episodes >= 1024, episodes <= 1 << 40 else { throw HMSTError.invalidArgument("--episodes \(episodes) must be in 1024 ... 2^40") }
            guard splits >= 1, splits <= 100 else { throw HMSTError.invalidArgument("--splits \(splits) must be in 1...100") }
            guard (1...1_000_000).contains(queriesPerKind) else {
                throw HMSTError.invalidArgument("--queries-per-kind \(queriesPerKind) must be in 1 ... 1000000")
            }
            for (flag, n) in [("--semantic-distractors", semanticDistractors), ("--episodic-distractors", episodicDistractors)]
            where !(0...10_000_000).contains(n) {
                throw HMSTError.invalidArgument("\(flag) \(n) must be in 0 ... 10000000")
            }
            guard ppoLearningRate > 0, ppoLearningRate.isFinite else {
                throw HMSTError.invalidArgument("--ppo-learning-rate \(ppoLearningRate) must be finite and > 0")
            }
            guard entCoef >= 0, entCoef.isFinite else { throw HMSTError.invalidArgument("--ent-coef \(entCoef) must be finite and >= 0") }
            // rl-train rebuilds OUTPUT/memory from scratch: it must not hold an input, nor anything but a memory
            let memoryDir = output + "/memory"
            if FileIO.exists(memoryDir) {
                for input in [checkpoint, facts] + [reuseOutcomes].compactMap({ $0 }) where FileIO.lies(input, within: memoryDir) {
                    throw HMSTError.invalidArgument("\(input) is inside \(memoryDir), which rl-train replaces: choose another --output")
                }
                if let other = FileIO.listDirectory(memoryDir).first(where: { !["episodic", "semantic"].contains($0) }) {
                    throw HMSTError.invalidArgument("\(memoryDir) holds \(other), not only a memory rl-train built; rl-train replaces that directory: choose another --output")
                }
            }
            var o = ControllerTrainingOptions()
            o.queriesPerKind = queriesPerKind
            o.semanticDistractors = semanticDistractors
            o.episodicDistractors = episodicDistractors
            o.seed = seed
            o.ppo.totalSteps = episodes
            guard ["joint", "factorized"].contains(actionHeads) else {
                throw HMSTError.invalidArgument("--action-heads \(actionHeads): joint or factorized")
            }
            o.jointActions = actionHeads == "joint"
            o.ppo.learningRate = ppoLearningRate
            o.ppo.entCoef = entCoef
            o.ppoSeed = ppoSeed
            o.splitSeed = splitSeed
            o.scaleObservations = !noObservationScaling
            let sizes = hidden.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 4096 }) else {
                throw HMSTError.invalidArgument("--hidden \(hidden): comma-separated layer sizes in 1...4096")
            }
            o.ppo.hidden = sizes.compactMap { $0 }
            try FileIO.makeDirectories(output)
            let model = try LanguageModel.load(path: checkpoint)
            let (queries, semantic, episodic) = try ControllerTraining.queryMix(factsDirectory: facts, options: o)
            printError("query mix: \(queries.count) queries; semantic tier \(semantic.count) texts, episodic tier \(episodic.count)")
            let store = try ControllerTraining.buildMemory(directory: output + "/memory", model: model, semantic: semantic, episodic: episodic) {
                printError("  memory \($0): \($1)/\($2)")
            }
            // every action is tried, so the checkpoint's own controller (if any) is not used
            let e = try Engine(model: model, semantic: store.semantic, episodic: store.episodic, verifier: model.critic,
                               controller: nil, useModelParts: false, options: engine.options())
            let reused = try reuseOutcomes.map { try OutcomeTable.readOutcomes(path: $0, queries: queries) }
            let t0 = Date()
            let table = try OutcomeTable.build(engine: e, queries: queries, maxTokens: 12, reusing: reused) { i, n in
                if i % 20 == 0 || i == n { printError("  outcomes: \(i)/\(n) queries (\(Int(Date().timeIntervalSince(t0))) s)") }
            }
            let tableSeconds = Date().timeIntervalSince(t0)
            try FileIO.writeAtomically(output + "/outcomes.jsonl", text: EngineReport.outcomesJSONL(table))
            var reports: [ControllerReport] = []
            let summary = try ControllerTraining.acrossSplits(table: table, options: o, splits: splits, onUpdate: { log in
                let every = max(1, o.ppo.nUpdates / 10)
                if log.update == 1 || log.update % every == 0 {
                    let r = log.rewardComponents.map { "\($0.name) \(String(format: "%.3f", $0.mean))" }.joined(separator: ", ")
                    printError("  ppo update \(log.update): return \(String(format: "%.3f", log.meanEpisodicReturn ?? .nan)) kl \(String(format: "%.4f", log.approxKL)) clip \(String(format: "%.3f", log.clipFraction)) ev \(String(format: "%.3f", log.explainedVariance)) | \(r)")
                }
            }) { i, net, r in
                var report = r
                report.tableSeconds = tableSeconds
                reports.append(report)
                if i > 0 {
                    printError(String(format: "  split %ld: PPO %+.4f, best fixed (%@) %+.4f, gap closed %.1f%%", i, report.scores.first?.mean ?? .nan,
                                      report.bestFixed, report.scores.first { $0.name == report.bestFixed }?.mean ?? .nan, report.gapClosed * 100))
                    return
                }
                print(EngineReport.controllerText(report))
                guard !noSave else { return }
                let c = try MetaController(network: net, hidden: o.ppo.hidden, model: model, exitLayer: e.exitLayer,
                                           projectionSeed: e.options.projectionSeed, scaling: report.observationScaling)
                c.trainingSummary = try JSONValue.parse(EngineReport.controllerJSON(report, options: o))
                try c.save(checkpoint: checkpoint)
                printError("controller written to \(checkpoint)/controller/")
            }
            if splits > 1 { print(EngineReport.splitsText(summary)) }
            try FileIO.writeAtomically(output + "/report.json", text: EngineReport.controllerJSON(reports[0], options: o, splits: splits > 1 ? summary : nil))
        }
    }
}

struct TrainExitHeadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-exit-head",
        abstract: "Train the engine's early exit: a norm and adapter after one layer, into the model's frozen LM head.",
        discussion: """
        Residual streams after --layer layers of pre-training windows (--data) train a norm gain and a C×C adapter
        on next-token loss; validation loss (--val-data) of the whole model, of the plain early read-out and of the
        trained exit is printed as JSON, and the exit head is written into the checkpoint (exit_head.safetensors +
        exit_head.json), where early exit uses it.
        """)

    @Argument(help: "Checkpoint directory.") var checkpoint: String
    @Option(help: "Training windows: a directory written by `hmst preprocess` / `hmst split`.") var data: String
    @Option(name: .customLong("val-data"), help: "Validation windows (a preprocessed directory).") var valData: String
    @Option(help: "Exit after this many layers (0 = half the depth).") var layer = 0
    @Option(help: "Optimizer steps.") var steps = 300
    @Option(name: .customLong("learning-rate"), help: "Peak learning rate.") var learningRate: Float = 1e-3
    @Option(name: .customLong("seq-len"), help: "Positions per window.") var seqLen = 128
    @Flag(name: .customLong("no-save"), help: "Measure only; do not write the exit head.") var noSave = false
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            var lo = ModelLoadOptions()
            lo.weightType = .f32
            let model = try LanguageModel.load(path: checkpoint, options: lo)
            var o = ExitHeadTrainingOptions()
            o.layer = layer
            o.steps = steps
            o.learningRate = learningRate
            o.seqLen = seqLen
            let (head, r) = try ExitHeadTrainer.train(model: model, train: try TokenDataset(directory: data),
                                                      validation: try TokenDataset(directory: valData), options: o) { step, loss in
                if step == 1 || step % max(1, steps / 10) == 0 { printError("step \(step)/\(steps)  loss \(String(format: "%.4f", loss))") }
            }
            print("{\"layer\": \(r.layer), \"of_layers\": \(model.dims.L), \"val_loss_full\": \(String(format: "%.4f", r.valLossFull)), "
                  + "\"val_loss_early_readout\": \(String(format: "%.4f", r.valLossBefore)), \"val_loss_exit_head\": \(String(format: "%.4f", r.valLossAfter)), "
                  + "\"flops_fraction\": \(String(format: "%.3f", r.flopsFraction)), \"steps\": \(r.steps), \"seconds\": \(String(format: "%.1f", r.seconds))}")
            if !noSave {
                try head.save(checkpoint: checkpoint)
                printError("exit head written to \(checkpoint)/\(ExitHead.configName)")
            }
        }
    }
}

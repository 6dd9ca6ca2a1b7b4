// hmst train: the seed's train.py (the options implemented so far): data as text or
// pre-tokenized shards, validation by split or file, a tokenizer reused or trained, a fresh
// model or a checkpoint's weights (--init-from), and the schedule; writes best_model/, final/,
// checkpoint-epoch-N/ and metrics.jsonl.
import ArgumentParser
import Foundation
import HMSTCore

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Pre-train a model from scratch (or a checkpoint further) on text or pre-tokenized data.")

    @Argument(help: "Training data: text files, or a pre-tokenized directory with --pretokenized.") var data: [String]
    @Flag(help: "DATA is a directory written by `hmst preprocess`.") var pretokenized = false
    @Option(name: .customLong("val-split"), help: "Fraction of documents held out for validation.") var valSplit: Double?
    @Option(name: .customLong("val-file"), help: "Validation data (text, or a directory with --pretokenized).") var valFile: String?
    @Option(name: .customLong("tokenizer-path"), help: "Reuse this tokenizer (file or directory).") var tokenizerPath: String?
    @Option(name: .customLong("vocab-size"), help: "Vocabulary when a tokenizer is trained.") var vocabSize = 16384
    @Option(name: .customLong("doc-separator"), help: "blankline, line, file or a marker line (text input).") var docSeparator = "blankline"
    @Option(name: .customLong("model-size"), help: "nano (the default: micro with 2 layers, fastest to learn on a CPU budget of minutes), micro, tiny, small, base.") var modelSize: String?
    @Option(name: .customLong("config"), help: ArgumentHelp("A Hugging Face config.json (Mixtral or Llama fields) for the model's shape instead of --model-size; its vocab_size gives way to the tokenizer's.", valueName: "config.json"))
    var configFile: String?
    @Option(help: "Epochs.") var epochs = 1
    @Option(name: .customLong("batch-size"), help: "Sequences per micro-batch.") var batchSize = 4
    @Option(name: .customLong("seq-len"), help: "Tokens per sequence (default 256, or the model's positions when it has fewer).") var seqLen: Int?
    @Option(name: .customLong("learning-rate"), help: "Peak learning rate.") var learningRate: Float = 1e-3
    @Option(name: .customLong("time-budget"), help: ArgumentHelp("Train for this many seconds instead of --epochs (evaluations not counted); warmup and decay follow the share of the budget spent.", valueName: "seconds"))
    var timeBudget: Double?
    @Option(help: "Share of the run spent warming up the learning rate, in [0, 1).") var warmup = 0.05
    @Option(name: .customLong("min-learning-rate"), help: "The rate the cosine decays to (default: a tenth of the peak).")
    var minLearningRate: Float?
    @Option(name: .customLong("steps-per-epoch"), help: "Optimizer steps per epoch (0 = one pass).") var stepsPerEpoch = 0
    @Option(name: .customLong("eval-every"), help: "Evaluate every N optimizer steps (0 = each epoch).") var evalEvery = 0
    @Option(name: .customLong("eval-windows"), help: "Validation windows per evaluation (0 = the whole validation set).")
    var evalWindows = 64
    @Option(help: "Stop after N evaluations without improvement (0 = never).") var patience = 0
    @Option(name: .customLong("save-every"), help: "Save a checkpoint every N epochs (0 = never).") var saveEvery = 0
    @Option(name: .customLong("gradient-accumulation-steps"), help: "Micro-batches per optimizer step.") var accumulation = 1
    @Option(name: .customLong("output-dir"), help: "Where checkpoints and metrics go.") var outputDir = "checkpoints/run"
    @Option(help: "Seed for initialisation and data order.") var seed: UInt64 = 0
    @Option(name: .customLong("router-aux-loss-coef"), help: "Weight of the router's load-balancing loss (default: the preset's, 0.001).")
    var routerAuxLossCoef: Double?
    @Option(help: "Continue from a checkpoint with trainer state (OUTPUT/final or checkpoint-epoch-N), with the same data and options.")
    var resume: String?
    @Option(name: .customLong("init-from"), help: ArgumentHelp("Train this checkpoint's weights further (a fresh optimizer and schedule; its config and tokenizer, which tokenizes text DATA) instead of a fresh model.", valueName: "checkpoint"))
    var initFrom: String?
    @Flag(name: .customLong("mixed-precision"), help: "bf16 matmuls with f32 accumulation and f32 master weights.") var mixedPrecision = false
    @Flag(name: .customLong("gradient-checkpointing"), help: "Recompute each layer's activations in backward (less memory).")
    var gradientCheckpointing = false
    @Flag(name: .customLong("use-8bit-optimizer"), help: "Blockwise 8-bit AdamW state (about a quarter of the memory).")
    var use8bitOptimizer = false
    @Flag(name: .customLong("no-progress"), help: "No live progress line.") var noProgress = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var distributed: DistributedOptions
    @OptionGroup var runDirectory: RunDirectoryOptions

    func validate() throws {
        if valSplit != nil && valFile != nil { throw ValidationError("--val-split and --val-file are mutually exclusive") }
        if modelSize != nil && configFile != nil { throw ValidationError("--model-size and --config both give the model's shape: choose one") }
        if let v = valSplit, !(v > 0 && v < 1) { throw ValidationError("--val-split must be between 0 and 1") }
        if let b = timeBudget, !(b > 0 && b.isFinite) { throw ValidationError("--time-budget must be a positive number of seconds") }
        if timeBudget != nil && epochs != 1 { throw ValidationError("--time-budget and --epochs both say how long to train: choose one") }
        if evalWindows < 0 { throw ValidationError("--eval-windows must be >= 0 (0: the whole validation set)") }
        if !(warmup >= 0 && warmup < 1) { throw ValidationError("--warmup must be in [0, 1)") }
        if let m = minLearningRate, !(m >= 0 && m <= learningRate) {
            throw ValidationError("--min-learning-rate must be between 0 and --learning-rate (\(learningRate))")
        }
        if pretokenized && data.count != 1 { throw ValidationError("--pretokenized takes one directory") }
        if let c = routerAuxLossCoef, !(c >= 0 && c.isFinite) { throw ValidationError("--router-aux-loss-coef must be >= 0") }
        if initFrom != nil {
            if modelSize != nil || configFile != nil { throw ValidationError("--init-from trains a checkpoint of its own shape: leave out --model-size and --config") }
            if resume != nil { throw ValidationError("--init-from and --resume both give the weights: --resume continues a run (its optimizer too), --init-from starts one from a checkpoint") }
            if routerAuxLossCoef != nil { throw ValidationError("--init-from keeps the checkpoint's router-aux-loss-coef (in its config.json)") }
        }
    }

    func run() throws {
        try runReportingErrors { try distributed.run { dp in
            try threadOptions.apply()
            if dp.size > 1 && (!pretokenized || valSplit != nil || (valFile != nil && !pretokenized)) {
                // every rank would tokenize and split into the same output directory at once
                throw HMSTError.invalidArgument("under mpirun, give pre-tokenized data (hmst preprocess, then --pretokenized) "
                                                + "and --val-file with a pre-tokenized directory instead of --val-split")
            }
            if dp.isLeader {
                // the directories this run writes besides its own files (see below)
                var writes: [RunDirectory.Written] = valSplit != nil ? [.split] : []
                if !pretokenized {
                    writes.append(.data)
                    if tokenizerPath == nil { writes.append(.tokenizer) }
                    if valSplit == nil && valFile != nil { writes.append(.valData) }
                }
                try runDirectory.prepare(outputDir, resuming: resume != nil, writes: writes,
                                         inputs: data + [valFile, tokenizerPath, configFile, initFrom].compactMap { $0 })
                try FileIO.makeDirectories(outputDir)
            }
            // ---- tokenizer and token data
            var tokenizer: Tokenizer? = try tokenizerPath.map(loadTokenizer)
            if let initFrom, let given = tokenizer, FileIO.exists(initFrom + "/tokenizer.json") {
                // before text is tokenized with it (TrainingRun.model checks again, against what it loads)
                try TrainingRun.checkSameTokenizer(given, try loadTokenizer(initFrom + "/tokenizer.json"), checkpoint: initFrom)
            }
            if tokenizer == nil, let from = resume ?? initFrom, FileIO.exists(from + "/tokenizer.json") {
                tokenizer = try loadTokenizer(from + "/tokenizer.json")
            }
            var trainSet: TokenDataset
            var valSet: TokenDataset? = nil
            var o = PreprocessOptions()
            o.separator = try DocumentSeparator(parsing: docSeparator)
            if pretokenized {
                trainSet = try TokenDataset(directory: data[0])
                // a checkpoint trained further checks the data's own tokenizer (TrainingRun.model)
                if tokenizer == nil || initFrom != nil, let named = try trainSet.namedTokenizer() { tokenizer = named }
            } else {
                if let initFrom, tokenizer == nil {
                    throw HMSTError.invalidArgument("\(initFrom) has no tokenizer.json: give the tokenizer its ids are (--tokenizer-path), "
                                                    + "or data tokenized with it (--pretokenized)")
                }
                if tokenizer == nil {
                    var to = BPETrainingOptions()
                    to.vocabSize = vocabSize
                    let t = try BPETrainer.train(files: data, options: to)
                    try FileIO.makeDirectories(outputDir + "/tokenizer")
                    try t.save(path: outputDir + "/tokenizer/tokenizer.json")
                    printError("trained a \(t.vocabSize)-token tokenizer -> \(outputDir)/tokenizer")
                    tokenizer = t
                }
                guard let tok = tokenizer else { return }
                _ = try Preprocessor.run(inputs: data, output: outputDir + "/data", encoder: tok, tokenizerPath: nil, options: o)
                trainSet = try TokenDataset(directory: outputDir + "/data")
            }
            if let valSplit {
                let r = try DatasetSplit.split(dataset: trainSet, valFraction: valSplit, seed: seed,
                                               trainDirectory: outputDir + "/split/train_split", valDirectory: outputDir + "/split/val")
                trainSet = try TokenDataset(directory: r.trainDirectory)
                valSet = try TokenDataset(directory: r.valDirectory)
            } else if let valFile {
                if pretokenized {
                    valSet = try TokenDataset(directory: valFile)
                } else if let tok = tokenizer {
                    _ = try Preprocessor.run(inputs: [valFile], output: outputDir + "/val-data", encoder: tok, tokenizerPath: nil, options: o)
                    valSet = try TokenDataset(directory: outputDir + "/val-data")
                }
            }
            // ---- model and trainer (TrainingRun, shared with hmst_trainer_create)
            let source: TrainingRun.ModelSource = initFrom.map { .checkpoint($0) } ?? configFile.map { .configFile($0) }
                ?? .preset(modelSize ?? TrainingRun.defaultPreset)
            let shapeName = initFrom ?? configFile ?? modelSize ?? TrainingRun.defaultPreset
            let model = try TrainingRun.model(source, data: trainSet, tokenizer: tokenizer, seed: seed, routerAuxLossCoef: routerAuxLossCoef)
            let config = try model.modelConfig()
            var opts = TrainerOptions()
            opts.epochs = epochs
            opts.batchSize = batchSize
            // the default fits the model; a length asked for is checked by the trainer (it was cut silently)
            opts.sequenceLength = seqLen ?? min(256, config.maxPositionEmbeddings)
            opts.learningRate = learningRate
            opts.stepsPerEpoch = stepsPerEpoch
            opts.timeBudget = timeBudget
            opts.warmupFraction = warmup
            opts.minLearningRate = minLearningRate
            opts.evalEvery = evalEvery
            opts.evalWindows = evalWindows
            opts.patience = patience
            opts.saveEvery = saveEvery
            opts.gradientAccumulationSteps = accumulation
            opts.seed = seed
            opts.precision = mixedPrecision ? .bf16 : .f32
            opts.gradientCheckpointing = gradientCheckpointing
            opts.use8bitOptimizer = use8bitOptimizer
            opts.dataParallel = dp
            let trainer = try TrainingRun.trainer(model: model, train: trainSet, val: valSet, tokenizer: tokenizer, outputDir: outputDir,
                                                  options: opts, resumeFrom: resume)
            if let resume { printLeader(dp, "resumed from \(resume) at step \(trainer.step)") }
            // Ctrl-C: finish the current step, save final/ with the state to resume from, exit
            signal(SIGINT) { _ in trainInterrupted = 1 }
            printLeader(dp, "training \(shapeName) (\(config.parameterCount) parameters) on \(trainSet.totalTokens) tokens, "
                       + "\(trainer.stepsPerEpoch) steps/epoch x "
                       + (timeBudget.map { String(format: "%g s of training", $0) } ?? "\(epochs)") + ", batch \(batchSize)x\(opts.sequenceLength), "
                       + "\(trainer.precisionReason)\(gradientCheckpointing ? ", gradient checkpointing" : ""), "
                       + "\(trainer.optimizer.kind) (\(trainer.optimizer.stateBytes >> 20) MiB of state)")
            printLeader(dp, dp.effectiveBatchLine(batch: batchSize, accumulation: accumulation)
                        + (dp.size > 1 ? ", \(Threads.count) thread(s) per rank" : ""))
            let interactive = !noProgress && isatty(2) != 0 && dp.isLeader
            let result = try trainer.run { p in
                // a time budget's total is an estimate from the rate so far: Int.max when it is past counting
                let line = String(format: "step %ld/%@  epoch %ld  loss %.4f  lr %.2e  %.0f tok/s  ETA %.0fs%@", p.step,
                                  p.totalSteps == .max ? "?" : String(p.totalSteps), p.epoch, p.loss, p.lr, p.tokensPerSecond, p.etaSeconds,
                                  p.valLoss.map { String(format: "  val %.4f", $0) } ?? "")
                if interactive {
                    StandardStream.error.write("\r" + line + "   ")
                    if p.valLoss != nil { StandardStream.error.write("\n") }
                } else if dp.isLeader && (p.valLoss != nil || p.step % 20 == 0 || p.step == p.totalSteps) {
                    printError(line)
                }
                if trainInterrupted != 0 {
                    printLeader(dp, "\ninterrupted: saving \(outputDir)/final (resume with --resume \(outputDir)/final)")
                    return false
                }
                return true
            }
            if interactive { StandardStream.error.write("\n") }
            if dp.size > 1 {
                printLeader(dp, String(format: "gradient all-reduce: %.2f ms per step on average over %ld ranks", dp.meanAllReduceMs, dp.size))
            }
            guard dp.isLeader else { return }
            var bpb: Double? = nil
            if let v = result.bestVal, let b = trainer.valBytesPerToken { bpb = EvalMetrics.bitsPerByte(natsPerToken: v, bytesPerToken: b) }
            print("trained \(result.steps) steps" + String(format: " (%.1f s of training)", trainer.trainedSeconds)
                  + "; best validation loss \(result.bestVal.map { String(format: "%.4f", $0) } ?? "n/a")"
                  + (bpb.map { String(format: " (%.4f bits per byte)", $0) } ?? "") + " -> \(outputDir)/final"
                  + (result.bestVal != nil ? ", \(outputDir)/best_model" : ""))
        } }
    }
}

nonisolated(unsafe) var trainInterrupted: Int32 = 0

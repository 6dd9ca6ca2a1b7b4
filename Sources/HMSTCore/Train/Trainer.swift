// Trainer: the pre-training loop over token datasets: random windows, gradient accumulation,
// clipping, AdamW on a warmup + cosine schedule (counted in optimizer steps), periodic
// evaluation with early stopping, best/periodic/final checkpoints and metrics.jsonl.
// Options select mixed precision (bf16 GEMMs, f32 master weights), gradient checkpointing
// and the 8-bit optimizer; save(withState:) and resume(from:) make a continued run exact.
// Under MPI (options.dataParallel, Distributed/DataParallel.swift) every rank runs this loop
// in lockstep on its rows of the global batch; rank 0 alone writes metrics and checkpoints,
// and each checkpoint is committed as a whole (TrainingCheckpoint).

/// The defaults were chosen for short CPU runs by measurement (README, "Training": fortunes
/// 90/10, 2 threads, a 100-second budget): batch 4 and peak rate 1e-3 beat batch 8 and 3e-4 (or
/// 2e-3) at equal tokens; with `hmst train`'s 16,384-token vocabulary.
public struct TrainerOptions: Sendable {
    public var epochs = 1
    public var batchSize = 4
    public var sequenceLength = 256
    public var learningRate: Float = 1e-3
    public var minLearningRate: Float? = nil
    public var warmupFraction: Double = 0.05
    /// optimizer steps per epoch; 0 = one pass over the training tokens
    public var stepsPerEpoch = 0
    /// Train for this many seconds instead of a number of epochs (evaluations and checkpoints
    /// are not counted): as many passes over the data as fit, and the schedule's warmup and
    /// decay follow the share of the budget spent instead of the step count. nil = epochs.
    public var timeBudget: Double? = nil
    public var gradientAccumulationSteps = 1
    public var gradClip: Float = 1
    /// evaluate every N optimizer steps (0 = at the end of each epoch)
    public var evalEvery = 0
    /// windows per evaluation (0 = the whole validation set)
    public var evalWindows = 64
    /// stop after this many evaluations without improvement (0 = never)
    public var patience = 0
    /// save output/checkpoint-epoch-N every N epochs (0 = never)
    public var saveEvery = 0
    public var seed: UInt64 = 0
    public var adam = AdamWConfig()
    /// f32, or bf16 matmuls with f32 accumulation and master weights (--mixed-precision)
    public var precision: MatmulPrecision = .f32
    /// recompute each layer's activations during backward (--gradient-checkpointing)
    public var gradientCheckpointing = false
    /// blockwise 8-bit AdamW state (--use-8bit-optimizer)
    public var use8bitOptimizer = false
    /// one process (the default), or this rank of a data-parallel job
    public var dataParallel = DataParallel.single
    public init() {}
}

public struct TrainerProgress: Sendable {
    public var step: Int
    public var totalSteps: Int
    public var epoch: Int
    public var loss: Double
    public var lr: Float
    public var tokensPerSecond: Double
    public var etaSeconds: Double
    public var valLoss: Double?
}

public final class Trainer {
    public let params: Parameters
    public let options: TrainerOptions
    public let train: TokenDataset
    public let val: TokenDataset?
    public let tokenizer: Tokenizer?
    public let outputDir: String
    let grad: ModelGrad
    /// what the step's GEMMs compute in: options.precision, resolved for this CPU
    public let computePrecision: MatmulPrecision
    /// the choice and its reason, for the start line
    public let precisionReason: String
    public let optimizer: Optimizer
    let optimizerStep: OptimizerStep
    var sampler: WindowSampler
    public private(set) var step = 0
    public private(set) var bestVal = Double.infinity
    /// bytes of text per validation token (decoded with the tokenizer), for bits per byte
    public private(set) var valBytesPerToken: Double?
    var curve: [(step: Int, train: Double, val: Double?)] = []
    var sinceBest = 0
    /// tokens of every rank's batches so far
    var tokensSeen = 0
    /// seconds spent in training steps so far (what options.timeBudget counts)
    public private(set) var trainedSeconds = 0.0
    public var dataParallel: DataParallel { options.dataParallel }

    public init(params: Parameters, train: TokenDataset, val: TokenDataset?, tokenizer: Tokenizer?, outputDir: String,
                options: TrainerOptions) throws {
        guard options.batchSize >= 1, options.sequenceLength >= 1, options.epochs >= 1, options.gradientAccumulationSteps >= 1 else {
            throw HMSTError.invalidArgument("batch size, sequence length, epochs and accumulation steps must be >= 1")
        }
        // bounds far beyond any run, so that steps x epochs and the tokens of a step cannot
        // overflow (they trapped at 2^62)
        guard options.gradientAccumulationSteps <= 1 << 20 else {
            throw HMSTError.invalidArgument("gradient accumulation steps \(options.gradientAccumulationSteps) must be in 1 ... 1048576")
        }
        guard options.epochs <= 1 << 20 else { throw HMSTError.invalidArgument("epochs \(options.epochs) must be in 1 ... 1048576") }
        guard options.stepsPerEpoch >= 0, options.stepsPerEpoch <= 1 << 40 else {
            throw HMSTError.invalidArgument("steps per epoch \(options.stepsPerEpoch) must be in 0 ... 2^40 (0: the data's size)")
        }
        guard options.learningRate > 0, options.learningRate.isFinite else { throw HMSTError.invalidArgument("learning rate must be > 0") }
        if let m = options.minLearningRate, !(m >= 0 && m <= options.learningRate) {
            throw HMSTError.invalidArgument("minimum learning rate \(m) must be in 0...\(options.learningRate) (the peak rate)")
        }
        guard options.warmupFraction >= 0, options.warmupFraction < 1 else {
            throw HMSTError.invalidArgument("warmup fraction \(options.warmupFraction) must be in [0, 1)")
        }
        if let b = options.timeBudget, !(b > 0 && b.isFinite) {
            throw HMSTError.invalidArgument("time budget \(b) s must be a positive number of seconds")
        }
        guard options.sequenceLength <= params.config.maxPositionEmbeddings else {
            throw HMSTError.invalidArgument("sequence length \(options.sequenceLength) exceeds the model's \(params.config.maxPositionEmbeddings) positions")
        }
        guard train.vocabSize <= params.config.vocabSize else {
            throw HMSTError.invalidArgument("the data's vocabulary (\(train.vocabSize)) is larger than the model's (\(params.config.vocabSize))")
        }
        try checkStepFits(dims: params.config.dims, B: options.batchSize, T: options.sequenceLength,
                          checkpointing: options.gradientCheckpointing)
        self.params = params
        self.options = options
        self.train = train
        self.val = val
        self.tokenizer = tokenizer
        self.outputDir = outputDir
        // --mixed-precision computes in bf16 only where bf16 dot products beat f32 FMA (ComputeRates)
        (computePrecision, precisionReason) = ComputeRates.resolve(options.precision)
        grad = ModelGrad(params: params, options: ModelGradOptions(precision: computePrecision,
                                                                   gradientCheckpointing: options.gradientCheckpointing))
        optimizer = try OptimizerStep.makeOptimizer(params: params, use8bit: options.use8bitOptimizer, config: options.adam)
        // the schedule needs stepsPerEpoch, which needs self: set at the end of init
        optimizerStep = OptimizerStep(params: params, optimizer: optimizer,
                                      schedule: LRSchedule(maxLR: options.learningRate, warmupSteps: 1, totalSteps: 1),
                                      gradClip: options.gradClip)
        sampler = try WindowSampler(dataset: train, blockSize: options.sequenceLength, seed: options.seed)
        if options.dataParallel.isLeader { try FileIO.makeDirectories(outputDir) }
        if let tokenizer, let val { valBytesPerToken = try val.bytesPerToken(tokenizer: tokenizer) }
        optimizerStep.schedule = schedule
        // the collectives: every rank has come this far (DataParallel.creating), holds the same
        // options and data, then rank 0's initial weights
        try options.dataParallel.ready()
        options.dataParallel.attach(to: optimizerStep, grads: [grad])
        // (built only with ranks to agree with: it hashes the data)
        if options.dataParallel.size > 1 { try options.dataParallel.agree(agreedOptions(), at: "the trainer's creation") }
        try options.dataParallel.synchronize(params)
    }

    /// What a resume must keep of the run it continues: the data and the window length the
    /// restored sampler draws from.
    private func resumeKept() -> [DataParallel.Agreed] {
        [.init("seq_len", options.sequenceLength), .init("training tokens", train.totalTokens),
         .init("training data fingerprint", train.fingerprint)]   // one name whether complete or sampled
    }

    /// What every rank of a data-parallel job must share: its options, the model's size, the
    /// data's size and the gradient all-reduce's layout.
    private func agreedOptions() -> [DataParallel.Agreed] {
        let o = options, dp = options.dataParallel
        return [.init("batch_size", o.batchSize), .init("seq_len", o.sequenceLength), .init("epochs", o.epochs),
                .init("steps_per_epoch", o.stepsPerEpoch), .init("grad_accum_steps", o.gradientAccumulationSteps),
                .init("learning_rate", Double(o.learningRate)), .init("min_learning_rate", Double(o.minLearningRate ?? -1)),
                .init("warmup_fraction", o.warmupFraction), .init("time_budget", o.timeBudget ?? -1),
                .init("grad_clip", Double(o.gradClip)), .init("weight_decay", Double(o.adam.weightDecay)),
                .init("eval_every", o.evalEvery), .init("eval_windows", o.evalWindows), .init("patience", o.patience),
                .init("save_every", o.saveEvery), .init("seed", o.seed), .init("parameters", params.count),
                .init("compute precision", named: "\(computePrecision)"), .init("gradient_checkpointing", o.gradientCheckpointing),
                .init("use_8bit_optimizer", o.use8bitOptimizer), .init("training tokens", train.totalTokens),
                .init(train.fingerprintLabel("training data"), train.fingerprint), .init("validation tokens", val?.totalTokens ?? -1),
                .init(val?.fingerprintLabel("validation data") ?? "validation data", val?.fingerprint ?? 0), .init("all-reduce bucket elements", dp.bucketElements),
                .init("all-reduce overlap", dp.overlapWithBackward)]
    }

    public var stepsPerEpoch: Int {
        if options.stepsPerEpoch > 0 { return options.stepsPerEpoch }
        var perStep = 1   // tokens of one step over every rank; past Int.max it is one step anyway
        for f in [options.batchSize, options.sequenceLength, options.gradientAccumulationSteps, dataParallel.size] {
            let (p, overflow) = perStep.multipliedReportingOverflow(by: f)
            perStep = overflow ? .max : p
        }
        return max(1, train.totalTokens / perStep)
    }

    /// Runs (or continues, after resume) every epoch, or until options.timeBudget seconds of
    /// training are spent; progress returns false to stop early (final/ is still saved, with
    /// the state to resume from). A time-budgeted run ends with an evaluation when it has
    /// validation data.
    public func run(progress: (TrainerProgress) -> Bool = { _ in true }) throws -> (steps: Int, bestVal: Double?) {
        try dataParallel.agreeOnCall("run", step: step)
        let total = stepsPerEpoch * options.epochs
        let schedule = self.schedule
        var windows = [Int32](repeating: 0, count: options.batchSize * (options.sequenceLength + 1))
        let t0 = Clock.nowMs()
        let tokensAtStart = tokensSeen
        let leader = dataParallel.isLeader
        let metrics = leader ? try AtomicAppender(path: outputDir + "/metrics.jsonl") : nil
        let budget = options.timeBudget
        // the share of the budget spent (nil without one), computed once a step: under MPI it
        // is a collective, and it decides both the next step's rate and whether the run is over
        var spent = try budgetFraction(trainedSeconds)
        var done = spent.map { $0 >= 1 } ?? (step >= total)
        while !done {
            let epoch = step / stepsPerEpoch + 1
            let stepStart = Clock.nowMs()
            let (loss, lr, norm) = try trainStep(schedule: schedule, windows: &windows, scheduleStep: Trainer.scheduleStep(spent))
            trainedSeconds += (Clock.nowMs() - stepStart) / 1000
            let elapsed = (Clock.nowMs() - t0) / 1000
            spent = try budgetFraction(trainedSeconds)
            done = spent.map { $0 >= 1 } ?? (step >= total)
            var valLoss: Double? = nil
            let evalNow = options.evalEvery > 0 ? step % options.evalEvery == 0 : step % stepsPerEpoch == 0
            if (evalNow || (budget != nil && done)), val != nil {
                let v = try evaluate()
                valLoss = v
                if v < bestVal {
                    bestVal = v
                    sinceBest = 0
                    try save(to: outputDir + "/best_model")
                } else {
                    sinceBest += 1
                }
            }
            let w = JSONWriter()
            w.object {
                w.field("step", step); w.field("epoch", epoch); w.field("loss", loss); w.field("lr", Double(lr))
                w.field("grad_norm", Double(norm)); w.field("tokens", tokensSeen); w.field("seconds", elapsed)
                w.field("train_seconds", trainedSeconds)
                if let valLoss {
                    w.field("val_loss", valLoss)
                    if let bpt = valBytesPerToken { w.field("val_bpb", EvalMetrics.bitsPerByte(natsPerToken: valLoss, bytesPerToken: bpt)) }
                }
                if dataParallel.size > 1 { w.field("ranks", dataParallel.size); w.field("allreduce_ms", dataParallel.lastAllReduceMs) }
            }
            try metrics?.append(w.output + "\n")
            curve.append((step, loss, valLoss))
            if leader && (valLoss != nil || done) {
                try? FileIO.writeAtomically(outputDir + "/loss.svg", text: LossPlot.svg(curve))
            }
            let rate = Double(tokensSeen - tokensAtStart) / max(elapsed, 1e-9)
            var p = TrainerProgress(step: step, totalSteps: total, epoch: epoch, loss: loss, lr: lr, tokensPerSecond: rate,
                                    etaSeconds: elapsed / Double(step) * Double(total - step), valLoss: valLoss)
            if let budget {
                // the steps that fit in the budget at the rate so far
                let fit = Double(step) * budget / max(trainedSeconds, 1e-9)   // Int(...) of a huge budget would trap
                p.totalSteps = done ? step : max(step, fit < 9e18 ? Int(fit) : Int.max)
                p.etaSeconds = max(0, budget - trainedSeconds)
            }
            if options.saveEvery > 0 && step % stepsPerEpoch == 0 && epoch % options.saveEvery == 0 {
                try save(to: outputDir + "/checkpoint-epoch-\(epoch)", withState: true)
            }
            // every rank stops together: on its own request or any other rank's
            if try dataParallel.anyRank(!progress(p)) { break }
            if options.patience > 0 && sinceBest >= options.patience { break }
        }
        try save(to: outputDir + "/final", withState: true)
        return (step, bestVal.isFinite ? bestVal : nil)
    }

    /// Resolution of a time-budgeted schedule: the budget is cut into this many schedule steps.
    static let budgetScheduleSteps = 100_000

    /// The share of the time budget spent, the same on every rank (their mean).
    func budgetFraction(_ seconds: Double) throws -> Double? {
        guard let budget = options.timeBudget else { return nil }
        let mine = seconds / budget
        return dataParallel.size > 1 ? try dataParallel.sum([mine], what: "the time budget")[0] / Double(dataParallel.size) : mine
    }

    /// The schedule step of a time-budgeted run's next optimizer step, given the share of the
    /// budget spent when it starts; nil without a budget.
    static func scheduleStep(_ spent: Double?) -> Int? {
        spent.map { Int(min(1, $0) * Double(budgetScheduleSteps)) }
    }

    /// The schedule for the configured epochs, or, with a time budget, over budgetScheduleSteps
    /// shares of it.
    public var schedule: LRSchedule {
        let total = options.timeBudget != nil ? Trainer.budgetScheduleSteps : stepsPerEpoch * options.epochs
        return LRSchedule(maxLR: options.learningRate, minLR: options.minLearningRate,
                          warmupSteps: max(1, Int(Double(total) * options.warmupFraction)), totalSteps: total)
    }

    /// One optimizer step (gradient accumulation included): returns the mean loss, the rate
    /// used and the gradient norm before clipping.
    /// With a time budget, its duration counts against the budget.
    public func trainStep() throws -> (loss: Double, lr: Float, gradNorm: Float) {
        try dataParallel.agreeOnCall("step", step: step)
        var windows = [Int32](repeating: 0, count: options.batchSize * (options.sequenceLength + 1))
        let start = Clock.nowMs()
        let r = try trainStep(schedule: schedule, windows: &windows, scheduleStep: Trainer.scheduleStep(try budgetFraction(trainedSeconds)))
        trainedSeconds += (Clock.nowMs() - start) / 1000
        return r
    }

    /// scheduleStep picks the rate when it is not the optimizer step (a time-budgeted run).
    func trainStep(schedule: LRSchedule, windows: inout [Int32], scheduleStep: Int? = nil) throws -> (loss: Double, lr: Float, gradNorm: Float) {
        let B = options.batchSize, T = options.sequenceLength
        optimizerStep.schedule = schedule
        let dp = dataParallel
        let r = try optimizerStep.run(step: step, scheduleStep: scheduleStep, microBatches: options.gradientAccumulationSteps) { _ in
            // this rank's rows of the global batch of ranks x B (all of it for one process)
            windows.withUnsafeMutableBufferPointer { sampler.nextBatch(B, rank: dp.rank, ranks: dp.size, into: $0.baseAddress!) }
            let r = try grad.step(windows: windows, B: B, T: T, backward: true)
            tokensSeen += B * T * dp.size
            return r.loss
        }
        step += 1
        return (r.loss, r.lr, r.gradNorm)
    }

    /// Mean next-token loss (nats) over the validation windows. Under MPI, window i is
    /// evaluated by rank i % ranks and the sums are reduced: every rank gets the same value.
    public func evaluate() throws -> Double {
        guard let val else { throw HMSTError.invalidArgument("no validation data") }
        try dataParallel.agreeOnCall("evaluate", step: step)
        var seq = try SequentialWindows(dataset: val, blockSize: options.sequenceLength)
        let T = options.sequenceLength
        var w = [Int32](repeating: 0, count: T + 1)
        var total = 0.0, n = 0
        let limit = options.evalWindows > 0 ? options.evalWindows : Int.max
        let dp = dataParallel
        while n < limit, w.withUnsafeMutableBufferPointer({ seq.next(into: $0.baseAddress!) }) {
            if n % dp.size == dp.rank { total += try grad.step(windows: w, B: 1, T: T, backward: false).ceLoss }
            n += 1
        }
        total = try dp.sum([total], what: "the evaluation reduce")[0]
        guard n > 0 else { throw HMSTError.invalidArgument("the validation set has no window of \(T + 1) tokens") }
        return total / Double(n)
    }

    /// Writes a loadable checkpoint directory (config.json, model.safetensors, tokenizer.json);
    /// withState adds what resume needs: optimizer.safetensors (the optimizer's state) and
    /// trainer_state.json (step, best validation loss, data sampler and its RNG). The directory
    /// is committed as a whole (TrainingCheckpoint). Under MPI every rank calls it (the
    /// replicas are checked to agree) and rank 0 writes.
    public func save(to dir: String, withState: Bool = false) throws {
        try dataParallel.agreeOnCall("save", step: step)
        try dataParallel.checkReplicasAgree(params, step: step)
        guard dataParallel.isLeader else { return }
        try TrainingCheckpoint.commit(dir, step: step) { staging in try write(to: staging, withState: withState) }
    }

    func write(to dir: String, withState: Bool) throws {
        let model = LanguageModel(decoder: try params.decoder(), tokenizer: tokenizer, config: params.config.json(),
                                  report: LoadReport(), storage: [params])
        try model.save(directory: dir)
        guard withState else { return }
        try SafeTensorsWriter.writeRaw(path: dir + "/optimizer.safetensors", tensors: optimizer.stateTensors())
        let w = JSONWriter()
        w.object {
            TrainerState.writeHeader(w, format: Trainer.stateFormat, step: step, optimizer: optimizer)
            w.field("best_val", bestVal.isFinite ? bestVal : -1); w.field("since_best", sinceBest)
            w.field("tokens_seen", tokensSeen); w.field("windows_drawn", sampler.state.drawn)
            w.field("trained_seconds", trainedSeconds)
            TrainerState.writeRun(w, resumeKept())
            TrainerState.writeBatch(w, batchSize: options.batchSize, accumulation: options.gradientAccumulationSteps,
                                    dataParallel: dataParallel)
            w.field("sampler_rng", TrainerState.words(sampler.state.rng))
        }
        try FileIO.writeAtomically(dir + "/" + Trainer.stateFile, text: w.output + "\n")
    }

    static let stateFile = "trainer_state.json"
    static let stateFormat = "hmst-trainer-state"

    /// Restores parameters, optimizer state, step counters and the data sampler from a
    /// directory written by save(withState: true), so training continues exactly. Refuses a
    /// directory whose parts were not committed together, and a global batch other than the
    /// saved one (a different rank count is fine when batch x accumulation x ranks is the same).
    public func resume(from dir: String) throws {
        try dataParallel.agreeOnCall("resume", step: step)
        // a state that fails to load on one rank (a missing or damaged file there) fails the call on all
        try dataParallel.together("the resume from \(dir)") { try resumeLocally(from: dir) }
    }

    private func resumeLocally(from dir: String) throws {
        let state = try TrainerState(resuming: dir, stateFile: Trainer.stateFile, format: Trainer.stateFormat, what: "an hmst trainer state",
                                     params: params, optimizer: optimizer, batchSize: options.batchSize,
                                     accumulation: options.gradientAccumulationSteps, dataParallel: dataParallel)
        try state.checkRun(resumeKept(), dir: dir)
        let j = state.json
        let samplerRNG = try state.rng("sampler_rng")
        try optimizer.loadState(SafeTensorsFile(path: dir + "/optimizer.safetensors"), step: state.optimizerStep)
        params.values.pointer.update(from: state.loaded.values.pointer, count: params.count)
        step = state.step
        let b = j["best_val"]?.number ?? -1
        bestVal = b < 0 ? .infinity : b
        sinceBest = try state.counter("since_best")
        tokensSeen = try state.counter("tokens_seen")
        trainedSeconds = try state.seconds("trained_seconds")
        sampler.restore(WindowSamplerState(rng: samplerRNG, drawn: try state.counter("windows_drawn")))
    }
}

/// Appends lines to a file, each write flushed to disk (metrics survive a crash).
final class AtomicAppender {
    let fd: Int32
    init(path: String) throws {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HMSTError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
    }
    func append(_ s: String) throws {
        let bytes = Array(s.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw HMSTError.io("cannot append metrics: \(String(cString: strerror(errno)))") }
    }
    deinit { close(fd) }
}

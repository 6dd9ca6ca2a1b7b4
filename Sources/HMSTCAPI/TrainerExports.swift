// Exports: training. Documented in include/hmst.h.
import CHMST
import HMSTCore

final class TrainerBox {
    let trainer: Trainer
    let progress: hmst_train_progress_callback?
    let userData: UnsafeMutableRawPointer?
    init(_ t: Trainer, progress: hmst_train_progress_callback?, userData: UnsafeMutableRawPointer?) {
        trainer = t
        self.progress = progress
        self.userData = userData
    }
}

func resolveTrainer(_ h: OpaquePointer?) throws -> TrainerBox {
    try HandleRegistry.shared.resolve(h, as: TrainerBox.self, "trainer")
}

@_cdecl("hmst_trainer_default_params")
public func hmst_trainer_default_params() -> hmst_trainer_params {
    let d = TrainerOptions()
    var p = hmst_trainer_params()
    p.struct_size = UInt32(MemoryLayout<hmst_trainer_params>.size)
    p.train_data = nil; p.val_data = nil; p.output_dir = nil; p.model_size = nil; p.init_from = nil; p.resume_from = nil
    p.epochs = Int32(d.epochs)
    p.batch_size = Int32(d.batchSize)
    p.seq_len = Int32(d.sequenceLength)
    p.steps_per_epoch = Int32(d.stepsPerEpoch)
    p.grad_accum_steps = Int32(d.gradientAccumulationSteps)
    p.eval_every = Int32(d.evalEvery)
    p.eval_windows = Int32(d.evalWindows)
    p.patience = Int32(d.patience)
    p.save_every = Int32(d.saveEvery)
    p.learning_rate = d.learningRate
    p.weight_decay = d.adam.weightDecay
    p.grad_clip = d.gradClip
    p.seed = d.seed
    p.progress = nil
    p.user_data = nil
    p.mixed_precision = d.precision == .bf16
    p.gradient_checkpointing = d.gradientCheckpointing
    p.use_8bit_optimizer = d.use8bitOptimizer
    p.data_parallel = nil
    p.time_budget_seconds = d.timeBudget ?? 0
    p.warmup_fraction = Float(d.warmupFraction)
    p.min_learning_rate = d.minLearningRate ?? -1
    p.force = false
    return p
}

@_cdecl("hmst_trainer_create")
public func hmst_trainer_create(_ params: UnsafePointer<hmst_trainer_params>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out_trainer")
        let p = try readParams(try required(params, "params"), defaults: hmst_trainer_default_params(), name: "params")
        // MPI (and --numa-rank binding) before the data and the model are loaded
        let dataParallel = try makeDataParallel(p.data_parallel)
        // a rank whose setup fails tells the others at once, not after the collective timeout
        let trainer = try dataParallel.creating("the trainer's creation") { () throws -> Trainer in
            let trainDir = try pathString(p.train_data, "params->train_data")
            let outputDir = try pathString(p.output_dir, "params->output_dir")
            let resumeFrom = p.resume_from.map { String(cString: $0) }
            let train = try TokenDataset(directory: trainDir)
            let val = try p.val_data.map { try TokenDataset(directory: String(cString: $0)) }
            let tokenizer = try train.namedTokenizer()
            // the model and the trainer as `hmst train` makes them (TrainingRun)
            let source: TrainingRun.ModelSource = p.init_from.map { .checkpoint(String(cString: $0)) }
                ?? .preset(p.model_size.map { String(cString: $0) } ?? TrainingRun.defaultPreset)
            let model = try TrainingRun.model(source, data: train, tokenizer: tokenizer, seed: p.seed)
            var o = TrainerOptions()
            o.epochs = try positive(p.epochs, "epochs")
            o.batchSize = try positive(p.batch_size, "batch_size")
            o.sequenceLength = try positive(p.seq_len, "seq_len")
            o.stepsPerEpoch = try positive(p.steps_per_epoch, "steps_per_epoch", allowZero: true)
            o.gradientAccumulationSteps = try positive(p.grad_accum_steps, "grad_accum_steps")
            o.evalEvery = try positive(p.eval_every, "eval_every", allowZero: true)
            o.evalWindows = try positive(p.eval_windows, "eval_windows", allowZero: true)
            o.patience = try positive(p.patience, "patience", allowZero: true)
            o.saveEvery = try positive(p.save_every, "save_every", allowZero: true)
            guard p.learning_rate.isFinite, p.learning_rate > 0 else { throw HMSTError.invalidArgument("params->learning_rate must be > 0") }
            guard p.weight_decay.isFinite, p.weight_decay >= 0 else { throw HMSTError.invalidArgument("params->weight_decay must be >= 0") }
            guard p.grad_clip.isFinite, p.grad_clip >= 0 else { throw HMSTError.invalidArgument("params->grad_clip must be >= 0") }
            o.learningRate = p.learning_rate
            o.adam.weightDecay = p.weight_decay
            o.gradClip = p.grad_clip
            o.seed = p.seed
            o.precision = p.mixed_precision ? .bf16 : .f32
            o.gradientCheckpointing = p.gradient_checkpointing
            o.use8bitOptimizer = p.use_8bit_optimizer
            o.dataParallel = dataParallel
            guard p.time_budget_seconds.isFinite, p.time_budget_seconds >= 0 else {
                throw HMSTError.invalidArgument("params->time_budget_seconds = \(p.time_budget_seconds) must be >= 0 (0: train by epochs)")
            }
            o.timeBudget = p.time_budget_seconds > 0 ? p.time_budget_seconds : nil
            guard p.warmup_fraction.isFinite, p.warmup_fraction >= 0, p.warmup_fraction < 1 else {
                throw HMSTError.invalidArgument("params->warmup_fraction = \(p.warmup_fraction) must be in [0, 1)")
            }
            o.warmupFraction = Double(p.warmup_fraction)
            guard p.min_learning_rate == -1 || (p.min_learning_rate >= 0 && p.min_learning_rate <= p.learning_rate) else {
                throw HMSTError.invalidArgument("params->min_learning_rate = \(p.min_learning_rate) must be in 0...learning_rate, or -1 for learning_rate / 10")
            }
            o.minLearningRate = p.min_learning_rate == -1 ? nil : p.min_learning_rate
            let trainer = try TrainingRun.trainer(model: model, train: train, val: val, tokenizer: tokenizer, outputDir: outputDir,
                                                  options: o, resumeFrom: resumeFrom)
            // every option checked and the trainer made (it wrote nothing yet): an earlier run in
            // outputDir goes only now, and only when asked
            if dataParallel.isLeader {
                try RunDirectory.prepare(outputDir, resuming: resumeFrom != nil, force: p.force, spelling: .params,
                                         inputs: [trainDir] + [p.val_data, p.init_from].compactMap { $0.map { String(cString: $0) } })
            }
            return trainer
        }
        out.pointee = HandleRegistry.shared.register(TrainerBox(trainer, progress: p.progress, userData: p.user_data))
    }
}

@_cdecl("hmst_trainer_step")
public func hmst_trainer_step(_ t: OpaquePointer?, _ outLoss: UnsafeMutablePointer<Double>?) -> Int32 {
    hmstCall {
        let box = try resolveTrainer(t)
        let r = try box.trainer.trainStep()
        outLoss?.pointee = r.loss
    }
}

@_cdecl("hmst_trainer_evaluate")
public func hmst_trainer_evaluate(_ t: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> Int32 {
    hmstCall {
        let box = try resolveTrainer(t)
        let out = try required(out, "out_val_loss")
        out.pointee = try box.trainer.evaluate()
    }
}

@_cdecl("hmst_trainer_run")
public func hmst_trainer_run(_ t: OpaquePointer?, _ outSteps: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let box = try resolveTrainer(t)
        let r = try box.trainer.run { p in
            guard let cb = box.progress else { return true }
            var s = hmst_train_progress()
            s.struct_size = UInt32(MemoryLayout<hmst_train_progress>.size)
            s.step = Int32(clamping: p.step)
            s.total_steps = Int32(clamping: p.totalSteps)
            s.epoch = Int32(clamping: p.epoch)
            s.loss = p.loss
            s.learning_rate = Double(p.lr)
            s.tokens_per_second = p.tokensPerSecond
            s.eta_seconds = p.etaSeconds
            s.val_loss = p.valLoss ?? .nan
            return cb(&s, box.userData)
        }
        outSteps?.pointee = Int32(clamping: r.steps)
    }
}

@_cdecl("hmst_trainer_save")
public func hmst_trainer_save(_ t: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> Int32 {
    hmstCall {
        let box = try resolveTrainer(t)
        try box.trainer.save(to: try cString(dir, "dir"), withState: true)
    }
}

@_cdecl("hmst_trainer_free")
public func hmst_trainer_free(_ t: OpaquePointer?) {
    HandleRegistry.shared.release(t, as: TrainerBox.self)
}

// Exports: Stage 2 memory fine-tuning (MemoryTrainer). Documented in include/hmst.h.
import CHMST
import HMSTCore

final class MemoryTrainerBox {
    let trainer: MemoryTrainer
    let progress: hmst_memory_train_progress_callback?
    let userData: UnsafeMutableRawPointer?
    init(_ t: MemoryTrainer, progress: hmst_memory_train_progress_callback?, userData: UnsafeMutableRawPointer?) {
        trainer = t
        self.progress = progress
        self.userData = userData
    }
}

func resolveMemoryTrainer(_ h: OpaquePointer?) throws -> MemoryTrainerBox {
    try HandleRegistry.shared.resolve(h, as: MemoryTrainerBox.self, "memory trainer")
}

@_cdecl("hmst_memory_trainer_default_params")
public func hmst_memory_trainer_default_params() -> hmst_memory_trainer_params {
    let d = MemoryTrainerOptions()
    var p = hmst_memory_trainer_params()
    p.struct_size = UInt32(MemoryLayout<hmst_memory_trainer_params>.size)
    p.checkpoint = nil; p.facts_dir = nil; p.train_data = nil; p.val_data = nil; p.output_dir = nil; p.resume_from = nil
    p.steps = Int32(d.steps)
    p.batch_size = Int32(d.batchSize)
    p.seq_len = Int32(d.sequenceLength)
    p.memory_seq_len = Int32(d.memorySequenceLength)
    p.grad_accum_steps = Int32(d.gradientAccumulationSteps)
    p.k = Int32(d.curriculum.k)
    p.eval_every = Int32(d.evalEvery)
    p.eval_questions = Int32(d.evalQuestions)
    p.learning_rate = d.learningRate
    p.weight_decay = d.adam.weightDecay
    p.grad_clip = d.gradClip
    p.lm_fraction = Float(d.lmFraction)
    p.seed = d.seed
    p.progress = nil
    p.user_data = nil
    p.mixed_precision = d.precision == .bf16
    p.gradient_checkpointing = d.gradientCheckpointing
    p.use_8bit_optimizer = d.use8bitOptimizer
    p.data_parallel = nil
    p.copy_head_key_size = Int32(d.copyHeadKeySize)
    p.copy_head_learning_rate = d.copyHeadLearningRate ?? 0
    p.episodic_soft_tokens = Int32(d.episodicSoftTokens)
    p.episodic_fraction = Float(d.episodicFraction)
    p.episodic_learning_rate = d.episodicLearningRate ?? 0
    p.episodic_soft_input = d.episodicSoftInput == .stateReadout ? 0 : 1
    p.episodic_copy = d.episodicCopySources
    p.episodic_pretrain_steps = Int32(d.episodicPretrainSteps)
    p.episodic_readout = d.episodicReadout
    let c = d.curriculum
    p.gold_weight = Float(c.goldWeight)
    p.distractors_only_weight = Float(c.distractorsOnlyWeight)
    p.no_memory_weight = Float(c.noneWeight)
    p.questions_per_example = Int32(c.questionsPerExample)
    p.hard_distractors = Float(c.hardDistractorFraction)
    p.retrieved_distractors = Float(c.retrievedFraction)
    p.retrieved_by = retrievalModeValue(c.retrievedBy)
    p.copy_gate_target_weight = d.copyGateTargetWeight
    p.retrieved_lexical_weight = c.retrievedLexicalWeight
    p.distractor_distillation = Float(c.distractorDistillation)
    p.distilled_gate_target_weight = d.distilledGateTargetWeight
    p.copy_gate_open_weight = d.copyGateOpenWeight
    p.copy_gate_agreement_rank = Int32(d.copyGateAgreementRank)
    p.copy_gate_lexical_overlap = d.copyGateLexicalOverlap
    p.copy_gate_missing_terms = d.copyGateMissingTerms
    p.copy_gate_lexical_scale = d.copyGateLexicalScale
    p.force = false
    return p
}

@_cdecl("hmst_memory_trainer_create")
public func hmst_memory_trainer_create(_ params: UnsafePointer<hmst_memory_trainer_params>?,
                                       _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out_trainer")
        let p = try readParams(try required(params, "params"), defaults: hmst_memory_trainer_default_params(), name: "params")
        // MPI (and --numa-rank binding) before the data and the model are loaded
        let dataParallel = try makeDataParallel(p.data_parallel)
        // a rank whose setup fails tells the others at once, not after the collective timeout
        let trainer = try dataParallel.creating("the memory trainer's creation") { () throws -> MemoryTrainer in
            let checkpoint = try pathString(p.checkpoint, "params->checkpoint")
            let factsDir = try pathString(p.facts_dir, "params->facts_dir")
            let outputDir = try pathString(p.output_dir, "params->output_dir")
            var o = MemoryTrainerOptions()
            o.steps = try positive(p.steps, "steps")
            o.batchSize = try positive(p.batch_size, "batch_size")
            o.sequenceLength = try positive(p.seq_len, "seq_len")
            o.memorySequenceLength = try positive(p.memory_seq_len, "memory_seq_len", allowZero: true)
            o.gradientAccumulationSteps = try positive(p.grad_accum_steps, "grad_accum_steps")
            o.curriculum.k = try positive(p.k, "k")
            o.evalEvery = try positive(p.eval_every, "eval_every", allowZero: true)
            o.evalQuestions = try positive(p.eval_questions, "eval_questions", allowZero: true)
            guard p.learning_rate.isFinite, p.learning_rate > 0 else { throw HMSTError.invalidArgument("params->learning_rate must be > 0") }
            guard p.weight_decay.isFinite, p.weight_decay >= 0 else { throw HMSTError.invalidArgument("params->weight_decay must be >= 0") }
            guard p.grad_clip.isFinite, p.grad_clip >= 0 else { throw HMSTError.invalidArgument("params->grad_clip must be >= 0") }
            guard p.lm_fraction.isFinite, p.lm_fraction >= 0, p.lm_fraction < 1 else {
                throw HMSTError.invalidArgument("params->lm_fraction = \(p.lm_fraction) must be in [0, 1)")
            }
            o.learningRate = p.learning_rate
            o.adam.weightDecay = p.weight_decay
            o.gradClip = p.grad_clip
            o.lmFraction = Double(p.lm_fraction)
            o.seed = p.seed
            o.precision = p.mixed_precision ? .bf16 : .f32
            o.gradientCheckpointing = p.gradient_checkpointing
            o.use8bitOptimizer = p.use_8bit_optimizer
            o.dataParallel = dataParallel
            o.copyHeadKeySize = try positive(p.copy_head_key_size, "copy_head_key_size", allowZero: true)
            guard p.copy_head_learning_rate.isFinite, p.copy_head_learning_rate >= 0 else {
                throw HMSTError.invalidArgument("params->copy_head_learning_rate must be >= 0 (0: learning_rate)")
            }
            o.copyHeadLearningRate = p.copy_head_learning_rate > 0 ? p.copy_head_learning_rate : nil
            o.episodicSoftTokens = try positive(p.episodic_soft_tokens, "episodic_soft_tokens", allowZero: true)
            guard p.episodic_fraction.isFinite, p.episodic_fraction >= 0, p.episodic_fraction <= 1 else {
                throw HMSTError.invalidArgument("params->episodic_fraction = \(p.episodic_fraction) must be in [0, 1]")
            }
            o.episodicFraction = Double(p.episodic_fraction)
            guard p.episodic_learning_rate.isFinite, p.episodic_learning_rate >= 0 else {
                throw HMSTError.invalidArgument("params->episodic_learning_rate must be >= 0 (0: learning_rate)")
            }
            o.episodicLearningRate = p.episodic_learning_rate > 0 ? p.episodic_learning_rate : nil
            switch p.episodic_soft_input {
            case 0: o.episodicSoftInput = .stateReadout
            case 1: o.episodicSoftInput = .pooledKey
            default:
                throw HMSTError.invalidArgument("params->episodic_soft_input = \(p.episodic_soft_input) is neither HMST_EPISODIC_STATE_READOUT (0) "
                                                + "nor HMST_EPISODIC_POOLED_KEY (1)")
            }
            o.episodicCopySources = p.episodic_copy
            o.episodicPretrainSteps = try positive(p.episodic_pretrain_steps, "episodic_pretrain_steps", allowZero: true)
            guard p.episodic_readout.isFinite, p.episodic_readout >= 0 else {
                throw HMSTError.invalidArgument("params->episodic_readout = \(p.episodic_readout) must be >= 0")
            }
            o.episodicReadout = p.episodic_readout
            for (v, name) in [(p.gold_weight, "gold_weight"), (p.distractors_only_weight, "distractors_only_weight"),
                              (p.no_memory_weight, "no_memory_weight"), (p.hard_distractors, "hard_distractors"),
                              (p.retrieved_distractors, "retrieved_distractors")] {
                guard v.isFinite, v >= 0 else { throw HMSTError.invalidArgument("params->\(name) = \(v) must be finite and >= 0") }
            }
            o.curriculum.goldWeight = Double(p.gold_weight)
            o.curriculum.distractorsOnlyWeight = Double(p.distractors_only_weight)
            o.curriculum.noneWeight = Double(p.no_memory_weight)
            o.curriculum.questionsPerExample = try positive(p.questions_per_example, "questions_per_example")
            o.curriculum.hardDistractorFraction = Double(p.hard_distractors)
            o.curriculum.retrievedFraction = Double(p.retrieved_distractors)
            o.curriculum.retrievedBy = try retrievalMode(p.retrieved_by, "params->retrieved_by")
            guard p.copy_gate_target_weight.isFinite, p.copy_gate_target_weight >= 0 else {
                throw HMSTError.invalidArgument("params->copy_gate_target_weight = \(p.copy_gate_target_weight) must be finite and >= 0")
            }
            o.copyGateTargetWeight = p.copy_gate_target_weight
            guard p.retrieved_lexical_weight.isFinite, p.retrieved_lexical_weight >= 0 else {
                throw HMSTError.invalidArgument("params->retrieved_lexical_weight = \(p.retrieved_lexical_weight) must be finite and >= 0")
            }
            o.curriculum.retrievedLexicalWeight = p.retrieved_lexical_weight
            guard p.distractor_distillation.isFinite, p.distractor_distillation >= 0, p.distractor_distillation <= 1 else {
                throw HMSTError.invalidArgument("params->distractor_distillation = \(p.distractor_distillation) must be in [0, 1]")
            }
            o.curriculum.distractorDistillation = Double(p.distractor_distillation)
            guard p.distilled_gate_target_weight.isFinite, p.distilled_gate_target_weight >= 0 else {
                throw HMSTError.invalidArgument("params->distilled_gate_target_weight = \(p.distilled_gate_target_weight) must be finite and >= 0")
            }
            o.distilledGateTargetWeight = p.distilled_gate_target_weight
            guard p.copy_gate_open_weight.isFinite, p.copy_gate_open_weight >= 0 else {
                throw HMSTError.invalidArgument("params->copy_gate_open_weight = \(p.copy_gate_open_weight) must be finite and >= 0")
            }
            o.copyGateOpenWeight = p.copy_gate_open_weight
            guard p.copy_gate_agreement_rank >= 0, p.copy_gate_agreement_rank <= 1024 else {
                throw HMSTError.invalidArgument("params->copy_gate_agreement_rank = \(p.copy_gate_agreement_rank) must be in 0 (none) ... 1024")
            }
            o.copyGateAgreementRank = Int(p.copy_gate_agreement_rank)
            o.copyGateLexicalOverlap = p.copy_gate_lexical_overlap
            o.copyGateMissingTerms = p.copy_gate_missing_terms
            o.copyGateLexicalScale = p.copy_gate_lexical_scale
            if o.lmFraction > 0 && p.train_data == nil {
                throw HMSTError.invalidArgument("params->train_data is NULL but lm_fraction is \(o.lmFraction): give the pre-training data or set lm_fraction to 0")
            }
            let lmData = try p.train_data.map { try TokenDataset(directory: String(cString: $0)) }
            let lmVal = try p.val_data.map { try TokenDataset(directory: String(cString: $0)) }
            let corpus = try FactsCorpus(directory: factsDir)
            var lo = ModelLoadOptions()
            lo.weightType = .f32
            let model = try LanguageModel.load(path: checkpoint, options: lo)
            let trainer = try MemoryTrainer(model: model, facts: corpus, lmData: lmData, lmVal: lmVal, outputDir: outputDir, options: o)
            if let r = p.resume_from { try trainer.resume(from: String(cString: r)) }
            // every option checked and the trainer made (it wrote nothing yet): an earlier run in
            // outputDir goes only now, and only when asked
            if dataParallel.isLeader {
                try RunDirectory.prepare(outputDir, resuming: p.resume_from != nil, force: p.force, spelling: .params,
                                         inputs: [checkpoint, factsDir] + [p.train_data, p.val_data].compactMap { $0.map { String(cString: $0) } })
            }
            return trainer
        }
        out.pointee = HandleRegistry.shared.register(MemoryTrainerBox(trainer, progress: p.progress, userData: p.user_data))
    }
}

@_cdecl("hmst_memory_trainer_step")
public func hmst_memory_trainer_step(_ t: OpaquePointer?, _ outLoss: UnsafeMutablePointer<Double>?,
                                     _ outLM: UnsafeMutablePointer<Bool>?) -> Int32 {
    hmstCall {
        let box = try resolveMemoryTrainer(t)
        let r = try box.trainer.trainStep()
        outLoss?.pointee = r.loss
        outLM?.pointee = r.kind == "lm"
    }
}

func memoryEval(_ e: MemoryEvaluation) -> hmst_memory_eval {
    var r = hmst_memory_eval()
    r.struct_size = UInt32(MemoryLayout<hmst_memory_eval>.size)
    r.n_questions = Int32(e.questions)
    r.nll_oracle = e.nll[.oracle] ?? .nan; r.nll_on = e.nll[.on] ?? .nan
    r.nll_off = e.nll[.off] ?? .nan; r.nll_deleted = e.nll[.deleted] ?? .nan
    r.exact_match_oracle = e.exactMatch[.oracle] ?? .nan; r.exact_match_on = e.exactMatch[.on] ?? .nan
    r.exact_match_off = e.exactMatch[.off] ?? .nan; r.exact_match_deleted = e.exactMatch[.deleted] ?? .nan
    return r
}

@_cdecl("hmst_memory_trainer_evaluate")
public func hmst_memory_trainer_evaluate(_ t: OpaquePointer?, _ out: UnsafeMutablePointer<hmst_memory_eval>?) -> Int32 {
    hmstCall {
        let box = try resolveMemoryTrainer(t)
        let out = try required(out, "out_eval")
        try writeInfo(memoryEval(try box.trainer.evaluate()), to: out, minimum: MemoryLayout<hmst_memory_eval>.size, name: "out_eval")
    }
}

@_cdecl("hmst_memory_trainer_run")
public func hmst_memory_trainer_run(_ t: OpaquePointer?, _ outSteps: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let box = try resolveMemoryTrainer(t)
        try box.trainer.run { p in
            guard let cb = box.progress else { return true }
            var s = hmst_memory_train_progress()
            s.struct_size = UInt32(MemoryLayout<hmst_memory_train_progress>.size)
            s.step = Int32(clamping: p.step)
            s.total_steps = Int32(clamping: p.totalSteps)
            s.lm_step = p.kind == "lm"
            s.loss = p.loss
            s.learning_rate = Double(p.lr)
            s.tokens_per_second = p.tokensPerSecond
            s.eta_seconds = p.etaSeconds
            s.evaluated = p.evaluation != nil
            s.eval = p.evaluation.map(memoryEval) ?? hmst_memory_eval()
            s.val_loss = p.valLoss ?? .nan
            s.val_bits_per_byte = p.valBitsPerByte ?? .nan
            return cb(&s, box.userData)
        }
        outSteps?.pointee = Int32(clamping: box.trainer.step)
    }
}

@_cdecl("hmst_memory_trainer_save")
public func hmst_memory_trainer_save(_ t: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> Int32 {
    hmstCall {
        let box = try resolveMemoryTrainer(t)
        try box.trainer.save(to: try cString(dir, "dir"), withState: true)
    }
}

@_cdecl("hmst_memory_trainer_free")
public func hmst_memory_trainer_free(_ t: OpaquePointer?) {
    HandleRegistry.shared.release(t, as: MemoryTrainerBox.self)
}

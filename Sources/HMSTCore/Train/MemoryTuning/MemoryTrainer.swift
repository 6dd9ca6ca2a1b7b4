// MemoryTrainer: Stage 2, teaching a pre-trained model to use retrieved memories. Each optimizer
// step is either a memory batch (MemoryCurriculum examples, loss on answer tokens only) or,
// for a share lmFraction of the steps, plain next-token prediction on the pre-training shards
// to bound forgetting. The step itself is OptimizerStep (shared with Trainer); the options
// are hmst train's: mixed precision, gradient checkpointing, 8-bit AdamW, exact resume,
// metrics.jsonl and loss.svg. Held-out answer NLL and exact match with memory on, off,
// oracle and deleted are measured every evalEvery steps (MemoryEvaluation).
// Under MPI (options.dataParallel, Distributed/DataParallel.swift) each rank trains on its rows
// of every global batch; rank 0 alone evaluates, writes metrics and checkpoints (committed as
// a whole by TrainingCheckpoint).

public struct MemoryTrainerOptions: Sendable {
    public var steps = 1000
    public var batchSize = 8
    /// positions per row of the LM windows (and the longest memory example)
    public var sequenceLength = 128
    /// positions per row of memory batches, at most sequenceLength (0 = sequenceLength):
    /// examples are short, so a shorter row wastes less compute on padding; longer examples
    /// drop distractors to fit
    public var memorySequenceLength = 96
    public var learningRate: Float = 3e-4
    public var minLearningRate: Float? = nil
    public var warmupFraction: Double = 0.05
    public var gradientAccumulationSteps = 1
    public var gradClip: Float = 1
    /// share of optimizer steps that are plain language modelling on the pre-training data
    public var lmFraction = 0.5
    public var curriculum = CurriculumOptions()
    /// evaluate every N steps (0 = only at the end); held-out questions per evaluation (0 = all)
    public var evalEvery = 0
    public var evalQuestions = 200
    /// LM validation windows per evaluation (when validation data is given)
    public var evalWindows = 64
    public var seed: UInt64 = 0
    public var adam = AdamWConfig()
    public var precision: MatmulPrecision = .f32
    public var gradientCheckpointing = false
    public var use8bitOptimizer = false
    /// one process (the default), or this rank of a data-parallel job
    public var dataParallel = DataParallel.single
    /// key size of a copy head trained with the model (0: none; Copy/CopyHead.swift). A
    /// checkpoint that already has one keeps training it whatever this says.
    public var copyHeadKeySize = 0
    /// rank A of the copy gate's agreement term (P·h_t)·Σ_j α_j (R·h_j), which compares the
    /// answer's state with what the pointer reads (0: none; CopyHead.swift)
    public var copyGateAgreementRank = 0
    /// a lexical-overlap term in the copy gate: a learned weight per token id over the distinct
    /// tokens a memory entry shares with the question being answered (CopyHead.swift)
    public var copyGateLexicalOverlap = false
    /// the overlap's missing terms: a learned weight per token id over the question's tokens a
    /// memory entry lacks (needs copyGateLexicalOverlap; CopyHead.swift)
    public var copyGateMissingTerms = false
    /// the overlap's fixed scale s (o = s·(Σ λ + Σ ν); CopyHead.overlapScale): 1 keeps it as it was
    public var copyGateLexicalScale: Float = 1
    /// the copy head's peak learning rate (nil: learningRate); it follows the same schedule
    public var copyHeadLearningRate: Float? = nil
    /// λ of the copy head's gate target: −λ·log(1 − g) on answer tokens the memory does not
    /// hold, so the gate closes when the fact is missing or deleted (CopyHeadGrad.swift; 0: none).
    /// 4 took the deleted gap from +13.2% to +6.9-7.5% (two seeds, session 12; 2 and 8 did no
    /// better then). With the gate's context term (copy head format 3, session 17) 8 beat 4 on
    /// both goals in a paired run (deleted gap +5.4% against +8.8%, exact match 0.85 against 0.84)
    public var copyGateTargetWeight: Float = 8
    /// λ of the gate target on distilled examples' answer rows (curriculum.distractorDistillation):
    /// their KL already pulls the gate shut with weight 1; this adds −λ·log(1 − g) there (0: none).
    /// Session 18 (Zen 5, seed 1, distillation 0.5): 0 gave a deleted gap of +4.7% and exact
    /// match 0.86, 8 gave +1.9% and 0.78
    public var distilledGateTargetWeight: Float = 0
    /// μ of the copy gate's opening target: −μ·log g on answer tokens the memory holds, the other
    /// side of the gate's closing targets (CopyHeadGrad.swift; 0: none). Session 22 (Intel, seed 1):
    /// with λ_s 2, μ 2 raised exact match 0.86 → 0.88 and the deleted gap +5.0% → +10.3%
    public var copyGateOpenWeight: Float = 0
    /// K soft tokens per episodic memory trained with the model (0: none; Memory/
    /// EpisodicSoftTokens.swift). A checkpoint that already has them keeps training them (K
    /// must then be 0 or theirs).
    public var episodicSoftTokens = 0
    /// what fresh soft tokens read of the SSM state (a checkpoint's keep theirs)
    public var episodicSoftInput = EpisodicSoftTokens.Input.stateReadout
    /// with a copy head, fresh soft tokens carry copy tokens (EpisodicSoftTokens' copy path)
    public var episodicCopySources = true
    /// read-out pre-training steps of fresh soft tokens before Stage 2 (EpisodicSoftTraining.
    /// pretrainReadout, over every fact that is not held out; 0: none). 1500 steps took the
    /// micro model's soft tokens to naming 0.80 of held-out values' first tokens
    public var episodicPretrainSteps = 1500
    /// share of memory examples whose memories are given only as episodic soft tokens
    public var episodicFraction = 0.25
    /// the soft tokens' (projection and SSM) peak learning rate (nil: learningRate); same schedule
    public var episodicLearningRate: Float? = nil
    /// share of the soft-token examples that ask for the memory's text back (reconstruction,
    /// EpisodicSoftCurriculum.softReconstruction) instead of a question's answer
    public var episodicReconstruction = 0.0
    /// weight of the readout loss: each soft token, read by the LM head, asked for the k-th
    /// token of its fact's value (EpisodicSoftTraining.readoutWeight; 0: none)
    public var episodicReadout: Float = 1
    public init() {}

    func validate() throws {
        guard steps >= 1, batchSize >= 1, sequenceLength >= 8, gradientAccumulationSteps >= 1 else {
            throw HMSTError.invalidArgument("steps, batch size and accumulation steps must be >= 1 and the sequence length >= 8")
        }
        guard learningRate > 0, learningRate.isFinite else { throw HMSTError.invalidArgument("learning rate must be > 0") }
        guard lmFraction >= 0, lmFraction < 1 else { throw HMSTError.invalidArgument("lm fraction must be in [0, 1), not \(lmFraction)") }
        guard memorySequenceLength == 0 || memorySequenceLength >= 8 else {
            throw HMSTError.invalidArgument("the memory sequence length \(memorySequenceLength) must be 0 or >= 8")
        }
        guard evalEvery >= 0, evalQuestions >= 0, evalWindows >= 0 else { throw HMSTError.invalidArgument("evaluation counts must be >= 0") }
        guard copyHeadKeySize >= 0, copyHeadKeySize <= 4096 else {
            throw HMSTError.invalidArgument("the copy head's key size \(copyHeadKeySize) must be in 0 (none) ... 4096")
        }
        guard copyGateAgreementRank >= 0, copyGateAgreementRank <= 1024 else {
            throw HMSTError.invalidArgument("the copy gate's agreement rank \(copyGateAgreementRank) must be in 0 (none) ... 1024")
        }
        if let r = copyHeadLearningRate, !(r > 0 && r.isFinite) { throw HMSTError.invalidArgument("the copy head's learning rate must be > 0") }
        guard copyGateTargetWeight >= 0, copyGateTargetWeight.isFinite else {
            throw HMSTError.invalidArgument("the copy gate target's weight must be finite and >= 0, not \(copyGateTargetWeight)")
        }
        guard distilledGateTargetWeight >= 0, distilledGateTargetWeight.isFinite else {
            throw HMSTError.invalidArgument("the distilled rows' copy gate target weight must be finite and >= 0, not \(distilledGateTargetWeight)")
        }
        guard copyGateOpenWeight >= 0, copyGateOpenWeight.isFinite else {
            throw HMSTError.invalidArgument("the copy gate's opening target weight must be finite and >= 0, not \(copyGateOpenWeight)")
        }
        guard episodicSoftTokens >= 0, episodicSoftTokens <= EpisodicSoftTokens.maxTokens else {
            throw HMSTError.invalidArgument("episodic soft tokens K = \(episodicSoftTokens) must be in 0 (none) ... \(EpisodicSoftTokens.maxTokens)")
        }
        guard episodicFraction >= 0, episodicFraction <= 1 else {
            throw HMSTError.invalidArgument("the episodic soft-token fraction must be in [0, 1], not \(episodicFraction)")
        }
        if let r = episodicLearningRate, !(r > 0 && r.isFinite) { throw HMSTError.invalidArgument("the episodic soft tokens' learning rate must be > 0") }
        guard episodicPretrainSteps >= 0 else { throw HMSTError.invalidArgument("episodic read-out pre-training steps must be >= 0") }
        guard episodicReadout >= 0, episodicReadout.isFinite else {
            throw HMSTError.invalidArgument("the episodic readout weight must be >= 0, not \(episodicReadout)")
        }
        guard episodicReconstruction >= 0, episodicReconstruction <= 1 else {
            throw HMSTError.invalidArgument("the episodic reconstruction share must be in [0, 1], not \(episodicReconstruction)")
        }
        try curriculum.validate()
    }
}

public struct MemoryTrainerProgress: Sendable {
    public var step: Int
    public var totalSteps: Int
    /// "memory" or "lm"
    public var kind: String
    public var loss: Double
    public var lr: Float
    public var tokensPerSecond: Double
    public var etaSeconds: Double
    public var evaluation: MemoryEvaluation?
    public var valLoss: Double?
    public var valBitsPerByte: Double?
}

public struct MemoryStepResult: Sendable {
    public var kind: String
    public var loss: Double
    public var lr: Float
    public var gradNorm: Float
}

public final class MemoryTrainer {
    public let params: Parameters
    public let tokenizer: Tokenizer
    public let curriculum: MemoryCurriculum
    public let options: MemoryTrainerOptions
    public let lmData: TokenDataset?
    public let lmVal: TokenDataset?
    public let outputDir: String
    /// the training step for memory batches ([B, memoryT]) and for LM batches ([B, T]): two
    /// instances over the same parameters, so neither reallocates its buffers per step
    public let grad: ModelGrad
    /// what the step's GEMMs compute in (options.precision resolved for this CPU) and why
    public let computePrecision: MatmulPrecision
    public let precisionReason: String
    let lmGrad: ModelGrad
    /// the no-memory forward of distilled examples (curriculum.distractorDistillation > 0):
    /// the model's own predictions, without gradient, as their targets; [batchSize, teacherT]
    let teacherGrad: ModelGrad?
    var teacherT: Int { min(memoryT, 48) }
    /// positions per memory row
    public var memoryT: Int {
        options.memorySequenceLength > 0 ? min(options.memorySequenceLength, options.sequenceLength) : options.sequenceLength
    }
    public let optimizer: Optimizer
    let optimizerStep: OptimizerStep
    /// the copy head trained with the model, and its own AdamW (same schedule and clipping
    /// bound, its own norm), or nil
    public let copyHead: CopyHead?
    let copyOptimizer: Optimizer?
    /// the episodic soft tokens trained with the model, or nil
    public let episodic: EpisodicSoftTraining?
    /// fresh soft tokens whose read-out pre-training has not run yet (it runs before the first
    /// step; resume clears it)
    public private(set) var episodicPretrainPending = false
    var lmSampler: WindowSampler?
    /// draws the curriculum's examples
    var rng: RNG
    public private(set) var step = 0
    /// tokens of every rank's batches so far
    var tokensSeen = 0
    public var dataParallel: DataParallel { options.dataParallel }
    var curve: [(step: Int, train: Double, val: Double?)] = []
    /// bytes of text per validation token, for bits per byte
    public private(set) var valBytesPerToken: Double?

    /// Stage 2 from a pre-trained checkpoint: the markers are added to its tokenizer and
    /// vocabulary first when it lacks them (MemoryTokens). Dense or hybrid retrieved blocks
    /// are ranked by the checkpoint's retrieval projection, as it stands before Stage 2.
    public convenience init(model: LanguageModel, facts: FactsCorpus, lmData: TokenDataset?, lmVal: TokenDataset?,
                            outputDir: String, options: MemoryTrainerOptions) throws {
        let (params, tokenizer, _) = try MemoryTokens.prepare(model: model)
        try self.init(params: params, tokenizer: tokenizer, facts: facts, lmData: lmData, lmVal: lmVal, outputDir: outputDir,
                      options: options, copyHead: model.decoder.copyHead, episodicSoftTokens: model.episodicSoftTokens,
                      embedder: RetrievalEmbedder(model: model))
    }

    /// copyHead: one to keep training (from the checkpoint); otherwise options.copyHeadKeySize
    /// > 0 starts a fresh one. embedder: for the curriculum's dense or hybrid retrieved blocks.
    public init(params: Parameters, tokenizer: Tokenizer, facts: FactsCorpus, lmData: TokenDataset?, lmVal: TokenDataset?,
                outputDir: String, options: MemoryTrainerOptions, copyHead existing: CopyHead? = nil,
                episodicSoftTokens existingSoft: EpisodicSoftTokens? = nil, embedder: RetrievalEmbedder? = nil) throws {
        try options.validate()
        guard options.sequenceLength <= params.config.maxPositionEmbeddings else {
            throw HMSTError.invalidArgument("sequence length \(options.sequenceLength) exceeds the model's \(params.config.maxPositionEmbeddings) positions")
        }
        guard tokenizer.vocabSize <= params.config.vocabSize else {
            throw HMSTError.invalidArgument("the tokenizer has \(tokenizer.vocabSize) tokens but the model only \(params.config.vocabSize)")
        }
        try checkStepFits(dims: params.config.dims, B: options.batchSize, T: options.sequenceLength,
                          checkpointing: options.gradientCheckpointing)
        if options.lmFraction > 0 && lmData == nil {
            throw HMSTError.invalidArgument("an lm fraction of \(options.lmFraction) needs the pre-training data (or set it to 0)")
        }
        for d in [lmData, lmVal].compactMap({ $0 }) where d.vocabSize > params.config.vocabSize {
            throw HMSTError.invalidArgument("the pre-training data's vocabulary (\(d.vocabSize)) is larger than the model's (\(params.config.vocabSize))")
        }
        self.params = params
        self.tokenizer = tokenizer
        self.options = options
        self.lmData = lmData
        self.lmVal = lmVal
        self.outputDir = outputDir
        curriculum = try MemoryCurriculum(corpus: facts, tokenizer: tokenizer, options: options.curriculum, embedder: embedder)
        (computePrecision, precisionReason) = ComputeRates.resolve(options.precision)
        let go = ModelGradOptions(precision: computePrecision, gradientCheckpointing: options.gradientCheckpointing)
        grad = ModelGrad(params: params, options: go)
        let mT = options.memorySequenceLength > 0 ? min(options.memorySequenceLength, options.sequenceLength) : options.sequenceLength
        lmGrad = mT != options.sequenceLength ? ModelGrad(params: params, options: go) : grad
        teacherGrad = options.curriculum.distractorDistillation > 0 ? ModelGrad(params: params, options: go) : nil
        optimizer = try OptimizerStep.makeOptimizer(params: params, use8bit: options.use8bitOptimizer, config: options.adam)
        guard options.copyGateLexicalScale.isFinite, options.copyGateLexicalScale > 0, options.copyGateLexicalScale <= 1e4 else {
            throw HMSTError.invalidArgument("the copy gate's lexical scale \(options.copyGateLexicalScale) must be in (0, 10000]")
        }
        guard options.copyGateLexicalScale == 1 || options.copyGateLexicalOverlap else {
            throw HMSTError.invalidArgument("the copy gate's lexical scale applies to its lexical overlap: ask for both (--copy-gate-lexical-overlap --copy-gate-lexical-scale)")
        }
        guard !options.copyGateMissingTerms || options.copyGateLexicalOverlap else {
            throw HMSTError.invalidArgument("the copy gate's missing terms are part of its lexical overlap: ask for both (--copy-gate-lexical-overlap --copy-gate-missing-terms)")
        }
        var head = existing
        if head == nil && options.copyHeadKeySize > 0 {
            head = try CopyHead.initialised(for: tokenizer, C: params.config.hiddenSize, D: options.copyHeadKeySize,
                                          A: options.copyGateAgreementRank,
                                          overlapVocabulary: options.copyGateLexicalOverlap ? params.config.vocabSize : 0,
                                          missingTerms: options.copyGateMissingTerms, seed: options.seed ^ 0xc0b1)
            head?.overlapScale = options.copyGateLexicalScale
        }
        if let head {
            try head.validate(for: params.config.dims)
            guard options.dataParallel.size == 1 else {
                throw HMSTError.unsupported("a copy head is not trained data-parallel yet: train it in one process")
            }
        }
        copyHead = head
        copyOptimizer = try head.map { try AdamW(params: $0, config: options.adam) }
        grad.copyHead = head
        grad.copyGateTargetWeight = options.copyGateTargetWeight
        grad.softGateTargetWeight = options.distilledGateTargetWeight
        grad.copyGateOpenWeight = options.copyGateOpenWeight
        var soft = existingSoft
        if let s = soft, options.episodicSoftTokens > 0, s.K != options.episodicSoftTokens {
            throw HMSTError.invalidArgument("the checkpoint's episodic soft tokens have K = \(s.K), not the \(options.episodicSoftTokens) asked for")
        }
        let freshSoft = soft == nil && options.episodicSoftTokens > 0
        if freshSoft {
            soft = try EpisodicSoftTokens.initialised(C: params.config.hiddenSize, K: options.episodicSoftTokens,
                                                      input: options.episodicSoftInput, scale: EpisodicSoftTraining.embeddingRMS(params),
                                                      seed: options.seed ^ 0x50f7)
            soft?.copySources = options.episodicCopySources && head != nil
        }
        if let soft {
            guard options.dataParallel.size == 1 else {
                throw HMSTError.unsupported("episodic soft tokens are not trained data-parallel yet: train them in one process")
            }
            let ep = try EpisodicSoftTraining(softTokens: soft, params: params, tokenizer: tokenizer, options: go, adam: options.adam)
            ep.enableReadout(weight: options.episodicReadout, corpus: facts)
            episodic = ep
            episodicPretrainPending = freshSoft && options.episodicPretrainSteps > 0
        } else {
            episodic = nil
        }
        optimizerStep = OptimizerStep(params: params, optimizer: optimizer,
                                      schedule: LRSchedule(maxLR: options.learningRate, minLR: options.minLearningRate,
                                                           warmupSteps: max(1, Int(Double(options.steps) * options.warmupFraction)),
                                                           totalSteps: options.steps),
                                      gradClip: options.gradClip)
        // separate streams for the LM windows and the curriculum, so either can be resumed
        lmSampler = try lmData.map { try WindowSampler(dataset: $0, blockSize: options.sequenceLength, seed: options.seed ^ 0x4c4d) }
        rng = RNG(seed: options.seed)
        if options.dataParallel.isLeader { try FileIO.makeDirectories(outputDir) }
        if let lmVal { valBytesPerToken = try lmVal.bytesPerToken(tokenizer: tokenizer) }
        // the collectives: every rank has come this far (DataParallel.creating), holds the same
        // options, corpus and data, then rank 0's initial weights
        try options.dataParallel.ready()
        options.dataParallel.attach(to: optimizerStep, grads: grad === lmGrad ? [grad] : [grad, lmGrad])
        // (built only with ranks to agree with: it hashes the data)
        if options.dataParallel.size > 1 { try options.dataParallel.agree(agreedOptions(), at: "the memory trainer's creation") }
        try options.dataParallel.synchronize(params)
    }

    /// What a resume must keep of the run it continues: the data, the sequence lengths and the
    /// curriculum (what the restored stream draws).
    private func resumeKept() -> [DataParallel.Agreed] {
        let kept: Set<String> = ["seq_len", "memory_seq_len", "lm_fraction", "k", "gold_weight", "distractors_only_weight", "none_weight",
                                 "fewer_fraction", "unknown_answer", "questions_per_example", "prompt_loss", "copy_fraction",
                                 "hard_distractor_fraction", "retrieved_fraction", "retrieved_by", "retrieved_lexical_weight",
                                 "distractor_distillation", "facts corpus"]
        // the data under names that do not depend on whether its fingerprint is complete or sampled
        return agreedOptions().filter { kept.contains($0.name) }
            + [.init("pre-training tokens", lmData?.totalTokens ?? -1), .init("pre-training data fingerprint", lmData?.fingerprint ?? 0)]
    }

    /// What every rank of a data-parallel job must share: the options, the curriculum, the data.
    private func agreedOptions() -> [DataParallel.Agreed] {
        let o = options, c = options.curriculum, dp = options.dataParallel
        return [.init("steps", o.steps), .init("batch_size", o.batchSize), .init("seq_len", o.sequenceLength),
                      .init("memory_seq_len", o.memorySequenceLength), .init("grad_accum_steps", o.gradientAccumulationSteps),
                      .init("learning_rate", Double(o.learningRate)), .init("min_learning_rate", Double(o.minLearningRate ?? -1)),
                      .init("warmup_fraction", o.warmupFraction), .init("grad_clip", Double(o.gradClip)),
                      .init("weight_decay", Double(o.adam.weightDecay)), .init("lm_fraction", o.lmFraction),
                      .init("eval_every", o.evalEvery), .init("eval_questions", o.evalQuestions), .init("eval_windows", o.evalWindows),
                      .init("seed", o.seed), .init("parameters", params.count), .init("gradient_checkpointing", o.gradientCheckpointing),
                      .init("use_8bit_optimizer", o.use8bitOptimizer), .init("compute precision", named: "\(computePrecision)"),
                      // the curriculum decides which examples the shared stream draws
                      .init("k", c.k), .init("gold_weight", c.goldWeight), .init("distractors_only_weight", c.distractorsOnlyWeight),
                      .init("none_weight", c.noneWeight), .init("fewer_fraction", c.fewerFraction),
                      .init("unknown_answer", named: c.unknownAnswer), .init("questions_per_example", c.questionsPerExample),
                      .init("prompt_loss", c.promptLoss), .init("copy_fraction", c.copyFraction),
                      .init("hard_distractor_fraction", c.hardDistractorFraction), .init("retrieved_fraction", c.retrievedFraction),
                      .init("retrieved_by", named: "\(c.retrievedBy)"), .init("retrieved_lexical_weight", Double(c.retrievedLexicalWeight)),
                      .init("distractor_distillation", c.distractorDistillation),
                      .init("facts corpus", curriculum.corpus.fingerprint),
                      .init(lmData?.fingerprintLabel("pre-training data") ?? "pre-training data", lmData?.fingerprint ?? 0),
                      .init(lmVal?.fingerprintLabel("pre-training validation data") ?? "pre-training validation data", lmVal?.fingerprint ?? 0),
                      .init("all-reduce bucket elements", dp.bucketElements), .init("all-reduce overlap", dp.overlapWithBackward)]
    }

    /// Held-out questions (what evaluation measures), at most options.evalQuestions.
    public var heldOutQuestions: [FactQuestion] {
        let h = curriculum.corpus.questions(in: "heldout")
        return options.evalQuestions > 0 ? Array(h.prefix(options.evalQuestions)) : h
    }

    /// Whether optimizer step `step` (0-based) is a plain LM step: lmFraction of the steps,
    /// spread evenly (a rule of the step alone, so resume needs no state for it).
    public func isLMStep(_ step: Int) -> Bool {
        let f = options.lmFraction
        return f > 0 && Int((Double(step + 1) * f).rounded(.down)) > Int((Double(step) * f).rounded(.down))
    }

    /// One optimizer step (a memory batch or an LM batch, per isLMStep); the soft tokens'
    /// read-out pre-training first when it is pending.
    public func trainStep() throws -> MemoryStepResult {
        try dataParallel.agreeOnCall("step", step: step)
        if episodicPretrainPending { _ = try pretrainEpisodicReadout() }
        let B = options.batchSize, T = options.sequenceLength, mT = memoryT
        let lm = isLMStep(step)
        let pad = tokenizer.eosId ?? 0
        var inputs: [Int32] = [], targets: [Int32] = []
        var windows = lm ? [Int32](repeating: 0, count: B * (T + 1)) : []
        let dp = dataParallel
        copyHead?.zeroGrads()
        var companions: [OptimizerCompanion] = []
        if !lm, let ep = episodic, options.episodicFraction > 0 {
            companions.append(OptimizerCompanion(name: "the episodic soft tokens", params: ep.softTokens, optimizer: ep.optimizer,
                                                 lrScale: (options.episodicLearningRate ?? options.learningRate) / options.learningRate))
        }
        let r = try optimizerStep.run(step: step, microBatches: options.gradientAccumulationSteps, companions: companions) { _ in
            // this rank's rows of the global batch of ranks x B (all of it for one process)
            if lm, var sampler = lmSampler {
                windows.withUnsafeMutableBufferPointer { sampler.nextBatch(B, rank: dp.rank, ranks: dp.size, into: $0.baseAddress!) }
                lmSampler = sampler
                // the same window layout as pre-training, as inputs and targets
                inputs = [Int32](repeating: 0, count: B * T); targets = inputs
                for b in 0..<B {
                    for t in 0..<T {
                        inputs[b * T + t] = windows[b * (T + 1) + t]
                        targets[b * T + t] = windows[b * (T + 1) + t + 1]
                    }
                }
                tokensSeen += B * T * dp.size
                return try lmGrad.step(inputs: inputs, targets: targets, B: B, T: T, backward: true).ceLoss
            }
            guard let ep = episodic, options.episodicFraction > 0 else {
                let drawn = (0..<(B * dp.size)).map { _ in curriculum.sample(&rng, maxTokens: mT + 1) }
                let examples = Array(drawn[dp.rows(B)])
                MemoryBatch.pack(examples, T: mT, pad: pad, inputs: &inputs, targets: &targets,
                                 promptLoss: options.curriculum.promptLoss)
                tokensSeen += drawn.reduce(0) { $0 + min($1.tokens.count, mT + 1) }
                return try memoryStep(examples, inputs: inputs, targets: targets, injected: nil)
            }
            // a share of the rows give their memories only as episodic soft tokens (one process)
            var examples: [MemoryExample] = [], soft: [SoftMemoryExample] = [], softRows: [Int] = []
            for b in 0..<B {
                if rng.nextDouble() < options.episodicFraction {
                    let e: SoftMemoryExample
                    if options.episodicReconstruction > 0, rng.nextDouble() < options.episodicReconstruction {
                        let q = curriculum.trainQuestions[Int(rng.next() % UInt64(curriculum.trainQuestions.count))]
                        e = curriculum.softReconstruction(text: curriculum.corpus.fact(of: q).text, K: ep.softTokens.K)
                    } else {
                        e = curriculum.sampleSoft(&rng, K: ep.softTokens.K, maxTokens: mT + 1)
                    }
                    soft.append(e)
                    softRows.append(b)
                    examples.append(e.example)
                } else {
                    examples.append(curriculum.sample(&rng, maxTokens: mT + 1))
                }
            }
            MemoryBatch.pack(examples, T: mT, pad: pad, inputs: &inputs, targets: &targets,
                             promptLoss: options.curriculum.promptLoss)
            // a placeholder is never a target (with promptLoss the prompt's tokens are)
            if options.curriculum.promptLoss {
                let open = tokenizer.id(for: MemoryPrompt.memoryOpen) ?? -2
                for i in 0..<targets.count where targets[i] == open && softRows.contains(i / mT) { targets[i] = -1 }
            }
            tokensSeen += examples.reduce(0) { $0 + min($1.tokens.count, mT + 1) }
            let (injected, pending) = try ep.inject(soft, rows: softRows, T: mT, trace: true)
            let loss = try memoryStep(examples, inputs: inputs, targets: targets, injected: injected)
            if !injected.isEmpty { try ep.backward(injectedGradient: grad.injectedGradient, pending: pending) }
            return loss
        }
        if !lm, let head = copyHead, let opt = copyOptimizer {
            // the head's own step: the mean over micro-batches, clipped by its own norm
            let accum = Float(options.gradientAccumulationSteps)
            let norm = GradClip.norm(head) / accum
            guard norm.isFinite else { throw HMSTError(.internal, "the copy head's gradient norm is \(norm) at step \(step): training diverged") }
            let lr = r.lr * (options.copyHeadLearningRate ?? options.learningRate) / options.learningRate
            opt.update(lr: lr, gradScale: GradClip.scale(norm: norm, maxNorm: options.gradClip) / accum)
        }
        step += 1
        return MemoryStepResult(kind: lm ? "lm" : "memory", loss: r.loss, lr: r.lr, gradNorm: r.gradNorm)
    }

    /// The training step of a memory batch (examples packed at memoryT into inputs, targets),
    /// its distilled examples' soft targets set for it; returns the answer loss.
    func memoryStep(_ examples: [MemoryExample], inputs: [Int32], targets: [Int32], injected: InjectedEmbeddings?) throws -> Double {
        grad.softTargets = try distillTargets(examples, studentTargets: targets)
        defer { grad.softTargets = nil }
        return try grad.step(inputs: inputs, targets: targets, B: options.batchSize, T: memoryT, injected: injected, backward: true).ceLoss
    }

    /// The targets of the distilled examples among `examples` (packed at memoryT): the model's
    /// own next-token distribution at each of their answer positions when the same question and
    /// answer come without memory, from a forward without gradient. nil when none is distilled.
    func distillTargets(_ examples: [MemoryExample], studentTargets: [Int32]) throws -> ModelGrad.SoftTargets? {
        guard let teacher = teacherGrad,
              let db = DistillBatch.make(examples, studentT: memoryT, rows: options.batchSize, T: teacherT, pad: tokenizer.eosId ?? 0)
        else { return nil }
        let pairs = db.pairs.filter { studentTargets[$0.student] >= 0 }
        guard !pairs.isEmpty else { return nil }
        _ = try teacher.step(inputs: db.inputs, targets: db.targets, B: db.rows, T: db.T, backward: false)
        let probs = teacher.withLastProbabilities { p, _, V -> [Float] in
            var out = [Float](repeating: 0, count: pairs.count * V)
            out.withUnsafeMutableBufferPointer { o in
                for (i, pair) in pairs.enumerated() { (o.baseAddress! + i * V).update(from: p + pair.teacher * V, count: V) }
            }
            return out
        }
        guard let probs else { throw HMSTError(.internal, "the distillation teacher's probabilities are gone") }
        return ModelGrad.SoftTargets(rows: pairs.map(\.student), probs: probs)
    }

    /// Held-out answer NLL and exact match in every MemorySetting.
    public func evaluate() throws -> MemoryEvaluation {
        var e = try MemoryEvaluator.evaluate(grad: grad, curriculum: curriculum, questions: heldOutQuestions,
                                             B: options.batchSize, T: memoryT)
        if let ep = episodic {
            (e.softNLL, e.softExactMatch) = try ep.evaluate(grad: grad, curriculum: curriculum, questions: heldOutQuestions,
                                                            B: options.batchSize, T: memoryT)
            e.softReadout = try ep.readoutAccuracy(curriculum: curriculum, questions: heldOutQuestions)
        }
        return e
    }

    /// Mean next-token loss (nats) on the LM validation data, and bits per byte.
    public func evaluateLM() throws -> (loss: Double, bitsPerByte: Double?) {
        guard let lmVal else { throw HMSTError.invalidArgument("no validation data") }
        let B = options.batchSize, T = options.sequenceLength
        var seq = try SequentialWindows(dataset: lmVal, blockSize: T)
        var w = [Int32](repeating: 0, count: B * (T + 1))
        var total = 0.0, n = 0
        let limit = options.evalWindows > 0 ? options.evalWindows : Int.max
        outer: while n < limit {
            // B windows per forward (the last batch is completed by repeating windows, which are not counted)
            var got = 0
            while got < B && n + got < limit {
                let ok = w.withUnsafeMutableBufferPointer { seq.next(into: $0.baseAddress! + got * (T + 1)) }
                if !ok { break }
                got += 1
            }
            if got == 0 { break outer }
            for b in got..<B { for t in 0...T { w[b * (T + 1) + t] = w[t] } }
            var inputs = [Int32](repeating: 0, count: B * T), targets = [Int32](repeating: -1, count: B * T)
            for b in 0..<B {
                for t in 0..<T {
                    inputs[b * T + t] = w[b * (T + 1) + t]
                    if b < got { targets[b * T + t] = w[b * (T + 1) + t + 1] }
                }
            }
            total += try lmGrad.step(inputs: inputs, targets: targets, B: B, T: T, backward: false).ceLoss * Double(got)
            n += got
            if got < B { break }
        }
        guard n > 0 else { throw HMSTError.invalidArgument("the validation set has no window of \(T + 1) tokens") }
        let loss = total / Double(n)
        return (loss, valBytesPerToken.map { EvalMetrics.bitsPerByte(natsPerToken: loss, bytesPerToken: $0) })
    }

    /// The soft tokens' read-out pre-training (options.episodicPretrainSteps) over every fact
    /// that is not held out, once, for fresh soft tokens (the first trainStep runs it when no
    /// one called this first). The mean loss per tenth of it.
    public func pretrainEpisodicReadout(progress: ((Int, Double) -> Void)? = nil) throws -> [Double] {
        guard let ep = episodic, episodicPretrainPending else { return [] }
        episodicPretrainPending = false
        let facts = curriculum.corpus.facts.filter { $0.split != "heldout" }
        return try ep.pretrainReadout(facts: facts, steps: options.episodicPretrainSteps,
                                      lr: options.episodicLearningRate ?? options.learningRate, adam: options.adam,
                                      seed: options.seed ^ 0x9e70, progress: progress)
    }

    /// Runs (or continues, after resume) to options.steps; progress returns false to stop early
    /// (final/ is still saved with the state to resume from). Returns the last evaluation.
    @discardableResult
    public func run(progress: (MemoryTrainerProgress) -> Bool = { _ in true }) throws -> MemoryEvaluation? {
        try dataParallel.agreeOnCall("run", step: step)
        let total = options.steps
        let leader = dataParallel.isLeader
        let metrics = leader ? try AtomicAppender(path: outputDir + "/metrics.jsonl") : nil
        var last: MemoryEvaluation? = nil
        if step == 0 && leader {
            // the starting point: how the checkpoint does before Stage 2
            let e = try evaluate()
            let v = lmVal != nil ? try evaluateLM() : nil
            try metrics?.append(metricsLine(step: 0, result: nil, seconds: 0, eval: e, val: v))
            curve.append((0, e.nll[.on] ?? 0, e.nll[.on]))
        }
        let t0 = Clock.nowMs()
        let tokensAtStart = tokensSeen, stepAtStart = step
        while step < total {
            let r = try trainStep()
            let elapsed = (Clock.nowMs() - t0) / 1000
            let evalNow = step == total || (options.evalEvery > 0 && step % options.evalEvery == 0)
            var e: MemoryEvaluation? = nil
            var v: (loss: Double, bitsPerByte: Double?)? = nil
            if evalNow && leader {
                e = try evaluate()
                if lmVal != nil { v = try evaluateLM() }
                last = e
            }
            try metrics?.append(metricsLine(step: step, result: r, seconds: elapsed, eval: e, val: v))
            if r.kind == "memory" || e != nil { curve.append((step, r.kind == "memory" ? r.loss : curve.last?.train ?? r.loss, e?.nll[.on])) }
            if e != nil && leader { try? FileIO.writeAtomically(outputDir + "/loss.svg", text: LossPlot.svg(curve)) }
            let p = MemoryTrainerProgress(step: step, totalSteps: total, kind: r.kind, loss: r.loss, lr: r.lr,
                                          tokensPerSecond: Double(tokensSeen - tokensAtStart) / max(elapsed, 1e-9),
                                          etaSeconds: elapsed / Double(max(1, step - stepAtStart)) * Double(total - step),
                                          evaluation: e, valLoss: v?.loss, valBitsPerByte: v?.bitsPerByte)
            // every rank stops together: on its own request or any other rank's
            if try dataParallel.anyRank(!progress(p)) { break }
        }
        try save(to: outputDir + "/final", withState: true)
        return last
    }

    func metricsLine(step: Int, result r: MemoryStepResult?, seconds: Double, eval e: MemoryEvaluation?,
                     val v: (loss: Double, bitsPerByte: Double?)?) -> String {
        let w = JSONWriter()
        w.object {
            w.field("step", step)
            if let r {
                w.field("kind", r.kind); w.field("loss", r.loss); w.field("lr", Double(r.lr)); w.field("grad_norm", Double(r.gradNorm))
            }
            w.field("tokens", tokensSeen); w.field("seconds", seconds)
            if r != nil && dataParallel.size > 1 { w.field("ranks", dataParallel.size); w.field("allreduce_ms", dataParallel.lastAllReduceMs) }
            if let e {
                for s in MemorySetting.allCases {
                    w.field("answer_nll_\(s.rawValue)", e.nll[s] ?? 0)
                    w.field("exact_match_\(s.rawValue)", e.exactMatch[s] ?? 0)
                }
                for (name, v) in e.softNLL.sorted(by: { $0.key < $1.key }) {
                    w.field("answer_nll_\(name)", v)
                    w.field("exact_match_\(name)", e.softExactMatch[name] ?? 0)
                }
                if let r = e.softReadout {
                    w.field("state_readout_first", r.first)
                    if let s = r.second { w.field("state_readout_second", s) }
                }
                w.field("eval_questions", e.questions)
            }
            if let v {
                w.field("val_loss", v.loss)
                if let b = v.bitsPerByte { w.field("val_bpb", b) }
            }
        }
        return w.output + "\n"
    }

    // MARK: checkpoints

    /// Writes a loadable checkpoint (config.json with the grown vocab_size, model.safetensors,
    /// tokenizer.json with the markers); withState adds optimizer.safetensors and
    /// memory_trainer_state.json (step, the curriculum's RNG, the LM sampler), for resume. The
    /// directory is committed as a whole (TrainingCheckpoint); under MPI every rank calls it
    /// (the replicas are checked to agree) and rank 0 writes.
    public func save(to dir: String, withState: Bool = false) throws {
        try dataParallel.agreeOnCall("save", step: step)
        try dataParallel.checkReplicasAgree(params, step: step)
        guard dataParallel.isLeader else { return }
        try TrainingCheckpoint.commit(dir, step: step) { staging in try write(to: staging, withState: withState) }
    }

    static let copyOptimizerName = "copy_head_optimizer.safetensors"
    static let episodicOptimizerName = "episodic_soft_tokens_optimizer.safetensors"

    func write(to dir: String, withState: Bool) throws {
        let model = LanguageModel(decoder: try params.decoder(), tokenizer: tokenizer, config: params.config.json(),
                                  report: LoadReport(), storage: [params])
        copyHead?.summary = .object([("stage2_steps", .number(Double(step)))])
        model.decoder.copyHead = copyHead
        try model.save(directory: dir)
        if let soft = episodic?.softTokens {
            soft.summary = .object([("stage2_steps", .number(Double(step))), ("fraction", .number(options.episodicFraction))])
            try soft.save(checkpoint: dir)
        }
        guard withState else { return }
        if let ep = episodic {
            try SafeTensorsWriter.writeRaw(path: dir + "/" + MemoryTrainer.episodicOptimizerName, tensors: ep.optimizer.stateTensors())
        }
        try SafeTensorsWriter.writeRaw(path: dir + "/optimizer.safetensors", tensors: optimizer.stateTensors())
        if let copyOptimizer {
            try SafeTensorsWriter.writeRaw(path: dir + "/" + MemoryTrainer.copyOptimizerName, tensors: copyOptimizer.stateTensors())
        }
        let w = JSONWriter()
        w.object {
            TrainerState.writeHeader(w, format: MemoryTrainer.stateFormat, step: step, optimizer: optimizer)
            if let copyOptimizer { w.field("copy_head_optimizer_step", copyOptimizer.step) }
            if let ep = episodic { w.field("episodic_optimizer_step", ep.optimizer.step) }
            w.field("tokens_seen", tokensSeen)
            TrainerState.writeBatch(w, batchSize: options.batchSize, accumulation: options.gradientAccumulationSteps,
                                    dataParallel: dataParallel)
            TrainerState.writeRun(w, resumeKept())
            w.field("curriculum_rng", TrainerState.words(rng))
            if let s = lmSampler?.state {
                w.field("lm_rng", TrainerState.words(s.rng)); w.field("lm_windows_drawn", s.drawn)
            }
        }
        try FileIO.writeAtomically(dir + "/" + MemoryTrainer.stateFile, text: w.output + "\n")
    }

    static let stateFile = "memory_trainer_state.json"
    static let stateFormat = "hmst-memory-trainer-state"

    /// Restores parameters, optimizer state, step and data streams from a directory written by
    /// save(withState: true), so training continues exactly as if it had not stopped.
    public func resume(from dir: String) throws {
        try dataParallel.agreeOnCall("resume", step: step)
        // a state that fails to load on one rank (a missing or damaged file there) fails the call on all
        try dataParallel.together("the resume from \(dir)") { try resumeLocally(from: dir) }
    }

    private func resumeLocally(from dir: String) throws {
        episodicPretrainPending = false   // the soft tokens resumed have had theirs
        let state = try TrainerState(resuming: dir, stateFile: MemoryTrainer.stateFile, format: MemoryTrainer.stateFormat,
                                     what: "an hmst memory trainer state", missing: "resume from OUTPUT/final of a train-memory run",
                                     params: params, optimizer: optimizer, batchSize: options.batchSize,
                                     accumulation: options.gradientAccumulationSteps, dataParallel: dataParallel)
        try state.checkRun(resumeKept(), dir: dir)
        let (j, model, ost) = (state.json, state.model, state.optimizerStep)
        let curriculumRNG = try state.rng("curriculum_rng")
        var lmState: WindowSamplerState? = nil
        if lmSampler != nil {
            guard j["lm_rng"] != nil else { throw HMSTError.invalidArgument("\(dir) was trained without pre-training data; resume it the same way") }
            lmState = WindowSamplerState(rng: try state.rng("lm_rng"), drawn: try state.counter("lm_windows_drawn"))
        }
        if let head = copyHead {
            guard let saved = model.decoder.copyHead, saved.count == head.count, saved.D == head.D, saved.A == head.A,
                  saved.overlapVocabulary == head.overlapVocabulary, saved.missingTerms == head.missingTerms,
                  saved.overlapScale == head.overlapScale else {
                throw HMSTError.invalidArgument("\(dir) has no copy head of key size \(head.D), agreement rank \(head.A) and "
                                                + (head.overlapVocabulary == 0 ? "no lexical overlap" : head.missingTerms ? "a lexical overlap with missing terms" : "a lexical overlap without missing terms")
                                                + (head.overlapVocabulary == 0 ? "" : " at scale \(head.overlapScale)")
                                                + "; resume it with the options it was trained with")
            }
            guard let copyOptimizer, FileIO.exists(dir + "/" + MemoryTrainer.copyOptimizerName) else {
                throw HMSTError.badFormat("\(dir) lacks \(MemoryTrainer.copyOptimizerName) for its copy head")
            }
            try copyOptimizer.loadState(SafeTensorsFile(path: dir + "/" + MemoryTrainer.copyOptimizerName), step: j["copy_head_optimizer_step"] == nil ? ost : try state.counter("copy_head_optimizer_step"))
            head.values.pointer.update(from: saved.values.pointer, count: head.count)
        } else if model.decoder.copyHead != nil {
            throw HMSTError.invalidArgument("\(dir) has a copy head: resume it with --copy-head")
        }
        if let ep = episodic {
            guard let saved = model.episodicSoftTokens, saved.count == ep.softTokens.count, saved.K == ep.softTokens.K else {
                throw HMSTError.invalidArgument("\(dir) has no episodic soft tokens with K = \(ep.softTokens.K); resume it with the options it was trained with")
            }
            guard FileIO.exists(dir + "/" + MemoryTrainer.episodicOptimizerName) else {
                throw HMSTError.badFormat("\(dir) lacks \(MemoryTrainer.episodicOptimizerName) for its episodic soft tokens")
            }
            try ep.optimizer.loadState(SafeTensorsFile(path: dir + "/" + MemoryTrainer.episodicOptimizerName),
                                       step: j["episodic_optimizer_step"] == nil ? ost : try state.counter("episodic_optimizer_step"))
            ep.softTokens.values.pointer.update(from: saved.values.pointer, count: saved.count)
        } else if model.episodicSoftTokens != nil {
            throw HMSTError.invalidArgument("\(dir) has episodic soft tokens: resume it with --episodic-soft-tokens")
        }
        try optimizer.loadState(SafeTensorsFile(path: dir + "/optimizer.safetensors"), step: ost)
        params.values.pointer.update(from: state.loaded.values.pointer, count: params.count)
        step = state.step
        tokensSeen = try state.counter("tokens_seen")
        self.rng = curriculumRNG
        if let lmState { lmSampler?.restore(lmState) }
    }
}

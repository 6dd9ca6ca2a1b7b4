// hmst train-memory: Stage 2 memory fine-tuning of a pre-trained checkpoint (MemoryTrainer):
// the memory markers are added to its tokenizer, then it learns to answer from retrieved facts
// (and to ignore unhelpful ones) while half the steps stay plain language modelling.
// Writes OUT/final (a checkpoint with trainer state), metrics.jsonl and loss.svg.
import ArgumentParser
import Foundation
import HMSTCore

struct TrainMemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-memory", abstract: "Stage 2: teach a pre-trained model to use retrieved memories.")

    @Argument(help: "The pre-trained checkpoint directory.") var checkpoint: String
    @Option(help: "Directory with facts.jsonl and train.jsonl (`hmst facts generate`).") var facts: String
    @Option(help: "Pre-training data: a directory written by `hmst preprocess` (for the LM batches).") var data: String?
    @Option(name: .customLong("val-data"), help: "LM validation data (a preprocessed directory): loss and bits per byte at each evaluation.")
    var valData: String?
    @Option(help: "Output directory.") var output: String
    @Option(help: "Optimizer steps.") var steps = 1000
    @Option(name: .customLong("batch-size"), help: "Sequences per micro-batch.") var batchSize = 8
    @Option(name: .customLong("seq-len"), help: "Positions per LM window (and the longest memory example).") var seqLen = 128
    @Option(name: .customLong("memory-seq-len"), help: "Positions per memory example row (at most --seq-len).") var memorySeqLen = 96
    @Option(name: .customLong("learning-rate"), help: "Peak learning rate.") var learningRate: Float = 3e-4
    @Option(name: .customLong("lm-fraction"), help: "Share of steps that are plain language modelling on --data.") var lmFraction = 0.5
    @Option(help: "Memories per example.") var k = 4
    @Option(name: .customLong("questions-per-example"), help: "Questions asked after one memory block in gold examples (1...k).")
    var questionsPerExample = 1
    @Option(name: .customLong("condition-weights"),
            help: "Shares of gold, distractors-only and no-memory examples, as G,D,N (normalised).")
    var conditionWeights = "0.5,0.25,0.25"
    @Flag(name: .customLong("prompt-loss"), help: "Every token of a memory example carries loss, not only the answers.")
    var promptLoss = false
    @Option(name: .customLong("copy-fraction"), help: "Share of memory examples that are synthetic copy tasks (a random span, then its repeat).")
    var copyFraction = 0.0
    @Option(name: .customLong("gradient-accumulation-steps"), help: "Micro-batches per optimizer step.") var accumulation = 1
    @Option(name: .customLong("eval-every"), help: "Evaluate held-out questions every N steps (0 = at the end).") var evalEvery = 0
    @Option(name: .customLong("eval-questions"), help: "Held-out questions per evaluation (0 = all).") var evalQuestions = 200
    @Option(help: "Seed for the curriculum and the data order.") var seed: UInt64 = 0
    @Option(help: "Continue from OUTPUT/final of an earlier run, with the same checkpoint, data and options.") var resume: String?
    @Flag(name: .customLong("mixed-precision"), help: "bf16 matmuls with f32 accumulation and f32 master weights.") var mixedPrecision = false
    @Flag(name: .customLong("gradient-checkpointing"), help: "Recompute each layer's activations in backward (less memory).")
    var gradientCheckpointing = false
    @Flag(name: .customLong("use-8bit-optimizer"), help: "Blockwise 8-bit AdamW state.") var use8bitOptimizer = false
    @Option(name: .customLong("hard-distractors"),
            help: "Share of distractors about the same entity or the same relation as the fact asked about (what retrieval returns).")
    var hardDistractors = 0.0
    @Option(name: .customLong("retrieved-distractors"),
            help: "Share of memory blocks taken from a search of the question over the training facts, in rank order (what `on` retrieves).")
    var retrievedDistractors = 0.0
    @Option(name: .customLong("retrieved-by"),
            help: "How that search ranks: lexical (BM25), dense or hybrid (these two need the checkpoint's retrieval projection: hmst train-retriever).")
    var retrievedBy = "lexical"
    @Option(name: .customLong("retrieved-lexical-weight"),
            help: "With --retrieved-by hybrid: the weight of the BM25 rank in the fusion (the dense rank's is 1); use what hmst eval retrieves with (--lexical-weight).")
    var retrievedLexicalWeight = CurriculumOptions().retrievedLexicalWeight
    @Option(name: .customLong("distractor-distillation"),
            help: "Share of distractors-only examples that ask for the real answer and train it towards the model's own prediction without memory (a KL to the same model without the memories), in [0, 1].")
    var distractorDistillation = CurriculumOptions().distractorDistillation
    @Flag(name: .customLong("copy-head"), help: "Train a copy head with the model: a pointer from the answer to the memory tokens, mixed with the LM's distribution by a learned gate.")
    var copyHead = false
    @Option(name: .customLong("copy-head-key-size"), help: "Query and key size of the copy head.") var copyHeadKeySize = 64
    @Option(name: .customLong("copy-head-learning-rate"), help: "The copy head's peak learning rate (default: --learning-rate); same schedule.")
    var copyHeadLearningRate: Float?
    @Option(name: .customLong("copy-gate-agreement-rank"),
            help: "Rank of the copy gate's agreement term, which compares the answer's state with the memory the pointer reads (0 = none).")
    var copyGateAgreementRank = MemoryTrainerOptions().copyGateAgreementRank
    @Flag(name: .customLong("copy-gate-lexical-overlap"),
          help: "Give the copy gate the tokens each memory shares with the question (a learned weight per token), so it can tell the asked entity's entry from a look-alike.")
    var copyGateLexicalOverlap = false
    @Flag(name: .customLong("copy-gate-missing-terms"),
          help: "With --copy-gate-lexical-overlap: also a learned weight per token for the question's tokens a memory lacks, so an entry missing the asked relation or entity can close the gate.")
    var copyGateMissingTerms = false
    @Option(name: .customLong("copy-gate-lexical-scale"),
            help: "With --copy-gate-lexical-overlap: a fixed scale s of the overlap's per-token weights (o = s·Σ), so their sparse updates move the gate as a learning rate s times the head's would (1 = none).")
    var copyGateLexicalScale = MemoryTrainerOptions().copyGateLexicalScale
    @Option(name: .customLong("copy-gate-target-weight"),
            help: "Weight λ of the copy gate's target: −λ·log(1 − gate) on answer tokens the memory does not hold, so the gate closes when the fact is missing or deleted (0 = none).")
    var copyGateTargetWeight = MemoryTrainerOptions().copyGateTargetWeight
    @Option(name: .customLong("distilled-gate-target-weight"),
            help: "Weight λ of the copy gate's target on the answers of --distractor-distillation's examples, whose KL already pulls the gate shut with weight 1 (0 = nothing more).")
    var distilledGateTargetWeight = MemoryTrainerOptions().distilledGateTargetWeight
    @Option(name: .customLong("copy-gate-open-weight"),
            help: "Weight μ of the copy gate's opening target: −μ·log(gate) on answer tokens the memory holds, the other side of the closing targets (0 = none).")
    var copyGateOpenWeight = MemoryTrainerOptions().copyGateOpenWeight
    @Option(name: .customLong("episodic-soft-tokens"),
            help: "Train the episodic tier's soft tokens: K (1...8) embeddings per memory, projected from its SSM state (0 = none). A checkpoint that has them keeps training them.")
    var episodicSoftTokens = 0
    @Option(name: .customLong("episodic-soft-input"),
            help: "What fresh soft tokens read of the SSM state: state_readout (K learned readouts of the whole state) or pooled_unit_key (the retrieval key, the first version's input).")
    var episodicSoftInput = "state_readout"
    @Flag(name: .customLong("no-episodic-copy"),
          help: "Fresh soft tokens without the copy path (by default, with a copy head, each soft row names a token through the LM head that the copy head may copy).")
    var noEpisodicCopy = false
    @Option(name: .customLong("episodic-pretrain-steps"),
            help: "Before Stage 2, train fresh soft tokens alone for this many steps (16 facts each, every fact not held out) to name their fact's value through the LM head.")
    var episodicPretrainSteps = 1500
    @Option(name: .customLong("episodic-fraction"), help: "Share of memory examples whose memories are given only as episodic soft tokens.")
    var episodicFraction = 0.25
    @Option(name: .customLong("episodic-learning-rate"), help: "Peak learning rate of the soft-token projection and SSM (default: --learning-rate); same schedule.")
    var episodicLearningRate: Float?
    @Option(name: .customLong("episodic-reconstruction"), help: "Share of the soft-token examples that ask for the memory's text back (loss on the text) instead of an answer.")
    var episodicReconstruction = 0.0
    @Option(name: .customLong("episodic-readout"), help: "Weight of an auxiliary loss asking each soft token, read by the LM head, for the k-th token of its fact's value (0 = none).")
    var episodicReadout: Float = 1
    @Flag(name: .customLong("no-progress"), help: "No live progress line.") var noProgress = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var distributed: DistributedOptions
    @OptionGroup var runDirectory: RunDirectoryOptions

    func run() throws {
        try runReportingErrors { try distributed.run { dp in
            try threadOptions.apply()
            if dp.isLeader { try runDirectory.prepare(output, resuming: resume != nil, inputs: [checkpoint, facts] + [data, valData].compactMap { $0 }) }
            let model = try LanguageModel.load(path: checkpoint, options: { var o = ModelLoadOptions(); o.weightType = .f32; return o }())
            let corpus = try FactsCorpus(directory: facts)
            let lmData = try data.map { try TokenDataset(directory: $0) }
            let lmVal = try valData.map { try TokenDataset(directory: $0) }
            var o = MemoryTrainerOptions()
            o.steps = steps
            o.batchSize = batchSize
            o.sequenceLength = seqLen
            o.memorySequenceLength = memorySeqLen
            o.learningRate = learningRate
            o.lmFraction = lmData == nil ? 0 : lmFraction
            o.curriculum.k = k
            o.curriculum.questionsPerExample = questionsPerExample
            let w = conditionWeights.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard w.count == 3, let g = w[0], let d = w[1], let n = w[2] else {
                throw ValidationError("--condition-weights takes three numbers G,D,N, not \(conditionWeights)")
            }
            (o.curriculum.goldWeight, o.curriculum.distractorsOnlyWeight, o.curriculum.noneWeight) = (g, d, n)
            o.curriculum.promptLoss = promptLoss
            o.curriculum.copyFraction = copyFraction
            o.curriculum.hardDistractorFraction = hardDistractors
            o.curriculum.retrievedFraction = retrievedDistractors
            o.curriculum.distractorDistillation = distractorDistillation
            guard let by = RetrievalMode(rawValue: retrievedBy) else {
                throw ValidationError("--retrieved-by takes lexical, dense or hybrid, not \(retrievedBy)")
            }
            o.curriculum.retrievedBy = by
            o.curriculum.retrievedLexicalWeight = retrievedLexicalWeight
            o.gradientAccumulationSteps = accumulation
            o.evalEvery = evalEvery
            o.evalQuestions = evalQuestions
            o.seed = seed
            o.precision = mixedPrecision ? .bf16 : .f32
            o.gradientCheckpointing = gradientCheckpointing
            o.use8bitOptimizer = use8bitOptimizer
            o.dataParallel = dp
            o.copyHeadKeySize = copyHead ? copyHeadKeySize : 0
            o.copyGateAgreementRank = copyGateAgreementRank
            o.copyGateLexicalOverlap = copyGateLexicalOverlap
            o.copyGateMissingTerms = copyGateMissingTerms
            o.copyGateLexicalScale = copyGateLexicalScale
            o.copyHeadLearningRate = copyHeadLearningRate
            o.copyGateTargetWeight = copyGateTargetWeight
            o.distilledGateTargetWeight = distilledGateTargetWeight
            o.copyGateOpenWeight = copyGateOpenWeight
            o.episodicSoftTokens = episodicSoftTokens
            guard let input = EpisodicSoftTokens.Input(rawValue: episodicSoftInput) else {
                throw HMSTError.invalidArgument("--episodic-soft-input \(episodicSoftInput): expected "
                                                + EpisodicSoftTokens.Input.allCases.map(\.rawValue).joined(separator: " or "))
            }
            o.episodicSoftInput = input
            o.episodicCopySources = !noEpisodicCopy
            o.episodicPretrainSteps = episodicPretrainSteps
            o.episodicFraction = episodicFraction
            o.episodicLearningRate = episodicLearningRate
            o.episodicReconstruction = episodicReconstruction
            o.episodicReadout = episodicReadout
            if lmData == nil && lmFraction > 0 { printLeader(dp, "no --data: every step is a memory step (--lm-fraction 0)") }
            let trainer = try MemoryTrainer(model: model, facts: corpus, lmData: lmData, lmVal: lmVal, outputDir: output, options: o)
            if let resume {
                try trainer.resume(from: resume)
                printLeader(dp, "resumed from \(resume) at step \(trainer.step)")
            }
            if trainer.episodicPretrainPending, let ep = trainer.episodic {
                let t0 = Clock.nowMs()
                _ = try trainer.pretrainEpisodicReadout { step, loss in
                    printLeader(dp, String(format: "episodic read-out pre-training %ld/%ld  loss %.4f", step, episodicPretrainSteps, loss))
                }
                let r = try ep.readoutAccuracy(curriculum: trainer.curriculum, questions: trainer.heldOutQuestions)
                printLeader(dp, String(format: "episodic read-out pre-training done in %.0f s: held-out values whose first token is named: %.2f",
                                       (Clock.nowMs() - t0) / 1000, r.first) + (r.second.map { String(format: ", second: %.2f", $0) } ?? ""))
            }
            signal(SIGINT) { _ in trainInterrupted = 1 }
            printLeader(dp, "stage 2 on \(corpus.facts.count) facts, \(trainer.curriculum.trainQuestions.count) training and "
                       + "\(trainer.heldOutQuestions.count) held-out questions: \(steps) steps of \(batchSize)x\(o.sequenceLength), "
                       + "memory rows of \(trainer.memoryT), lm fraction \(o.lmFraction), k \(k), \(trainer.optimizer.kind)"
                       + ", " + trainer.precisionReason + (gradientCheckpointing ? ", gradient checkpointing" : "")
                       + (trainer.copyHead.map { ", copy head (key size \($0.D)\($0.A > 0 ? ", agreement rank \($0.A)" : "")\($0.overlapVocabulary > 0 ? ", lexical overlap" : "")\($0.missingTerms ? " with missing terms" : ""))" } ?? "")
                       + (trainer.episodic.map { ", episodic soft tokens (K \($0.softTokens.K), share \(o.episodicFraction))" } ?? ""))
            printLeader(dp, dp.effectiveBatchLine(batch: batchSize, accumulation: accumulation)
                        + (dp.size > 1 ? ", \(Threads.count) thread(s) per rank" : ""))
            let interactive = !noProgress && isatty(2) != 0 && dp.isLeader
            func describe(_ e: MemoryEvaluation) -> String {
                (MemorySetting.allCases.map { s in
                    String(format: "%@ nll %.3f em %.2f", s.rawValue, e.nll[s] ?? 0, e.exactMatch[s] ?? 0)
                } + e.softNLL.keys.sorted().map { s in
                    String(format: "%@ nll %.3f em %.2f", s, e.softNLL[s] ?? 0, e.softExactMatch[s] ?? 0)
                } + (e.softReadout.map { r in
                    [String(format: "state read-out %.2f", r.first) + (r.second.map { String(format: " / %.2f", $0) } ?? "")]
                } ?? [])).joined(separator: " | ")
            }
            let last = try trainer.run { p in
                let line = String(format: "step %ld/%ld  %@ loss %.4f  lr %.2e  %.0f tok/s  ETA %.0fs", p.step, p.totalSteps,
                                  p.kind, p.loss, p.lr, p.tokensPerSecond, p.etaSeconds)
                if interactive { StandardStream.error.write("\r" + line + "   ") }
                else if dp.isLeader && (p.step % 20 == 0 || p.step == p.totalSteps) { printError(line) }
                if let e = p.evaluation {
                    if interactive { StandardStream.error.write("\n") }
                    printError("  held-out (\(e.questions)): " + describe(e)
                               + (p.valBitsPerByte.map { String(format: " | val bpb %.4f", $0) } ?? ""))
                }
                if trainInterrupted != 0 {
                    printLeader(dp, "\ninterrupted: saving \(output)/final (resume with --resume \(output)/final)")
                    return false
                }
                return true
            }
            if interactive { StandardStream.error.write("\n") }
            if dp.size > 1 {
                printLeader(dp, String(format: "gradient all-reduce: %.2f ms per step on average over %ld ranks", dp.meanAllReduceMs, dp.size))
            }
            guard dp.isLeader else { return }
            print("trained \(trainer.step) steps -> \(output)/final" + (last.map { "; held-out: " + describe($0) } ?? ""))
        } }
    }
}

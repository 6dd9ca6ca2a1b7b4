// OptimizerStep: the one optimizer step every trainer shares (pre-training's Trainer, Stage 2's
// MemoryTrainer, and later PPO and data-parallel training): zero the gradients, run the
// micro-batches (gradient accumulation), an all-reduce hook, the global norm, clipping, the
// schedule's rate and the optimizer's update. What a micro-batch is stays with the caller.

public struct OptimizerStepResult: Sendable {
    /// mean of the micro-batches' losses
    public var loss: Double
    /// the learning rate used
    public var lr: Float
    /// the global gradient norm before clipping (of the mean over micro-batches)
    public var gradNorm: Float
    /// each companion's own gradient norm, in the order given
    public var companionGradNorms: [Float] = []
}

public final class OptimizerStep {
    public let params: any ParameterSet
    public let optimizer: Optimizer
    public var schedule: LRSchedule
    /// clip the global gradient norm to this (<= 0: no clipping)
    public var gradClip: Float
    /// Runs after the micro-batches and before the norm: a data-parallel trainer sums the
    /// gradients of its replicas here and turns the loss (this replica's mean over its
    /// micro-batches) into the mean over replicas (Distributed/DataParallel.swift).
    public var allReduce: ((any ParameterSet, inout Double) throws -> Void)?
    /// replicas whose summed gradients arrive through allReduce (1 without data parallelism):
    /// the update divides by micro-batches x replicas
    public var replicas = 1
    /// Called before micro-batch i of n (data parallelism arms its overlap for the last one).
    public var beforeMicroBatch: ((_ i: Int, _ n: Int) -> Void)?

    public init(params: any ParameterSet, optimizer: Optimizer, schedule: LRSchedule, gradClip: Float = 1) {
        self.params = params
        self.optimizer = optimizer
        self.schedule = schedule
        self.gradClip = gradClip
    }

    /// One optimizer step at 0-based step index `step` (which picks the rate, unless
    /// scheduleStep is given: a time-budgeted run's share of its budget): microBatch(i) adds
    /// the gradient of micro-batch i to params.grads and returns its loss. Throws, leaving the
    /// parameters untouched, when the gradient norm is not finite.
    ///
    /// companions: smaller parameter sets the micro-batches train too (the episodic soft tokens),
    /// each with its own optimizer: zeroed with params, their gradient the same mean over
    /// micro-batches, clipped by their own norm (so a companion leaves the main set's update as
    /// it would be without it) and updated at the schedule's rate times lrScale. Not all-reduced:
    /// a data-parallel trainer must not pass any.
    public func run(step: Int, scheduleStep: Int? = nil, microBatches: Int, companions: [OptimizerCompanion] = [],
                    _ microBatch: (Int) throws -> Double) throws -> OptimizerStepResult {
        guard microBatches >= 1 else { throw HMSTError.invalidArgument("an optimizer step needs at least one micro-batch") }
        params.zeroGrads()
        for c in companions { c.params.zeroGrads() }
        var loss = 0.0
        for i in 0..<microBatches {
            beforeMicroBatch?(i, microBatches)
            loss += try microBatch(i) / Double(microBatches)
        }
        try allReduce?(params, &loss)
        // the mean over micro-batches (and replicas) and the clipping factor are applied inside the update
        let accum = Float(microBatches * max(1, replicas))
        let norm = GradClip.norm(params) / accum
        guard norm.isFinite else { throw HMSTError(.internal, "gradient norm is \(norm) at step \(step): training diverged") }
        let lr = schedule.lr(at: scheduleStep ?? step)
        var companionNorms: [Float] = []
        for c in companions {
            let n = GradClip.norm(c.params) / accum
            guard n.isFinite else { throw HMSTError(.internal, "\(c.name)'s gradient norm is \(n) at step \(step): training diverged") }
            companionNorms.append(n)
        }
        optimizer.update(lr: lr, gradScale: GradClip.scale(norm: norm, maxNorm: gradClip) / accum)
        for (c, n) in zip(companions, companionNorms) {
            c.optimizer.update(lr: lr * c.lrScale, gradScale: GradClip.scale(norm: n, maxNorm: gradClip) / accum)
        }
        return OptimizerStepResult(loss: loss, lr: lr, gradNorm: norm, companionGradNorms: companionNorms)
    }
}

/// A parameter set trained in the same optimizer step as the main one (see OptimizerStep.run).
public struct OptimizerCompanion {
    public var name: String
    public var params: any ParameterSet
    public var optimizer: Optimizer
    /// its peak rate over the main set's (the schedule is shared)
    public var lrScale: Float
    public init(name: String, params: any ParameterSet, optimizer: Optimizer, lrScale: Float = 1) {
        self.name = name
        self.params = params
        self.optimizer = optimizer
        self.lrScale = lrScale
    }
}

extension OptimizerStep {
    /// AdamW or 8-bit AdamW over params.
    public static func makeOptimizer(params: any ParameterSet, use8bit: Bool, config: AdamWConfig) throws -> Optimizer {
        use8bit ? try AdamW8bit(params: params, config: config) : try AdamW(params: params, config: config)
    }
}

// DataParallel: what makes a trainer data-parallel, in one place for Trainer and MemoryTrainer.
// Every rank holds the whole model and optimizer; each optimizer step, each rank computes the
// gradient of its own rows of the global batch, the gradients are summed over ranks (bucketed
// all-reduce, hooked into OptimizerStep before the norm and clipping) and divided by
// ranks x micro-batches inside the update, so every rank applies the identical step. The data
// split is by position in one seeded stream: every rank advances the same sampler over the
// global batch of ranks x B rows and reads (copies) only rows rank*B ..< (rank+1)*B, so the
// shards are disjoint, the order is the one a single process with batch ranks x B sees, and
// the sampler state (identical on all ranks) is what a checkpoint stores.
// Rank 0 alone writes metrics and checkpoints; decisions that depend on one rank's view
// (stop, early stopping) are reduced so every rank takes them together.

public final class DataParallel: @unchecked Sendable {
    /// nil: a single process (no MPI at all)
    public let communicator: Communicator?
    public var rank: Int { communicator?.rank ?? 0 }
    public var size: Int { communicator?.size ?? 1 }
    /// rank 0: logs, writes metrics and checkpoints
    public var isLeader: Bool { rank == 0 }
    /// gradient elements per all-reduce bucket
    public var bucketElements = 1 << 22
    /// milliseconds of the last step's gradient all-reduce, and their sum over the run
    public private(set) var lastAllReduceMs = 0.0
    public private(set) var totalAllReduceMs = 0.0
    public private(set) var allReduceSteps = 0
    /// mean milliseconds of a step's gradient all-reduce in this process so far
    public var meanAllReduceMs: Double { totalAllReduceMs / Double(max(1, allReduceSteps)) }

    public static let single = DataParallel(communicator: nil)

    public init(communicator: Communicator?) {
        self.communicator = communicator
    }

    /// The rows of each micro-batch this rank computes, out of size * B drawn.
    public func rows(_ B: Int) -> Range<Int> { rank * B ..< (rank + 1) * B }

    /// Hooks the gradient all-reduce into an optimizer step (no-op for one process).
    func attach(to step: OptimizerStep) {
        guard let c = communicator, c.size > 1 else { return }
        step.replicas = c.size
        step.allReduce = { [unowned self] params, loss in
            let t0 = Clock.nowMs()
            try c.allReduceSum(params.grads.pointer, count: params.count, bucketElements: self.bucketElements,
                               what: "the gradient all-reduce")
            // the reported loss is the mean over ranks, as one process with the global batch reports it
            loss = try c.allReduce([loss], what: "the loss all-reduce")[0] / Double(c.size)
            self.lastAllReduceMs = Clock.nowMs() - t0
            self.totalAllReduceMs += self.lastAllReduceMs
            self.allReduceSteps += 1
        }
    }

    /// Rank 0's parameter values to every rank (at the start, so replicas begin identical
    /// even if their initialisation differed).
    func synchronize(_ params: any ParameterSet) throws {
        try communicator?.broadcast(params.values.pointer, count: params.count, what: "the initial parameter broadcast")
    }

    /// Throws unless every rank holds bit-identical parameters (checked before a checkpoint, so
    /// what rank 0 writes is what every rank trained).
    func checkReplicasAgree(_ params: any ParameterSet, step: Int) throws {
        guard let c = communicator, c.size > 1 else { return }
        let sum = FileChecksum.of(UnsafeRawBufferPointer(start: params.values.pointer, count: params.count * 4))
        let r = try c.allReduceRange(sum, what: "the replica check")
        guard r.min == r.max else {
            throw HMSTError(.internal, "rank \(c.rank): the \(c.size) replicas hold different parameters at step \(step) "
                            + "(non-deterministic reduction?); not writing a checkpoint")
        }
    }

    /// True on every rank when any rank asks to stop (Ctrl-C on one, a progress callback's false).
    func anyRank(_ flag: Bool) throws -> Bool {
        guard let c = communicator, c.size > 1 else { return flag }
        return try c.allReduce([flag ? 1 : 0], .max, what: "the stop decision")[0] > 0
    }

    /// Sums of a few numbers over ranks (split evaluation).
    func sum(_ values: [Double], what: String) throws -> [Double] {
        guard let c = communicator, c.size > 1 else { return values }
        return try c.allReduce(values, what: what)
    }

    /// "batch 8 x 2 accumulation x 2 ranks = 32 sequences per optimizer step"
    public func effectiveBatchLine(batch: Int, accumulation: Int) -> String {
        "effective batch \(batch * accumulation * size) = batch \(batch) x \(accumulation) accumulation x \(size) rank\(size == 1 ? "" : "s")"
    }
}

// DataParallel: what makes a trainer data-parallel, in one place for Trainer and MemoryTrainer.
// Every rank holds the whole model and optimizer; each optimizer step, each rank computes the
// gradient of its own rows of the global batch, the gradients are summed over ranks (bucketed
// non-blocking all-reduces, started during the last micro-batch's backward as each layer's
// gradient is final and completed in OptimizerStep's hook before the norm and clipping) and
// divided by ranks x micro-batches inside the update, so every rank applies the identical step. The data
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
    /// milliseconds of the last step's gradient all-reduce (the wait after the backward plus
    /// the posting and testing during it), and their sum over the run
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

    /// Overlap with the backward pass: during the last micro-batch of a step (armed), each
    /// range of gradients the backward has finished (ModelGrad.gradientsReady: head, then layer
    /// L-1 ... 0) is posted as non-blocking all-reduces at once, and pending ones are tested
    /// (MPI progresses them only inside MPI calls) each time another range is ready; the step's
    /// hook posts what is left (the embedding) and waits for all. Set false to reduce only after
    /// the backward (the sums are the same either way).
    public var overlapWithBackward = true
    var armed = false
    var posted: [Range<Int>] = []
    var pending: [UnsafeMutableRawPointer?] = []
    var postError: Error?
    /// milliseconds spent posting and testing during the backward (part of the step's all-reduce work)
    var overlapMs = 0.0

    /// Hooks the gradient all-reduce into an optimizer step and the backward passes that feed
    /// it (no-op for one process).
    func attach(to step: OptimizerStep, grads: [ModelGrad]) {
        guard let c = communicator, c.size > 1 else { return }
        step.replicas = c.size
        let what = "the gradient all-reduce"
        step.beforeMicroBatch = { [unowned self] i, n in
            self.armed = self.overlapWithBackward && i == n - 1
            self.posted = []
            self.overlapMs = 0
        }
        for g in grads {
            let params = g.params
            g.gradientsReady = { [unowned self] range in
                guard self.armed, self.postError == nil, !range.isEmpty else { return }
                let t0 = Clock.nowMs()
                do {
                    self.pending += try c.postAllReduceSum(params.grads.pointer + range.lowerBound, count: range.count,
                                                           bucketElements: self.bucketElements, what: what)
                    self.posted.append(range)
                    try c.testAll(&self.pending, what)
                } catch {
                    self.postError = error
                }
                self.overlapMs += Clock.nowMs() - t0
            }
        }
        step.allReduce = { [unowned self] params, loss in
            let t0 = Clock.nowMs()
            defer { self.armed = false; self.posted = [] }
            try c.keepingAliveOnFailure(params.grads) { try self.reduceGradients(params, c, what) }
            // the reported loss is the mean over ranks, as one process with the global batch reports it
            loss = try c.allReduce([loss], what: "the loss all-reduce")[0] / Double(c.size)
            self.lastAllReduceMs = Clock.nowMs() - t0 + self.overlapMs
            self.totalAllReduceMs += self.lastAllReduceMs
            self.allReduceSteps += 1
        }
    }

    /// Posts what the backward did not and waits for every gradient all-reduce of the step.
    private func reduceGradients(_ params: any ParameterSet, _ c: Communicator, _ what: String) throws {
        if let e = self.postError { self.postError = nil; throw e }
        // what the backward did not post (all of it when not armed): the gaps between posted ranges
        var start = 0
        for r in self.posted.sorted(by: { $0.lowerBound < $1.lowerBound }) + [params.count ..< params.count] {
            if r.lowerBound > start {
                self.pending += try c.postAllReduceSum(params.grads.pointer + start, count: r.lowerBound - start,
                                                       bucketElements: self.bucketElements, what: what)
            }
            start = max(start, r.upperBound)
        }
        try c.waitAll(&self.pending, what)
    }

    /// Rank 0's parameter values to every rank (at the start, so replicas begin identical
    /// even if their initialisation differed).
    func synchronize(_ params: any ParameterSet) throws {
        guard let c = communicator else { return }
        try c.keepingAliveOnFailure(params.values) {
            try c.broadcast(params.values.pointer, count: params.count, what: "the initial parameter broadcast")
        }
    }

    /// Set while a trainer's creation is in its local part (`creating`), until `ready`.
    var creation: String?

    /// A trainer's creation on this rank, for hosts that cannot end the job on an error (the C
    /// API; the CLI aborts the job instead). A rank whose local setup fails (a missing data
    /// file, a malformed checkpoint) would leave the others waiting in the first collective
    /// until its timeout; here it joins one small all-reduce instead, and every rank fails at
    /// once: the failed rank with its own error, the others naming it. `body` must call
    /// `ready()` before its first collective (Trainer and MemoryTrainer do).
    public func creating<T>(_ what: String, _ body: () throws -> T) throws -> T {
        // one rank alone, or inside another creation (whose ready point is the one that counts)
        guard let c = communicator, c.size > 1, creation == nil else { return try body() }
        creation = what
        defer { creation = nil }
        do {
            let r = try body()
            try ready()
            return r
        } catch {
            if creation != nil {
                creation = nil
                try? settle(c, what, failed: true)
            }
            throw error
        }
    }

    /// Where a creation's local part ends: one all-reduce tells every rank whether any failed.
    func ready() throws {
        guard let what = creation, let c = communicator, c.size > 1 else { return }
        creation = nil
        try settle(c, what, failed: false)
    }

    /// A local part of a call every rank makes (loading a state to resume from): its failure on
    /// one rank fails the call on every rank, instead of leaving the others to wait for that
    /// rank in their next collective.
    func together<T>(_ what: String, _ body: () throws -> T) throws -> T {
        guard let c = communicator, c.size > 1 else { return try body() }
        let r: T
        do { r = try body() } catch {
            try? settle(c, what, failed: true)
            throw error
        }
        try settle(c, what, failed: false)
        return r
    }

    /// One all-reduce of whether any rank failed a local part they all ran (MAX of rank + 1 over
    /// the failed ones); a rank that did not fail throws naming one that did.
    private func settle(_ c: Communicator, _ what: String, failed: Bool) throws {
        let worst = try c.allReduce([failed ? Double(c.rank + 1) : 0], .max, what: "\(what): the ranks' local part")[0]
        guard !failed, worst > 0 else { return }
        throw HMSTError.invalidArgument("rank \(c.rank) of \(c.size): rank \(Int(worst) - 1) failed during \(what) (its own error "
                                        + "says why); this rank stops too")
    }

    /// One value every rank must hold alike, as 64 bits, and how to show it.
    public struct Agreed {
        let name: String, bits: UInt64, shown: String
        public init(_ name: String, _ v: Int) { (self.name, bits, shown) = (name, UInt64(bitPattern: Int64(v)), "\(v)") }
        public init(_ name: String, _ v: UInt64) { (self.name, bits, shown) = (name, v, "\(v)") }
        public init(_ name: String, _ v: Double) { (self.name, bits, shown) = (name, v.bitPattern, "\(v)") }
        public init(_ name: String, _ v: Bool) { (self.name, bits, shown) = (name, v ? 1 : 0, "\(v)") }
        /// a name (a call's, say) by its FNV-1a hash
        public init(_ name: String, named v: String) {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in v.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            (self.name, bits, shown) = (name, h, v)
        }
    }

    /// INVALID_ARGUMENT on every rank unless every rank passed the same values. Ranks given
    /// different options (batch size, seed, model, bucket size ...) or making different calls
    /// (one evaluates while another saves) would otherwise pair unrelated collectives: MPI
    /// matches them by order only, so sums mix unrelated numbers, sizes disagree and buffers
    /// overrun. Trainers check their options at create and the call and step at the start of
    /// every call that reduces (two small all-reduces).
    public func agree(_ fields: [Agreed], at what: String) throws {
        guard let c = communicator, c.size > 1, !fields.isEmpty else { return }
        let same = try c.agreement(fields.map(\.bits), what: what)
        let differing = fields.indices.filter { !same[$0] }
        guard differing.isEmpty else {
            let names = differing.map { "\(fields[$0].name) (this rank: \(fields[$0].shown))" }.joined(separator: ", ")
            throw HMSTError.invalidArgument("rank \(c.rank) of \(c.size): the ranks differ in \(names) at \(what); every rank "
                                            + "must be given the same options and make the same calls in the same order")
        }
    }

    /// The call and the step every rank must be at (Trainer and MemoryTrainer, at each call that reduces).
    func agreeOnCall(_ call: String, step: Int) throws {
        try agree([Agreed("call", named: call), Agreed("step", step)], at: "the start of \(call)")
    }

    /// Throws unless every rank holds bit-identical parameters (checked before a checkpoint, so
    /// what rank 0 writes is what every rank trained).
    func checkReplicasAgree(_ params: any ParameterSet, step: Int) throws {
        guard let c = communicator, c.size > 1 else { return }
        let sum = FileChecksum.of(UnsafeRawBufferPointer(start: params.values.pointer, count: params.count * 4))
        guard try c.agreement([sum], what: "the replica check")[0] else {
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

// Communicator: the MPI calls data-parallel training makes, over OpenMPI loaded at run time
// (CMPIShim dlopens libmpi.so.40; nothing links it). Every collective is non-blocking and
// waited for with a deadline, so a rank that died or stalled turns into an error that names
// the collective instead of a hang; communicators get MPI_ERRORS_RETURN, so MPI's own errors
// come back as codes. What to reduce and when is DataParallel's business.
import CMPIShim

public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// our duplicate of the world or host communicator (never the host's own)
    let comm: UnsafeMutableRawPointer?
    /// seconds a collective may take before the job is declared broken
    public var timeoutSeconds: Double
    /// sum of the time spent waiting in collectives, for the throughput report
    public private(set) var waitSeconds = 0.0

    /// Whether this process was started by mpirun (OpenMPI or PMIx environment).
    public static var launchedByMPI: Bool {
        getenv("OMPI_COMM_WORLD_SIZE") != nil || getenv("PMIX_RANK") != nil
    }

    /// The rank among the processes on this machine (mpirun's OMPI_COMM_WORLD_LOCAL_RANK), or nil.
    public static var localRank: Int? {
        getenv("OMPI_COMM_WORLD_LOCAL_RANK").flatMap { Int(String(cString: $0)) }
    }

    /// MPI_COMM_WORLD (initialising MPI unless a host already did). Throws when OpenMPI
    /// cannot be loaded or initialised.
    public static func world(timeoutSeconds: Double = 300) throws -> Communicator {
        try load()
        var ours: Int32 = 0
        try check(hmstmpi_init(&ours), "MPI_Init_thread")
        if ours != 0 { atexit { _ = hmstmpi_finalize() } }
        return try Communicator(dup: hmstmpi_comm_world(), timeoutSeconds: timeoutSeconds)
    }

    /// A host's communicator (an OpenMPI MPI_Comm, which is a pointer): the host initialised
    /// MPI; we work on a duplicate of it.
    public static func wrapping(hostCommunicator: UnsafeMutableRawPointer, timeoutSeconds: Double = 300) throws -> Communicator {
        try load()
        var ours: Int32 = 0
        try check(hmstmpi_init(&ours), "MPI_Init_thread")
        guard hmstmpi_comm_is_null(hostCommunicator) == 0 else {
            throw HMSTError.invalidArgument("mpi_comm is MPI_COMM_NULL; pass a communicator this process belongs to")
        }
        return try Communicator(dup: hostCommunicator, timeoutSeconds: timeoutSeconds)
    }

    static func load() throws {
        var err = [CChar](repeating: 0, count: 512)
        guard hmstmpi_load(&err, err.count) == 0 else {
            throw HMSTError.unsupported(String(cString: err))
        }
    }

    static func check(_ rc: Int32, _ what: String) throws {
        guard rc != 0 else { return }
        var buf = [CChar](repeating: 0, count: 300)
        hmstmpi_error_string(rc, &buf, buf.count)
        throw HMSTError(.internal, "\(what) failed: \(String(cString: buf))")
    }

    init(dup source: UnsafeMutableRawPointer?, timeoutSeconds: Double) throws {
        var c: UnsafeMutableRawPointer? = nil
        try Communicator.check(hmstmpi_comm_dup(source, &c), "MPI_Comm_dup")
        var r: Int32 = 0, s: Int32 = 0
        try Communicator.check(hmstmpi_comm_rank(c, &r), "MPI_Comm_rank")
        try Communicator.check(hmstmpi_comm_size(c, &s), "MPI_Comm_size")
        comm = c
        rank = Int(r)
        size = Int(s)
        self.timeoutSeconds = timeoutSeconds
    }

    deinit {
        var c = comm
        if c != nil, hmstmpi_loaded() != 0 { _ = hmstmpi_comm_free(&c) }
    }

    /// Waits for a request, polling MPI_Test (which is also what moves a non-blocking
    /// collective on: libnbc progresses only inside MPI calls). Yields the CPU between tests
    /// for the first second (the other rank may share the core), then sleeps 1 ms between
    /// tests, a stalled job's pace, until the timeout.
    func wait(_ request: inout UnsafeMutableRawPointer?, _ what: String) throws {
        let t0 = Clock.nowMs()
        defer { waitSeconds += (Clock.nowMs() - t0) / 1000 }
        var done: Int32 = 0
        var polls = 0
        while true {
            try Communicator.check(hmstmpi_test(&request, &done), what)
            if done != 0 { return }
            polls += 1
            if polls % 256 == 0 {
                let waited = (Clock.nowMs() - t0) / 1000
                if waited > timeoutSeconds {
                    // the request stays posted: MPI must not progress it again (Finalize at exit
                    // would write into buffers freed by then), and this job's collectives are over
                    hmstmpi_mark_abandoned()
                    throw HMSTError(.internal, "rank \(rank) of \(size): \(what) did not complete within \(Communicator.seconds(timeoutSeconds)) s: "
                                    + "another rank has died or stalled (the job stops; checkpoints already written are intact)")
                }
                if waited > 1 { usleep(1000); continue }
            }
            sched_yield()
        }
    }

    /// "5" for 5 s, "0.25" for a quarter of one (never Int(1e308), which traps).
    static func seconds(_ s: Double) -> String {
        s == s.rounded() && abs(s) < 1e15 ? "\(Int(s))" : "\(s)"
    }

    /// In-place sum over every rank of p[count] (f32), in buckets of at most bucketElements,
    /// all posted before the first wait so they progress together.
    public func allReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, bucketElements: Int = 1 << 22, what: String) throws {
        guard size > 1, count > 0 else { return }
        var requests = try postAllReduceSum(p, count: count, bucketElements: bucketElements, what: what)
        try waitAll(&requests, what)
    }

    /// Starts the in-place sum of p[count] in buckets; complete with waitAll (progress: testAll).
    public func postAllReduceSum(_ p: UnsafeMutablePointer<Float>, count: Int, bucketElements: Int, what: String) throws -> [UnsafeMutableRawPointer?] {
        guard size > 1, count > 0 else { return [] }
        let bucket = max(1, min(bucketElements, Int(Int32.max)))
        var requests: [UnsafeMutableRawPointer?] = []
        var off = 0
        while off < count {
            let n = min(bucket, count - off)
            var req: UnsafeMutableRawPointer? = nil
            try Communicator.check(hmstmpi_iallreduce_inplace(p + off, Int32(n), Int32(HMSTMPI_FLOAT), Int32(HMSTMPI_SUM), comm, &req), what)
            requests.append(req)
            off += n
        }
        return requests
    }

    /// One MPI_Test per request still pending (completed ones become nil): moves the
    /// collectives on between pieces of other work.
    public func testAll(_ requests: inout [UnsafeMutableRawPointer?], _ what: String) throws {
        var done: Int32 = 0
        for i in requests.indices where requests[i] != nil {
            try Communicator.check(hmstmpi_test(&requests[i], &done), what)
            if done != 0 { requests[i] = nil }
        }
    }

    public func waitAll(_ requests: inout [UnsafeMutableRawPointer?], _ what: String) throws {
        for i in requests.indices where requests[i] != nil { try wait(&requests[i], what) }
        requests.removeAll()
    }

    public enum Reduction { case sum, max, min }

    /// Buffers of collectives that were abandoned (a deadline passed with the request posted):
    /// kept for the life of the process, since a host that goes on using MPI could still
    /// progress the request into them.
    static let abandonedBuffers = Locked<[AnyObject]>([])

    /// Keeps `buffer` alive for good when body fails (its collective may still be posted).
    public func keepingAliveOnFailure<R>(_ buffer: AnyObject, _ body: () throws -> R) throws -> R {
        do { return try body() } catch {
            Communicator.abandonedBuffers.withLock { $0.append(buffer) }
            throw error
        }
    }

    /// Element-wise reduction of a few doubles over every rank.
    public func allReduce(_ values: [Double], _ op: Reduction = .sum, what: String) throws -> [Double] {
        guard size > 1, !values.isEmpty else { return values }
        let o = op == .sum ? HMSTMPI_SUM : op == .max ? HMSTMPI_MAX : HMSTMPI_MIN
        let v = AlignedBuffer<Double>(count: values.count, zeroed: false)
        for (i, x) in values.enumerated() { v.pointer[i] = x }
        try keepingAliveOnFailure(v) {
            var req: UnsafeMutableRawPointer? = nil
            try Communicator.check(hmstmpi_iallreduce_inplace(v.pointer, Int32(v.count), Int32(HMSTMPI_DOUBLE), Int32(o), comm, &req), what)
            try wait(&req, what)
        }
        return Array(v.buffer)
    }

    /// For each word, whether every rank holds the same value (checksums, options): the words
    /// travel as their exact 32-bit halves in doubles, and one MAX over the halves and their
    /// negations gives each half's maximum and minimum in a single collective.
    public func agreement(_ words: [UInt64], what: String) throws -> [Bool] {
        guard size > 1, !words.isEmpty else { return words.map { _ in true } }
        let halves = words.flatMap { [Double($0 >> 32), Double($0 & 0xffff_ffff)] }
        let r = try allReduce(halves + halves.map { -$0 }, .max, what: what)
        let n = halves.count
        return words.indices.map { i in r[2 * i] == -r[n + 2 * i] && r[2 * i + 1] == -r[n + 2 * i + 1] }
    }

    /// Root's p[count] to every rank.
    public func broadcast(_ p: UnsafeMutablePointer<Float>, count: Int, root: Int = 0, what: String) throws {
        guard size > 1, count > 0 else { return }
        let bucket = 1 << 24
        var off = 0
        while off < count {
            let n = min(bucket, count - off)
            var req: UnsafeMutableRawPointer? = nil
            try Communicator.check(hmstmpi_ibcast(p + off, Int32(n), Int32(HMSTMPI_FLOAT), Int32(root), comm, &req), what)
            try wait(&req, what)
            off += n
        }
    }

    public func barrier(what: String) throws {
        guard size > 1 else { return }
        var req: UnsafeMutableRawPointer? = nil
        try Communicator.check(hmstmpi_ibarrier(comm, &req), what)
        try wait(&req, what)
    }

    /// Ends the whole job (every rank): for a command-line run whose rank failed, so the
    /// others do not wait for it. Never returns when MPI honours it.
    public func abort(code: Int32) {
        _ = hmstmpi_abort(comm, code)
    }
}

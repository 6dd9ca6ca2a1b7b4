// Threads: the one thread-count knob. Setting it sizes every pool in the process that hmst
// drives: OpenBLAS, OpenMP (used by FAISS) and hmst's own worker pool (CHMST/chmst_pool.c).
import CBLAS
import CFAISSShim
import CHMST

public enum Threads {
    public static let maxThreads = 1024

    private static let state = Locked<Int?>(nil)

    /// CPUs in this process's affinity mask.
    public static var cpuCount: Int { Int(chmst_cpu_count()) }

    /// The default: HMST_NUM_THREADS if it holds a valid count, else every CPU we may run on.
    static func defaultCount() -> Int {
        if let raw = getenv("HMST_NUM_THREADS"), let n = Int(String(cString: raw)), n >= 1, n <= maxThreads {
            return n
        }
        return cpuCount
    }

    /// The current count; the first call applies the default to every pool.
    public static var count: Int {
        if let n = state.get() { return n }
        try? set(0)
        return state.get() ?? 1
    }

    /// n in 1...1024, or 0 for the default.
    public static func set(_ n: Int) throws {
        guard n >= 0, n <= maxThreads else {
            throw HMSTError.invalidArgument("thread count \(n) is outside 0 (all CPUs) ... \(maxThreads)")
        }
        let want = n == 0 ? defaultCount() : n
        try state.withLock { current in
            let previous = current ?? Int(chmst_pool_get_threads())
            openblas_set_num_threads(Int32(want))
            hmstfs_set_omp_threads(Int32(want))
            if chmst_pool_set_threads(Int32(want)) != 0 {
                // a failed set changes nothing: every pool goes back to the previous count
                let started = Int(chmst_pool_get_threads())
                _ = chmst_pool_set_threads(Int32(previous))
                openblas_set_num_threads(Int32(previous))
                hmstfs_set_omp_threads(Int32(previous))
                current = Int(chmst_pool_get_threads())
                throw HMSTError(.outOfMemory, "could only start \(started) of \(want) worker threads; the thread count stays \(current ?? previous)")
            }
            current = want
        }
        Log.info("threads set to \(want) (OpenBLAS, OpenMP and hmst workers)")
    }

    /// OpenBLAS's own idea of its thread count.
    public static var blasThreads: Int { Int(openblas_get_num_threads()) }
}

/// Runs body(i) for every i in 0..<n on hmst's pool, with at most `threads` threads (the
/// caller included). Tasks must be independent; body must not throw or touch shared state
/// without synchronisation. Nested calls run inline.
public func parallelFor(_ n: Int, threads: Int = Threads.count, _ body: (Int) -> Void) {
    if n <= 0 { return }
    if n == 1 || threads <= 1 {
        for i in 0..<n { body(i) }
        return
    }
    withoutActuallyEscaping(body) { escapable in
        var fn = escapable
        withUnsafeMutablePointer(to: &fn) { ctx in
            chmst_pool_run(Int64(n), Int32(min(threads, Threads.maxThreads)), { raw, task in
                guard let raw else { return }
                raw.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(task))
            }, ctx)
        }
    }
}

/// parallelFor with a C task function: fn(ctx, i) for every i in 0..<n. For hot loops of short
/// tasks over plain data (the decode GEMVs): no Swift closure is called, so no reference count
/// is touched per task.
func parallelFor(_ n: Int, threads: Int, task fn: chmst_task_fn, context ctx: UnsafeMutableRawPointer) {
    if n <= 0 { return }
    if n == 1 || threads <= 1 {
        for i in 0..<n { fn(ctx, Int64(i)) }
        return
    }
    chmst_pool_run(Int64(n), Int32(min(threads, Threads.maxThreads)), fn, ctx)
}

/// Runs body over near-equal row ranges of 0..<n on the pool (at least `grain` rows a range).
func parallelRows(_ n: Int, grain: Int = 32, _ body: (Range<Int>) -> Void) {
    let ranges = splitRange(n, parts: min(Threads.count, max(1, n / grain)))
    parallelFor(ranges.count) { body(ranges[$0]) }
}

/// dst[0..<count] = src[0..<count] in parallel pieces of at least 64K floats (a step's activation
/// copies, which on one thread left the other waiting).
func parallelCopy(_ dst: UnsafeMutablePointer<Float>, from src: UnsafePointer<Float>, count: Int) {
    parallelRows(count, grain: 1 << 16) { r in (dst + r.lowerBound).update(from: src + r.lowerBound, count: r.count) }
}

/// dst[0..<count] = 0 in parallel pieces of at least 64K floats.
func parallelZero(_ dst: UnsafeMutablePointer<Float>, count: Int) {
    parallelRows(count, grain: 1 << 16) { r in (dst + r.lowerBound).update(repeating: 0, count: r.count) }
}

/// Splits 0..<count into at most `parts` contiguous ranges of near-equal size.
public func splitRange(_ count: Int, parts: Int) -> [Range<Int>] {
    let p = max(1, min(parts, count))
    guard count > 0 else { return [] }
    var out: [Range<Int>] = []
    out.reserveCapacity(p)
    let base = count / p, extra = count % p
    var start = 0
    for i in 0..<p {
        let len = base + (i < extra ? 1 : 0)
        out.append(start..<(start + len))
        start += len
    }
    return out
}

extension Threads {
    /// (steps inside withSingleThreadedBLAS, OpenBLAS's count before the first of them)
    private static let singleBLAS = Locked<(depth: Int, saved: Int)>((0, 1))

    /// Runs body with OpenBLAS at one thread (hmst's pool parallelises around it), then
    /// restores the count once the last concurrent caller leaves. The count is process-wide:
    /// inference elsewhere meanwhile runs with single-threaded BLAS (slower, still correct).
    static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        singleBLAS.withLock { s in
            if s.depth == 0 {
                s.saved = blasThreads
                if s.saved != 1 { openblas_set_num_threads(1) }
            }
            s.depth += 1
        }
        defer {
            singleBLAS.withLock { s in
                s.depth -= 1
                if s.depth == 0 && s.saved != 1 { openblas_set_num_threads(Int32(s.saved)) }
            }
        }
        return try body()
    }
}

// Locked<T>: a value behind a pthread mutex, for the few globals the library keeps
// (thread count, caches). Small on purpose: no Foundation, no Dispatch.

public final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init(_ value: T) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        if MemoryLayout<T>.size == 0 {
            // a Locked<()> (a plain mutex): no state to modify, so no exclusive access to
            // `value`, whose zero-size address ThreadSanitizer otherwise confuses with the
            // object header that other threads read before taking the lock
            var none = value
            return try body(&none)
        }
        return try body(&value)
    }

    public func get() -> T { withLock { $0 } }
    public func set(_ v: T) { withLock { $0 = v } }
}

/// A mutex that refuses instead of deadlocking when the thread holding it asks again (an error-
/// checking pthread mutex): a host callback that calls back into the object it was called from
/// gets an error, not a hung process.
public final class ReentryCheckedLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let what: String

    /// what: the object and call, for the error ("this engine is already answering a query").
    public init(_ what: String) {
        self.what = what
        mutex = .allocate(capacity: 1)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_ERRORCHECK))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Waits for the lock; INVALID_ARGUMENT when this thread already holds it.
    public func lock() throws {
        let rc = pthread_mutex_lock(mutex)
        if rc == EDEADLK { throw HMSTError.invalidArgument("\(what) on this thread (called from one of its own callbacks?)") }
        guard rc == 0 else { throw HMSTError(.internal, "pthread_mutex_lock failed: \(rc)") }
    }

    public func unlock() { pthread_mutex_unlock(mutex) }
}

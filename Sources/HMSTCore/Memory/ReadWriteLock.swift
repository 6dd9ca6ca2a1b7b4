// ReadWriteLock: a pthread rwlock for many concurrent readers and one writer at a time, as
// SemanticMemory uses it (searches read, add/remove/swap write). It prefers writers, so a
// steady stream of searches cannot starve an add. Not recursive: a thread holding it must not
// take it again (a reader that waits on itself behind a queued writer deadlocks).

public final class ReadWriteLock: @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    public init() {
        lock = .allocate(capacity: 1)
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        // glibc prefers readers by default; this kind lets a waiting writer block new readers
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    /// Runs body with shared access: other readers may run at the same time, writers wait.
    public func withReadLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Runs body with exclusive access.
    public func withWriteLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

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

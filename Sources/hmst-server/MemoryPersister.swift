// MemoryPersister: durable memory writes by group commit. A route changes the store in memory,
// then awaits commit(): the change is acknowledged only after a save that began after it has
// finished (MemoryStore.save: temp file, fsync, rename, per tier). Saves run one at a time on
// their own thread; changes that arrive during a save are saved together by the next one, so
// the delay before a write is durable is at most two saves, and no acknowledged write is ever
// lost to a crash (kill -9 included).
import Dispatch
import Foundation
import HMSTCore

final class MemoryPersister: @unchecked Sendable {
    let store: MemoryStore
    private let lock = NSLock()
    private let queue = DispatchQueue(label: "hmst.memory.save")
    private var requested: UInt64 = 0
    private var saved: UInt64 = 0
    private var saving = false
    private var waiters: [(ticket: UInt64, cont: CheckedContinuation<Void, Error>)] = []
    private var saves = 0

    /// Saves finished since start.
    var saveCount: Int { lock.lock(); defer { lock.unlock() }; return saves }

    init(store: MemoryStore) { self.store = store }

    /// Returns once every change made before the call is on disk; throws if that save failed.
    func commit() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            lock.lock()
            requested += 1
            waiters.append((requested, c))
            let start = !saving
            saving = true
            lock.unlock()
            if start { queue.async { self.saveLoop() } }
        }
    }

    private func saveLoop() {
        while true {
            lock.lock()
            if saved >= requested {
                saving = false
                lock.unlock()
                return
            }
            let target = requested
            lock.unlock()
            var failure: Error?
            do { try store.save() } catch { failure = error }
            lock.lock()
            saved = target
            saves += 1
            let done = waiters.filter { $0.ticket <= target }
            waiters.removeAll { $0.ticket <= target }
            lock.unlock()
            for w in done {
                if let failure { w.cont.resume(throwing: failure) } else { w.cont.resume() }
            }
        }
    }

    /// A final save (shutdown), after any save in progress.
    func flush() throws {
        try queue.sync { try store.save() }
    }
}

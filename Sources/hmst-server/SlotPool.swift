// SlotPool: a fixed number of slots, each one Session (KV cache + workspace) over the one
// loaded Decoder, whose weights are mapped once and shared read-only; and a bounded queue of
// requests waiting for a slot. A request that finds every slot busy and the queue full is
// refused at once (503 + Retry-After) rather than queued without bound.
// Model work is blocking CPU work, so it runs on the slot's own serial DispatchQueue, never on
// the event loops or the Swift concurrency pool that serve the other connections.
import Dispatch
import Foundation
import HMSTCore

final class Slot: @unchecked Sendable {
    let index: Int
    let session: Session
    let queue: DispatchQueue

    init(index: Int, session: Session) {
        self.index = index
        self.session = session
        queue = DispatchQueue(label: "hmst.slot.\(index)")
    }
}

final class SlotPool: @unchecked Sendable {
    let slots: [Slot]
    let queueLimit: Int
    private let lock = NSLock()
    private var free: [Slot]
    private var waiters: [CheckedContinuation<Slot, Error>] = []
    /// Called for every request turned away (503): every route's rejections count in the
    /// metrics this way, whether it acquires a slot itself or through run.
    var onBusy: (@Sendable () -> Void)?

    init(slots: [Slot], queueLimit: Int) {
        self.slots = slots
        self.queueLimit = queueLimit
        free = slots
    }

    var busy: Int { lock.lock(); defer { lock.unlock() }; return slots.count - free.count }
    var queueDepth: Int { lock.lock(); defer { lock.unlock() }; return waiters.count }

    /// A free slot, or a place in the queue; APIError.busy when the queue is full. With a
    /// prompt, the free slot whose context holds the longest prefix of it when that prefix is at
    /// least half the prompt (its KV cache is reused; llama.cpp's slot similarity), else the one
    /// used least recently: a short shared opening ("User:", a chat template's header) does not
    /// take another conversation's slot, whose cache it would overwrite.
    func acquire(prompt: [Int32]? = nil) async throws -> Slot {
        // Waiters are not cancelled: Hummingbird does not cancel a handler whose client left,
        // and a queued request costs nothing but its place; it gets its slot in arrival order.
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Slot, Error>) in takeOrWait(c, prompt: prompt) }
    }

    /// The index in `free` of the slot to give: free is ordered from least to most recently
    /// released, and a free slot's session is not running (its history is stable under the lock).
    /// When the least recently used slot is given and another free slot holds a longer prefix
    /// of the prompt (a system prompt two conversations share), that prefix is copied into the
    /// given slot first (Session.copyPrefix: its KV rows, no recomputation), so both
    /// conversations keep their caches.
    private func pick(for prompt: [Int32]?) -> Int {
        guard let prompt, free.count > 1 else { return 0 }
        var best = 0, bestShared = 0, lruShared = 0
        for (i, slot) in free.enumerated() {
            let n = slot.session.sharedPrefixLength(with: prompt.dropLast())
            if i == 0 { lruShared = n }
            if n > bestShared { best = i; bestShared = n }
        }
        if 2 * bestShared >= prompt.count { return best }
        if bestShared >= lruShared + SlotPool.minCopiedPrefix {
            free[0].session.copyPrefix(from: free[best].session, count: bestShared)
        }
        return 0
    }

    /// The shortest prefix worth copying from another slot (shorter ones are recomputed).
    static let minCopiedPrefix = 16

    private func takeOrWait(_ c: CheckedContinuation<Slot, Error>, prompt: [Int32]?) {
        lock.lock()
        if !free.isEmpty {
            let s = free.remove(at: pick(for: prompt))
            lock.unlock()
            c.resume(returning: s)
        } else if waiters.count >= queueLimit {
            lock.unlock()
            onBusy?()
            c.resume(throwing: APIError.busy(retryAfterSeconds: 1))
        } else {
            waiters.append(c)
            lock.unlock()
        }
    }

    /// Hands the slot to the oldest waiter, or back to the free list.
    func release(_ slot: Slot) {
        lock.lock()
        if !waiters.isEmpty {
            let w = waiters.removeFirst()
            lock.unlock()
            w.resume(returning: slot)
            return
        }
        free.append(slot)
        lock.unlock()
    }

    /// Runs body on an acquired slot's queue, releasing the slot when body returns.
    func run<T: Sendable>(_ body: @escaping @Sendable (Slot) throws -> T) async throws -> T {
        let slot = try await acquire()
        return try await SlotPool.onQueue(slot) { s in
            defer { self.release(s) }
            return try body(s)
        }
    }

    /// Runs body on the slot's queue (the caller owns the slot).
    static func onQueue<T: Sendable>(_ slot: Slot, _ body: @escaping @Sendable (Slot) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            slot.queue.async {
                do { c.resume(returning: try body(slot)) } catch { c.resume(throwing: error) }
            }
        }
    }
}

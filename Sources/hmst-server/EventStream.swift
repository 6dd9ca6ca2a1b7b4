// EventStream: server-sent events from a slot's producer (a generation running synchronously on
// the slot's queue) to the response's writer. At most `capacity` events wait unwritten: a client
// that stops reading holds its producer, and so its slot, back instead of the server buffering
// the whole answer in memory (an unbounded buffer kept 16 prompts x n 8 x 120 tokens with 20
// log-probabilities each for as long as the socket stayed open). A reader stalled for
// `stallSeconds` has its generation cancelled, which frees the slot.
import Foundation

final class EventStream: @unchecked Sendable {
    let events: AsyncStream<String>
    private let sink: AsyncStream<String>.Continuation
    private let cancel: CancelFlag
    private let stallSeconds: Double
    private let cond = NSCondition()
    private var room: Int
    private var closed = false

    init(cancel: CancelFlag, capacity: Int = 256, stallSeconds: Double = 30) {
        (events, sink) = AsyncStream<String>.makeStream(bufferingPolicy: .unbounded)
        self.cancel = cancel
        self.stallSeconds = stallSeconds
        room = capacity
        sink.onTermination = { [weak self] reason in
            if case .cancelled = reason { cancel.cancel() }
            self?.close()
        }
    }

    /// Producer: queues one event, waiting for the writer while `capacity` are unwritten. False
    /// (and the generation cancelled) when the reader is gone or stalled for stallSeconds.
    @discardableResult
    func send(_ event: String) -> Bool {
        cond.lock()
        let deadline = Date(timeIntervalSinceNow: stallSeconds)
        while room == 0 && !closed && cond.wait(until: deadline) {}
        if room == 0 { closed = true }   // stalled: later events are dropped at once, not waited for
        let ok = !closed
        if ok { room -= 1 }
        cond.unlock()
        if ok { sink.yield(event) } else { cancel.cancel() }
        return ok
    }

    /// Producer: no more events.
    func finish() { sink.finish() }

    /// Writer: one event is written, room for another.
    func written() {
        cond.lock()
        room += 1
        cond.signal()
        cond.unlock()
    }

    private func close() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }
}

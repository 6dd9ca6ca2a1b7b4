// ServerContext: the per-request context: Hummingbird's core storage, the connection's channel
// (to notice a client that went away) and a small box the handlers fill with token counts for
// the request log and the metrics.
import Hummingbird
import NIOCore
import Foundation

/// What a handler reports about its request, read by the log line after the response.
final class RequestStats: @unchecked Sendable {
    private let lock = NSLock()
    private var _promptTokens = 0
    private var _completionTokens = 0

    func add(prompt: Int = 0, completion: Int = 0) {
        lock.lock(); defer { lock.unlock() }
        _promptTokens += prompt
        _completionTokens += completion
    }

    var tokens: (prompt: Int, completion: Int) {
        lock.lock(); defer { lock.unlock() }
        return (_promptTokens, _completionTokens)
    }
}

struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel
    let stats = RequestStats()

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Bodies are collected by the handlers with the server's own limit (ServerLimits.maxBodyBytes).
    var maxUploadSize: Int { ServerLimits.shared.maxBodyBytes }
}

/// What a generation checks between tokens: set when the client is gone (its connection closed,
/// or a streamed write failed).
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var set = false
    private let channel: (any Channel)?

    init(channel: (any Channel)? = nil) { self.channel = channel }

    func cancel() { lock.lock(); set = true; lock.unlock() }

    var isCancelled: Bool {
        lock.lock()
        let s = set
        lock.unlock()
        return s || channel.map { !$0.isActive } ?? false
    }
}

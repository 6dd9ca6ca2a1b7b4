// Metrics: the counters behind GET /metrics, in Prometheus text format (version 0.0.4):
// requests by route and status, prompt and generated tokens, queue depth and busy slots, time
// to first token (histogram), decode time (for tokens/s), cancelled generations and 503s.
// One lock; every update is a few additions.
import Foundation

final class Metrics: @unchecked Sendable {
    static let ttftBucketsMs: [Double] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

    private let lock = NSLock()
    private var requests: [String: Int] = [:]       // "route|method|status" -> count
    private var promptTokens = 0
    private var cachedTokens = 0
    private var completionTokens = 0
    private var ttftCounts = [Int](repeating: 0, count: Metrics.ttftBucketsMs.count)
    private var ttftSumMs = 0.0
    private var ttftN = 0
    private var decodeTokens = 0                    // tokens after the first of each generation
    private var decodeSeconds = 0.0
    private var lastTokensPerSecond = 0.0
    private var cancelled = 0
    private var rejected = 0

    func request(route: String, method: String, status: Int) {
        lock.lock(); defer { lock.unlock() }
        requests["\(route)|\(method)|\(status)", default: 0] += 1
    }

    /// p: prompt tokens evaluated; cached: prompt tokens a slot's cache already held
    func generation(promptTokens p: Int, cachedTokens cached: Int, completionTokens c: Int, ttftMs: Double, decodeMs: Double,
                    cancelled wasCancelled: Bool) {
        lock.lock(); defer { lock.unlock() }
        promptTokens += p
        cachedTokens += cached
        completionTokens += c
        if c > 0 {
            ttftSumMs += ttftMs
            ttftN += 1
            for (i, b) in Metrics.ttftBucketsMs.enumerated() where ttftMs <= b { ttftCounts[i] += 1 }
        }
        if c > 1 && decodeMs > 0 {
            decodeTokens += c - 1
            decodeSeconds += decodeMs / 1000
            lastTokensPerSecond = Double(c - 1) / (decodeMs / 1000)
        }
        if wasCancelled { cancelled += 1 }
    }

    func embedded(promptTokens p: Int) {
        lock.lock(); defer { lock.unlock() }
        promptTokens += p
    }

    func rejectedBusy() {
        lock.lock(); defer { lock.unlock() }
        rejected += 1
    }

    var cancelledCount: Int { lock.lock(); defer { lock.unlock() }; return cancelled }

    /// The exposition text; slots and queue are read by the caller from the pool.
    func render(slots: Int, busySlots: Int, queueDepth: Int, queueLimit: Int) -> String {
        lock.lock(); defer { lock.unlock() }
        var o = ""
        func metric(_ name: String, _ type: String, _ help: String) {
            o += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        metric("hmst_requests_total", "counter", "HTTP requests answered, by route, method and status.")
        for key in requests.keys.sorted() {
            let p = key.split(separator: "|", omittingEmptySubsequences: false)
            o += "hmst_requests_total{route=\"\(p[0])\",method=\"\(p[1])\",status=\"\(p[2])\"} \(requests[key] ?? 0)\n"
        }
        metric("hmst_prompt_tokens_total", "counter", "Prompt tokens evaluated (completions, chat, embeddings).")
        o += "hmst_prompt_tokens_total \(promptTokens)\n"
        metric("hmst_prompt_tokens_cached_total", "counter", "Prompt tokens taken from a slot's KV cache instead of evaluated (cache_prompt).")
        o += "hmst_prompt_tokens_cached_total \(cachedTokens)\n"
        metric("hmst_completion_tokens_total", "counter", "Tokens generated.")
        o += "hmst_completion_tokens_total \(completionTokens)\n"
        metric("hmst_slots", "gauge", "Generation slots (contexts) sharing the model's weights.")
        o += "hmst_slots \(slots)\n"
        metric("hmst_slots_busy", "gauge", "Slots running a request now.")
        o += "hmst_slots_busy \(busySlots)\n"
        metric("hmst_queue_depth", "gauge", "Requests waiting for a slot.")
        o += "hmst_queue_depth \(queueDepth)\n"
        metric("hmst_queue_limit", "gauge", "Most requests that may wait; beyond it requests get 503.")
        o += "hmst_queue_limit \(queueLimit)\n"
        metric("hmst_rejected_busy_total", "counter", "Requests answered 503 because every slot was busy and the queue full.")
        o += "hmst_rejected_busy_total \(rejected)\n"
        metric("hmst_cancelled_total", "counter", "Generations stopped because the client disconnected.")
        o += "hmst_cancelled_total \(cancelled)\n"
        metric("hmst_time_to_first_token_seconds", "histogram", "From the start of a generation to its first sampled token.")
        for (i, b) in Metrics.ttftBucketsMs.enumerated() {
            o += "hmst_time_to_first_token_seconds_bucket{le=\"\(b / 1000)\"} \(ttftCounts[i])\n"
        }
        o += "hmst_time_to_first_token_seconds_bucket{le=\"+Inf\"} \(ttftN)\n"
        o += "hmst_time_to_first_token_seconds_sum \(ttftSumMs / 1000)\n"
        o += "hmst_time_to_first_token_seconds_count \(ttftN)\n"
        metric("hmst_decode_tokens_total", "counter", "Tokens generated after the first of each generation (the decode phase).")
        o += "hmst_decode_tokens_total \(decodeTokens)\n"
        metric("hmst_decode_seconds_total", "counter", "Time spent in the decode phase; tokens/s = rate(decode_tokens) / rate(decode_seconds).")
        o += "hmst_decode_seconds_total \(decodeSeconds)\n"
        metric("hmst_decode_tokens_per_second", "gauge", "Decode speed of the most recent generation with at least two tokens.")
        o += "hmst_decode_tokens_per_second \(lastTokensPerSecond)\n"
        return o
    }
}

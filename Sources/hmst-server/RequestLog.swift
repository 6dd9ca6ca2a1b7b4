// One log line per request through swift-log, written when the response body has been sent
// (so a streamed response logs its final token count):
//   POST /v1/chat/completions 200 prompt_tokens=12 completion_tokens=40 ms=812.3
// and the request counter of /metrics, labelled by the route pattern (not the raw path).
import Foundation
import HMSTCore
import Hummingbird
import Logging

struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let logger: Logger
    let metrics: Metrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let t0 = Clock.nowMs()
        var response = try await next(request, context)
        let method = request.method.rawValue, path = request.uri.path
        let route = context.endpointPath ?? "unmatched"
        let status = response.status.code
        let logger = self.logger, metrics = self.metrics, stats = context.stats
        let finish: @Sendable () -> Void = {
            let t = stats.tokens
            logger.info("\(method) \(path) \(status) prompt_tokens=\(t.prompt) completion_tokens=\(t.completion) ms=\(String(format: "%.1f", Clock.nowMs() - t0))")
            metrics.request(route: route, method: method, status: status)
        }
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            do {
                try await body.write(writer)
            } catch {
                finish()
                throw error
            }
            finish()
        }
        return response
    }
}

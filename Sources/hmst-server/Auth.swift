// API keys: with one or more keys configured (--api-key, --api-key-file), every route but
// GET /health needs `Authorization: Bearer <key>`; anything else is 401 in the OpenAI shape.
// Keys are compared in constant time (every byte of every key, whatever matches).
import Hummingbird

struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: [[UInt8]]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if keys.isEmpty || (request.method == .get && request.uri.path == "/health") {
            return try await next(request, context)
        }
        guard let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") else { throw APIError.unauthorized }
        let given = Array(auth.utf8.dropFirst(7))
        var ok = false
        for k in keys { ok = APIKeyMiddleware.constantTimeEqual(given, k) || ok }
        guard ok else { throw APIError.unauthorized }
        return try await next(request, context)
    }

    /// Equal bytes, in time that depends on the lengths only, not on where they differ.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt64(a.count ^ b.count)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= UInt64(x ^ y)
        }
        return diff == 0
    }
}

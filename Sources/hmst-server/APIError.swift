// APIError: every failure the server answers, in OpenAI's error shape
//   {"error": {"message": "...", "type": "...", "param": "..." | null, "code": "..." | null}}
// and the middleware that turns any error thrown below it (ours, Hummingbird's HTTPError for
// unknown routes or oversized bodies, HMSTError from the library) into that shape.
import HMSTCore
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?
    var code: String?
    /// extra response headers (Retry-After on 503)
    var headers: HTTPFields = [:]

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    static func notFound(_ message: String, param: String? = nil, code: String? = "not_found") -> APIError {
        APIError(status: .notFound, message: message, type: "invalid_request_error", param: param, code: code)
    }

    static func busy(retryAfterSeconds: Int) -> APIError {
        var e = APIError(status: .serviceUnavailable,
                         message: "the server is at capacity (every slot busy and the queue full); retry after \(retryAfterSeconds) s",
                         type: "server_error", param: nil, code: "server_busy")
        e.headers[.retryAfter] = String(retryAfterSeconds)
        return e
    }

    static let unauthorized = APIError(status: .unauthorized,
                                       message: "missing or invalid API key: send the header 'Authorization: Bearer <key>'",
                                       type: "authentication_error", param: nil, code: "invalid_api_key")

    /// Library errors: bad input is the client's (400), a missing entry is 404, the rest is ours.
    static func from(_ e: HMSTError) -> APIError {
        switch e.status {
        case .invalidArgument, .badFormat, .unsupported:
            return .invalid(e.message)
        case .notFound:
            return .notFound(e.message)
        default:
            return APIError(status: .internalServerError, message: e.message, type: "server_error", param: nil, code: "internal_error")
        }
    }

    var json: JSONValue {
        .object([("error", .object([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map { .string($0) } ?? .null), ("code", code.map { .string($0) } ?? .null),
        ]))])
    }

    func response() -> Response {
        var h = headers
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(string: json.serialized + "\n")))
    }
}

/// Converts every error below it into an OpenAI-shaped error response.
struct ErrorShapeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return e.response()
        } catch let e as HMSTError {
            return APIError.from(e).response()
        } catch let e as HTTPError {
            let status = e.status
            let message: String
            switch status {
            case .notFound: message = "no route \(request.method) \(request.uri.path)"
            case .contentTooLarge: message = "the request body is larger than the server's limit"
            case .methodNotAllowed: message = "method \(request.method) is not allowed on \(request.uri.path)"
            default: message = e.body ?? status.reasonPhrase
            }
            let type = status.code >= 500 ? "server_error" : "invalid_request_error"
            return APIError(status: status, message: message, type: type, param: nil,
                            code: status == .notFound ? "unknown_route" : status == .contentTooLarge ? "body_too_large" : nil).response()
        } catch let e as HTTPParserError {
            // a malformed request (a chunk size that is not hex, say) met while reading the body: the client's fault
            return APIError(status: .badRequest, message: "malformed HTTP request: \(e)", type: "invalid_request_error",
                            param: nil, code: "malformed_request").response()
        } catch is NIOTooManyBytesError {
            return APIError(status: .contentTooLarge, message: "the request body is larger than the server's limit of \(ServerLimits.shared.maxBodyBytes) bytes",
                            type: "invalid_request_error", param: nil, code: "body_too_large").response()
        } catch is CancellationError {
            return APIError(status: .serviceUnavailable, message: "the request was cancelled (server shutting down)",
                            type: "server_error", param: nil, code: "cancelled").response()
        } catch {
            return APIError(status: .internalServerError, message: "internal error: \(error)", type: "server_error",
                            param: nil, code: "internal_error").response()
        }
    }
}

// HMSTError: the one error type the core throws. Its status maps 1:1 onto enum hmst_status in
// include/hmst.h; the C API turns it into a return code plus hmst_last_error().

public enum Status: Int32, Sendable {
    case ok = 0
    case invalidArgument = -1
    case bufferTooSmall = -2
    case io = -3
    case badFormat = -4
    case outOfMemory = -5
    case unsupported = -6
    case cancelled = -7
    case notFound = -8
    case `internal` = -99

    /// The same names as hmst_status_string().
    public var name: String {
        switch self {
        case .ok: return "OK"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .bufferTooSmall: return "BUFFER_TOO_SMALL"
        case .io: return "IO"
        case .badFormat: return "BAD_FORMAT"
        case .outOfMemory: return "OUT_OF_MEMORY"
        case .unsupported: return "UNSUPPORTED"
        case .cancelled: return "CANCELLED"
        case .notFound: return "NOT_FOUND"
        case .internal: return "INTERNAL"
        }
    }
}

public struct HMSTError: Error, CustomStringConvertible, Sendable {
    public let status: Status
    public let message: String

    public init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public static func invalidArgument(_ m: String) -> HMSTError { HMSTError(.invalidArgument, m) }
    public static func io(_ m: String) -> HMSTError { HMSTError(.io, m) }
    public static func badFormat(_ m: String) -> HMSTError { HMSTError(.badFormat, m) }
    public static func unsupported(_ m: String) -> HMSTError { HMSTError(.unsupported, m) }
    public static func notFound(_ m: String) -> HMSTError { HMSTError(.notFound, m) }

    public var description: String { "\(status.name): \(message)" }
}

// Log: the core's only way to say something. Messages go to the sink in CHMST (the host's
// hmst_log_set callback, or stderr); the core never prints to stdout.
import CHMST

public enum LogLevel: Int32, Sendable {
    case debug = 0, info = 1, warn = 2, error = 3, none = 4
}

public enum Log {
    public static func emit(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard level.rawValue >= chmst_log_get_level(), level != .none else { return }
        chmst_log_emit(level.rawValue, message())
    }
    public static func debug(_ m: @autoclosure () -> String) { emit(.debug, m()) }
    public static func info(_ m: @autoclosure () -> String) { emit(.info, m()) }
    public static func warn(_ m: @autoclosure () -> String) { emit(.warn, m()) }
    public static func error(_ m: @autoclosure () -> String) { emit(.error, m()) }

    /// Threshold as an enum hmst_log_level value; rejects values outside debug...none.
    public static func setLevel(_ raw: Int32) throws {
        guard LogLevel(rawValue: raw) != nil else {
            throw HMSTError.invalidArgument("log level \(raw) is not one of HMST_LOG_DEBUG (0) .. HMST_LOG_NONE (4)")
        }
        chmst_log_set_level(raw)
    }
}

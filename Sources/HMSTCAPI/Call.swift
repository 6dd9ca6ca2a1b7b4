// The boundary discipline every export follows: each @_cdecl body is one hmstCall { ... },
// which clears the thread's last error, runs the body, and maps any thrown error to a status
// plus hmst_last_error(). Argument checks come before any pointer is dereferenced.
import CHMST
import HMSTCore

@inline(__always)
func hmstCall(_ body: () throws -> Void) -> Int32 {
    chmst_clear_error()
    do {
        try body()
        return Status.ok.rawValue
    } catch let e as HMSTError {
        chmst_set_error(e.message)
        return e.status.rawValue
    } catch {
        chmst_set_error("unexpected error: \(error)")
        return Status.internal.rawValue
    }
}

/// Throws INVALID_ARGUMENT naming the parameter when a required pointer is NULL.
@inline(__always)
func required<T>(_ p: T?, _ name: String) throws -> T {
    guard let p else { throw HMSTError.invalidArgument("\(name) must not be NULL") }
    return p
}

/// C's size_t reaches Swift as Int, so a value of 2^63 or more arrives negative. As a buffer's
/// capacity such a value only says the buffer is larger than anything written: Int.max.
@inline(__always)
func capacity(_ cap: Int) -> Int { cap < 0 ? Int.max : cap }

/// The capacity of an output buffer under the buffer rule: a NULL buffer must come with cap 0
/// (the size query); INVALID_ARGUMENT naming it otherwise.
func outputCapacity<T>(_ buffer: UnsafeMutablePointer<T>?, _ cap: Int, _ name: String) throws -> Int {
    let cap = capacity(cap)
    if buffer == nil && cap != 0 { throw HMSTError.invalidArgument("\(name) is NULL but cap is \(cap)") }
    return cap
}

/// A size_t count or length checked against `range`: INVALID_ARGUMENT naming it, with the value
/// as the caller passed it (2^63 or more included), when it falls outside.
func sizeArgument(_ n: Int, _ name: String, in range: ClosedRange<Int>) throws -> Int {
    guard n >= 0, range.contains(n) else {
        throw HMSTError.invalidArgument("\(name) \(UInt(bitPattern: n)) must be in \(range.lowerBound) ... \(range.upperBound)")
    }
    return n
}

/// A C string argument as a Swift String (lossy for invalid UTF-8, which the callers reject
/// where it matters).
func cString(_ p: UnsafePointer<CChar>?, _ name: String) throws -> String {
    String(cString: try required(p, name))
}

/// A path argument: INVALID_ARGUMENT when NULL or empty (an empty path would otherwise surface
/// as an I/O error about a file with no name).
func pathString(_ p: UnsafePointer<CChar>?, _ name: String) throws -> String {
    let s = try cString(p, name)
    guard !s.isEmpty else { throw HMSTError.invalidArgument("\(name) is an empty path") }
    return s
}

/// A params count field (epochs, batch_size ...): INVALID_ARGUMENT unless > 0 (or 0 where allowed).
func positive(_ v: Int32, _ name: String, allowZero: Bool = false) throws -> Int {
    guard v > 0 || (allowZero && v == 0) else { throw HMSTError.invalidArgument("params->\(name) = \(v) must be \(allowZero ? ">= 0" : "> 0")") }
    return Int(v)
}

/// Writes `s` NUL-terminated into buf[cap] following the header's buffer rule: *n_out gets the
/// length without NUL; if cap <= length, BUFFER_TOO_SMALL and nothing is written to buf.
func writeString(_ s: String, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) throws {
    try writeBytes(Array(s.utf8), buf, cap, nOut)
}

/// The same rule for raw bytes (which may contain NULs; *n_out tells the length).
func writeBytes(_ bytes: [UInt8], _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) throws {
    let nOut = try required(nOut, "n_out"), cap = try outputCapacity(buf, cap, "buf")
    nOut.pointee = bytes.count
    guard cap > bytes.count, let buf else {
        throw HMSTError(.bufferTooSmall, "buffer of \(cap) bytes is too small: \(bytes.count + 1) needed")
    }
    bytes.withUnsafeBytes { src in
        if let base = src.baseAddress { UnsafeMutableRawPointer(buf).copyMemory(from: base, byteCount: bytes.count) }
    }
    buf[bytes.count] = 0
}

/// Copies a Swift string into a fixed C char array field (a tuple in Swift), truncating.
func copyString<T>(_ s: String, into field: inout T) {
    withUnsafeMutableBytes(of: &field) { raw in
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        chmst_copy_string(base.assumingMemoryBound(to: CChar.self), raw.count, s)
    }
}

// Platform: the C library (libm, pthreads, mmap, file calls), imported once for the module and
// re-exported to its importers (the C API, the CLI, the server, the benchmarks), instead of a
// conditional import in every file that calls it.
#if canImport(Glibc)
@_exported import Glibc
#elseif canImport(Darwin)
@_exported import Darwin
#endif

/// Standard output and error for the command-line programs. Foundation's `FileHandle.write`
/// traps when the write fails (a full disk behind a redirect, a closed pipe); this writes through
/// stdio and drops what cannot be written, so a report that cannot be shown never becomes a crash.
public enum StandardStream {
    case output, error

    public func write<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let stream = self == .output ? stdout : stderr
        let written = bytes.withContiguousStorageIfAvailable { b in fwrite(b.baseAddress, 1, b.count, stream) }
        if written == nil { _ = Array(bytes).withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, stream) } }
        fflush(stream)
    }

    public func write(_ text: String) { write(Array(text.utf8)) }

    /// Everything on standard input up to its end.
    public static func readAllInput() -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, stdin) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }
}

/// 64-byte aligned memory from posix_memalign, released with free(). Swift's `allocate` traps
/// when malloc fails; this reports OUT_OF_MEMORY naming the size and what it was for, so a model
/// or cache too large for the machine is an error the host sees, not the end of its process.
func alignedAllocate(bytes: Int, for what: @autoclosure () -> String) throws -> UnsafeMutableRawPointer {
    var p: UnsafeMutableRawPointer?
    guard bytes >= 0, posix_memalign(&p, 64, max(64, bytes)) == 0, let p else {
        throw HMSTError(.outOfMemory, "cannot allocate \(bytes) bytes for \(what())")
    }
    return p
}

/// Bytes of physical memory on this machine (0 when unknown).
public var physicalMemoryBytes: Int {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
    return pages > 0 && size > 0 ? pages * size : 0
}

/// OUT_OF_MEMORY, before anything is allocated, when `bytes` (a Double: an absurd request must
/// not overflow on the way) exceed the machine's physical memory; no check when that is unknown.
/// need: what needs them ("a random model of N parameters"); hint: what to change, if anything.
func requireMemory(bytes: Double, for need: String, hint: String = "") throws {
    let physical = physicalMemoryBytes
    guard physical > 0, bytes > Double(physical) else { return }
    throw HMSTError(.outOfMemory, "\(need) needs about \(Int(min(bytes, 9e18)) >> 20) MiB; this machine has \(physical >> 20) MiB of memory\(hint)")
}

/// C strftime (a function of this name elsewhere in the module would hide the global).
func formatTimeC(_ buf: UnsafeMutablePointer<CChar>, _ cap: Int, _ format: String, _ t: UnsafePointer<tm>) -> Int {
    strftime(buf, cap, format, t)
}

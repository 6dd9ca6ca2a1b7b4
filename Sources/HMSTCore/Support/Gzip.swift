// Gzip: decompression of whole gzip files through zlib (CZlib), for data tables Debian ships
// compressed (miscfiles' /usr/share/misc/*.gz). Reading only; nothing here writes gzip.
import CZlib

public enum Gzip {
    /// Whether `bytes` open with the gzip magic (1f 8b).
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Inflates a gzip stream (several concatenated members are one stream, as gzip(1) reads
    /// them). `name` only labels errors. Throws BAD_FORMAT for a corrupt or truncated stream,
    /// and for one that inflates past `limit` bytes (a 13 MB file can hold 3 GB of zeros).
    public static func decompress(_ bytes: [UInt8], name: String = "gzip data", limit: Int = 1 << 30) throws -> [UInt8] {
        guard isGzip(bytes) else { throw HMSTError.badFormat("\(name): not gzip data (no 1f 8b magic)") }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 4)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var stream = z_stream()
        guard czlib_inflate_init_gzip(&stream) == Z_OK else {
            throw HMSTError(.internal, "\(name): zlib inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        try bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                let (rc, produced) = chunk.withUnsafeMutableBufferPointer { buf -> (Int32, Int) in
                    stream.next_out = buf.baseAddress
                    stream.avail_out = uInt(buf.count)
                    let rc = inflate(&stream, Z_NO_FLUSH)
                    return (rc, buf.count - Int(stream.avail_out))
                }
                out.append(contentsOf: chunk[0..<produced])
                guard out.count <= limit else {
                    throw HMSTError.badFormat("\(name): inflates to more than \(limit >> 20) MiB; not the table it should be")
                }
                switch rc {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another member may follow (gzip -c a b > ab.gz); trailing zero padding is allowed.
                    let rest = Int(stream.avail_in)
                    let at = input.count - rest
                    if rest >= 2 && input[at] == 0x1F && input[at + 1] == 0x8B {
                        guard inflateReset(&stream) == Z_OK else { throw HMSTError(.internal, "\(name): zlib inflateReset failed") }
                        continue
                    }
                    if rest > 0 && input[at...].contains(where: { $0 != 0 }) {
                        throw HMSTError.badFormat("\(name): \(rest) bytes of garbage after the gzip stream")
                    }
                    return
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw HMSTError.badFormat("\(name): truncated gzip stream")
                default:
                    let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                    throw HMSTError.badFormat("\(name): corrupt gzip stream: \(reason)")
                }
            }
        }
        return out
    }

    /// A file's bytes, inflated when it is gzip (by its magic, not its name).
    public static func readMaybeCompressed(_ path: String, limit: Int = 1 << 30) throws -> [UInt8] {
        let raw = try FileIO.readAll(path)
        guard raw.count <= limit else { throw HMSTError.badFormat("\(path): \(raw.count >> 20) MiB; more than the \(limit >> 20) MiB expected") }
        return isGzip(raw) ? try decompress(raw, name: path, limit: limit) : raw
    }
}

// FileChecksum: a fast 64-bit checksum of file contents, so a memory directory's manifest can
// prove that the files it names are the ones it was written with (torn, truncated or swapped
// files are caught before FAISS parses them). Not cryptographic: it guards against accidents.
// Eight bytes per step, an xxHash64-style round: rotate, multiply; the length is mixed in.

enum FileChecksum {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F

    static func of(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0x27D4_EB2F_1656_67C5 ^ UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            h ^= rotl(w &* p2, 31) &* p1
            h = rotl(h, 27) &* p1 &+ 0x85EB_CA77_C2B2_AE63
            i += 8
        }
        while i < n {
            h ^= UInt64(bytes[i]) &* p1
            h = rotl(h, 11) &* p2
            i += 1
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        return h
    }

    static func of(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { of($0) } }

    /// Size and checksum of a whole file (mapped read-only).
    static func of(path: String) throws -> (bytes: Int, checksum: UInt64) {
        let map = try MappedFile(path: path)
        return (map.count, of(map.bytes))
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
}

// ByteLevel: GPT-2's reversible map between bytes and printable Unicode characters, in which
// byte-level BPE vocabularies are written (tokenizer.json). Printable Latin-1 bytes map to
// themselves; the other 68 bytes map to U+0100 onwards in byte order.

enum ByteLevel {
    /// byte -> the character it is written as
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// character -> byte (nil for characters outside the alphabet)
    static let scalarToByte: [UInt32: UInt8] = {
        var m: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { m[s.value] = UInt8(b) }
        return m
    }()

    /// The vocabulary form of raw bytes.
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }

    /// Raw bytes of a vocabulary piece, or nil if it holds a character outside the alphabet.
    static func decode(_ piece: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(piece.unicodeScalars.count)
        for u in piece.unicodeScalars {
            guard let b = scalarToByte[u.value] else { return nil }
            out.append(b)
        }
        return out
    }
}

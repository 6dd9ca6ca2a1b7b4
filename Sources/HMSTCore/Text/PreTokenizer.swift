// PreTokenizer: GPT-2's split pattern, by hand, over UTF-8 bytes:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Alternatives are tried in order at each position, each greedy, as the regex engine of HF
// tokenizers does. Bytes that are not valid UTF-8 are classed as "other" (like punctuation),
// one byte each, so any byte string splits and round-trips.

enum CharClass: UInt8 {
    case letter, number, space, other
}

struct PreTokenizer {
    /// Class of every ASCII byte, and of each non-ASCII scalar through Unicode properties.
    static let asciiClass: [CharClass] = (0..<128).map { b in
        let u = Unicode.Scalar(UInt8(b))
        if u.properties.isWhitespace { return .space }
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    static func classify(_ u: Unicode.Scalar) -> CharClass {
        if u.value < 128 { return asciiClass[Int(u.value)] }
        if u.properties.isWhitespace { return .space }
        switch u.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Decodes the character at i: (class, byte length, is U+0020). Invalid UTF-8: one byte, .other.
    @inline(__always)
    static func char(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> (CharClass, Int, Bool) {
        let c0 = b[i]
        if c0 < 0x80 { return (asciiClass[Int(c0)], 1, c0 == 0x20) }
        var len = 0
        var v: UInt32 = 0
        if c0 & 0xE0 == 0xC0 { len = 2; v = UInt32(c0 & 0x1F) }
        else if c0 & 0xF0 == 0xE0 { len = 3; v = UInt32(c0 & 0x0F) }
        else if c0 & 0xF8 == 0xF0 { len = 4; v = UInt32(c0 & 0x07) }
        else { return (.other, 1, false) }
        guard i + len <= b.count else { return (.other, 1, false) }
        for k in 1..<len {
            let c = b[i + k]
            guard c & 0xC0 == 0x80 else { return (.other, 1, false) }
            v = v << 6 | UInt32(c & 0x3F)
        }
        // overlong forms, surrogates and values past U+10FFFF are invalid
        let minimum: UInt32 = len == 2 ? 0x80 : (len == 3 ? 0x800 : 0x10000)
        guard v >= minimum, let u = Unicode.Scalar(v) else { return (.other, 1, false) }
        return (classify(u), len, false)
    }

    /// Calls emit(start, end) for each pre-token of b[range], in order, covering it exactly.
    static func split(_ b: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ emit: (Int, Int) -> Void) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            // 's 't 're 've 'm 'll 'd
            if b[i] == 0x27, i + 1 < end {
                let c1 = b[i + 1]
                if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { emit(i, i + 2); i += 2; continue }
                if i + 2 < end {
                    let c2 = b[i + 2]
                    if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) {
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            let (cls0, len0, isSpace0) = char(b, i)
            // ' ?' then a run of one class (letters, numbers, or other)
            var start = i
            var cls = cls0
            var j = i
            if isSpace0 && i + 1 < end {
                let (c1, _, _) = char(b, i + 1)
                if c1 != .space { cls = c1; j = i + 1 }
            }
            if cls != .space {
                if j == i { j += len0 } else { j += char(b, j).1 }
                while j < end {
                    let (c, l, _) = char(b, j)
                    guard c == cls else { break }
                    j += l
                }
                emit(start, j)
                i = j
                continue
            }
            // whitespace run: \s+(?!\S) leaves the last space for the next token when a
            // non-space follows; a single space before a non-space falls to \s+
            start = i
            j = i
            var last = i
            while j < end {
                let (c, l, _) = char(b, j)
                guard c == .space else { break }
                last = j
                j += l
            }
            if j < end && last > start {
                emit(start, last)
                i = last
            } else {
                emit(start, j)
                i = j
            }
        }
    }
}

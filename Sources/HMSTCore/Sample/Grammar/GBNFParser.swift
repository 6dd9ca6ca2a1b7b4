// GBNFParser: llama.cpp's GBNF grammar notation into a Grammar.
//
//   root  ::= "{" ws pair ("," ws pair)* "}"     # a rule: alternatives separated by |
//   pair  ::= [a-z]+ ":" ws [0-9]{1,3}           # "literal", [class], [^negated], . (any)
//   ws    ::= [ \t\n]*                           # ( group ), name, and * + ? {m} {m,} {m,n}
//
// Escapes in literals and classes: \n \r \t \\ \" \' \[ \] \- \^ \/ \xHH \uHHHH \UHHHHHHHH.
// Whitespace (newlines too) separates items; a rule ends where the next `name ::=` starts.
// `#` starts a comment. The grammar starts at `root`. Every error names its line and column.
// Repetitions become rules (x* is r ::= x r | empty), as in llama.cpp; counts are at most 1000.

extension Grammar {
    /// Reads GBNF text; errors are INVALID_ARGUMENT naming the line and column.
    public static func parse(gbnf text: String) throws -> Grammar {
        var p = GBNFParser(Array(text.utf8))
        try p.parseRules()
        return try Grammar(source: text, names: p.names, rules: p.rules, classes: p.classes, root: p.rootIndex())
    }
}

struct GBNFParser {
    static let maxSource = 1 << 20
    static let maxRepeat = 1000
    static let maxRules = 100_000
    static let maxNesting = 64
    /// the most elements repetitions may add (x{1000} of a long literal, nested): the compiled
    /// grammar stays within memory
    static let maxExpanded = 4_000_000

    let src: [UInt8]
    var i = 0
    var names: [String] = []
    var index: [String: Int] = [:]
    var defined: [Bool] = []
    var firstUse: [Int] = []         // where each rule was first named (for "not defined")
    var rules: [[[Grammar.Item]]] = []
    var classes: [Grammar.CharClass] = []
    var classIndex: [Grammar.CharClass: Int] = [:]
    var nesting = 0
    var expanded = 0

    init(_ src: [UInt8]) { self.src = src }

    func error(_ what: String, at offset: Int? = nil) -> HMSTError {
        let at = min(offset ?? i, src.count)
        var line = 1, col = 1
        for b in src[..<at] { if b == 0x0A { line += 1; col = 1 } else if b & 0xC0 != 0x80 { col += 1 } }
        return HMSTError.invalidArgument("grammar: line \(line), column \(col): \(what)")
    }

    var eof: Bool { i >= src.count }
    var peek: UInt8 { i < src.count ? src[i] : 0 }

    mutating func skipSpace() {
        while i < src.count {
            let b = src[i]
            if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1 }
            else if b == UInt8(ascii: "#") { while i < src.count && src[i] != 0x0A { i += 1 } }
            else { break }
        }
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
    }

    mutating func name() -> String? {
        let start = i
        while i < src.count && GBNFParser.isNameByte(src[i]) { i += 1 }
        return i > start ? String(decoding: src[start..<i], as: UTF8.self) : nil
    }

    /// Whether a name followed by ::= starts at i (the next rule), without moving.
    func atRuleStart() -> Bool {
        var j = i
        while j < src.count && GBNFParser.isNameByte(src[j]) { j += 1 }
        guard j > i else { return false }
        while j < src.count && (src[j] == 0x20 || src[j] == 0x09 || src[j] == 0x0A || src[j] == 0x0D) { j += 1 }
        return j + 3 <= src.count && src[j] == 0x3A && src[j + 1] == 0x3A && src[j + 2] == 0x3D
    }

    mutating func rule(named n: String, at offset: Int) throws -> Int {
        if let r = index[n] { return r }
        guard names.count < GBNFParser.maxRules else { throw error("more than \(GBNFParser.maxRules) rules") }
        names.append(n)
        index[n] = names.count - 1
        defined.append(false)
        firstUse.append(offset)
        rules.append([])
        return names.count - 1
    }

    /// A rule for a group or repetition, named "parent(k)": parentheses are not name
    /// characters, so it never takes a name the grammar uses.
    mutating func newRule(_ parent: String, _ alts: [[Grammar.Item]]) throws -> Int {
        var k = names.count
        while index["\(parent)(\(k))"] != nil { k += 1 }
        let r = try rule(named: "\(parent)(\(k))", at: i)
        defined[r] = true
        rules[r] = alts
        return r
    }

    /// The class with its ranges sorted and merged (overlapping or adjacent ones joined), so
    /// that "one range covers lo...hi" is exact for Grammar.mayMatch.
    mutating func charClass(_ c0: Grammar.CharClass) -> Grammar.Item {
        var c = c0
        var merged: [ClosedRange<UInt32>] = []
        for r in c0.ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, r.lowerBound <= last.upperBound &+ 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        c.ranges = merged
        if let k = classIndex[c] { return .chars(k) }
        classes.append(c)
        classIndex[c] = classes.count - 1
        return .chars(classes.count - 1)
    }

    mutating func parseRules() throws {
        guard src.count <= GBNFParser.maxSource else { throw error("longer than \(GBNFParser.maxSource) bytes", at: 0) }
        skipSpace()
        if eof { throw error("empty: a grammar needs at least a root rule") }
        while !eof {
            let at = i
            guard let n = name() else { throw error("expected a rule name") }
            skipSpace()
            guard i + 3 <= src.count, src[i] == 0x3A, src[i + 1] == 0x3A, src[i + 2] == 0x3D else {
                throw error("expected '::=' after rule name '\(n)'")
            }
            i += 3
            let r = try rule(named: n, at: at)
            if defined[r] { throw error("rule '\(n)' is defined twice", at: at) }
            defined[r] = true
            rules[r] = try alternatives(of: n, nested: false)
            skipSpace()
        }
        for (r, d) in defined.enumerated() where !d {
            throw error("rule '\(names[r])' is used but not defined", at: firstUse[r])
        }
    }

    func rootIndex() throws -> Int {
        guard let r = index["root"] else { throw HMSTError.invalidArgument("grammar: no rule named 'root' (the grammar starts there)") }
        return r
    }

    mutating func alternatives(of parent: String, nested: Bool) throws -> [[Grammar.Item]] {
        var alts = [try sequence(of: parent, nested: nested)]
        while peek == UInt8(ascii: "|") {
            i += 1
            alts.append(try sequence(of: parent, nested: nested))
        }
        return alts
    }

    mutating func sequence(of parent: String, nested: Bool) throws -> [Grammar.Item] {
        var seq: [Grammar.Item] = []
        var lastStart: Int? = nil     // where the last symbol's items start (a repetition applies to them)
        while true {
            skipSpace()
            if eof { break }
            let b = peek
            if b == UInt8(ascii: "|") || b == UInt8(ascii: ")") { break }
            let at = i
            if GBNFParser.isNameByte(b) {
                if atRuleStart() {
                    if nested { throw error("missing ')' before the next rule") }
                    break
                }
                let n = name()!
                lastStart = seq.count
                seq.append(.ref(try rule(named: n, at: at)))
            } else if b == UInt8(ascii: "\"") {
                i += 1
                lastStart = seq.count
                var any = false
                while true {
                    guard !eof else { throw error("unterminated string literal", at: at) }
                    if peek == UInt8(ascii: "\"") { i += 1; break }
                    if peek == 0x0A { throw error("newline inside a string literal (write \\n)") }
                    let cp = try codePoint()
                    seq.append(charClass(Grammar.CharClass(negated: false, ranges: [cp...cp])))
                    any = true
                }
                if !any { lastStart = nil }   // "" matches the empty text: nothing to repeat
            } else if b == UInt8(ascii: "[") {
                lastStart = seq.count
                seq.append(charClass(try bracket()))
            } else if b == UInt8(ascii: ".") {
                i += 1
                lastStart = seq.count
                seq.append(charClass(Grammar.CharClass(negated: true, ranges: [])))
            } else if b == UInt8(ascii: "(") {
                i += 1
                nesting += 1
                defer { nesting -= 1 }
                guard nesting <= GBNFParser.maxNesting else { throw error("groups nested deeper than \(GBNFParser.maxNesting)") }
                let alts = try alternatives(of: parent, nested: true)
                guard peek == UInt8(ascii: ")") else { throw error("expected ')' to close the group opened", at: at) }
                i += 1
                lastStart = seq.count
                seq.append(.ref(try newRule(parent, alts)))
            } else if b == UInt8(ascii: "*") || b == UInt8(ascii: "+") || b == UInt8(ascii: "?") || b == UInt8(ascii: "{") {
                guard let s = lastStart else { throw error("'\(Character(Unicode.Scalar(b)))' must follow something to repeat") }
                let (lo, hi) = try repetition()
                let x = Array(seq[s...])
                seq.removeSubrange(s...)
                seq += try repeated(x, lo, hi, parent: parent)
                lastStart = nil
            } else {
                throw error("unexpected '\(String(decoding: [b], as: UTF8.self))'")
            }
        }
        return seq
    }

    /// Reads * + ? {m} {m,} {m,n}: the least and most (nil: no bound) counts.
    mutating func repetition() throws -> (Int, Int?) {
        let at = i
        let b = src[i]
        i += 1
        switch b {
        case UInt8(ascii: "*"): return (0, nil)
        case UInt8(ascii: "+"): return (1, nil)
        case UInt8(ascii: "?"): return (0, 1)
        default: break
        }
        func number() throws -> Int? {
            skipSpace()
            let start = i
            var v = 0
            while i < src.count, src[i] >= 0x30, src[i] <= 0x39 {
                v = v * 10 + Int(src[i] - 0x30)
                if v > GBNFParser.maxRepeat { throw error("repetition count above \(GBNFParser.maxRepeat)") }
                i += 1
            }
            return i > start ? v : nil
        }
        guard let lo = try number() else { throw error("expected a count after '{'", at: at) }
        skipSpace()
        var hi: Int? = lo
        if peek == UInt8(ascii: ",") {
            i += 1
            hi = try number()
            skipSpace()
        }
        guard peek == UInt8(ascii: "}") else { throw error("expected '}' to close the repetition", at: at) }
        i += 1
        if let h = hi, h < lo { throw error("repetition {\(lo),\(h)}: the most is below the least", at: at) }
        return (lo, hi)
    }

    /// x repeated lo...hi times (hi nil: any number more).
    mutating func repeated(_ x: [Grammar.Item], _ lo: Int, _ hi: Int?, parent: String) throws -> [Grammar.Item] {
        expanded += x.count * (max(lo, hi ?? 0) + 1)
        guard expanded <= GBNFParser.maxExpanded else {
            throw error("repetitions expand to more than \(GBNFParser.maxExpanded) elements")
        }
        var out: [Grammar.Item] = []
        for _ in 0..<lo { out += x }
        if let h = hi {
            // (x (x (...)?)?)? for the h - lo optional ones, innermost first
            var tail: Int? = nil
            for _ in 0..<(h - lo) {
                tail = try newRule(parent, [x + (tail.map { [.ref($0)] } ?? []), []])
            }
            if let t = tail { out.append(.ref(t)) }
        } else {
            let k = try newRule(parent, [])
            rules[k] = [x + [.ref(k)], []]
            out.append(.ref(k))
        }
        return out
    }

    /// [...] or [^...] at i.
    mutating func bracket() throws -> Grammar.CharClass {
        let at = i
        i += 1
        var negated = false
        if peek == UInt8(ascii: "^") { negated = true; i += 1 }
        var ranges: [ClosedRange<UInt32>] = []
        while true {
            guard !eof else { throw error("unterminated character class", at: at) }
            if peek == UInt8(ascii: "]") { i += 1; break }
            let lo = try codePoint()
            var hi = lo
            if peek == UInt8(ascii: "-"), i + 1 < src.count, src[i + 1] != UInt8(ascii: "]") {
                i += 1
                hi = try codePoint()
                guard hi >= lo else { throw error("range end below its start in character class", at: at) }
            }
            ranges.append(lo...hi)
        }
        if ranges.isEmpty { throw error("empty character class", at: at) }
        return Grammar.CharClass(negated: negated, ranges: ranges)
    }

    /// One character of a literal or class: an escape or a UTF-8 encoded code point.
    mutating func codePoint() throws -> UInt32 {
        let at = i
        let b = src[i]
        if b == UInt8(ascii: "\\") {
            guard i + 1 < src.count else { throw error("'\\' at the end") }
            let e = src[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): return 0x0A
            case UInt8(ascii: "r"): return 0x0D
            case UInt8(ascii: "t"): return 0x09
            case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "["), UInt8(ascii: "]"),
                 UInt8(ascii: "-"), UInt8(ascii: "^"), UInt8(ascii: "/"): return UInt32(e)
            case UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "U"):
                let n = e == UInt8(ascii: "x") ? 2 : e == UInt8(ascii: "u") ? 4 : 8
                var v: UInt32 = 0
                for _ in 0..<n {
                    guard i < src.count, let d = GBNFParser.hexValue(src[i]) else { throw error("expected \(n) hex digits", at: at) }
                    v = v << 4 | d
                    i += 1
                }
                guard v <= 0x10FFFF, !(0xD800...0xDFFF).contains(v) else { throw error("\\\(Character(Unicode.Scalar(e))) escape is not a Unicode scalar", at: at) }
                return v
            default:
                throw error("unknown escape '\\\(String(decoding: [e], as: UTF8.self))'", at: at)
            }
        }
        // a UTF-8 sequence (the text came from a String or was checked as UTF-8)
        let n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4
        guard b < 0x80 || b >= 0xC2, i + n <= src.count else { throw error("not UTF-8") }
        var v = n == 1 ? UInt32(b) : UInt32(b) & (0xFF >> (n + 1))
        if n > 1 {
            for k in 1..<n {
                let c = src[i + k]
                guard c & 0xC0 == 0x80 else { throw error("not UTF-8") }
                v = v << 6 | UInt32(c & 0x3F)
            }
        }
        i += n
        return v
    }

    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: return UInt32(c - 0x30)
        case 0x41...0x46: return UInt32(c - 0x41 + 10)
        case 0x61...0x66: return UInt32(c - 0x61 + 10)
        default: return nil
        }
    }
}

// PatternGrammar: a JSON Schema `pattern` (an ECMA-262 regular expression) as a GBNF expression
// for the text between a JSON string's quotes, for JSONSchemaGrammar.
//
// The subset: literals, `.`, classes `[...]` / `[^...]` with ranges and the escapes \d \w \s
// (and \D \W \S outside classes), \n \t \r \f \v \0 \xHH \uHHHH (a surrogate pair of them is one
// character) \u{H...} and escaped punctuation, groups
// `(...)` and `(?:...)`, alternation, the quantifiers * + ? {n} {n,} {n,m} (lazy forms read as
// greedy: a grammar has no preference), `^` at the start and `$` at the end. A pattern without
// `^` may match after any text and without `$` before any (JSON Schema's search semantics), so
// the grammar allows any characters there. Lookarounds, backreferences, \b, named groups and
// anchors elsewhere are errors naming them, never dropped.
//
// The string is written as JSON: a character the pattern allows that JSON must escape (" and \
// and control characters) is written escaped (\", \\, \n, \u001b); `.`, negated classes and
// \D \W \S never produce control characters (a subset of what the pattern allows, never more).
// The expression is empty when the string must be empty (^$).

enum PatternGrammar {
    static let maxLength = 10_000
    static let maxDepth = 32
    static let maxRepeat = 1000

    /// The GBNF expression; `char` is the rule of one JSON string character (any, escaped or not).
    static func expression(_ pattern: String, char: String) throws -> String {
        let scalars = Array(pattern.unicodeScalars)
        guard scalars.count <= maxLength else {
            throw HMSTError.invalidArgument("pattern is longer than \(maxLength) characters")
        }
        var body = scalars[...]
        let anchoredStart = body.first == "^"
        if anchoredStart { body = body.dropFirst() }
        var anchoredEnd = false
        if body.last == "$" {
            // an escaped \$ is a literal: count the backslashes before it
            var k = 0
            var j = body.index(before: body.endIndex)
            while j > body.startIndex && body[body.index(before: j)] == "\\" { k += 1; j = body.index(before: j) }
            if k % 2 == 0 { anchoredEnd = true; body = body.dropLast() }
        }
        var p = Parser(s: Array(body), pattern: pattern)
        let (expr, topLevelAlternatives, _) = try p.alternation(depth: 0)
        guard p.i == p.s.count else { throw p.error("unmatched ')'") }
        if topLevelAlternatives && (anchoredStart || anchoredEnd) {
            throw HMSTError.invalidArgument("pattern '\(pattern)': an anchor beside a top-level '|' applies to one alternative only; group them, as ^(a|b)$")
        }
        var parts: [String] = []
        if !anchoredStart { parts.append("\(char)*") }
        if !expr.isEmpty { parts.append(expr) }
        if !anchoredEnd { parts.append("\(char)*") }
        return parts.isEmpty ? "" : "(" + parts.joined(separator: " ") + ")"
    }

    /// JSON text for one character (escaped where JSON requires it; DEL too, which the schema
    /// grammar never writes raw).
    static func json(_ c: Unicode.Scalar) -> String {
        if c.value == 0x7F { return "\\u007f" }
        return String(JSONWriter.quote(String(Character(c)), pythonStyle: true).dropFirst().dropLast())
    }

    /// A GBNF literal of the JSON text of c.
    static func literal(_ c: Unicode.Scalar) -> String { JSONSchemaGrammar.literal(json(c)) }

    /// A scalar inside a GBNF class.
    static func classChar(_ v: UInt32) -> String {
        if (0x30...0x39).contains(v) || (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) {
            return String(Character(Unicode.Scalar(v)!))
        }
        let h = String(v, radix: 16)
        if v < 0x100 { return "\\x" + String(repeating: "0", count: 2 - h.count) + h }
        if v < 0x10000 { return "\\u" + String(repeating: "0", count: 4 - h.count) + h }
        return "\\U" + String(repeating: "0", count: 8 - h.count) + h
    }

    /// JSON's characters that must be escaped: quote, backslash, controls (and DEL, which the
    /// schema grammar never writes raw).
    static let unsafe: [ClosedRange<UInt32>] = [0...0x1F, 0x22...0x22, 0x5C...0x5C, 0x7F...0x7F]

    static let digit: [ClosedRange<UInt32>] = [0x30...0x39]
    static let word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    static let space: [ClosedRange<UInt32>] = [0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A,
                                               0x2028...0x2029, 0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF]

    /// Ranges as one GBNF expression: safe characters as a class, unsafe ones escaped.
    static func positive(_ ranges: [ClosedRange<UInt32>]) -> String? {
        var safe: [ClosedRange<UInt32>] = []
        var escaped: [String] = []
        for r in ranges {
            var lo = r.lowerBound
            while lo <= r.upperBound {
                if let u = unsafe.first(where: { $0.contains(lo) }) {
                    let hi = min(u.upperBound, r.upperBound)
                    for v in lo...hi where v != 0x7F {
                        if let c = Unicode.Scalar(v) { escaped.append(literal(c)) }
                    }
                    lo = hi + 1
                } else {
                    let next = unsafe.map(\.lowerBound).filter { $0 > lo }.min() ?? UInt32.max
                    let hi = min(r.upperBound, next == UInt32.max ? r.upperBound : next - 1)
                    // surrogates are no scalars
                    if hi >= 0xD800 && lo <= 0xDFFF {
                        if lo < 0xD800 { safe.append(lo...0xD7FF) }
                        if hi > 0xDFFF { safe.append(0xE000...hi) }
                    } else {
                        safe.append(lo...hi)
                    }
                    if hi == UInt32.max { break }
                    lo = hi + 1
                }
            }
        }
        var alts: [String] = []
        if !safe.isEmpty { alts.append("[" + safe.map { $0.count == 1 ? classChar($0.lowerBound) : classChar($0.lowerBound) + "-" + classChar($0.upperBound) }.joined() + "]") }
        alts += escaped
        if alts.isEmpty { return nil }
        return alts.count == 1 ? alts[0] : "(" + alts.joined(separator: " | ") + ")"
    }

    /// Everything but these ranges and control characters: raw, or escaped for " and \.
    static func negative(_ ranges: [ClosedRange<UInt32>]) -> String {
        let raw = "[^" + (ranges + unsafe).map { $0.count == 1 ? classChar($0.lowerBound) : classChar($0.lowerBound) + "-" + classChar($0.upperBound) }.joined() + "]"
        let escaped = [Unicode.Scalar("\""), Unicode.Scalar("\\")].filter { c in !ranges.contains { $0.contains(c.value) } }.map(literal)
        return escaped.isEmpty ? raw : "(" + ([raw] + escaped).joined(separator: " | ") + ")"
    }

    struct Parser {
        let s: [Unicode.Scalar]
        let pattern: String
        var i = 0
        /// whether the last atom (a group) can match the empty string
        var atomNullable = false

        func error(_ what: String) -> HMSTError {
            HMSTError.invalidArgument("pattern '\(pattern)': \(what) (at character \(i + 1))")
        }

        var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

        /// a|b|...; whether there was more than one alternative, and whether it can match nothing
        mutating func alternation(depth: Int) throws -> (String, Bool, Bool) {
            guard depth <= PatternGrammar.maxDepth else { throw error("groups nested deeper than \(PatternGrammar.maxDepth)") }
            var alts = [try sequence(depth: depth)]
            while peek == "|" {
                i += 1
                alts.append(try sequence(depth: depth))
            }
            let nullable = alts.contains { $0.0 == nil || $0.1 }
            if alts.count == 1 { return (alts[0].0 ?? "", false, nullable) }
            // an empty alternative makes the rest optional
            let some = alts.compactMap(\.0)
            let joined = some.count == 1 ? some[0] : "(" + some.joined(separator: " | ") + ")"
            if some.isEmpty { return ("", true, true) }
            return (some.count < alts.count ? "(" + joined + ")?" : joined, true, nullable)
        }

        /// Atoms with their quantifiers until | or ); nil when empty; whether it can match nothing.
        mutating func sequence(depth: Int) throws -> (String?, Bool) {
            var items: [String] = []
            var nullable = true
            while let c = peek, c != "|", c != ")" {
                let atom = try self.atom(depth: depth)
                let (q, n) = try quantified(atom)
                if !q.isEmpty { items.append(q) }
                nullable = nullable && (n || q.isEmpty)
            }
            return (items.isEmpty ? nil : items.joined(separator: " "), nullable)
        }

        mutating func atom(depth: Int) throws -> String {
            let c = s[i]
            i += 1
            atomNullable = false
            switch c {
            case "(":
                if peek == "?" {
                    if i + 1 < s.count && s[i + 1] == ":" { i += 2 } else {
                        throw error("lookarounds and named groups ('(?') are not supported")
                    }
                }
                let (inner, _, nullable) = try alternation(depth: depth + 1)
                guard peek == ")" else { throw error("unclosed '('") }
                i += 1
                atomNullable = nullable
                return inner.isEmpty ? "" : "(" + inner + ")"
            case "[": return try characterClass()
            case ".": return PatternGrammar.negative([0x2028...0x2029])
            case "\\": return try escape()
            case "^", "$": throw error("'\(c)' is supported only at the pattern's start and end")
            case "*", "+", "?": throw error("'\(c)' has nothing to repeat")
            case "{":
                if let _ = try? quantifierBounds(from: i - 1) { throw error("'{' has nothing to repeat") }
                return PatternGrammar.literal(c)
            default: return PatternGrammar.literal(c)
            }
        }

        /// {n}, {n,}, {n,m} starting at `at` (the brace): the bounds and the index after.
        func quantifierBounds(from at: Int) throws -> (Int, Int?, Int) {
            var j = at + 1
            func number() -> Int? {
                var v = 0, any = false
                while j < s.count, (0x30...0x39).contains(s[j].value) {
                    let d = Int(s[j].value - 0x30)
                    v = min(v * 10 + d, 1_000_000)
                    any = true
                    j += 1
                }
                return any ? v : nil
            }
            guard let lo = number() else { throw error("not a quantifier") }
            var hi: Int? = lo
            if j < s.count && s[j] == "," {
                j += 1
                hi = number()
            }
            guard j < s.count && s[j] == "}" else { throw error("not a quantifier") }
            return (lo, hi, j + 1)
        }

        /// The atom with its quantifier, and whether the result can match nothing.
        mutating func quantified(_ atom: String) throws -> (String, Bool) {
            let nullable = atomNullable
            guard let c = peek else { return (atom, nullable) }
            var out = atom
            var zero = false
            func repeatable() throws {
                // a grammar cannot repeat what may be empty (the rule would be left-recursive)
                if nullable && !atom.isEmpty {
                    throw error("a repetition of a group that can match nothing, as (a*)*, is not supported: repeat its non-empty part")
                }
            }
            switch c {
            case "*": i += 1; try repeatable(); out = atom.isEmpty ? "" : atom + "*"; zero = true
            case "+": i += 1; try repeatable(); out = atom.isEmpty ? "" : atom + "+"
            case "?": i += 1; out = atom.isEmpty ? "" : atom + "?"; zero = true
            case "{":
                guard let (lo, hi, next) = try? quantifierBounds(from: i) else { return (atom, nullable) }
                i = next
                zero = lo == 0
                if hi.map({ $0 > 1 }) ?? true { try repeatable() }
                if let h = hi, h < lo { throw error("{\(lo),\(h)}: the maximum is below the minimum") }
                guard lo <= PatternGrammar.maxRepeat, (hi ?? 0) <= PatternGrammar.maxRepeat else {
                    throw error("a repetition above \(PatternGrammar.maxRepeat)")
                }
                if atom.isEmpty { out = "" }
                else if let h = hi { out = h == 0 ? "" : atom + "{\(lo),\(h)}" }
                else { out = atom + "{\(lo),}" }
            default: return (atom, nullable)
            }
            if peek == "?" { i += 1 }   // lazy: the same language
            if let n = peek, n == "*" || n == "+" || n == "?" || (n == "{" && (try? quantifierBounds(from: i)) != nil) {
                throw error("a quantifier after a quantifier")
            }
            return (out, nullable || zero)
        }

        /// An escape outside a class.
        mutating func escape() throws -> String {
            guard let e = peek else { throw error("a trailing '\\'") }
            i += 1
            switch e {
            case "d": return PatternGrammar.positive(PatternGrammar.digit)!
            case "w": return PatternGrammar.positive(PatternGrammar.word)!
            case "s": return PatternGrammar.positive(PatternGrammar.space)!
            case "D": return PatternGrammar.negative(PatternGrammar.digit)
            case "W": return PatternGrammar.negative(PatternGrammar.word)
            case "S": return PatternGrammar.negative(PatternGrammar.space)
            case "b", "B": throw error("word boundaries ('\\\(e)') are not supported")
            case "k": throw error("named backreferences are not supported")
            case "p", "P": throw error("Unicode property escapes are not supported")
            default:
                if e.properties.numericType != nil && e != "0" { throw error("backreferences are not supported") }
                return PatternGrammar.literal(try scalar(after: e))
            }
        }

        /// The character of a single-character escape (e is the character after the backslash).
        mutating func scalar(after e: Unicode.Scalar) throws -> Unicode.Scalar {
            switch e {
            case "n": return "\n"
            case "t": return "\t"
            case "r": return "\r"
            case "f": return "\u{C}"
            case "v": return "\u{B}"
            case "0":
                if let d = peek, (0x30...0x39).contains(d.value) { throw error("octal escapes are not supported") }
                return "\u{0}"
            case "u" where peek == "{":
                // \u{1F600}: one to six hex digits (the u flag's form)
                guard let close = s[i...].firstIndex(of: "}"), close - i - 1 >= 1, close - i - 1 <= 6,
                      s[(i + 1)..<close].allSatisfy({ $0.properties.isASCIIHexDigit }),
                      let v = UInt32(String(String.UnicodeScalarView(s[(i + 1)..<close])), radix: 16),
                      let c = Unicode.Scalar(v) else { throw error("'\\u{...}' needs 1 to 6 hex digits of a character") }
                i = close + 1
                return c
            case "x", "u":
                let n = e == "x" ? 2 : 4
                func hex(_ at: Int) -> UInt32? {
                    guard at + n <= s.count, s[at..<(at + n)].allSatisfy({ $0.properties.isASCIIHexDigit }) else { return nil }
                    return UInt32(String(String.UnicodeScalarView(s[at..<(at + n)])), radix: 16)
                }
                guard var v = hex(i) else { throw error("'\\\(e)' needs \(n) hex digits of a character") }
                i += n
                // a surrogate pair written as two escapes: one character
                if e == "u", (0xD800...0xDBFF).contains(v), i + 6 <= s.count, s[i] == "\\", s[i + 1] == "u",
                   let lo = hex(i + 2), (0xDC00...0xDFFF).contains(lo) {
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
                }
                guard let c = Unicode.Scalar(v) else { throw error("'\\u' of a lone surrogate is not a character") }
                return c
            default:
                if e.properties.isAlphabetic { throw error("unknown escape '\\\(e)'") }
                return e   // escaped punctuation: itself
            }
        }

        mutating func characterClass() throws -> String {
            var negated = false
            if peek == "^" { negated = true; i += 1 }
            var ranges: [ClosedRange<UInt32>] = []
            var first = true
            while true {
                guard let c = peek else { throw error("unclosed '['") }
                if c == "]" && !first { i += 1; break }
                if c == "]" { throw error("an empty class '[]'") }
                first = false
                i += 1
                var lo: UInt32
                if c == "\\" {
                    guard let e = peek else { throw error("a trailing '\\'") }
                    i += 1
                    switch e {
                    case "d": ranges += PatternGrammar.digit; continue
                    case "w": ranges += PatternGrammar.word; continue
                    case "s": ranges += PatternGrammar.space; continue
                    case "D", "W", "S": throw error("'\\\(e)' inside a class is not supported")
                    case "b": lo = 0x08
                    case "1"..."9": throw error("a backreference or octal escape inside a class is not supported")
                    default: lo = try scalar(after: e).value
                    }
                } else {
                    lo = c.value
                }
                // a range a-b (a '-' before ']' is a literal)
                if peek == "-", i + 1 < s.count, s[i + 1] != "]" {
                    i += 1
                    var hiScalar = s[i]
                    i += 1
                    if hiScalar == "\\" {
                        guard let e = peek else { throw error("a trailing '\\'") }
                        i += 1
                        if "dwsDWS".unicodeScalars.contains(e) { throw error("a range to '\\\(e)'") }
                        hiScalar = e == "b" ? "\u{8}" : try scalar(after: e)
                    }
                    guard hiScalar.value >= lo else { throw error("a range out of order") }
                    ranges.append(lo...hiScalar.value)
                } else {
                    ranges.append(lo...lo)
                }
            }
            if negated { return PatternGrammar.negative(ranges) }
            guard let p = PatternGrammar.positive(ranges) else { throw error("a class that allows no character JSON can hold") }
            return p
        }
    }
}

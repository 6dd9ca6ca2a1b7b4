// NumberRange: the GBNF of the JSON numbers between two decimal bounds (either end open, either
// exclusive), for a JSON Schema's minimum / maximum / exclusiveMinimum / exclusiveMaximum on
// `number`. Bounded numbers are written without an exponent: a sign, an integer part of at most
// 16 digits, and at most 16 fraction digits. The integer part between the bounds' integer parts is
// IntegerRange's; at a bound's own integer part the fraction is compared digit by digit, as a
// regular expression for a decimal range is built ("0." then [5-9] or "4" then [5-9]... for
// >= 0.45). Zero is written without a sign.

enum NumberRange {
    static let maxDigits = 16

    /// An exact decimal: |value| = int + 0.frac (frac without trailing zeros).
    struct Decimal: Equatable {
        var negative: Bool
        var int: Int64
        var frac: [Int]

        var isZero: Bool { int == 0 && frac.isEmpty }
        var magnitude: Decimal { Decimal(negative: false, int: int, frac: frac) }

        /// The bound's decimal digits: exact for integers, Swift's shortest round-trip text for
        /// doubles. nil when it needs more than 16 integer or fraction digits.
        init?(_ v: JSONValue) {
            if case .integer(let i) = v {
                guard i.magnitude <= UInt64(IntegerRange.largest) else { return nil }
                self.init(negative: i < 0, int: Int64(i.magnitude), frac: [])
                return
            }
            guard let x = v.number, x.isFinite else { return nil }
            // "1.25", "1e-05", "1.5e+20", "-0.001"
            var text = "\(x.magnitude)"
            var exponent = 0
            if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                exponent = Int(text[text.index(after: e)...]) ?? 0
                text = String(text[..<e])
            }
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            var digits = Array(parts[0]).compactMap(\.wholeNumberValue)
            var point = digits.count
            if parts.count > 1 { digits += Array(parts[1]).compactMap(\.wholeNumberValue) }
            point += exponent
            if point < 0 { digits = [Int](repeating: 0, count: -point) + digits; point = 0 }
            if point > digits.count { digits += [Int](repeating: 0, count: point - digits.count) }
            var intDigits = Array(digits[..<point]), fracDigits = Array(digits[point...])
            while intDigits.first == 0 { intDigits.removeFirst() }
            while fracDigits.last == 0 { fracDigits.removeLast() }
            guard intDigits.count <= maxDigits, fracDigits.count <= maxDigits else { return nil }
            let int = intDigits.reduce(Int64(0)) { $0 * 10 + Int64($1) }
            self.init(negative: x < 0 && !(int == 0 && fracDigits.isEmpty), int: int, frac: fracDigits)
        }

        init(negative: Bool, int: Int64, frac: [Int]) {
            self.negative = negative
            self.int = int
            self.frac = frac
        }
    }

    /// -1, 0, 1 as a < b, a == b, a > b.
    static func compare(_ a: Decimal, _ b: Decimal) -> Int {
        if a.isZero && b.isZero { return 0 }
        if a.negative != b.negative { return a.negative ? -1 : 1 }
        var m = a.int < b.int ? -1 : a.int > b.int ? 1 : 0
        if m == 0 {
            for k in 0..<max(a.frac.count, b.frac.count) {
                let x = k < a.frac.count ? a.frac[k] : 0, y = k < b.frac.count ? b.frac[k] : 0
                if x != y { m = x < y ? -1 : 1; break }
            }
        }
        return a.negative ? -m : m
    }

    struct Bound {
        var value: Decimal
        var exclusive: Bool
    }

    /// Alternatives (GBNF sequences) for the numbers within the bounds; empty when none fits.
    static func alternatives(lo: Bound?, hi: Bound?) -> [String] {
        var out: [String] = []
        // zero and the positives: from max(lo, 0), to hi
        let hiNonNegative = hi.map { !$0.value.negative } ?? true
        if hiNonNegative {
            let from = lo.flatMap { $0.value.negative ? nil : $0 } ?? Bound(value: Decimal(negative: false, int: 0, frac: []), exclusive: false)
            out += magnitudes(from: from, to: hi)
        }
        // the negatives: magnitudes above max(0, -hi) (0 itself is written unsigned), up to -lo
        if lo.map({ $0.value.negative }) ?? true {
            let from = hi.flatMap { $0.value.negative ? Bound(value: $0.value.magnitude, exclusive: $0.exclusive) : nil }
                ?? Bound(value: Decimal(negative: false, int: 0, frac: []), exclusive: true)
            let to = lo.map { Bound(value: $0.value.magnitude, exclusive: $0.exclusive) }
            out += magnitudes(from: from, to: to).map { "\"-\" " + $0 }
        }
        return out
    }

    /// Unsigned numbers m with from <= m <= to (strict where exclusive); to nil: the digit cap.
    static func magnitudes(from a: Bound, to b: Bound?) -> [String] {
        let anyFraction = "(\".\" [0-9]{1,\(maxDigits)})?"
        var out: [String] = []
        func literal(_ v: Int64) -> String { "\"\(v)\"" }
        func join(_ i: String, _ f: String?) -> String? { f.map { $0.isEmpty ? i : i + " " + $0 } }
        if let b, a.value.int == b.value.int {
            out += [join(literal(a.value.int), fraction(between(a.value.frac, a.exclusive, b.value.frac, b.exclusive, maxDigits)))].compactMap { $0 }
            return out
        }
        if let b, a.value.int > b.value.int { return [] }
        if let f = join(literal(a.value.int), fraction(atLeast(a.value.frac, a.exclusive, maxDigits))) { out.append(f) }
        let middleHi: Int64? = b.map { $0.value.int - 1 }
        if a.value.int + 1 <= (middleHi ?? IntegerRange.largest) {
            out += IntegerRange.nonNegative(a.value.int + 1, middleHi ?? IntegerRange.largest, open: b == nil).map { $0 + " " + anyFraction }
        }
        if let b, let f = join(literal(b.value.int), fraction(atMost(b.value.frac, b.exclusive, maxDigits))) { out.append(f) }
        return out
    }

    /// Fraction digit strings (empty: no fraction written) as an alternative list, and whether
    /// the empty one (value 0) is among them.
    typealias Digits = (alternatives: [String], empty: Bool)

    /// The optional ".digits" part for a set of digit strings; nil when the set is empty.
    static func fraction(_ d: Digits) -> String? {
        if d.alternatives.isEmpty { return d.empty ? "" : nil }
        let body = d.alternatives.count == 1 ? d.alternatives[0] : "(" + d.alternatives.joined(separator: " | ") + ")"
        return d.empty ? "(\".\" \(body))?" : "\".\" \(body)"
    }

    /// 0.S >= 0.D (> when strict), S of at most n digits.
    static func atLeast(_ d: [Int], _ strict: Bool, _ n: Int) -> Digits {
        guard let first = d.first else {
            if !strict { return (n > 0 ? ["[0-9]{1,\(n)}"] : [], true) }
            return (nonZeroDigits(n), false)
        }
        guard n > 0 else { return ([], false) }
        var alts: [String] = []
        if first < 9 { alts.append("[\(first + 1)-9] [0-9]{0,\(n - 1)}") }
        let rest = atLeast(Array(d.dropFirst()), strict, n - 1)
        alts += rest.alternatives.map { "\"\(first)\" " + $0 }
        if rest.empty { alts.append("\"\(first)\"") }
        return (alts, false)
    }

    /// 0.S <= 0.D (< when strict), S of at most n digits.
    static func atMost(_ d: [Int], _ strict: Bool, _ n: Int) -> Digits {
        guard let first = d.first else {
            if strict { return ([], false) }
            return (n > 0 ? ["\"0\"{1,\(n)}"] : [], true)
        }
        guard n > 0 else { return ([], true) }
        var alts: [String] = []
        if first > 0 { alts.append("[0-\(first - 1)] [0-9]{0,\(n - 1)}") }
        let rest = atMost(Array(d.dropFirst()), strict, n - 1)
        alts += rest.alternatives.map { "\"\(first)\" " + $0 }
        if rest.empty { alts.append("\"\(first)\"") }
        return (alts, true)
    }

    /// 0.A <= 0.S <= 0.B (strict where asked), S of at most n digits.
    static func between(_ a: [Int], _ sa: Bool, _ b: [Int], _ sb: Bool, _ n: Int) -> Digits {
        if a.isEmpty { // from 0: the upper side, less the zeros when strict
            let upper = atMost(b, sb, n)
            if !sa { return upper }
            // strict at 0: S has a nonzero digit, and 0.S <= 0.B
            return (nonZero(b, sb, n).alternatives, false)
        }
        if b.isEmpty { return ([], false) }   // 0.B = 0 < 0.A
        guard n > 0 else { return ([], false) }
        let x = a[0], y = b[0]
        if x > y { return ([], false) }
        var alts: [String] = []
        if x == y {
            let rest = between(Array(a.dropFirst()), sa, Array(b.dropFirst()), sb, n - 1)
            alts += rest.alternatives.map { "\"\(x)\" " + $0 }
            if rest.empty { alts.append("\"\(x)\"") }
            return (alts, false)
        }
        let lower = atLeast(Array(a.dropFirst()), sa, n - 1)
        alts += lower.alternatives.map { "\"\(x)\" " + $0 }
        if lower.empty { alts.append("\"\(x)\"") }
        if x + 1 <= y - 1 { alts.append("[\(x + 1)-\(y - 1)] [0-9]{0,\(n - 1)}") }
        let upper = atMost(Array(b.dropFirst()), sb, n - 1)
        alts += upper.alternatives.map { "\"\(y)\" " + $0 }
        if upper.empty { alts.append("\"\(y)\"") }
        return (alts, false)
    }

    /// Digit strings of at most n digits with a nonzero digit: k zeros, then [1-9], then any.
    static func nonZeroDigits(_ n: Int) -> [String] {
        (0..<max(0, n)).map { k in (k > 0 ? "\"0\"{\(k)} " : "") + "[1-9]" + (n - 1 - k > 0 ? " [0-9]{0,\(n - 1 - k)}" : "") }
    }

    /// 0 < 0.S <= 0.B (< when strict): digit strings with a nonzero digit, at most 0.B.
    static func nonZero(_ b: [Int], _ strict: Bool, _ n: Int) -> Digits {
        guard let first = b.first, n > 0 else { return ([], false) }
        var alts: [String] = []
        if first > 1 { alts.append("[1-\(first - 1)] [0-9]{0,\(n - 1)}") }
        if first > 0 {
            let rest = atMost(Array(b.dropFirst()), strict, n - 1)
            alts += rest.alternatives.map { "\"\(first)\" " + $0 }
            if rest.empty { alts.append("\"\(first)\"") }
            // a leading 0, then any nonzero digits: 0.0x < 0.first
            alts += nonZeroDigits(n - 1).map { "\"0\" " + $0 }
        } else {
            let rest = nonZero(Array(b.dropFirst()), strict, n - 1)
            alts += rest.alternatives.map { "\"0\" " + $0 }
        }
        return (alts, false)
    }
}

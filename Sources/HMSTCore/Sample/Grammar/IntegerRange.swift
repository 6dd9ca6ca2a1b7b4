// IntegerRange: the GBNF of the JSON integers in lo...hi (either end open), for a JSON Schema's
// minimum / maximum / exclusiveMinimum / exclusiveMaximum on integers. Written as digit classes
// per length, the way a regular expression for a numeric range is built: 15...233 is
// "1" [5-9] | [2-9] [0-9] | "1" [0-9] [0-9] | "2" [0-2] [0-9] | "23" [0-3]. Integers have at
// most 16 digits, as everywhere in JSONSchemaGrammar.

enum IntegerRange {
    static let largest: Int64 = 9_999_999_999_999_999   // 16 digits

    /// Alternatives (GBNF sequences) for lo...hi (nil: open); an empty list when no integer fits.
    static func alternatives(lo: Int64?, hi: Int64?) -> [String] {
        let a = max(lo ?? -largest, -largest), b = min(hi ?? largest, largest)
        guard a <= b else { return [] }
        var out: [String] = []
        if a < 0 {   // the negatives: "-" and the magnitudes max(1, -b)...-a
            let magnitudes = nonNegative(max(1, b < 0 ? -b : 1), -a, open: lo == nil)
            out += magnitudes.map { "\"-\" " + $0 }
        }
        if b >= 0 { out += nonNegative(max(a, 0), b, open: hi == nil) }
        return out
    }

    /// a...b, 0 <= a <= b; open: b is only the 16-digit cap (the upper end was not given).
    static func nonNegative(_ a: Int64, _ b: Int64, open: Bool) -> [String] {
        var out: [String] = []
        let la = digits(a), lb = digits(b)
        for n in la...lb {
            let from = n == la ? a : pow10(n - 1)
            let to = n == lb ? b : pow10(n) - 1
            if open && n > la && to == pow10(n) - 1 {
                // every length from n on: one alternative, not one per length
                out.append("[1-9] [0-9]{\(n - 1),15}")
                break
            }
            out += between(Array(String(from).utf8).map { Int($0) - 48 }, Array(String(to).utf8).map { Int($0) - 48 })
        }
        return out
    }

    /// The numbers from a to b written with the same number of digits.
    static func between(_ a: [Int], _ b: [Int]) -> [String] {
        guard let a0 = a.first, let b0 = b.first else { return [""] }
        let rest = a.count - 1
        let tail = rest > 0 ? " [0-9]{\(rest)}" : ""
        if a0 == b0 { return between(Array(a.dropFirst()), Array(b.dropFirst())).map { join("\"\(a0)\"", $0) } }
        var out: [String] = []
        var low = a0, high = b0
        if !a.dropFirst().allSatisfy({ $0 == 0 }) {   // a0 followed by a's rest up to 9...9
            out += between(Array(a.dropFirst()), [Int](repeating: 9, count: rest)).map { join("\"\(a0)\"", $0) }
            low += 1
        }
        var upper: [String] = []
        if !b.dropFirst().allSatisfy({ $0 == 9 }) {   // b0 followed by 0...0 up to b's rest
            upper = between([Int](repeating: 0, count: rest), Array(b.dropFirst())).map { join("\"\(b0)\"", $0) }
            high -= 1
        }
        if low <= high { out.append((low == high ? "\"\(low)\"" : "[\(low)-\(high)]") + tail) }
        return out + upper
    }

    static func join(_ a: String, _ b: String) -> String { b.isEmpty ? a : a + " " + b }
    static func digits(_ v: Int64) -> Int { String(v).count }
    static func pow10(_ n: Int) -> Int64 { (0..<n).reduce(Int64(1)) { r, _ in r * 10 } }
}

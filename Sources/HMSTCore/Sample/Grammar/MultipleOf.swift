// MultipleOf: the GBNF of the JSON numbers that are multiples of a JSON Schema's `multipleOf`.
// m is read exactly as a decimal p · 10^-d (0.25 = 25 · 10^-2). A number written with at most d
// fraction digits is a multiple of m when its digits, as the integer value · 10^d, are divisible
// by p; reading the digits left to right with the remainder mod p as the state is a finite
// automaton, written as one rule per (remainder, digits read), digits that lead to the same
// remainder sharing a class. Integers (type integer, or an integral m) are the case d = 0.
// Numbers are written without an exponent, at most 16 integer digits, as everywhere in
// JSONSchemaGrammar. With both bounds the multiples between them (at most 512) are listed; with
// minimum 0 alone, the automaton without a sign; other bounds beside multipleOf are refused.

enum MultipleOf {
    /// The most rules the automaton may take (remainders × digit positions).
    static let maxRules = 4096
    /// The most multiples listed between two bounds.
    static let maxListed = 512

    /// m as p · 10^-d with p a positive integer; nil when m is not a positive finite number of
    /// at most 16 digits on either side of the point.
    static func decimal(_ v: JSONValue) -> (p: Int64, d: Int)? {
        guard let x = NumberRange.Decimal(v), !x.negative, !x.isZero else { return nil }
        var p = x.int
        for f in x.frac {
            guard p <= (Int64.max - 9) / 10 else { return nil }
            p = p * 10 + Int64(f)
        }
        return (p, x.frac.count)
    }

    static func gcd(_ a: Int64, _ b: Int64) -> Int64 { b == 0 ? a : gcd(b, a % b) }


    /// For integers: an integer v is a multiple of p · 10^-d when v is a multiple of this.
    static func integerModulus(p: Int64, d: Int) -> Int64 { d > 18 ? p : p / gcd(p, IntegerRange.pow10(d)) }

    /// The automaton's rules: `root` the multiples of p · 10^-d written with at most d fraction
    /// digits (negatives too when `signed`). nil when it needs more than maxRules rules.
    static func rules(p: Int64, d: Int, signed: Bool, root: String) -> [(String, String)]? {
        let digits = NumberRange.maxDigits
        guard p >= 1, d <= NumberRange.maxDigits, p <= Int64(maxRules),
              Int(p) * (digits + d + 2) <= maxRules else { return nil }
        let k = Int(p)
        // a value whose digits so far leave remainder r, with j of d fraction digits written, is
        // a multiple when r · 10^(d-j) ≡ 0 (the fraction's missing digits are zeros)
        func ends(_ r: Int, fraction j: Int) -> Bool {
            var v = r
            for _ in j..<d { v = v * 10 % k }
            return v == 0
        }
        func next(_ r: Int, _ digit: Int) -> Int { (r * 10 + digit) % k }
        // live[j][r]: from remainder r after j fraction digits an accepted end can be reached
        var fracLive = [[Bool]](repeating: [Bool](repeating: false, count: k), count: d + 1)
        for j in stride(from: d, through: 0, by: -1) {
            for r in 0..<k {
                fracLive[j][r] = (j > 0 && ends(r, fraction: j)) || (j < d && (0...9).contains { fracLive[j + 1][next(r, $0)] })
            }
        }
        // after the integer part with remainder r: end here, or a point and fraction digits
        func intEnds(_ r: Int) -> Bool { ends(r, fraction: 0) || (d > 0 && fracLive[0][r]) }
        // intLive[n][r]: n integer digits read (n >= 1, the first not 0)
        var intLive = [[Bool]](repeating: [Bool](repeating: false, count: k), count: digits + 1)
        for n in stride(from: digits, through: 1, by: -1) {
            for r in 0..<k {
                intLive[n][r] = intEnds(r) || (n < digits && (0...9).contains { intLive[n + 1][next(r, $0)] })
            }
        }
        func name(_ kind: String, _ r: Int, _ n: Int) -> String { "\(root)-\(kind)\(r)-\(n)" }
        func classes(_ r: Int, live: (Int) -> Bool, from: Int = 0) -> [(String, Int)] {
            var by: [Int: [Int]] = [:]
            for digit in from...9 where live(next(r, digit)) { by[next(r, digit), default: []].append(digit) }
            return by.keys.sorted().map { r2 in ("[" + by[r2]!.map(String.init).joined() + "]", r2) }
        }
        var out: [(String, String)] = []
        var made: Set<String> = []
        // the fraction: f(r, j) after j digits (j >= 1)
        func frac(_ r: Int, _ j: Int) -> String {
            let n = name("f", r, j)
            if made.insert(n).inserted {
                var alts: [String] = []
                if j < d { alts += classes(r, live: { fracLive[j + 1][$0] }).map { "\($0.0) \(frac($0.1, j + 1))" } }
                if ends(r, fraction: j) { alts.append("\"\"") }
                out.append((n, alts.joined(separator: " | ")))
            }
            return n
        }
        // what may follow an integer part with remainder r
        func tail(_ r: Int) -> [String] {
            var alts: [String] = []
            if d > 0 && fracLive[0][r] {
                let firsts = classes(r, live: { fracLive[1][$0] }).map { "\($0.0) \(frac($0.1, 1))" }
                if !firsts.isEmpty { alts.append("\".\" (" + firsts.joined(separator: " | ") + ")") }
            }
            if ends(r, fraction: 0) { alts.append("\"\"") }
            return alts
        }
        func int(_ r: Int, _ n: Int) -> String {
            let nm = name("i", r, n)
            if made.insert(nm).inserted {
                var alts: [String] = []
                if n < digits { alts += classes(r, live: { intLive[n + 1][$0] }).map { "\($0.0) \(int($0.1, n + 1))" } }
                alts += tail(r)
                out.append((nm, alts.joined(separator: " | ")))
            }
            return nm
        }
        var top: [String] = []
        let zero = tail(0)
        top.append("\"0\"" + (zero == ["\"\""] ? "" : " (" + zero.joined(separator: " | ") + ")"))
        top += classes(0, live: { intLive[1][$0] }, from: 1).map { "\($0.0) \(int($0.1, 1))" }
        let body = "(" + top.joined(separator: " | ") + ")"
        out.append((root, signed ? "\"-\"? " + body : body))
        return out
    }

    /// The multiples of p · 10^-d in lo...hi (scaled by 10^d, inclusive) as literals, nil when
    /// more than maxListed.
    static func listed(p: Int64, d: Int, lo: Int64, hi: Int64) -> [String]? {
        guard lo <= hi else { return [] }
        // first multiple >= lo
        var first = lo / p * p
        if first < lo { first += p }
        guard first <= hi else { return [] }
        let count = (hi - first) / p + 1
        guard count <= Int64(maxListed) else { return nil }
        let unit = IntegerRange.pow10(d)
        return (0..<count).map { i in
            let v = first + i * p
            let mag = v.magnitude
            var text = (v < 0 ? "-" : "") + String(mag / UInt64(unit))
            if d > 0 {
                var f = String(mag % UInt64(unit))
                f = String(repeating: "0", count: d - f.count) + f
                while f.hasSuffix("0") { f.removeLast() }
                if !f.isEmpty { text += "." + f }
            }
            return JSONWriter.quote(text)
        }
    }
}

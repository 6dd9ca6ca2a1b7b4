// multipleOf: the grammar accepts a number exactly when it is a multiple within the bounds and
// written as the grammar writes numbers (at most m's fraction digits, no exponent), checked
// against integer arithmetic on the digits; every multiple in a range, written shortest, is
// accepted; what cannot be enforced is refused by name.
import XCTest
@testable import HMSTCore

final class MultipleOfTests: XCTestCase {
    /// value · 10^4 of a plain decimal text ("-12.5"), nil for other texts
    func scaled(_ t: String) -> Int64? {
        var s = Substring(t), neg = false
        if s.hasPrefix("-") { neg = true; s = s.dropFirst() }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let i = Int64(parts[0]), parts[0].allSatisfy(\.isNumber) else { return nil }
        var v = i * 10_000
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 4, f.allSatisfy(\.isNumber) else { return nil }
            v += Int64(f + String(repeating: "0", count: 4 - f.count))!
        }
        return neg ? -v : v
    }

    /// The shortest text of value / 10^4.
    func shortest(_ v: Int64) -> String {
        var text = String(abs(v) / 10_000)
        var frac = String(abs(v) % 10_000)
        frac = String(repeating: "0", count: 4 - frac.count) + frac
        while frac.hasSuffix("0") { frac.removeLast() }
        if !frac.isEmpty { text += "." + frac }
        return v < 0 ? "-" + text : text
    }

    func accepts(_ g: Grammar, _ text: String) throws -> Bool {
        let c = try GrammarConstraint(grammar: g, tokenizer: JSONConstraintTests.PiecesTokenizer([]))
        return c.acceptBytes(Array(text.utf8)) && c.canEnd
    }

    /// Decimal texts around a range: integers, and 1-3 fraction digits on a grid.
    func candidates(_ lo: Int, _ hi: Int, rng: inout RNG) -> [String] {
        var out: [String] = []
        for i in lo...hi { out.append(String(i)) }
        for _ in 0..<600 {
            let i = lo + Int(rng.next() % UInt64(hi - lo + 1))
            let digits = 1 + Int(rng.next() % 3)
            let f = String(Int(rng.next() % UInt64(pow(10, Double(digits)))))
            let frac = String(repeating: "0", count: digits - f.count) + f
            out.append((i < 0 ? "-" : "") + "\(abs(i)).\(frac)")
            if i == 0 { out.append("-0.\(frac)") }
        }
        return out + ["-0", "00", "1e2", "0.", ".5", "+5"]
    }

    func testAcceptsExactlyTheMultiplesWithinTheBounds() throws {
        // (schema, m · 10^4, lo, hi (· 10^4, nil open), fraction digits the grammar writes)
        let cases: [(String, Int64, Int64?, Int64?, Int)] = [
            (#"{"type":"integer","multipleOf":3}"#, 30_000, nil, nil, 0),
            (#"{"type":"integer","multipleOf":0.5}"#, 10_000, nil, nil, 0),
            (#"{"type":"integer","multipleOf":2.5}"#, 50_000, nil, nil, 0),
            (#"{"type":"number","multipleOf":0.25}"#, 2_500, nil, nil, 2),
            (#"{"type":"number","multipleOf":1.5}"#, 15_000, nil, nil, 1),
            (#"{"type":"number","multipleOf":0.01,"minimum":0}"#, 100, 0, nil, 2),
            (#"{"multipleOf":0.5,"minimum":-2,"maximum":3}"#, 5_000, -20_000, 30_000, 1),
            (#"{"type":"integer","multipleOf":7,"minimum":10,"exclusiveMaximum":49}"#, 70_000, 100_000, 480_000, 0),
            (#"{"type":"number","multipleOf":0.3,"exclusiveMinimum":-1,"maximum":1.15}"#, 3_000, -9_999, 11_500, 1),
            (#"{"type":"number","multipleOf":5}"#, 50_000, nil, nil, 0),
        ]
        var rng = RNG(seed: 11)
        for (schema, m, lo, hi, fd) in cases {
            let g = try JSONSchemaGrammar.grammar(schemaText: schema)
            var accepted = 0
            for t in candidates(-60, 60, rng: &rng) {
                let ok = try accepts(g, t)
                guard let v = scaled(t), !t.hasPrefix("00"), !(t.hasPrefix("-") && t.dropFirst().hasPrefix("00")) else {
                    XCTAssertFalse(ok, "\(schema): \(t)")
                    continue
                }
                let fraction = t.split(separator: ".").count == 2 ? t.split(separator: ".")[1].count : 0
                // between two bounds the multiples are listed, each written shortest
                let listed = lo != nil && hi != nil
                let want = v % m == 0 && v >= (lo ?? .min) && v <= (hi ?? .max) && fraction <= fd
                    && !(lo != nil && t.hasPrefix("-") && v == 0) && !(listed && t != shortest(v))
                if want != ok { XCTFail("\(schema): \(t) accepted \(ok), expected \(want)") }
                if ok { accepted += 1 }
            }
            XCTAssertGreaterThan(accepted, 0, schema)
            // every multiple in -60...60 within the bounds, written shortest, is accepted
            var k = (-600_000 / m) * m
            while k <= 600_000 {
                if k >= (lo ?? .min) && k <= (hi ?? .max) {
                    XCTAssertTrue(try accepts(g, shortest(k)), "\(schema): the multiple \(shortest(k))")
                }
                k += m
            }
        }
    }

    func testLargeIntegersAndRefusals() throws {
        let g = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"integer","multipleOf":7}"#)
        XCTAssertTrue(try accepts(g, "1428571428571427"))    // 7 · 204081632653061, 16 digits
        XCTAssertFalse(try accepts(g, "1428571428571428"))
        XCTAssertFalse(try accepts(g, "14285714285714270"), "17 digits")
        for (schema, message) in [
            (#"{"type":"integer","multipleOf":0}"#, "multipleOf must be a positive number"),
            (#"{"type":"integer","multipleOf":-2}"#, "multipleOf must be a positive number"),
            (#"{"type":"integer","multipleOf":3,"minimum":5}"#, "supported only as minimum 0"),
            (#"{"type":"integer","multipleOf":1,"minimum":0,"maximum":100000}"#, "more than 512 multiples"),
            (#"{"type":"integer","multipleOf":4,"minimum":1,"maximum":3}"#, "no multiple of 4"),
            (#"{"type":"integer","multipleOf":9973}"#, "grammar rules"),
        ] {
            XCTAssertThrowsError(try JSONSchemaGrammar.grammar(schemaText: schema), schema) { e in
                XCTAssertTrue("\(e)".contains(message), "\(schema): \(e)")
            }
        }
    }
}

// JSON Schema bounds on numbers: the grammar of a bounded number accepts exactly the decimal
// texts (sign, integer part, fraction, no exponent) whose exact value is within the bounds, as
// Foundation's Decimal compares them, on fixed and seeded random numbers; bounds given as
// doubles are read as their shortest decimal text.
import Foundation
import XCTest
@testable import HMSTCore

final class NumberRangeTests: XCTestCase {
    func accepts(_ g: Grammar, _ text: String) throws -> Bool {
        let c = try GrammarConstraint(grammar: g, tokenizer: JSONConstraintTests.PiecesTokenizer([]))
        return c.acceptBytes(Array(text.utf8)) && c.canEnd
    }

    func d(_ s: String) -> Foundation.Decimal { Foundation.Decimal(string: s)! }

    func testAgreesWithExactComparison() throws {
        let cases: [(String, (Foundation.Decimal) -> Bool)] = [
            (#"{"type":"number","minimum":0,"maximum":1}"#, { $0 >= 0 && $0 <= 1 }),
            (#"{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}"#, { $0 > 0 && $0 < 1 }),
            (#"{"type":"number","minimum":-1.5,"maximum":2.25}"#, { $0 >= self.d("-1.5") && $0 <= self.d("2.25") }),
            (#"{"type":"number","minimum":-10,"exclusiveMaximum":-0.5}"#, { $0 >= -10 && $0 < self.d("-0.5") }),
            (#"{"type":"number","maximum":3.7}"#, { $0 <= self.d("3.7") }),
            (#"{"type":"number","minimum":0.001}"#, { $0 >= self.d("0.001") }),
            (#"{"type":"number","minimum":12.5,"maximum":12.75}"#, { $0 >= self.d("12.5") && $0 <= self.d("12.75") }),
            (#"{"type":"number","exclusiveMinimum":5,"maximum":5.5}"#, { $0 > 5 && $0 <= self.d("5.5") }),
            (#"{"type":"number","minimum":0,"maximum":0}"#, { $0 == 0 }),
            (#"{"type":"number","minimum":0.45,"exclusiveMaximum":0.4501}"#, { $0 >= self.d("0.45") && $0 < self.d("0.4501") }),
            (#"{"type":"number","minimum":-0.05,"maximum":0.05}"#, { $0 >= self.d("-0.05") && $0 <= self.d("0.05") }),
            (#"{"type":"number","minimum":2,"exclusiveMinimum":2}"#, { $0 > 2 }),
            (#"{"type":"number","minimum":1,"exclusiveMinimum":true}"#, { $0 > 1 }),
            (#"{"type":"number","maximum":-3,"exclusiveMaximum":true}"#, { $0 < -3 }),
            (#"{"type":"number","exclusiveMinimum":-2.5,"exclusiveMaximum":-2.25}"#, { $0 > self.d("-2.5") && $0 < self.d("-2.25") }),
            (#"{"type":"number","minimum":0.09,"maximum":0.1}"#, { $0 >= self.d("0.09") && $0 <= self.d("0.1") }),
            (#"{"type":"number","exclusiveMinimum":0,"maximum":0.05}"#, { $0 > 0 && $0 <= self.d("0.05") }),
            (#"{"minimum":1e-05,"maximum":100}"#, { $0 >= self.d("0.00001") && $0 <= 100 }),
        ]
        let fixed = ["0", "1", "0.5", "1.0", "1.00", "0.999", "0.0", "0.001", "0.0009", "-1.5", "-1.50", "-1.51", "2.25", "2.250", "2.2501",
                     "-10", "-10.0", "-10.01", "-0.5", "-0.49", "-0.51", "3.7", "3.70", "3.71", "3.6999", "12.5", "12.75", "12.76", "12.6",
                     "5", "5.0", "5.00001", "5.5", "5.51", "0.45", "0.4500", "0.45009", "0.4501", "0.46", "0.05", "-0.05", "0.051", "-0.0501",
                     "2", "2.0001", "1", "1.1", "-3", "-3.0001", "-2.4", "-2.25", "-2.5", "0.09", "0.1", "0.10", "0.0999",
                     "0.00001", "0.000009", "100", "100.0", "100.0001", "99.99", "7", "123456", "-123456"]
        var rng = Xorshift(state: 0xD1B5_4A32_D192_ED03)
        let ints = ["0", "1", "2", "3", "5", "7", "9", "10", "12", "13", "99", "100", "101", "12345"]
        var random: [String] = []
        for _ in 0..<400 {
            var t = (rng.next() % 3 == 0 ? "-" : "") + ints[Int(rng.next() % UInt64(ints.count))]
            let n = Int(rng.next() % 6)
            if n > 0 { t += "." + String((0..<n).map { _ in Character(String(Int(rng.next() % 10))) }) }
            random.append(t)
        }
        for (schema, inRange) in cases {
            let g = try JSONSchemaGrammar.grammar(schemaText: schema)
            for text in fixed + random + fixed.map({ "-" + $0 }) where !text.hasPrefix("--") {
                let value = d(text)
                // zero is written unsigned: "-0" and "-0.0" are refused whatever the bounds
                let want = inRange(value) && !(text.hasPrefix("-") && value == 0)
                XCTAssertEqual(try accepts(g, text), want, "\(schema) on \(text)")
            }
            // no exponent, no leading zeros, no bare point
            for bad in ["1e0", "01", "1.", ".5", "+1"] { XCTAssertFalse(try accepts(g, bad), "\(schema) on \(bad)") }
        }
    }

    /// Review findings: an exclusive bound is not met by a text that reads back as the bound
    /// itself; bounds past the digit cap; the tighter of two bounds compared exactly.
    func testDoubleSemanticsAndCaps() throws {
        let g = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"number","exclusiveMinimum":1,"exclusiveMaximum":10}"#)
        for text in ["9.9999999999999999", "10", "1.0000000000000001", "1"] { XCTAssertFalse(try accepts(g, text), text) }
        for text in ["9.999999999999998", "1.000000000000001", "5"] { XCTAssertTrue(try accepts(g, text), text) }
        let wide = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"number","minimum":-1e20,"maximum":1e20}"#)
        for text in ["9999999999999999", "-9999999999999999.5", "0"] { XCTAssertTrue(try accepts(wide, text), text) }
        XCTAssertFalse(try accepts(wide, "1e5"), "bounded numbers have no exponent")
        XCTAssertThrowsError(try JSONSchemaGrammar.grammar(schemaText: #"{"type":"number","minimum":1e20}"#))
        let tie = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"number","minimum":9007199254740993,"exclusiveMinimum":9007199254740992.0}"#)
        XCTAssertFalse(try accepts(tie, "9007199254740992.5"), "the integer minimum is the tighter bound")
        // 9007199254740993 is above the exclusive bound as a decimal, but reads back as it as a double
        XCTAssertFalse(try accepts(tie, "9007199254740993"))
        XCTAssertTrue(try accepts(tie, "9007199254740994"))
        // at most 16 fraction digits, also right above an exclusive 0
        let above0 = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"number","exclusiveMinimum":0,"maximum":0.5}"#)
        XCTAssertTrue(try accepts(above0, "0." + String(repeating: "0", count: 15) + "1"))
        XCTAssertFalse(try accepts(above0, "0." + String(repeating: "0", count: 16) + "1"))
        XCTAssertFalse(try accepts(above0, "0.1" + String(repeating: "2", count: 16)))
        XCTAssertEqual(NumberRange.compare(NumberRange.Decimal(.number(0.5))!, NumberRange.Decimal(.number(0.50))!), 0)
        XCTAssertEqual(NumberRange.compare(NumberRange.Decimal(.number(-0.5))!, NumberRange.Decimal(.number(-0.25))!), -1)
    }

    func testBoundsAsDecimals() {
        let cases: [(JSONValue, NumberRange.Decimal?)] = [
            (.number(0.1), .init(negative: false, int: 0, frac: [1])),
            (.number(-2.25), .init(negative: true, int: 2, frac: [2, 5])),
            (.number(1e-05), .init(negative: false, int: 0, frac: [0, 0, 0, 0, 1])),
            (.number(1.5e10), .init(negative: false, int: 15_000_000_000, frac: [])),
            (.number(-0.0), .init(negative: false, int: 0, frac: [])),
            (.integer(-42), .init(negative: true, int: 42, frac: [])),
            (.number(1e20), nil), (.number(0.30000000000000004), nil), (.number(.infinity), nil),
        ]
        for (v, want) in cases { XCTAssertEqual(NumberRange.Decimal(v), want, "\(v)") }
    }
}

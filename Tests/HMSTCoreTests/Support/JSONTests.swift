import XCTest
@testable import HMSTCore

final class JSONTests: XCTestCase {
    func testParsesEveryKindAndKeepsKeyOrder() throws {
        let v = try JSONValue.parse(#"{"b": [1, -2.5e3, true, false, null], "a": "x\u00e9\ud83d\ude00\n", "c": {}}"#)
        XCTAssertEqual(v.object?.map { $0.0 }, ["b", "a", "c"])
        XCTAssertEqual(v["b"]?.array?.count, 5)
        XCTAssertEqual(v["b"]?.array?[1].number, -2500)
        XCTAssertEqual(v["b"]?.array?[0].int, 1)
        XCTAssertEqual(v["a"]?.string, "xé😀\n")
        XCTAssertEqual(try JSONValue.parse(v.serialized), v)
    }

    func testRejectsMalformedInputWithOffsets() {
        let bad = ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "\"\\x\"", "\"\\ud800\"", "tru", "[1] 2",
                   "{\"a\":1,}", "\"abc", "\"a\u{01}\"", "{1:2}", "nul", "1e", "[" + String(repeating: "[", count: 600)]
        for text in bad {
            XCTAssertThrowsError(try JSONValue.parse(text), "accepted \(text)") { e in
                XCTAssertEqual((e as? HMSTError)?.status, .badFormat)
                XCTAssertTrue((e as? HMSTError)?.message.contains("JSON at byte") ?? false)
            }
        }
        XCTAssertThrowsError(try JSONValue.parse(bytes: [0x22, 0xFF, 0x22]))  // invalid UTF-8 in a string
    }

    func testRandomBytesNeverTrap() {
        var rng = SplitMix(seed: 7)
        let alphabet = Array("{}[]\",:0123456789.eE+-truefalsnl \\u".utf8) + [0xC3, 0xA9, 0xFF]
        for _ in 0..<20000 {
            let n = Int(rng.next() % 24)
            let bytes = (0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            _ = try? JSONValue.parse(bytes: bytes)
        }
    }

    func testIntAccessorRejectsFractionsAndHugeValues() throws {
        XCTAssertNil(try JSONValue.parse("1.5").int)
        XCTAssertNil(try JSONValue.parse("1e300").int)
        XCTAssertEqual(try JSONValue.parse("-42").int, -42)
        XCTAssertEqual(try JSONValue.parse("1e3").int, 1000)
        XCTAssertEqual(try JSONValue.parse("2.0").int, 2)
    }

    /// Integer literals are exact to the 64-bit range (a seed of 2^63 - 1 is not rounded to
    /// 2^63); beyond it they are doubles; numbers compare by value across the two kinds.
    func testIntegersAreExact() throws {
        XCTAssertEqual(try JSONValue.parse("9223372036854775807").int, Int.max)
        XCTAssertEqual(try JSONValue.parse("-9223372036854775808").int, Int.min)
        XCTAssertEqual(try JSONValue.parse("9007199254740993").int, 9_007_199_254_740_993)
        XCTAssertEqual(try JSONValue.parse("9007199254740993").serialized, "9007199254740993")
        XCTAssertNil(try JSONValue.parse("9223372036854775808").int)
        XCTAssertEqual(try JSONValue.parse("9223372036854775808").number, 9.223372036854775808e18)
        XCTAssertEqual(try JSONValue.parse("-0").int, 0)
        XCTAssertEqual(try JSONValue.parse("[3]"), .array([.number(3)]))
        XCTAssertNotEqual(try JSONValue.parse("9007199254740993"), .number(9_007_199_254_740_992))
        XCTAssertEqual(try JSONValue.parse("7").number, 7)
    }

    /// A repeated key is an error naming it, in small objects and in large ones (the set path).
    func testDuplicateKeysAreRefused() throws {
        let small = #"{"seed": 1, "n": 2, "seed": 3}"#
        XCTAssertThrowsError(try JSONValue.parse(small)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .badFormat)
            XCTAssertTrue((e as? HMSTError)?.message.contains("duplicate key \"seed\"") ?? false, "\(e)")
        }
        var members = (0..<40).map { "\"k\($0)\": \($0)" }
        XCTAssertEqual(try JSONValue.parse("{" + members.joined(separator: ",") + "}").object?.count, 40)
        members.append("\"k17\": 0")
        XCTAssertThrowsError(try JSONValue.parse("{" + members.joined(separator: ",") + "}")) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("duplicate key \"k17\"") ?? false, "\(e)")
        }
        // keys are bytes: a precomposed "é" and "e" + a combining acute are two keys (as in Python)
        XCTAssertEqual(try JSONValue.parse("{\"\u{e9}\": 1, \"e\u{301}\": 2}").object?.count, 2)
        let many = (0..<20).map { "\"k\($0)\": 0" } + ["\"\u{c5}\": 1", "\"\u{212b}\": 2"]
        XCTAssertEqual(try JSONValue.parse("{" + many.joined(separator: ",") + "}").object?.count, 22)
        // the same key in different objects is fine
        XCTAssertNoThrow(try JSONValue.parse(#"{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}"#))
    }
}

/// Deterministic test RNG (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

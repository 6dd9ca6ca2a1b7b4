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

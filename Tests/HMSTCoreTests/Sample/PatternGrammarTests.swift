// JSON Schema `pattern`: the grammar of a string with a pattern accepts exactly the strings a
// regular expression engine (Foundation's NSRegularExpression, ICU) finds a match in, on fixed
// and random strings; JSON escapes for quotes, backslashes and controls; refusals name the
// construct.
import Foundation
import XCTest
@testable import HMSTCore

final class PatternGrammarTests: XCTestCase {
    func grammar(_ pattern: String) throws -> Grammar {
        try JSONSchemaGrammar.grammar(schema: .object([("type", .string("string")), ("pattern", .string(pattern))]))
    }

    /// Whether the JSON text of s is a whole sentence of g.
    func accepts(_ g: Grammar, _ s: String) throws -> Bool {
        let c = try GrammarConstraint(grammar: g, tokenizer: JSONConstraintTests.PiecesTokenizer([]))
        return c.acceptBytes(Array(JSONWriter.quote(s).utf8)) && c.canEnd
    }

    func matches(_ pattern: String, _ s: String) throws -> Bool {
        let re = try NSRegularExpression(pattern: pattern)
        return re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    static let patterns = [
        "^[a-z]{2,4}$", "^\\d{3}-\\d{4}$", "^(ab|cd)+x?$", "^a.c$", "b+", "^[^0-9]*$",
        "^(?:[A-Z][a-z]*)(\\s[A-Z][a-z]*)*$", "^\\w+@\\w+\\.(com|org)$", "^[\\-+]?[0-9]+(\\.[0-9]{1,2})?$",
        "x{2}y{0,1}$", "^(a|)b$", "^a*?b+?$", "^[.@]x", "^\\D\\W\\S$", "c$", "^(a(b(c)?)?)?$", "^[a-c-]+$",
        "^\\u0041\\x42[\\x43-\\x45]$", "^a{0}b$", "^(?:ab){2,}$", "^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$$",
    ]
    static let fixed = [
        "", "a", "ab", "abc", "abcd", "abcde", "123-4567", "12-34567", "ababx", "cdab", "abx", "x", "aXc", "a\"c",
        "a\\c", "bbb", "zzz9", "Hello World", "Hello world", "joe@site.com", "joe@site.net", "+3.14", "-10", "1.234",
        "xxy", "xx", "axxy", "b", "abb", "aab", "@x", ".x", "a!b", "a b", "ABC", "ABE", "ABF", "abab", "ababab",
        ".*+?()[]{}|^$", "a-c", "-", "abcabc", "c", "ac",
    ]

    func testAgreesWithARegexEngine() throws {
        var rng = Xorshift(state: 0x9E37_79B9_7F4A_7C15)
        let alphabet = Array("abcdxyzAHW019-+.@ _!\"\\")
        for p in PatternGrammarTests.patterns {
            let g = try grammar(p)
            var strings = PatternGrammarTests.fixed
            for _ in 0..<300 {
                let n = Int(rng.next() % 9)
                strings.append(String((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }))
            }
            for s in strings {
                XCTAssertEqual(try accepts(g, s), try matches(p, s), "pattern \(p) on \(s.debugDescription)")
            }
        }
    }

    func testJSONEscapesAndControls() throws {
        // characters JSON escapes are written escaped
        XCTAssertTrue(try accepts(try grammar("^a\"b\\\\c$"), "a\"b\\c"))
        XCTAssertTrue(try accepts(try grammar("^\\n\\t$"), "\n\t"))
        XCTAssertTrue(try accepts(try grammar("^[\\n\"]+$"), "\"\n\""))
        // `.` and negated classes never write a control character (a subset of the pattern's strings)
        XCTAssertFalse(try accepts(try grammar("^.$"), "\u{1}"))
        XCTAssertFalse(try accepts(try grammar("^[^a]$"), "\n"))
        XCTAssertTrue(try accepts(try grammar("^[^a]$"), "é"))
        // an unanchored pattern: anything around a match, escaped as JSON
        XCTAssertTrue(try accepts(try grammar("b"), "\"\nb\\"))
        // as a member of an object, the string's text checked through the schema grammar
        let g = try JSONSchemaGrammar.grammar(schema: try JSONValue.parse(#"{"type": "object", "properties": {"zip": {"pattern": "^[0-9]{5}$"}}, "required": ["zip"]}"#))
        let c = try GrammarConstraint(grammar: g, tokenizer: JSONConstraintTests.PiecesTokenizer([]))
        XCTAssertTrue(c.acceptBytes(Array(#"{"zip": "01234"}"#.utf8)) && c.canEnd)
        let bad = try GrammarConstraint(grammar: g, tokenizer: JSONConstraintTests.PiecesTokenizer([]))
        XCTAssertFalse(bad.acceptBytes(Array(#"{"zip": "0123a"#.utf8)))
    }

    /// Characters past the BMP: a surrogate pair of \u escapes, and \u{...}.
    func testAstralEscapes() throws {
        XCTAssertTrue(try accepts(try grammar("^\\ud83d\\ude00$"), "😀"))
        XCTAssertTrue(try accepts(try grammar("^\\u{1F600}\\u{41}$"), "😀A"))
        let emoji = try grammar("^[\\ud83d\\ude00-\\ud83d\\ude4f]+$")
        XCTAssertTrue(try accepts(emoji, "🙂😀"))
        XCTAssertFalse(try accepts(emoji, "🚀"))
        XCTAssertThrowsError(try grammar("^\\ud83d$")) { XCTAssertTrue("\($0)".contains("lone surrogate")) }
        XCTAssertThrowsError(try grammar("^\\u{110000}$"))
        XCTAssertThrowsError(try grammar("^\\u{}$"))
    }

    func testRefusalsNameTheConstruct() {
        let cases: [(String, String)] = [
            ("^(?=a)b$", "lookarounds"), ("^(a)\\1$", "backreferences"), ("\\bword", "word boundaries"),
            ("a^b", "'^' is supported only"), ("^(ab$", "unclosed '('"), ("ab)", "unmatched ')'"), ("a**", "a quantifier after a quantifier"),
            ("a{3,2}", "below the minimum"), ("a{2000}", "a repetition above 1000"), ("[z-a]", "out of order"),
            ("[abc", "unclosed '['"), ("*a", "nothing to repeat"), ("^a|b$", "group them"), ("\\p{L}", "Unicode property"),
            (String(repeating: "(", count: 40) + "a" + String(repeating: ")", count: 40), "nested deeper"), ("a\\", "trailing"),
            ("[\\W]", "inside a class"), ("\\q", "unknown escape"), ("^\\x+1$", "hex digits"), ("\\01", "octal"),
            ("[\\1]", "inside a class"), ("^(a*)*$", "can match nothing"), ("^(a|)+$", "can match nothing"),
            ("^([a-z]*\\.?)*$", "can match nothing"),
        ]
        for (p, want) in cases {
            XCTAssertThrowsError(try grammar(p), p) { XCTAssertTrue("\($0)".contains(want), "\(p): \($0)") }
        }
        // pattern beside lengths or an enforced format; not a string
        for schema in [#"{"type": "string", "pattern": "a", "maxLength": 3}"#, #"{"type": "string", "pattern": "a", "format": "date"}"#,
                       #"{"type": "string", "pattern": 3}"#, #"{"enum": ["a"], "pattern": "b"}"#] {
            XCTAssertThrowsError(try JSONSchemaGrammar.grammar(schema: try JSONValue.parse(schema)), schema)
        }
    }
}

/// A seeded generator: the same random strings every run.
struct Xorshift: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

// Grammars: GBNF text read into a Grammar accepts exactly its sentences' prefixes (hand-made
// cases, and a JSON grammar against JSONPrefix on random edits); the mask equals a full check of
// every token at every byte of a document; JSON Schemas become grammars whose complete texts
// Foundation parses and the schema accepts; bad grammars and schemas are errors that say where.
import Foundation
import XCTest
@testable import HMSTCore

final class GrammarTests: XCTestCase {
    /// Whether text is a prefix of a sentence, and a whole one.
    func check(_ g: Grammar, _ text: String) throws -> (ok: Bool, complete: Bool) {
        try check(g, Array(text.utf8))
    }

    func check(_ g: Grammar, _ bytes: [UInt8]) throws -> (ok: Bool, complete: Bool) {
        let c = try GrammarConstraint(grammar: g, tokenizer: JSONConstraintTests.PiecesTokenizer([]))
        let ok = c.acceptBytes(bytes)
        return (ok, ok && c.canEnd)
    }

    func testSentencesPrefixesAndRefusals() throws {
        let arithmetic = try Grammar.parse(gbnf: """
            # sums of numbers and brackets
            root ::= expr
            expr ::= term (("+" | "-") term)*
            term ::= [0-9]+ | "(" expr ")"
            """)
        for w in ["1", "12+3", "(1-2)+((3))", "007"] {
            XCTAssertTrue(try check(arithmetic, w).complete, w)
            for cut in 1..<w.count { XCTAssertTrue(try check(arithmetic, String(w.prefix(cut))).ok, "\(cut) of \(w)") }
        }
        for w in ["(1", "1+", "((2)"] { XCTAssertEqual(try check(arithmetic, w).complete, false, w); XCTAssertTrue(try check(arithmetic, w).ok) }
        for w in ["+1", "1++2", "()", "1)", "a"] { XCTAssertFalse(try check(arithmetic, w).ok, w) }

        let counts = try Grammar.parse(gbnf: #"root ::= "ab"{2,3} [xyz]? "!"{0,}"#)
        for w in ["abab", "ababab", "ababx", "abababz!!!", "abab!"] { XCTAssertTrue(try check(counts, w).complete, w) }
        for w in ["ab", "aba"] { XCTAssertEqual(try check(counts, w).complete, false, w) }
        for w in ["abababab", "ababxy", "abab!x", "abc"] { XCTAssertFalse(try check(counts, w).ok, w) }

        // classes: negated, ranges, escapes, any character, multi-byte code points
        let chars = try Grammar.parse(gbnf: #"""
            root ::= [^a-c\n] [\x41-\x43] "\u00e9\t" . "東京" [\[\]\-] ws
            ws ::= | " " ws
            """#)
        XCTAssertTrue(try check(chars, "zBé\t😀東京-  ").complete)
        XCTAssertTrue(try check(chars, "éAé\t\n東京]").complete)
        for w in ["aBé\t.東京-", "zDé\t.東京-", "zBe\t.東京-", "zBé\t.東都-", "zBé\t.東京x", "\nBé\t.東京-"] {
            XCTAssertFalse(try check(chars, w).ok, w)
        }
        // a character cut short fits while its first bytes can still become an allowed one
        let cut = Array("zBé\t😀東".utf8)
        XCTAssertTrue(try check(chars, Array(cut.dropLast(1))).ok)
        XCTAssertFalse(try check(chars, Array("zBé\t😀".utf8) + [0xE4, 0xB8]).ok)   // 丁..両 are not 東
        // bytes that are not UTF-8 never fit, even where any character may come
        for bad: [UInt8] in [[0x80], [0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE0, 0x80]] {
            XCTAssertFalse(try check(chars, Array("zBé\t".utf8) + bad).ok, "\(bad)")
        }
    }

    func testErrorsNameTheProblemAndWhere() {
        let cases: [(String, String)] = [
            ("", "empty"),
            ("top ::= \"a\"", "no rule named 'root'"),
            ("root ::= \"a\" b", "rule 'b' is used but not defined"),
            ("root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice"),
            ("root ::= root \"a\" | \"b\"", "left-recursive (root -> root)"),
            ("root ::= x \"a\"\nx ::= y?\ny ::= root", "left-recursive"),
            ("root ::= (\"a\"?)*", "left-recursive"),
            ("root ::= \"abc", "line 1, column 10: unterminated string literal"),
            ("root ::= \"a\\q\"", "unknown escape '\\q'"),
            ("root ::= \"a\"{1001}", "repetition count above 1000"),
            ("root ::= \"a\"{3,2}", "the most is below the least"),
            ("root ::= * \"a\"", "'*' must follow something to repeat"),
            ("root ::= []", "empty character class"),
            ("root ::= (\"a\" | \"b\"", "expected ')'"),
            ("root ::= [a-", "unterminated character class"),
            ("root ::= [z-a]", "range end below its start"),
            ("root ::= \"\\xZZ\"", "expected 2 hex digits"),
            ("root ::= \"\\uD800\"", "not a Unicode scalar"),
            ("root = \"a\"", "expected '::=' after rule name 'root'"),
            ("root ::= \"a\" @", "line 1, column 14: unexpected '@'"),
            ("root ::= " + String(repeating: "(", count: 65) + "\"a\"" + String(repeating: ")", count: 65), "groups nested deeper than 64"),
            ("root ::= " + String(repeating: "\"" + String(repeating: "x", count: 900) + "\"{1000} ", count: 5), "expand to more than 4000000 elements"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try Grammar.parse(gbnf: text), text) { e in
                XCTAssertTrue("\(e)".contains(expected), "\(text): \(e)")
                XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
            }
        }
    }

    /// Long chains of rules (from a big grammar file) are checked and expanded without recursion;
    /// a left-recursive cycle through all of them is still found.
    func testLongRuleChainsNeedNoDeepStack() throws {
        let n = 50_000
        var text = "root ::= r0\n"
        for i in 0..<n { text += "r\(i) ::= r\(i + 1)\n" }
        let g = try Grammar.parse(gbnf: text + "r\(n) ::= \"z\"\n")
        XCTAssertTrue(try check(g, "z").complete)
        XCTAssertFalse(try check(g, "y").ok)
        XCTAssertThrowsError(try Grammar.parse(gbnf: text + "r\(n) ::= \"\" r0 \"z\"\n")) { e in
            XCTAssertTrue("\(e)".contains("left-recursive"), "\(e)")
        }
        // a chain that is empty all the way: found empty in one pass, not one pass per rule
        let t0 = Clock.nowMs()
        let empty = try Grammar.parse(gbnf: text + "r\(n) ::= \"\"\n")
        XCTAssertTrue(try check(empty, "").complete)
        XCTAssertLessThan(Clock.nowMs() - t0, 20_000)
    }

    func testAmbiguityNamesAndDeadEnds() throws {
        // two ways to read the same text merge into one stack, however long the text
        let twice = try Grammar.parse(gbnf: #"root ::= ("a" | "a") root "c" | "z""#)
        let deep = String(repeating: "a", count: 40) + "z" + String(repeating: "c", count: 40)
        XCTAssertTrue(try check(twice, deep).complete)
        XCTAssertFalse(try check(twice, String(repeating: "a", count: 40) + "zc").complete)
        // empty rules whose ways multiply are refused at once, not expanded for ever
        var chain = "a0 ::= \"\"\n"
        for i in 1...24 { chain += "a\(i) ::= a\(i - 1) a\(i - 1)\n" }
        XCTAssertThrowsError(try Grammar.parse(gbnf: chain + "root ::= a24 \"x\"")) { e in
            XCTAssertTrue("\(e)".contains("too ambiguous"), "\(e)")
        }
        // a generated rule never takes a name the grammar uses
        let named = try Grammar.parse(gbnf: "root ::= root-2 \"a\"* (\"b\")\nroot-2 ::= \"b\"\n")
        XCTAssertTrue(try check(named, "baab").complete)
        XCTAssertFalse(try check(named, "aa").ok)
        XCTAssertTrue(named.ruleNames.contains { $0.hasPrefix("root(") })
        // a negated class whose ranges touch: a lead byte that can only become excluded characters is refused
        let gap = try Grammar.parse(gbnf: #"root ::= [^\u1000-\u17FF\u1800-\u1FFF]"#)
        XCTAssertFalse(try check(gap, [0xE1]).ok)
        XCTAssertTrue(try check(gap, [0xE2]).ok)
        // no token can go on: the mask allows nothing, not even the end (the text is unfinished)
        let c = try GrammarConstraint(gbnf: #"root ::= "a" "b""#, tokenizer: JSONConstraintTests.PiecesTokenizer([Array("a".utf8), Array("c".utf8)]))
        c.accept(0)
        var logits: [Float] = [0, 0, 0]
        XCTAssertFalse(logits.withUnsafeMutableBufferPointer { c.mask($0, eos: [2]) })
        XCTAssertEqual(logits, [-.infinity, -.infinity, -.infinity])
        XCTAssertFalse(c.isComplete)
        // a whole sentence with nothing more to come and no end-of-text token to sample ends as eos
        let whole = try GrammarConstraint(gbnf: #"root ::= "a" "b"?"#, tokenizer: JSONConstraintTests.PiecesTokenizer([Array("a".utf8), Array("c".utf8)]))
        whole.accept(0)
        logits = [0, 0]
        XCTAssertFalse(logits.withUnsafeMutableBufferPointer { whole.mask($0, eos: []) })
        XCTAssertTrue(whole.canEnd && !whole.isComplete)
        // compacting the arena changes no mask
        let json = try Grammar.parse(gbnf: GrammarTests.jsonObjectGBNF)
        var rng = RNG(seed: 2)
        let pieces: [[UInt8]] = (0..<300).map { _ in (0..<(1 + Int(rng.next() % 3))).map { _ in Array(#"{}[]":,\-.0123456789eEtrufalsnab "#.utf8)[Int(rng.next() % 33)] } }
        let plain = try GrammarConstraint(grammar: json, tokenizer: JSONConstraintTests.PiecesTokenizer(pieces))
        let compacting = try GrammarConstraint(grammar: json, tokenizer: JSONConstraintTests.PiecesTokenizer(pieces))
        compacting.compactAbove = 8
        for b in Array(#"{"a": [1, {"b": [true, "x"]}], "c": -2.5}"#.utf8) {
            var l1 = [Float](repeating: 0, count: pieces.count), l2 = l1
            _ = l1.withUnsafeMutableBufferPointer { plain.mask($0, eos: []) }
            _ = l2.withUnsafeMutableBufferPointer { compacting.mask($0, eos: []) }
            XCTAssertEqual(l1, l2)
            XCTAssertTrue(plain.acceptBytes([b]) && compacting.acceptBytes([b]))
            XCTAssertEqual(plain.canEnd, compacting.canEnd)
        }
        XCTAssertTrue(compacting.isComplete)
        // a refused token accepted anyway breaks it: nothing is allowed after, and it is not complete
        let b = try GrammarConstraint(gbnf: #"root ::= "a""#, tokenizer: JSONConstraintTests.PiecesTokenizer([Array("a".utf8), Array("c".utf8)]))
        b.accept(1)
        logits = [0, 0, 0]
        XCTAssertFalse(logits.withUnsafeMutableBufferPointer { b.mask($0, eos: [2]) })
        XCTAssertFalse(b.isComplete)
    }

    /// A JSON grammar in GBNF and JSONPrefix (a hand-written recognizer) agree on every prefix of
    /// random edits of documents (edits that make long whitespace runs are left out: JSONPrefix caps them).
    static let jsonObjectGBNF = #"""
        root   ::= ws object
        value  ::= object | array | string | number | "true" | "false" | "null"
        object ::= "{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"
        array  ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
        string ::= "\"" ( [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\""
        number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
        ws     ::= [ \t\n\r]{0,8}
        """#

    func testAJSONGrammarAgreesWithJSONPrefix() throws {
        let g = try Grammar.parse(gbnf: GrammarTests.jsonObjectGBNF)
        var rng = RNG(seed: 5)
        let bases = [#"{"a":[1,2,{"b":"c\n"}],"d":-1.5e3,"e":null}"#, #"{ "x" : {"y":{"z":[true,false,"\u0041é"]}}}"#]
        let alphabet = Array(#"{}[]":,-+.0123456789eEtrufalsn\ "#.utf8) + [0x0A, 0xC3, 0xA9, 0x7F, 0x1F]
        var agreedComplete = 0, refused = 0
        for i in 0..<1500 {
            var bytes = Array(bases[i % 2].utf8)
            JSONConstraintTests.randomEdits(&bytes, alphabet: alphabet, rng: &rng)
            var p = JSONPrefix()
            let ok = p.feed(bytes)
            let mine = try check(g, bytes)
            XCTAssertEqual(mine.ok, ok, String(decoding: bytes, as: UTF8.self))
            XCTAssertEqual(mine.complete, ok && p.isComplete, String(decoding: bytes, as: UTF8.self))
            if mine.complete { agreedComplete += 1 }
            if !ok { refused += 1 }
        }
        XCTAssertGreaterThan(agreedComplete, 50)
        XCTAssertGreaterThan(refused, 300)
    }

    /// The mask's walk of the sorted vocabulary allows exactly the tokens that feeding each
    /// token's bytes to the state allows, at every byte of documents (pieces cut UTF-8 characters).
    func testTheMaskEqualsCheckingEveryTokenInFull() throws {
        var rng = RNG(seed: 9)
        let alphabet = Array(#"{}[]":,\-.0123456789eEtrufalsnab "#.utf8) + [0x0A, 0x5C, 0xC3, 0xA9, 0xE6, 0x9D, 0xB1, 0x1F]
        var pieces: [[UInt8]] = (0..<1200).map { _ in (0..<(1 + Int(rng.next() % 4))).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] } }
        pieces += [[], Array("{\"".utf8), Array("\"a".utf8), [0xC3], [0xA9, 0x22]]
        let tok = JSONConstraintTests.PiecesTokenizer(pieces)
        let schema = try JSONValue.parse(#"{"type":"object","properties":{"a\u00e9b":{"type":"array","items":{"type":["number","string"]}},"n":{"type":"integer"},"k":{"enum":[true,"x"]}},"required":["n"]}"#)
        let grammars = [(try Grammar.parse(gbnf: GrammarTests.jsonObjectGBNF), #"{"a\u00e9b": [1, -2.5e3, "x\"y é", {"k": true}], "東": null, "n": 0}"#),
                        (try JSONSchemaGrammar.grammar(schema: schema), #"{"aéb":[1,"é\"",2e5],"n":-3,"k":"x"}"#)]
        for (g, doc) in grammars {
            let c = try GrammarConstraint(grammar: g, tokenizer: tok)
            var sofar: [UInt8] = []
            for b in Array(doc.utf8) {
                var logits = [Float](repeating: 0, count: pieces.count)
                logits[7] = -.infinity   // a banned token stays banned
                _ = logits.withUnsafeMutableBufferPointer { c.mask($0, eos: []) }
                for (i, piece) in pieces.enumerated() {
                    let full = try i != 7 && !piece.isEmpty && check(g, sofar + piece).ok
                    XCTAssertEqual(logits[i] > -.infinity, full, "token \(piece) after \(String(decoding: sofar, as: UTF8.self))")
                }
                sofar.append(b)
                XCTAssertTrue(c.acceptBytes([b]), String(decoding: sofar, as: UTF8.self))
            }
            XCTAssertTrue(c.isComplete)
            // complete, nothing may follow: only the end of text
            var logits = [Float](repeating: 0, count: pieces.count + 1)
            XCTAssertTrue(logits.withUnsafeMutableBufferPointer { c.mask($0, eos: [Int32(pieces.count)]) })
            XCTAssertEqual(logits.indices.filter { logits[$0] > -.infinity }, [pieces.count])
        }
    }

    func testSchemasAcceptWhatTheyDescribe() throws {
        let schema = #"""
            {"type": "object",
             "properties": {
               "name": {"type": "string", "minLength": 1, "maxLength": 8},
               "age": {"type": "integer"},
               "tags": {"type": "array", "items": {"enum": ["a", "b\"c", 3]}, "minItems": 1, "maxItems": 2},
               "score": {"type": ["number", "null"]},
               "kind": {"const": {"k": [1, "x"]}},
               "next": {"$ref": "#/$defs/node"},
               "any": {}
             },
             "required": ["name", "age"],
             "additionalProperties": false,
             "$defs": {"node": {"type": "object", "properties": {"v": {"type": "boolean"}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["v", "next"]}}}
            """#
        let g = try JSONSchemaGrammar.grammar(schemaText: schema)
        let good = [#"{"name":"x","age":3}"#,
                    #"{ "name" : "ab cd", "age" : -12, "tags": ["b\"c", 3], "score": null }"#,
                    #"{"name":"é","age":0,"score":-1.5e-3,"kind":{"k":[1,"x"]},"next":{"v":true,"next":{"v":false,"next":null}}}"#,
                    #"{"name":"x","age":1,"any":[{"q":[]},"z"]}"#,
                    "{\n  \"name\": \"x\",\n  \"age\": 1\n}"]
        for w in good {
            XCTAssertTrue(try check(g, w).complete, w)
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(w.utf8)), w)
        }
        let bad = [#"{"age":3,"name":"x"}"#,            // order: the schema's
                   #"{"name":"x"}"#,                     // age is required
                   #"{"name":"","age":1}"#,              // minLength
                   #"{"name":"123456789","age":1}"#,     // maxLength
                   #"{"name":"x","age":1.5}"#,           // integer
                   #"{"name":"x","age":1,"tags":[]}"#,   // minItems
                   #"{"name":"x","age":1,"tags":["a","a","a"]}"#,
                   #"{"name":"x","age":1,"tags":["c"]}"#,
                   #"{"name":"x","age":1,"other":1}"#,   // additionalProperties false
                   #"{"name":"x","age":1,"kind":{"k":[1]}}"#,
                   #"{"name":"x","age":1,"next":{"v":true}}"#,
                   #"{"name":"x","age":1,"score":"1"}"#,
                   #"{"name":"x","age":012}"#,
                   #"{"name":"x","age":1} "#]
        for w in bad {
            let r = try check(g, w)
            XCTAssertFalse(r.complete, w)
        }
        // without properties: any members; additionalProperties as a schema types them
        let free = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"object"}"#)
        XCTAssertTrue(try check(free, #"{"a":[1,{"b":null}],"c":"d"}"#).complete)
        let typed = try JSONSchemaGrammar.grammar(schemaText: #"{"properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}}"#)
        XCTAssertTrue(try check(typed, #"{"b":"x","c":"y"}"#).complete)
        XCTAssertTrue(try check(typed, #"{"a":1,"b":"x"}"#).complete)
        XCTAssertFalse(try check(typed, #"{"a":1,"b":2}"#).ok)
        let tuple = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}]}"#)
        XCTAssertTrue(try check(tuple, #"["a", 1]"#).complete)
        XCTAssertFalse(try check(tuple, #"["a", 1, 2]"#).ok)
        // a bare schema ({} or true) is any JSON value; the texts are whole values, nothing after
        // required without properties: those members first, then any others
        let ids = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"object","required":["id"]}"#)
        XCTAssertTrue(try check(ids, #"{"id":1,"x":2}"#).complete)
        XCTAssertFalse(try check(ids, #"{"x":2}"#).complete)
        // nullable beside $ref adds null
        let maybe = try JSONSchemaGrammar.grammar(schemaText: ##"{"$ref":"#/$defs/n","nullable":true,"$defs":{"n":{"type":"integer"}}}"##)
        XCTAssertTrue(try check(maybe, "null").complete)
        XCTAssertTrue(try check(maybe, "12").complete)
        // type beside enum keeps the values of that type
        let typedEnum = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"string","enum":["a",1,"b"]}"#)
        XCTAssertTrue(try check(typedEnum, #""b""#).complete)
        XCTAssertFalse(try check(typedEnum, "1").ok)
        let any = try JSONSchemaGrammar.grammar(schemaText: "true")
        for w in ["1", "\"s\"", "[1,{}]", "null"] { XCTAssertTrue(try check(any, w).complete, w) }
    }

    /// Integer bounds: every integer in a window is accepted exactly when it is within them.
    func testIntegerBoundsAcceptExactlyTheRange() throws {
        let cases: [(String, ClosedRange<Int>)] = [
            (#""minimum":15,"maximum":233"#, 15...233), (#""minimum":-120,"maximum":-7"#, -120 ... -7),
            (#""minimum":-19,"maximum":101"#, -19...101), (#""exclusiveMinimum":0,"exclusiveMaximum":10"#, 1...9),
            (#""minimum":0"#, 0...Int.max), (#""maximum":-3"#, Int.min ... -3), (#""minimum":7,"maximum":7"#, 7...7),
            (#""minimum":0.5,"maximum":99.9"#, 1...99), (#""minimum":100,"maximum":999"#, 100...999), (#""maximum":42"#, Int.min...42),
            (#""minimum":3,"exclusiveMinimum":true,"maximum":9,"exclusiveMaximum":true"#, 4...8), (#""exclusiveMaximum":0.5"#, Int.min...0),
        ]
        for (bounds, range) in cases {
            let g = try JSONSchemaGrammar.grammar(schemaText: "{\"type\":\"integer\",\(bounds)}")
            for v in -300...1100 {
                XCTAssertEqual(try check(g, String(v)).complete, range.contains(v), "\(bounds): \(v)")
            }
            XCTAssertFalse(try check(g, "-0").complete && !range.contains(0), bounds)
            XCTAssertFalse(try check(g, "012").complete, bounds)
        }
        // bounds past 2^53 are exact
        let exact = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"integer","minimum":9007199254740993}"#)
        XCTAssertFalse(try check(exact, "9007199254740992").complete)
        XCTAssertTrue(try check(exact, "9007199254740993").complete)
        // open ends reach the 16-digit integers and no further
        let big = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"integer","minimum":5}"#)
        XCTAssertTrue(try check(big, "9999999999999999").complete)
        XCTAssertFalse(try check(big, "10000000000000000").ok)
        XCTAssertTrue(try check(big, "123456789").complete)
        // formats
        let dates = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"array","items":{"anyOf":[{"type":"string","format":"date-time"},{"type":"string","format":"uuid"}]}}"#)
        XCTAssertTrue(try check(dates, #"["2024-02-29T23:59:60Z", "123e4567-e89b-12d3-a456-426614174000", "1999-12-31T00:00:00.123+05:30"]"#).complete == false)
        XCTAssertTrue(try check(dates, #"["2024-02-29T23:59:59Z", "123e4567-e89b-12d3-a456-426614174000", "1999-12-31T00:00:00.123+05:30"]"#).complete)
        for bad in [#"["2024-13-01T00:00:00Z"]"#, #"["2024-01-01 00:00:00Z"]"#, #"["123e4567-e89b-12d3-a456-42661417400"]"#,
                    #"["2024-04-31T00:00:00Z"]"#, #"["2024-02-30T00:00:00Z"]"#] {
            XCTAssertFalse(try check(dates, bad).complete, bad)
        }
        let other = try JSONSchemaGrammar.grammar(schemaText: #"{"type":"string","format":"email"}"#)
        XCTAssertTrue(try check(other, #""not an email""#).complete)   // an annotation
    }

    func testSchemaErrorsNameTheKeywordAndPlace() {
        let cases: [(String, String)] = [
            (#"{"type":"array","uniqueItems":true}"#, "at the root: 'uniqueItems' is not supported"),
            (#"{"type":"string","pattern":"^(?=a)"}"#, "at the root: pattern '^(?=a)': lookarounds"),
            (#"{"properties":{"a":{"uniqueItems":true}}}"#, "at /properties/a: 'uniqueItems' is not supported"),
            (#"{"$ref":"https://example.com/s.json"}"#, "$ref 'https://example.com/s.json' is not supported"),
            (##"{"$ref":"#/$defs/missing"}"##, "names nothing"),
            (#"{"type":"strin"}"#, "unknown type 'strin'"),
            (#"{"type":"array","maxItems":5000}"#, "maxItems 5000 is above 1000"),
            (#"{"type":"string","minLength":3,"maxLength":2}"#, "maxLength 2 is below minLength 3"),
            (#"{"allOf":[{"type":"string"},{"maxLength":3}]}"#, "allOf with more than one schema"),
            (#"{"enum":[]}"#, "enum must be a non-empty array"),
            (##"{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}}}"##, "left-recursive"),
            (#"{"type":"object""#, "not valid JSON"),
            ("false", "schema false accepts nothing"),
            (#"{"type":"object","properties":{"a":{"type":"integer"}},"anyOf":[{"required":["a"]}]}"#, "'type' beside 'anyOf' is not supported"),
            (#"{"anyOf":[{"type":"string"}],"oneOf":[{"type":"integer"}]}"#, "'anyOf' beside 'oneOf'"),
            (#"{"enum":["a","bbbb"],"maxLength":2}"#, "'maxLength' beside 'enum'"),
            (##"{"$ref":"#/$defs/a","maxItems":1,"$defs":{"a":{"type":"array"}}}"##, "'maxItems' beside '$ref'"),
            (#"{"type":"any"}"#, "unknown type 'any'"),
            (#"{"type":"integer","enum":["a"]}"#, "no value of enum has the type given"),
            (#"{"type":"number","minimum":1e20}"#, "no number (of at most 16 integer digits) is within minimum"),
            (#"{"type":"number","maximum":0.30000000000000004}"#, "needs more than 16 fraction digits"),
            (#"{"type":"number","minimum":5,"maximum":4.5}"#, "no number"),
            (#"{"type":"number","minimum":"a"}"#, "minimum must be a finite number"),
            (#"{"type":"integer","minimum":5,"maximum":4}"#, "no integer (of at most 16 digits) is within the bounds"),
            (#"{"type":"integer","minimum":"a"}"#, "minimum must be a number"),
            (#"{"type":"string","format":"date","maxLength":3}"#, "'maxLength' beside a 'format'"),
            (#"{"type":"integer","enum":[1,50],"maximum":10}"#, "'maximum' beside 'enum'"),
            (#"{"anyOf":[{"type":"integer"},{"type":"null"}],"minimum":0}"#, "'minimum' beside 'anyOf'"),
            (#"{"enum":["x"],"format":"date"}"#, "'format' beside 'enum'"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try JSONSchemaGrammar.grammar(schemaText: text), text) { e in
                XCTAssertTrue("\(e)".contains(expected), "\(text): \(e)")
            }
        }
    }

    /// Random GBNF-ish text: an error or a grammar, never a trap.
    func testTheParserSurvivesRandomText() {
        var rng = RNG(seed: 21)
        let alphabet = Array("root ::= a|()[]^-*+?{},.\"\\xu0F9#\n é".utf8)
        let seeds = [GrammarTests.jsonObjectGBNF, #"root ::= "ab"{2,3} [^x-z]? ("c" | d)*"# + "\nd ::= [\\u00e9] \".\""]
        var parsed = 0
        for i in 0..<3000 {
            var bytes = Array(seeds[i % 2].utf8)
            if i % 3 == 0 { bytes = (0..<Int(rng.next() % 40)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] } }
            JSONConstraintTests.randomEdits(&bytes, alphabet: alphabet, rng: &rng, maxEdits: 4)
            if let g = try? Grammar.parse(gbnf: String(decoding: bytes, as: UTF8.self)) {
                parsed += 1
                _ = try? check(g, "{\"a\": [1, \"x\"]}")
            }
        }
        XCTAssertGreaterThan(parsed, 100)
    }

    /// Random schemas (keywords with values of every kind, nested, refs into themselves): an
    /// error that says where, or a grammar that reads; never a trap or a hang.
    func testRandomSchemasConvertOrSayWhy() throws {
        var rng = RNG(seed: 33)
        let keys = ["type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
                    "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "nullable", "description", "$defs", "x",
                    "minimum", "maximum", "exclusiveMinimum", "format"]
        let types = ["string", "number", "integer", "boolean", "null", "object", "array", "strin"]
        func value(_ depth: Int) -> JSONValue {
            switch rng.next() % (depth > 3 ? 5 : 8) {
            case 0: return .integer(Int64(rng.next() % 5) - 1)
            case 1: return .string(rng.next() % 2 == 0 ? types[Int(rng.next() % UInt64(types.count))] : ["#", "#/$defs/a", "#/properties/p", "a\"b", "date", "uuid"][Int(rng.next() % 6)])
            case 2: return .bool(rng.next() % 2 == 0)
            case 3: return .null
            case 4: return .number(1.5)
            case 5: return .array((0..<Int(rng.next() % 3)).map { _ in schema(depth + 1) })
            default: return schema(depth + 1)
            }
        }
        func schema(_ depth: Int) -> JSONValue {
            var members: [(String, JSONValue)] = []
            for _ in 0..<Int(rng.next() % 4) {
                let k = keys[Int(rng.next() % UInt64(keys.count))]
                guard !members.contains(where: { $0.0 == k }) else { continue }
                switch k {
                case "properties", "$defs":
                    members.append((k, .object((0..<Int(rng.next() % 3)).map { i in (["p", "a", "q\"u"][i], schema(depth + 1)) })))
                case "required": members.append((k, .array([.string("p"), .string("z")])))
                case "type": members.append((k, .string(types[Int(rng.next() % UInt64(types.count))])))
                default: members.append((k, value(depth)))
                }
            }
            return .object(members)
        }
        var converted = 0, refused = 0
        for _ in 0..<3000 {
            let s = schema(0)
            do {
                let g = try JSONSchemaGrammar.grammar(schema: s)
                converted += 1
                _ = try check(g, #"{"p": [1, "x", null], "a": {"q"u": true}}"#)
            } catch let e as HMSTError {
                refused += 1
                XCTAssertEqual(e.status, .invalidArgument)
                XCTAssertTrue(e.message.hasPrefix("json schema: "), e.message)
            }
        }
        XCTAssertGreaterThan(converted, 300)
        XCTAssertGreaterThan(refused, 300)
    }

    func testGenerationUnderASchemaGivesValidJSON() throws {
        let d = DecoderDims(C: 32, H: 4, KV: 2, Dh: 8, F: 48, E: 8, K: 2, V: 257, L: 2, eps: 1e-5,
                            ropeTheta: 10000, maxPositions: 256, tiedEmbeddings: true)
        let (w, _) = try RandomWeights.make(dims: d, seed: 3, std: 0.5)
        let s = try Session(decoder: Decoder(dims: d, weights: w), params: SessionParams())
        let g = try JSONSchemaGrammar.grammar(schemaText: #"""
            {"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer"},"tag":{"enum":["red","green"]},
             "xs":{"type":"array","items":{"type":"integer"},"maxItems":3}},"required":["ok","tag"],"additionalProperties":false}
            """#)
        var closed = 0
        for seed in 0..<10 {
            s.reset()
            var req = TextGenerationRequest()
            req.grammar = g
            req.maxTokens = 80
            req.sampling.temperature = 1
            req.sampling.topK = 0
            req.sampling.topP = 1
            req.sampling.seed = UInt64(seed)
            req.sampling.logitBias = [Int32(UInt8(ascii: "}")): 3, Int32(UInt8(ascii: "]")): 3, Int32(UInt8(ascii: ",")): 2]
            let r = try s.generate(prompt: Array("json:".utf8), tokenizer: ByteTokenizer(), req)
            let text = String(decoding: r.text, as: UTF8.self)
            XCTAssertTrue(try check(g, r.text).ok, text)
            guard r.stats.stopReason == .eos else { XCTAssertEqual(r.stats.stopReason, .maxTokens); continue }
            closed += 1
            let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.text)) as? [String: Any], text)
            XCTAssertTrue(o["ok"] is Bool, text)
            XCTAssertTrue(["red", "green"].contains(o["tag"] as? String ?? ""), text)
            XCTAssertTrue(Set(o.keys).isSubset(of: ["ok", "n", "tag", "xs"]), text)
            if let xs = o["xs"] { XCTAssertLessThanOrEqual((xs as? [Any])?.count ?? 99, 3, text) }
        }
        XCTAssertGreaterThan(closed, 0)
        var both = TextGenerationRequest()
        both.grammar = g
        both.jsonObject = true
        XCTAssertThrowsError(try s.generate(prompt: Array("x".utf8), tokenizer: ByteTokenizer(), both))
    }

    /// A grammar with triggers through Session.generate: the text before the trigger is what
    /// unconstrained sampling writes (same seed, same tokens), and from the trigger on the text
    /// is a prefix of a sentence (whole when generation ended at eos).
    func testTriggeredGrammarLeavesTextFreeUntilTheTrigger() throws {
        let d = DecoderDims(C: 32, H: 4, KV: 2, Dh: 8, F: 48, E: 8, K: 2, V: 257, L: 2, eps: 1e-5,
                            ropeTheta: 10000, maxPositions: 256, tiedEmbeddings: true)
        let (w, _) = try RandomWeights.make(dims: d, seed: 3, std: 0.5)
        let s = try Session(decoder: Decoder(dims: d, weights: w), params: SessionParams())
        let eager = try Grammar.parse(gbnf: #"root ::= "@" [ ]? "{" [a-c]{1,6} ":" [0-9]{1,3} "}""#)
        var lazy = eager
        lazy.triggers = GrammarTriggers(words: ["@"])
        XCTAssertTrue(try lazy.constraint(tokenizer: ByteTokenizer()) is TriggeredConstraint)
        XCTAssertTrue(try eager.constraint(tokenizer: ByteTokenizer()) is GrammarConstraint)
        var triggered = 0, whole = 0
        for seed in 0..<12 {
            var req = TextGenerationRequest()
            req.maxTokens = 60
            req.sampling.temperature = 1
            req.sampling.topK = 0
            req.sampling.topP = 1
            req.sampling.seed = UInt64(seed)
            req.sampling.logitBias = [Int32(UInt8(ascii: "@")): 4, Int32(UInt8(ascii: "}")): 4]
            s.reset()
            let free = try s.generate(prompt: Array("call:".utf8), tokenizer: ByteTokenizer(), req)
            req.grammar = lazy
            s.reset()
            let held = try s.generate(prompt: Array("call:".utf8), tokenizer: ByteTokenizer(), req)
            guard let at = held.text.firstIndex(of: UInt8(ascii: "@")) else {
                XCTAssertEqual(held.text, free.text, "no trigger: the same text as without the grammar")
                continue
            }
            triggered += 1
            XCTAssertEqual(Array(held.text[...at]), Array(free.text.prefix(at + 1)), "up to the trigger: the free text")
            let call = try check(eager, Array(held.text[at...]))
            XCTAssertTrue(call.ok, String(decoding: held.text, as: UTF8.self))
            if held.stats.stopReason == .eos { XCTAssertTrue(call.complete); whole += 1 }
        }
        XCTAssertGreaterThan(triggered, 0)
        XCTAssertGreaterThan(whole, 0)
    }
}

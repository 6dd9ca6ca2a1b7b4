// JSONPrefix accepts exactly the prefixes of JSON texts that are one object (checked against
// hand-made cases, every prefix of valid documents, and random byte edits judged by Foundation's
// parser), and generation under JSONConstraint yields a JSON object or a prefix of one.
import Foundation
import XCTest
@testable import HMSTCore

final class JSONConstraintTests: XCTestCase {
    func accepts(_ text: String) -> (ok: Bool, complete: Bool) {
        var p = JSONPrefix()
        let ok = p.feed(Array(text.utf8))
        return (ok, ok && p.isComplete)
    }

    func testObjectsArePrefixesAndCompleteOthersAreNot() {
        let whole = [#"{}"#, #"{"a":1}"#, #" { "a" : [1, -2.5e+3, 0, true, false, null, "x\"\\\/\n\u00e9"], "b": {"c": []} }"#,
                     #"{"k":0.5,"n":-0,"e":1E9,"s":"東京 naïve"}"#, "{\"tab\":\"a\\tb\"}"]
        for w in whole {
            XCTAssertEqual(accepts(w).complete, true, w)
            for cut in 1..<w.utf8.count {
                let prefix = String(decoding: Array(w.utf8)[..<cut], as: UTF8.self)
                XCTAssertTrue(accepts(prefix).ok, "prefix \(cut) of \(w)")
            }
        }
        let refused = ["[]", "1", "\"s\"", "{a:1}", "{\"a\" 1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}",
                       "{\"a\":tru }", "{\"a\":nul1}", "{\"a\":1,}", "{,}", "{\"a\":[1,]}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}",
                       "{\"a\":\"line\nbreak\"}", "{}}", "{} ", "{\"a\":1]", "{\"a\":[1}", "{\"a\":" + String(repeating: " ", count: 21) + "1}"]
        for r in refused { XCTAssertFalse(accepts(r).ok, r) }
        // bytes that are not UTF-8 inside a string: a stray continuation, 0xFF, a lead byte cut short, a surrogate
        for bad: [UInt8] in [[0x80], [0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF]] {
            var p = JSONPrefix()
            XCTAssertFalse(p.feed(Array("{\"a\":\"".utf8) + bad + Array("\"}".utf8)), "\(bad)")
        }
        var good = JSONPrefix()
        XCTAssertTrue(good.feed(Array("{\"a\":\"".utf8) + [0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80] + Array("\"}".utf8)) && good.isComplete)
        // whitespace runs are capped (16, plus 4 per open container), so pretty-printed JSON passes
        XCTAssertTrue(accepts("{" + String(repeating: " ", count: 20) + "}").complete)
        XCTAssertFalse(accepts("{" + String(repeating: " ", count: 21)).ok)
        let nested: [String: Any] = ["a": ["b": ["c": ["d": ["e": [1, 2, ["f": "g"]]]]]]]
        let pretty = String(decoding: try! JSONSerialization.data(withJSONObject: nested, options: [.prettyPrinted]), as: UTF8.self)
        XCTAssertTrue(accepts(pretty).complete, pretty)
        XCTAssertTrue(accepts(pretty.replacingOccurrences(of: "  ", with: "    ")).complete)
    }

    /// 1...maxEdits random edits of bytes: a byte replaced, inserted or removed (from alphabet).
    static func randomEdits(_ bytes: inout [UInt8], alphabet: [UInt8], rng: inout RNG, maxEdits: Int = 3) {
        for _ in 0..<(1 + Int(rng.next() % UInt64(maxEdits))) where !bytes.isEmpty {
            let at = Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 3 {
            case 0: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
            case 1: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
            default: bytes.remove(at: at)
            }
        }
    }

    /// Random edits of valid documents: whatever JSONPrefix completes, Foundation parses as an object.
    func testCompletedTextsAlwaysParse() throws {
        var rng = RNG(seed: 11)
        let bases = [#"{"a":[1,2,{"b":"c\n"}],"d":-1.5e3,"e":null}"#, #"{"x":{"y":{"z":[true,false,"\u0041"]}}}"#]
        let alphabet = Array(#"{}[]":,-+.0123456789eEtrufalsn\ "#.utf8) + [0x0A, 0xC3, 0xA9]
        var completed = 0, refused = 0
        for i in 0..<4000 {
            var bytes = Array(bases[i % 2].utf8)
            JSONConstraintTests.randomEdits(&bytes, alphabet: alphabet, rng: &rng)
            var p = JSONPrefix()
            guard p.feed(bytes) else { refused += 1; continue }
            guard p.isComplete else { continue }
            completed += 1
            let parsed = try? JSONSerialization.jsonObject(with: Data(bytes))
            XCTAssertTrue(parsed is [String: Any], String(decoding: bytes, as: UTF8.self))
        }
        XCTAssertGreaterThan(completed, 100)
        XCTAssertGreaterThan(refused, 1000)
    }

    /// Tokens of random bytes (quotes, backslashes, UTF-8 pieces, letters, digits, whitespace).
    final class PiecesTokenizer: TextTokenizer, @unchecked Sendable {
        let pieces: [[UInt8]]
        init(_ pieces: [[UInt8]]) { self.pieces = pieces }
        var vocabSize: Int { pieces.count }
        var eosId: Int32? { nil }
        func encode(bytes: [UInt8]) -> [Int32] { [] }
        func decode(_ ids: [Int32]) throws -> [UInt8] { ids.flatMap { pieces[Int($0)] } }
    }

    /// The mask's shortcuts (first byte, plain string content) allow exactly the tokens that a
    /// full check of their bytes allows, at every step of a document.
    func testTheMaskEqualsCheckingEveryTokenInFull() {
        var rng = RNG(seed: 4)
        let alphabet = Array(#"{}[]":,\-.0123456789eEtrufalsnab "#.utf8) + [0x0A, 0x5C, 0xC3, 0xA9, 0xE6, 0x9D, 0xB1, 0x1F]
        var pieces: [[UInt8]] = (0..<3000).map { _ in (0..<(1 + Int(rng.next() % 4))).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] } }
        pieces.append([])
        let c = JSONConstraint(tokenizer: PiecesTokenizer(pieces))
        let doc = Array(#"{"a\u00e9b": [1, -2.5e3, "x\"y é", {"k": true}], "東": null, "n": 0}"#.utf8)
        var state = JSONPrefix()
        for b in doc {
            var logits = [Float](repeating: 0, count: pieces.count)
            _ = logits.withUnsafeMutableBufferPointer { c.mask($0, eos: []) }
            for (i, piece) in pieces.enumerated() {
                var s = state
                let full = !piece.isEmpty && s.feed(piece)
                XCTAssertEqual(logits[i] > -.infinity, full, "token \(piece) after \(state)")
            }
            XCTAssertTrue(state.feed(b), "byte \(b) after \(state)")
            // keep the constraint in step, one byte at a time, through a one-byte token
            c.acceptBytes([b])
        }
    }

    func testGenerationUnderTheConstraintIsAnObjectOrAPrefixOfOne() throws {
        let d = DecoderDims(C: 32, H: 4, KV: 2, Dh: 8, F: 48, E: 8, K: 2, V: 257, L: 2, eps: 1e-5,
                            ropeTheta: 10000, maxPositions: 256, tiedEmbeddings: true)
        let (w, _) = try RandomWeights.make(dims: d, seed: 3, std: 0.5)
        let s = try Session(decoder: Decoder(dims: d, weights: w), params: SessionParams())
        var closed = 0
        for seed in 0..<12 {
            s.reset()
            var req = TextGenerationRequest()
            req.jsonObject = true
            req.maxTokens = 60
            req.sampling.temperature = 1
            req.sampling.topK = 0
            req.sampling.topP = 1
            req.sampling.seed = UInt64(seed)
            // towards short objects, so that some close within 60 bytes
            req.sampling.logitBias = [Int32(UInt8(ascii: "}")): 4, Int32(UInt8(ascii: "\"")): 3, Int32(UInt8(ascii: "]")): 3]
            let r = try s.generate(prompt: Array("json:".utf8), tokenizer: ByteTokenizer(), req)
            var p = JSONPrefix()
            XCTAssertTrue(p.feed(r.text), String(decoding: r.text, as: UTF8.self))
            if r.stats.stopReason == .eos {
                XCTAssertTrue(p.isComplete)
                XCTAssertTrue((try? JSONSerialization.jsonObject(with: Data(r.text))) is [String: Any], String(decoding: r.text, as: UTF8.self))
                closed += 1
            } else {
                XCTAssertEqual(r.stats.stopReason, .maxTokens)
            }
        }
        XCTAssertGreaterThan(closed, 0)
        // without the constraint the same settings do not give JSON
        s.reset()
        var free = TextGenerationRequest()
        free.maxTokens = 20
        free.sampling.temperature = 0
        var p = JSONPrefix()
        XCTAssertFalse(p.feed(try s.generate(prompt: Array("json:".utf8), tokenizer: ByteTokenizer(), free).text))
    }
}

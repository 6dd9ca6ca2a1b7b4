// Malformed checkpoints: each case gets its own status and a message naming the problem, and
// random corruption of a valid file only ever throws.
import XCTest
@testable import HMSTCore

final class CheckpointErrorTests: XCTestCase {
    var dir = ""
    var good: [UInt8] = []
    var config = ""

    override func setUpWithError() throws {
        dir = "/tmp/hmst-ckpt-err-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
        let src = Golden.root + "/model/tiny_tied"
        good = try FileIO.readAll(src + "/model.safetensors")
        config = try FileIO.readText(src + "/config.json")
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    /// Writes a checkpoint with the given safetensors bytes (and config) and expects a failure.
    func expect(_ bytes: [UInt8], config cfg: String? = nil, _ status: Status, _ fragment: String,
                file: StaticString = #filePath, line: UInt = #line) {
        let d = dir + "/case\(line)"
        try? FileIO.makeDirectories(d)
        try? FileIO.writeAtomically(d + "/model.safetensors", bytes)
        try? FileIO.writeAtomically(d + "/config.json", text: cfg ?? config)
        XCTAssertThrowsError(try LanguageModel.load(path: d), file: file, line: line) { e in
            guard let h = e as? HMSTError else { return XCTFail("not an HMSTError: \(e)", file: file, line: line) }
            XCTAssertEqual(h.status, status, h.message, file: file, line: line)
            XCTAssertTrue(h.message.contains(fragment), "message \"\(h.message)\" lacks \"\(fragment)\"", file: file, line: line)
        }
    }

    /// The file with its header JSON replaced (length field updated, data kept).
    func withHeader(_ transform: (String) -> String) -> [UInt8] {
        let n = Int(good.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = String(decoding: good[8..<(8 + n)], as: UTF8.self)
        let h = Array(transform(header).utf8)
        var out = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
        out += h
        out += good[(8 + n)...]
        return out
    }

    func testEachMalformationHasItsOwnError() throws {
        expect(Array(good[0..<5]), .badFormat, "too short for the 8-byte header length")
        var b = good
        b.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(1 << 40), as: UInt64.self) }
        expect(b, .badFormat, "header length 1099511627776 is larger than the rest of the file")
        expect(withHeader { "[" + String($0.dropFirst()) }, .badFormat, "not valid JSON")
        expect(withHeader { _ in "[1, 2]" + String(repeating: " ", count: 7000) }, .badFormat, "not a JSON object")
        expect(withHeader { $0.replacingFirst("\"F32\"", with: "\"Q4\"") }, .badFormat, "unknown dtype \"Q4\"")
        expect(withHeader { $0.replacingFirst("\"shape\":[96,32]", with: "\"shape\":[96,33]") }, .badFormat, "needs")
        expect(withHeader { $0.replacingFirst("\"data_offsets\":[0,", with: "\"data_offsets\":[8,") }, .badFormat, "holds 12280 bytes")
        expect(Array(good.dropLast(4)), .badFormat, "past the data section")
        expect(good + [0, 0, 0, 0], .badFormat, "trailing bytes")
        expect(good, config: "{\"hidden_size\": 32,, }", .badFormat, "/config.json: not valid JSON: ")
        expect(good, config: config.replacingFirst("\"num_key_value_heads\": 2", with: "\"num_key_value_heads\": 3"),
               .badFormat, "not a multiple of num_key_value_heads")
        expect(good, config: config.replacingFirst("\"hidden_size\": 32", with: "\"hidden_size\": 64"),
               .badFormat, "has shape")
        expect(good, config: config.replacingFirst("\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 3"),
               .badFormat, "lacks")
        expect(good, config: config.replacingFirst("\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 1"),
               .badFormat, "does not use")
        expect(good, config: config.replacingFirst("\"model_type\": \"mixtral\"", with: "\"model_type\": \"llama\""),
               .unsupported, "model_type \"llama\"")
        expect(good, config: "{not json", .badFormat, "JSON at byte")
    }

    func testOverlapAndGapAreNamed() throws {
        // two tensors claiming the same bytes: rewrite the second tensor's offsets onto the first's
        let n = Int(good.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONValue.parse(bytes: Array(good[8..<(8 + n)]))
        let tensors = (header.object ?? []).filter { $0.0 != "__metadata__" }
        let sorted = tensors.sorted { ($0.1["data_offsets"]?.array?[0].int ?? 0) < ($1.1["data_offsets"]?.array?[0].int ?? 0) }
        let first = sorted[0], second = sorted[1]
        let fo = first.1["data_offsets"]!.serialized, so = second.1["data_offsets"]!.serialized
        let fb = first.1["data_offsets"]!.array![0].int!, sb = second.1["data_offsets"]!.array![0].int!
        let se = second.1["data_offsets"]!.array![1].int!
        XCTAssertEqual(sb, first.1["data_offsets"]!.array![1].int!)
        _ = fo
        // shift the second tensor back into the first: overlap
        let overlapped = withHeader { $0.replacingFirst(so, with: "[\(sb - 4),\(se - 4)]") }
        XCTAssertThrowsError(try overlapped.withUnsafeBytes { try SafeTensorsHeader(file: $0, source: "x") })
        let d = dir + "/ov"
        try FileIO.makeDirectories(d)
        try FileIO.writeAtomically(d + "/model.safetensors", overlapped)
        try FileIO.writeAtomically(d + "/config.json", text: config)
        XCTAssertThrowsError(try LanguageModel.load(path: d)) { e in
            let m = (e as? HMSTError)?.message ?? ""
            XCTAssertTrue(m.contains("overlaps") || m.contains("gap"), m)
        }
        XCTAssertEqual(fb, 0)
    }

    func testShardedIndexErrors() throws {
        let d = dir + "/sharded"
        try FileIO.makeDirectories(d)
        try FileIO.writeAtomically(d + "/config.json", text: config)
        try FileIO.writeAtomically(d + "/model-00001-of-00001.safetensors", good)
        let names = try good.withUnsafeBytes { try SafeTensorsHeader(file: $0, source: "x") }.tensors.map(\.name)
        func index(_ map: [(String, String)]) -> String {
            JSONValue.object([("metadata", .object([])), ("weight_map", .object(map.map { ($0.0, .string($0.1)) }))]).serialized
        }
        try FileIO.writeAtomically(d + "/model.safetensors.index.json", text: index(names.map { ($0, "model-00001-of-00001.safetensors") }))
        XCTAssertNoThrow(try LanguageModel.load(path: d))
        try FileIO.writeAtomically(d + "/model.safetensors.index.json", text: index(names.map { ($0, "model-00002-of-00002.safetensors") }))
        XCTAssertThrowsError(try LanguageModel.load(path: d)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .notFound)
            XCTAssertTrue((e as? HMSTError)?.message.contains("model-00002-of-00002") ?? false)
        }
        try FileIO.writeAtomically(d + "/model.safetensors.index.json", text: index(names.map { ($0, "../etc/passwd") }))
        XCTAssertThrowsError(try LanguageModel.load(path: d)) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("plain file name") ?? false)
        }
        var wrong = names.map { ($0, "model-00001-of-00001.safetensors") }
        wrong.append(("model.extra.weight", "model-00001-of-00001.safetensors"))
        try FileIO.writeAtomically(d + "/model.safetensors.index.json", text: index(wrong))
        XCTAssertThrowsError(try LanguageModel.load(path: d)) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("model.extra.weight") ?? false)
        }
    }

    func testRandomCorruptionOnlyThrows() throws {
        var rng = SplitMix(seed: 99)
        let n = Int(good.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var threw = 0
        for i in 0..<1500 {
            var b = good
            switch i % 3 {
            case 0:  // flip bytes in the header
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let at = Int(rng.next() % UInt64(8 + n))
                    b[at] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 1:  // truncate anywhere
                b = Array(b[0..<Int(rng.next() % UInt64(b.count))])
            default:  // a printable character in the JSON
                let at = 8 + Int(rng.next() % UInt64(n))
                b[at] = Array("{}[],:\"0123456789-e.FBU".utf8)[Int(rng.next() % 23)]
            }
            do {
                _ = try b.withUnsafeBytes { try SafeTensorsHeader(file: $0, source: "fuzz") }
            } catch is HMSTError {
                threw += 1
            }
        }
        XCTAssertGreaterThan(threw, 1000)
    }
}

extension String {
    func replacingFirst(_ a: String, with b: String) -> String {
        guard let r = range(of: a) else { return self }
        return replacingCharacters(in: r, with: b)
    }
}

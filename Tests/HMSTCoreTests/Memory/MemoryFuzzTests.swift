// Fuzzed memory directories: random byte flips, truncations and insertions in every file of a
// saved semantic and episodic memory. Loading must give a loaded memory or an HMSTError, never a
// crash; a load that succeeds must answer a search without crashing.
import Foundation
import XCTest
@testable import HMSTCore

final class MemoryFuzzTests: XCTestCase {
    func mutate(_ bytes: [UInt8], _ rng: inout RNG) -> [UInt8] {
        var b = bytes
        guard !b.isEmpty else { return [UInt8(rng.next() & 0xff)] }
        switch rng.next() % 4 {
        case 0: for _ in 0..<(1 + Int(rng.next() % 4)) { b[Int(rng.next() % UInt64(b.count))] ^= UInt8(1 << (rng.next() % 8)) }
        case 1: b = Array(b.prefix(Int(rng.next() % UInt64(b.count))))
        case 2: b.insert(UInt8(rng.next() & 0xff), at: Int(rng.next() % UInt64(b.count)))
        default: b[Int(rng.next() % UInt64(b.count))] = [UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "9"), 0][Int(rng.next() % 4)]
        }
        return b
    }

    func fuzz(_ original: String, rounds: Int, load: (String) throws -> Void) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: original).sorted()
        var rng = RNG(seed: 77)
        var loaded = 0, refused = 0
        let work = original + "-fuzz"
        for _ in 0..<rounds {
            _ = system("rm -rf '\(work)' && cp -r '\(original)' '\(work)'")
            let name = names[Int(rng.next() % UInt64(names.count))]
            let bytes = try FileIO.readAll(work + "/" + name)
            try FileIO.writeAtomically(work + "/" + name, mutate(bytes, &rng))
            do {
                try load(work)
                loaded += 1
            } catch is HMSTError {
                refused += 1
            }
        }
        _ = system("rm -rf '\(work)'")
        XCTAssertGreaterThan(refused, rounds / 2, "most corruptions are caught (loaded \(loaded))")
    }

    func testCorruptSemanticDirectories() throws {
        let dir = "/tmp/hmst-fuzz-semantic-\(getpid())"
        defer { _ = system("rm -rf '\(dir)'") }
        let mem = try SemanticMemory(dim: 8, description: "IVF2,Flat", metric: .l2)
        let ids = (0..<Int64(100)).map { $0 }
        try mem.add(vectors: MemoryTestData.vectors(ids: ids, dim: 8), metadata: MemoryTestData.metas(ids), ids: ids)
        try mem.save(directory: dir)
        try fuzz(dir, rounds: 200) { d in
            let m = try SemanticMemory.load(directory: d)
            _ = try m.search(query: MemoryTestData.vector(id: 3, dim: 8), k: 5)
        }
    }

    func testCorruptEpisodicDirectories() throws {
        let dir = "/tmp/hmst-fuzz-episodic-\(getpid())"
        defer { _ = system("rm -rf '\(dir)'") }
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 8
        let mem = try EpisodicMemory(inputSize: 4, config: cfg)
        var rng = RNG(seed: 5)
        for i in 0..<20 { try mem.add(key: (0..<8).map { _ in rng.nextGaussian() }, text: "entry \(i) \u{e9}", tokens: [1, 2, Int32(i)]) }
        try mem.save(directory: dir)
        try fuzz(dir, rounds: 200) { d in
            let m = try EpisodicMemory.load(directory: d)
            _ = try m.search(key: [Float](repeating: 1, count: 8), k: 3)
        }
    }

    /// Hand-edited files whose manifest was updated to match (size and checksum pass): each bad
    /// value is BAD_FORMAT naming the file and the line, never a silent load.
    func testEditedEntriesAreRefusedNamingTheLine() throws {
        let dir = "/tmp/hmst-edit-episodic-\(getpid())"
        defer { _ = system("rm -rf '\(dir)' '\(dir)-s'") }
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 8
        let mem = try EpisodicMemory(inputSize: 4, config: cfg)
        for i in 0..<3 { try mem.add(key: [Float](repeating: Float(i + 1), count: 8), text: "entry \(i)", tokens: [1, 2]) }
        try mem.save(directory: dir)
        let manifestPath = dir + "/" + EpisodicMemory.manifestName
        let manifest = try FileIO.readText(manifestPath)
        let entriesName = try XCTUnwrap(JSONValue.parse(manifest)["entries"]?["file"]?.string)
        let original = try FileIO.readText(dir + "/" + entriesName)
        func load(editingLine2 edit: (String) -> String) -> HMSTError? {
            var lines = original.split(separator: "\n").map(String.init)
            lines[1] = edit(lines[1])
            let text = lines.joined(separator: "\n") + "\n"
            let path = dir + "/" + entriesName
            try? FileIO.writeAtomically(path, text: text)
            guard let sum = try? FileChecksum.of(path: path), let old = try? JSONValue.parse(manifest)["entries"] else { return nil }
            var m = manifest.replacingOccurrences(of: "\"bytes\":\(old["bytes"]!.int!)", with: "\"bytes\":\(sum.bytes)")
            m = m.replacingOccurrences(of: old["checksum"]!.string!, with: String(sum.checksum, radix: 16))
            try? FileIO.writeAtomically(manifestPath, text: m)
            do { _ = try EpisodicMemory.load(directory: dir); return nil } catch { return error as? HMSTError }
        }
        XCTAssertNil(load { $0 }, "the unedited file loads")
        for (edit, says) in [({ (l: String) in l.replacingOccurrences(of: "\"importance\":0.5", with: "\"importance\":7") }, "importance 7.0 is outside [0, 1]"),
                             ({ $0.replacingOccurrences(of: "[1,2]", with: "[1,4294967298]") }, "tokens must be integers"),
                             ({ $0.replacingOccurrences(of: "[1,2]", with: "[1,-2]") }, "tokens must be integers"),
                             ({ $0.replacingOccurrences(of: "\"importance\":0.5", with: "\"importance\":NaN") }, "line 2:"),
                             ({ $0.replacingOccurrences(of: "entry 1", with: "entry\u{0}1") }, "line 2:")] {
            let e = load(editingLine2: edit)
            XCTAssertEqual(e?.status, .badFormat, says)
            XCTAssertTrue(e?.message.contains(entriesName) ?? false, "\(String(describing: e))")
            XCTAssertTrue(e?.message.contains("line 2") ?? false, "\(String(describing: e))")
            XCTAssertTrue(e?.message.contains(says) ?? false, "\(String(describing: e)) lacks \(says)")
        }

        // a semantic manifest whose FAISS description is garbage names the manifest and FAISS's
        // reason, without its C++ source location
        let sdir = dir + "-s"
        let sem = try SemanticMemory(dim: 4, description: "Flat", metric: .l2)
        _ = try sem.add(vectors: [1, 0, 0, 0], metadata: [MemoryMetadata(text: "x", source: "t", timestamp: 0)])
        try sem.save(directory: sdir)
        let sm = sdir + "/" + SemanticMemory.manifestName
        try FileIO.writeAtomically(sm, text: try FileIO.readText(sm).replacingOccurrences(of: "\"description\":\"Flat\"", with: "\"description\":\"IVFxx,Garbage\""))
        XCTAssertThrowsError(try SemanticMemory.load(directory: sdir)) { e in
            let m = (e as? HMSTError)?.message ?? ""
            XCTAssertEqual((e as? HMSTError)?.status, .badFormat, m)
            XCTAssertTrue(m.contains(sm) && m.contains("could not parse index string IVFxx,Garbage"), m)
            XCTAssertFalse(m.contains(".cpp:"), m)
        }
    }
}

// The data pipeline with a byte-level stand-in encoder (id = byte, EOS = 256), so these tests
// exercise sharding, splitting and loading independently of BPE.
import XCTest
@testable import HMSTCore

struct ByteEncoder: DocumentEncoder {
    var vocabSize: Int { 257 }
    var eosId: Int32? { 256 }
    func encodeBatch(_ documents: [[UInt8]]) -> [[Int32]] { documents.map { $0.map(Int32.init) } }
}

final class DataPipelineTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = "/tmp/hmst-data-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
        var text = ""
        for i in 0..<200 { text += "Document \(i) line one.\nline two of \(i)\n\n" }
        try FileIO.writeAtomically(dir + "/corpus.txt", text: text)
        try FileIO.writeAtomically(dir + "/fortunes.txt", text: "a fortune\n%\nanother\none\n%\nlast")
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    func split(_ text: String, _ sep: DocumentSeparator, max: Int = 1 << 20) -> [String] {
        var s = DocumentSplitter(separator: sep, maxBytes: max)
        var docs: [String] = []
        s.feed(ArraySlice(Array(text.utf8))) { docs.append(String(decoding: $0, as: UTF8.self)) }
        s.finish { docs.append(String(decoding: $0, as: UTF8.self)) }
        return docs
    }

    func testDocumentSeparators() {
        XCTAssertEqual(split("a\nb\n\n\nc\n", .blankLine), ["a\nb", "c"])
        XCTAssertEqual(split("a\nb\n\nc", .line), ["a", "b", "c"])
        XCTAssertEqual(split("x\n%\ny\nz\n%\n", .marker("%")), ["x", "y\nz"])
        XCTAssertEqual(split("abcdefg", .file, max: 3), ["abc", "def", "g"])
        XCTAssertEqual(split(String(repeating: "q", count: 10), .blankLine, max: 4), ["qqqq", "qqqq", "qq"])
    }

    func preprocess(_ out: String, shardTokens: Int = 1000) throws -> PreprocessSummary {
        var o = PreprocessOptions()
        o.shardTokens = shardTokens
        o.batchDocuments = 7
        return try Preprocessor.run(inputs: [dir + "/corpus.txt"], output: out, encoder: ByteEncoder(), tokenizerPath: nil, options: o)
    }

    func testPreprocessIsDeterministicAndShardsValidate() throws {
        let s1 = try preprocess(dir + "/a"), s2 = try preprocess(dir + "/b")
        XCTAssertEqual(s1.documents, 200)
        XCTAssertGreaterThan(s1.shards, 3)
        let ds = try TokenDataset(directory: dir + "/a")
        XCTAssertEqual(ds.documentCount, 200)
        XCTAssertEqual(ds.totalTokens, s1.tokens)
        XCTAssertEqual(ds.eosId, 256)
        // a fresh model's end of text: the manifest's without a tokenizer, else the tokenizer's
        XCTAssertEqual(ds.endOfTextToken(tokenizer: nil), 256)
        var bo = BPETrainingOptions()
        bo.vocabSize = 262
        let tok = try BPETrainer.train(texts: [Array("ab ab ab abc".utf8)], options: bo)
        XCTAssertNotNil(tok.eosId)
        XCTAssertEqual(ds.endOfTextToken(tokenizer: tok), tok.eosId.map(Int.init))
        XCTAssertNotEqual(tok.eosId, 256)
        for shard in ds.shards {
            let name = Paths.fileName(shard.path)
            XCTAssertEqual(try FileIO.readAll(shard.path), try FileIO.readAll(dir + "/b/" + name))
        }
        XCTAssertEqual(s1.tokens, s2.tokens)
        // first document round-trips
        let r = ds.shards[0].document(0)
        let bytes = r.dropLast().map { UInt8(ds.shards[0].token($0)) }
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "Document 0 line one.\nline two of 0")
        XCTAssertEqual(ds.shards[0].token(r.upperBound - 1), 256)
    }

    func testCorruptShardsAreRejectedWithReasons() throws {
        _ = try preprocess(dir + "/a", shardTokens: 1 << 20)
        let path = dir + "/a/shard_00000.bin"
        let good = try FileIO.readAll(path)
        func expect(_ bytes: [UInt8], _ fragment: String, line: UInt = #line) {
            try? FileIO.writeAtomically(path, bytes)
            XCTAssertThrowsError(try TokenShard(path: path), line: line) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .badFormat, line: line)
                XCTAssertTrue((e as? HMSTError)?.message.contains(fragment) ?? false, "\(e)", line: line)
            }
        }
        expect(Array(good[0..<10]), "smaller than the 64-byte header")
        var b = good; b[0] = 0x41; expect(b, "bad magic")
        b = good; b[8] = 9; expect(b, "version 9")
        b = good; b[12] = 3; expect(b, "token width 3")
        expect(Array(good.dropLast(8)), "truncated")
        b = good; b[64] = 0xFF; b[65] = 0x7F; expect(b, "outside the vocabulary")
        b = good; b[b.count - 8] = 0xFF; b[b.count - 7] = 0xFF; b[b.count - 6] = 0xFF; expect(b, "past the")
        try FileIO.writeAtomically(path, good)
        XCTAssertNoThrow(try TokenShard(path: path))
        try FileIO.writeAtomically(dir + "/a/metadata.json", text: "{\"format\":\"other\"}")
        XCTAssertThrowsError(try TokenDataset(directory: dir + "/a"))
        XCTAssertThrowsError(try TokenDataset(directory: dir + "/nothing"))
    }

    func testSplitIsDeterministicAtDocumentBoundaries() throws {
        _ = try preprocess(dir + "/a")
        let ds = try TokenDataset(directory: dir + "/a")
        let r1 = try DatasetSplit.split(dataset: ds, valFraction: 0.1, seed: 3, trainDirectory: dir + "/t1", valDirectory: dir + "/v1")
        let r2 = try DatasetSplit.split(dataset: ds, valFraction: 0.1, seed: 3, trainDirectory: dir + "/t2", valDirectory: dir + "/v2")
        let r3 = try DatasetSplit.split(dataset: ds, valFraction: 0.1, seed: 4, trainDirectory: dir + "/t3", valDirectory: dir + "/v3")
        XCTAssertEqual(r1.valDocuments, 20)
        XCTAssertEqual(r1.trainDocuments + r1.valDocuments, 200)
        XCTAssertEqual(r1.trainTokens + r1.valTokens, ds.totalTokens)
        XCTAssertEqual([r2.trainDocuments, r2.valDocuments], [r1.trainDocuments, r1.valDocuments])   // the same seed, the same split
        XCTAssertEqual(r3.trainDocuments + r3.valDocuments, 200)
        XCTAssertEqual(try FileIO.readAll(dir + "/v1/shard_00000.bin"), try FileIO.readAll(dir + "/v2/shard_00000.bin"))
        XCTAssertNotEqual(try FileIO.readAll(dir + "/v1/shard_00000.bin"), try FileIO.readAll(dir + "/v3/shard_00000.bin"))
        // every validation document is a whole document of the source
        let val = try TokenDataset(directory: dir + "/v1")
        let text = String(decoding: (0..<val.shards[0].count).map { UInt8(truncatingIfNeeded: val.shards[0].token($0)) }, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("Document "))
        XCTAssertThrowsError(try DatasetSplit.split(dataset: ds, valFraction: 1.5, seed: 1, trainDirectory: dir + "/x", valDirectory: dir + "/y"))
    }

    func testWindowSamplerIsSeededAndResumable() throws {
        _ = try preprocess(dir + "/a")
        let ds = try TokenDataset(directory: dir + "/a")
        var a = try WindowSampler(dataset: ds, blockSize: 16, seed: 9)
        var b = try WindowSampler(dataset: ds, blockSize: 16, seed: 9)
        var wa = [Int32](repeating: 0, count: 4 * 17), wb = wa
        a.nextBatch(4, into: &wa)
        b.nextBatch(4, into: &wb)
        XCTAssertEqual(wa, wb)
        let saved = a.state
        a.nextBatch(4, into: &wa)
        var c = try WindowSampler(dataset: ds, blockSize: 16, seed: 1)
        c.restore(saved)
        c.nextBatch(4, into: &wb)
        XCTAssertEqual(wa, wb)
        XCTAssertThrowsError(try WindowSampler(dataset: ds, blockSize: 1 << 20, seed: 1))
        var seq = try SequentialWindows(dataset: ds, blockSize: 16)
        var n = 0
        var w = [Int32](repeating: 0, count: 17)
        while seq.next(into: &w) { n += 1 }
        XCTAssertEqual(n, seq.windowCount)
        XCTAssertGreaterThan(n, 10)
    }

    func testMarkerSeparatedCorpus() throws {
        var o = PreprocessOptions()
        o.separator = .marker("%")
        let s = try Preprocessor.run(inputs: [dir + "/fortunes.txt"], output: dir + "/f", encoder: ByteEncoder(), tokenizerPath: nil, options: o)
        XCTAssertEqual(s.documents, 3)
    }
}

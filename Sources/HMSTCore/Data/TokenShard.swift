// TokenShard: one binary file of token ids plus its document index, the unit the data
// pipeline writes and the loaders map. Layout (little-endian):
//   0  magic "HMSTSHRD"          8  u32 version (1)      12 u32 bytes per token (2 or 4)
//   16 u64 token count           24 u64 document count   32 u64 vocab size   40..<64 zero
//   64 tokens [count] (uint16 or uint32), zero-padded to a multiple of 8 bytes
//   then u64 document start offsets [documents], strictly increasing, the first 0
// Opening validates the header, the size, the document index and every token id < vocab.

public final class TokenShard: @unchecked Sendable {
    public static let magic: [UInt8] = Array("HMSTSHRD".utf8)
    public static let version: UInt32 = 1
    public static let headerBytes = 64

    public let path: String
    public let tokenBytes: Int
    public let count: Int
    public let documentCount: Int
    public let vocabSize: Int
    let map: MappedFile
    let tokens: UnsafeRawPointer
    let docStarts: UnsafeRawPointer

    public init(path: String) throws {
        self.path = path
        map = try MappedFile(path: path)
        let b = map.bytes
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("token shard \(path): \(m)") }
        guard b.count >= TokenShard.headerBytes else { throw bad("\(b.count) bytes is smaller than the 64-byte header") }
        guard Array(b[0..<8]) == TokenShard.magic else { throw bad("bad magic (not an hmst token shard)") }
        let version = b.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard version == TokenShard.version else { throw bad("version \(version) is not supported (expected \(TokenShard.version))") }
        let tb = Int(b.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard tb == 2 || tb == 4 else { throw bad("token width \(tb) bytes; expected 2 (uint16) or 4 (uint32)") }
        let n = b.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        let docs = b.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        let vocab = b.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
        guard n <= UInt64(b.count) else {
            throw bad("the header's \(n) tokens need more than the file's \(b.count) bytes (truncated or corrupt)")
        }
        guard docs <= n, vocab >= 1, vocab <= 1 << 31 else {
            throw bad("implausible header: \(n) tokens, \(docs) documents, vocab \(vocab)")
        }
        guard tb == 4 || vocab <= 65536 else { throw bad("vocab \(vocab) does not fit uint16 tokens") }
        tokenBytes = tb
        count = Int(n)
        documentCount = Int(docs)
        vocabSize = Int(vocab)
        let tokenEnd = TokenShard.headerBytes + TokenShard.padded(count * tb)
        let expected = tokenEnd + documentCount * 8
        guard b.count == expected else {
            throw bad("file is \(b.count) bytes but the header describes \(expected) (truncated or corrupt)")
        }
        guard let base = b.baseAddress else { throw bad("empty mapping") }
        tokens = base + TokenShard.headerBytes
        docStarts = base + tokenEnd
        var prev: UInt64 = 0
        for i in 0..<documentCount {
            let s = docStarts.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
            if i == 0 && s != 0 { throw bad("first document starts at \(s), not 0") }
            if i > 0 && s <= prev { throw bad("document \(i) starts at \(s), not after \(prev)") }
            if s >= n { throw bad("document \(i) starts at \(s), past the \(n) tokens") }
            prev = s
        }
        if count > 0 && documentCount == 0 { throw bad("\(count) tokens but no documents") }
        if let bad = TokenShard.firstOutOfRange(tokens, count: count, width: tb, vocab: vocabSize) {
            throw self.bad("token \(bad.value) at index \(bad.index) is outside the vocabulary 0 ..< \(vocabSize)")
        }
    }

    private func bad(_ m: String) -> HMSTError { HMSTError.badFormat("token shard \(path): \(m)") }

    static func padded(_ n: Int) -> Int { (n + 7) & ~7 }

    /// A parallel scan for ids >= vocab.
    static func firstOutOfRange(_ p: UnsafeRawPointer, count: Int, width: Int, vocab: Int) -> (index: Int, value: Int)? {
        if width == 2 && vocab >= 65536 { return nil }
        let chunks = splitRange(count, parts: Threads.count * 4)
        let found = Locked<(Int, Int)?>(nil)
        parallelFor(chunks.count) { c in
            for i in chunks[c] {
                let v = width == 2 ? Int(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                                   : Int(p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                if v >= vocab {
                    found.withLock { cur in if cur == nil || i < cur!.0 { cur = (i, v) } }
                    return
                }
            }
        }
        return found.get()
    }

    @inline(__always) public func token(_ i: Int) -> Int32 {
        tokenBytes == 2 ? Int32(tokens.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                        : Int32(bitPattern: tokens.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
    }

    /// Copies tokens [start, start+n) into out.
    public func copy(from start: Int, count n: Int, to out: UnsafeMutablePointer<Int32>) {
        for i in 0..<n { out[i] = token(start + i) }
    }

    /// Token range of document d.
    public func document(_ d: Int) -> Range<Int> {
        let s = Int(docStarts.loadUnaligned(fromByteOffset: d * 8, as: UInt64.self))
        let e = d + 1 < documentCount ? Int(docStarts.loadUnaligned(fromByteOffset: (d + 1) * 8, as: UInt64.self)) : count
        return s..<e
    }

    /// Writes a shard atomically. documents: start offsets (first 0, increasing).
    public static func write(path: String, tokens: [Int32], documentStarts: [Int], vocabSize: Int) throws {
        guard vocabSize >= 1 else { throw HMSTError.invalidArgument("vocab size must be >= 1") }
        if let t = tokens.first(where: { $0 < 0 || Int($0) >= vocabSize }) {
            throw HMSTError.invalidArgument("token \(t) is outside the vocabulary 0 ..< \(vocabSize)")
        }
        for (i, s) in documentStarts.enumerated() where (i == 0 && s != 0) || (i > 0 && s <= documentStarts[i - 1]) || s >= tokens.count {
            throw HMSTError.invalidArgument("document start \(s) at index \(i) is not increasing from 0 within \(tokens.count) tokens")
        }
        let width = vocabSize <= 65536 ? 2 : 4
        var out = [UInt8](repeating: 0, count: headerBytes + padded(tokens.count * width) + documentStarts.count * 8)
        out.withUnsafeMutableBytes { o in
            magic.withUnsafeBytes { o.copyMemory(from: $0) }
            o.storeBytes(of: version, toByteOffset: 8, as: UInt32.self)
            o.storeBytes(of: UInt32(width), toByteOffset: 12, as: UInt32.self)
            o.storeBytes(of: UInt64(tokens.count), toByteOffset: 16, as: UInt64.self)
            o.storeBytes(of: UInt64(documentStarts.count), toByteOffset: 24, as: UInt64.self)
            o.storeBytes(of: UInt64(vocabSize), toByteOffset: 32, as: UInt64.self)
            for (i, t) in tokens.enumerated() {
                if width == 2 { o.storeBytes(of: UInt16(truncatingIfNeeded: t), toByteOffset: headerBytes + i * 2, as: UInt16.self) }
                else { o.storeBytes(of: UInt32(bitPattern: t), toByteOffset: headerBytes + i * 4, as: UInt32.self) }
            }
            let docBase = headerBytes + padded(tokens.count * width)
            for (i, s) in documentStarts.enumerated() { o.storeBytes(of: UInt64(s), toByteOffset: docBase + i * 8, as: UInt64.self) }
        }
        try FileIO.writeAtomically(path, out)
    }
}

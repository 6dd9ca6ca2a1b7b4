// Tokenizer: byte-level BPE as GPT-2 and HF tokenizers' ByteLevel do it. Added and special
// tokens are cut out of the raw text first (leftmost, longest), the rest is pre-tokenized with
// the GPT-2 pattern and each piece is BPE-encoded (through a per-thread word cache). Encoding
// takes any bytes and decoding gives them back exactly.

public struct AddedToken: Sendable, Equatable {
    public var id: Int32
    public var content: String
    public var special: Bool
    public var singleWord = false
    public var lstrip = false
    public var rstrip = false
    public var normalized = false
}

public final class Tokenizer: TextTokenizer, @unchecked Sendable {
    let model: BPEModel
    public let addedTokens: [AddedToken]
    /// prepend a space to text that does not start with one (ByteLevel add_prefix_space)
    public let addPrefixSpace: Bool
    /// added tokens by first byte, longest first, for the raw-text scan
    let addedByFirstByte: [[(bytes: [UInt8], id: Int32, special: Bool)]]
    let addedIds: [String: Int32]

    init(model: BPEModel, addedTokens: [AddedToken], addPrefixSpace: Bool) {
        self.model = model
        self.addedTokens = addedTokens
        self.addPrefixSpace = addPrefixSpace
        var table = [[(bytes: [UInt8], id: Int32, special: Bool)]](repeating: [], count: 256)
        var byContent: [String: Int32] = [:]
        for t in addedTokens where !t.content.isEmpty {
            let b = Array(t.content.utf8)
            table[Int(b[0])].append((b, t.id, t.special))
            byContent[t.content] = t.id
        }
        for i in 0..<256 { table[i].sort { $0.bytes.count > $1.bytes.count } }
        addedByFirstByte = table
        addedIds = byContent
    }

    public var vocabSize: Int { model.pieces.count }

    /// <|endoftext|> if present, else the first special token whose content says "end".
    public var eosId: Int32? {
        if let id = addedIds["<|endoftext|>"] { return id }
        return addedTokens.first { $0.special && ($0.content.contains("eos") || $0.content.contains("end")) }?.id
    }

    public func id(for piece: String) -> Int32? {
        if let a = addedIds[piece] { return a }
        guard let bytes = ByteLevel.decode(piece) else { return nil }
        return model.ids[bytes]
    }

    /// The vocabulary form of token `id` (byte-level characters; added tokens as written).
    public func piece(for id: Int32) -> String? {
        guard id >= 0, Int(id) < model.pieces.count else { return nil }
        if let a = addedTokens.first(where: { $0.id == id }) { return a.content }
        return ByteLevel.encode(model.pieces[Int(id)])
    }

    // MARK: encode

    public func encode(_ text: String) -> [Int32] { encode(bytes: Array(text.utf8)) }

    public func encode(bytes: [UInt8]) -> [Int32] {
        var cache = WordCache()
        return encode(bytes, cache: &cache)
    }

    /// Special tokens are cut out of the prompt's markup only; inside its literal ranges they
    /// are characters (added tokens that are not special still match there, as in HF).
    public func encode(_ prompt: PromptText) -> [Int32] {
        var cache = WordCache()
        return encode(prompt.bytes, cache: &cache, literal: prompt.literalRanges)
    }

    func encode(_ input: [UInt8], cache: inout WordCache, literal: [Range<Int>] = []) -> [Int32] {
        var text = input
        var literal = literal
        if addPrefixSpace, let f = text.first, f != 0x20 {
            text.insert(0x20, at: 0)
            literal = literal.map { $0.lowerBound + 1 ..< $0.upperBound + 1 }
        }
        var nextLiteral = 0   // the first literal range that does not end at or before i
        var out: [Int32] = []
        out.reserveCapacity(text.count / 3 + 4)
        var scratch: [Int32] = []
        text.withUnsafeBufferPointer { b in
            var segStart = 0
            var i = 0
            while i < b.count {
                while nextLiteral < literal.count, literal[nextLiteral].upperBound <= i { nextLiteral += 1 }
                if let (len, id) = addedMatch(b, i, literal: literal, from: nextLiteral) {
                    encodeSegment(b, segStart..<i, &out, &scratch, &cache)
                    out.append(id)
                    i += len
                    segStart = i
                } else {
                    i += 1
                }
            }
            encodeSegment(b, segStart..<b.count, &out, &scratch, &cache)
        }
        return out
    }

    /// The longest added token at i; a special one only if it overlaps no literal range
    /// (`literal[next...]`: the ranges that end after i, ascending).
    @inline(__always)
    func addedMatch(_ b: UnsafeBufferPointer<UInt8>, _ i: Int, literal: [Range<Int>], from next: Int) -> (Int, Int32)? {
        let candidates = addedByFirstByte[Int(b[i])]
        if candidates.isEmpty { return nil }
        outer: for c in candidates where i + c.bytes.count <= b.count {
            for k in 1..<c.bytes.count where b[i + k] != c.bytes[k] { continue outer }
            if c.special, next < literal.count, literal[next].lowerBound < i + c.bytes.count { continue }
            return (c.bytes.count, c.id)
        }
        return nil
    }

    func encodeSegment(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>, _ out: inout [Int32], _ scratch: inout [Int32],
                       _ cache: inout WordCache) {
        guard !r.isEmpty else { return }
        PreTokenizer.split(b, r) { s, e in
            if cache.lookup(b, s, e, into: &out) { return }
            let before = out.count
            model.encodeWord(b, s..<e, into: &out, scratch: &scratch)
            cache.insert(b, s, e, out[before...])
        }
    }

    /// Encodes many texts on hmst's worker pool; each worker keeps its own word cache.
    public func encodeBatch(_ texts: [[UInt8]], threads: Int = Threads.count) -> [[Int32]] {
        let results = UnsafeMutableBufferPointer<[Int32]>.allocate(capacity: texts.count)
        results.initialize(repeating: [])
        defer { _ = results.deinitialize(); results.deallocate() }
        let parts = splitRange(texts.count, parts: max(1, threads) * 4)
        parallelFor(parts.count, threads: threads) { p in
            var cache = WordCache()
            for i in parts[p] { results[i] = encode(texts[i], cache: &cache) }
        }
        return Array(results)
    }

    // MARK: decode

    public func decode(_ ids: [Int32]) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for id in ids {
            guard id >= 0, Int(id) < model.pieces.count else {
                throw HMSTError.invalidArgument("token id \(id) is outside the vocabulary 0 ..< \(model.pieces.count)")
            }
            out += model.pieces[Int(id)]
        }
        return out
    }

    public func decodeString(_ ids: [Int32]) throws -> String {
        String(decoding: try decode(ids), as: UTF8.self)
    }
}

extension Tokenizer: DocumentEncoder {
    public func encodeBatch(_ documents: [[UInt8]]) -> [[Int32]] { encodeBatch(documents, threads: Threads.count) }
}

/// A bounded open-addressing cache from word bytes to their token ids. Keys and values live in
/// flat arenas; when it fills up it starts over.
struct WordCache {
    static let slots = 1 << 16
    var table = [Int32](repeating: -1, count: WordCache.slots)   // -> entry index
    var hashes: [UInt64] = []
    var keyStart: [Int32] = [], keyLen: [Int32] = []
    var valStart: [Int32] = [], valLen: [Int32] = []
    var keys: [UInt8] = []
    var values: [Int32] = []

    @inline(__always) static func hash(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in s..<e { h = (h ^ UInt64(b[i])) &* 0x100_0000_01b3 }
        return h
    }

    mutating func lookup(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int, into out: inout [Int32]) -> Bool {
        let h = WordCache.hash(b, s, e)
        var slot = Int(h & UInt64(WordCache.slots - 1))
        while true {
            let idx = Int(table[slot])
            if idx < 0 { return false }
            if hashes[idx] == h && Int(keyLen[idx]) == e - s {
                var same = true
                let ks = Int(keyStart[idx])
                for k in 0..<(e - s) where keys[ks + k] != b[s + k] { same = false; break }
                if same {
                    let vs = Int(valStart[idx])
                    out.append(contentsOf: values[vs..<(vs + Int(valLen[idx]))])
                    return true
                }
            }
            slot = (slot + 1) & (WordCache.slots - 1)
        }
    }

    mutating func insert(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int, _ ids: ArraySlice<Int32>) {
        if hashes.count >= WordCache.slots / 2 || keys.count > 1 << 22 { self = WordCache() }
        let h = WordCache.hash(b, s, e)
        var slot = Int(h & UInt64(WordCache.slots - 1))
        while table[slot] >= 0 { slot = (slot + 1) & (WordCache.slots - 1) }
        table[slot] = Int32(hashes.count)
        hashes.append(h)
        keyStart.append(Int32(keys.count))
        keyLen.append(Int32(e - s))
        keys.append(contentsOf: UnsafeBufferPointer(rebasing: b[s..<e]))
        valStart.append(Int32(values.count))
        valLen.append(Int32(ids.count))
        values.append(contentsOf: ids)
    }
}

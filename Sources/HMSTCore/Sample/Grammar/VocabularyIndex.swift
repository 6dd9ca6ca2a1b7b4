// VocabularyIndex: a tokenizer's vocabulary as GrammarConstraint walks it: every token's bytes
// (special tokens and tokens of no bytes left out: never allowed), sorted by bytes, with the
// length each shares with the one before it, and ASCII-only tokens' byte sets. Built once per
// tokenizer object and shared by every constraint over it (a server builds it at the first
// grammar request, not at each). A tokenizer object's vocabulary must not change. An index
// outlives its tokenizer until the next index is built (then entries of freed ones are dropped).

final class VocabularyIndex: @unchecked Sendable {   // immutable after init
    /// sorted position k is token order[k], whose bytes are bytes[start[k]..<start[k+1]] and
    /// share their first lcp[k] bytes with position k-1's
    let order: [Int32]
    let start: [Int32]
    let bytes: [UInt8]
    let lcp: [Int32]
    /// the bytes of position k as a 128-bit set when they are all ASCII, else asciiOnly[k] false
    let asciiOnly: [Bool]
    let asciiLo: [UInt64]
    let asciiHi: [UInt64]
    let vocabSize: Int
    /// sorted position of a token id (-1: never allowed)
    let position: [Int32]

    init(tokenizer: TextTokenizer) {
        var pieces = (0..<tokenizer.vocabSize).map { (try? tokenizer.decode([Int32($0)])) ?? [] }
        if let t = tokenizer as? Tokenizer {
            for a in t.addedTokens where a.special && Int(a.id) >= 0 && Int(a.id) < pieces.count { pieces[Int(a.id)] = [] }
        }
        let ids = pieces.indices.filter { !pieces[$0].isEmpty }.sorted { pieces[$0].lexicographicallyPrecedes(pieces[$1]) }
        var start: [Int32] = [0], bytes: [UInt8] = [], lcp: [Int32] = []
        var only: [Bool] = [], lo: [UInt64] = [], hi: [UInt64] = []
        var position = [Int32](repeating: -1, count: pieces.count)
        var previous: [UInt8] = []
        for (k, id) in ids.enumerated() {
            let p = pieces[id]
            var n = 0
            while n < p.count && n < previous.count && p[n] == previous[n] { n += 1 }
            lcp.append(Int32(n))
            bytes += p
            start.append(Int32(bytes.count))
            previous = p
            position[id] = Int32(k)
            var l: UInt64 = 0, h: UInt64 = 0, ascii = true
            for b in p {
                if b >= 128 { ascii = false; break }
                if b < 64 { l |= 1 << UInt64(b) } else { h |= 1 << UInt64(b - 64) }
            }
            only.append(ascii)
            lo.append(ascii ? l : 0)
            hi.append(ascii ? h : 0)
        }
        order = ids.map { Int32($0) }
        self.start = start
        self.bytes = bytes
        self.lcp = lcp
        asciiOnly = only
        asciiLo = lo
        asciiHi = hi
        vocabSize = pieces.count
        self.position = position
    }

    /// Per token id: whether its bytes are JSON string content on their own (no quote, backslash
    /// or control character, whole UTF-8 characters): JSONConstraint's fast path inside strings.
    /// Computed at the first call.
    func jsonPlain() -> [Bool] {
        if let p = plainCache.withLock({ $0 }) { return p }
        var inString = JSONPrefix()
        _ = inString.feed(Array("{\"".utf8))
        let start = inString
        let p = (0..<vocabSize).map { id -> Bool in
            guard let bytes = piece(Int32(id)) else { return false }
            var s = start
            return s.feed(bytes) && s == start
        }
        plainCache.withLock { $0 = p }
        return p
    }
    private let plainCache = Locked<[Bool]?>(nil)

    /// The bytes of token id, or nil when it is never allowed.
    func piece(_ id: Int32) -> ArraySlice<UInt8>? {
        guard id >= 0, Int(id) < position.count, position[Int(id)] >= 0 else { return nil }
        let k = Int(position[Int(id)])
        return bytes[Int(start[k])..<Int(start[k + 1])]
    }

    private struct Entry {
        weak var tokenizer: AnyObject?
        let index: VocabularyIndex
    }
    private static let cache = Locked<[ObjectIdentifier: Entry]>([:])

    /// The index of this tokenizer object, built on first use (entries of tokenizers that are
    /// gone are dropped then).
    static func shared(for tokenizer: TextTokenizer) -> VocabularyIndex {
        let key = ObjectIdentifier(tokenizer)
        if let hit = cache.withLock({ c -> VocabularyIndex? in
            guard let e = c[key], e.tokenizer === tokenizer, e.index.vocabSize == tokenizer.vocabSize else { return nil }
            return e.index
        }) { return hit }
        let built = VocabularyIndex(tokenizer: tokenizer)   // outside the lock: it can take tens of ms
        cache.withLock { c in
            c = c.filter { $0.value.tokenizer != nil }
            c[key] = Entry(tokenizer: tokenizer, index: built)
        }
        return built
    }
}

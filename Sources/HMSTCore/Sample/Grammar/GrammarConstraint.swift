// GrammarConstraint: generation whose text is a sentence of a Grammar (llama.cpp's --grammar,
// OpenAI's response_format json_schema through JSONSchemaGrammar). Before each token, every
// token whose bytes cannot continue the text towards a sentence is masked out (logit -inf);
// end of text is allowed only where the text is a whole sentence, and generation stops when
// nothing can follow. Special tokens (a chat template's end of turn) are never allowed.
//
// Characters are code points: a token that ends inside a UTF-8 character is allowed when some
// stack's class can hold a character that starts with its bytes; the next token must finish it.
// Bytes that are not UTF-8 (overlong, surrogates, above U+10FFFF, stray continuations) never fit.
//
// Cost: the vocabulary is decoded and sorted by its bytes once per tokenizer object
// (VocabularyIndex); the mask walks it in that order, so a prefix shared by many tokens ("\"na",
// " the") is fed to the grammar once (the bytes fed per token are those of a trie of the
// vocabulary), and a token whose prefix was refused costs one comparison; a token of ASCII bytes
// after each of which the state is itself again (plain characters inside a string) fits at once,
// without being fed. Masks are kept by state (up to 64, then the cache starts over):
// inside a string the state after a token is the state before it, so the walk runs once per
// value, not once per token.

/// The first bytes of a UTF-8 character still missing `need` bytes; need 0: between characters.
struct PartialChar: Equatable {
    var cp: UInt32 = 0
    var need: UInt8 = 0
    var len: UInt8 = 0
}

public final class GrammarConstraint: TokenConstraint {
    public let grammar: Grammar
    private var arena = NodeArena()
    private var stacks: [Int32]
    private var partial = PartialChar()
    /// a token the mask refused was accepted, or the grammar became too ambiguous: generation stops
    private var broken = false

    /// the vocabulary in byte order (shared by every constraint over the tokenizer)
    private let vocab: VocabularyIndex

    // scratch of the mask: level d of the current path holds the stacks after its first d bytes
    private var buffer: [Int32] = []

    /// Over the tokenizer's vocabulary (special tokens excluded: never allowed), decoded and
    /// sorted at the first constraint over this tokenizer object.
    public init(grammar: Grammar, tokenizer: TextTokenizer) throws {
        self.grammar = grammar
        guard let s = grammar.initialStacks(arena: &arena) else {
            throw HMSTError.invalidArgument("grammar: more than \(Grammar.maxStacks) ways to start (too ambiguous)")
        }
        stacks = s
        vocab = VocabularyIndex.shared(for: tokenizer)
    }

    /// Parses GBNF text and builds the constraint.
    public convenience init(gbnf: String, tokenizer: TextTokenizer) throws {
        try self.init(grammar: try Grammar.parse(gbnf: gbnf), tokenizer: tokenizer)
    }

    /// Nothing can follow (generation stops, eos). A broken constraint is not complete: its
    /// next mask allows nothing (stop reason noContinuation).
    public var isComplete: Bool { !broken && partial.need == 0 && stacks.allSatisfy { $0 < 0 } }

    /// Whether the text so far is a whole sentence (end of text may come).
    public var canEnd: Bool { !broken && partial.need == 0 && stacks.contains(-1) }

    /// Feeds byte b to the state whose stacks are buf[range] and whose character so far is p:
    /// appends the new stacks to buf and returns the new partial character, or nil (refused).
    @inline(__always)
    static func step(_ g: Grammar, _ b: UInt8, _ range: Range<Int>, _ p: PartialChar,
                     arena: inout NodeArena, buf: inout [Int32]) -> PartialChar? {
        var q = p
        if q.need == 0 {
            switch b {
            case 0x00...0x7F: q.cp = UInt32(b); q.len = 1
            case 0xC2...0xDF: q.cp = UInt32(b & 0x1F); q.need = 1; q.len = 2
            case 0xE0...0xEF: q.cp = UInt32(b & 0x0F); q.need = 2; q.len = 3
            case 0xF0...0xF4: q.cp = UInt32(b & 0x07); q.need = 3; q.len = 4
            default: return nil
            }
        } else {
            guard b & 0xC0 == 0x80 else { return nil }
            q.cp = q.cp << 6 | UInt32(b & 0x3F)
            q.need -= 1
        }
        let least: UInt32 = q.len == 2 ? 0x80 : q.len == 3 ? 0x800 : q.len == 4 ? 0x10000 : 0
        let from = buf.count
        if q.need > 0 {
            // the code points a character with these first bytes can be
            let shift = 6 * UInt32(q.need)
            let lo = max(q.cp << shift, least), hi = min(q.cp << shift | (1 << shift - 1), 0x10FFFF)
            guard lo <= hi, !(lo >= 0xD800 && hi <= 0xDFFF) else { return nil }
            var i = range.lowerBound
            while i < range.upperBound {
                let t = buf[i]
                if t >= 0 && g.mayMatch(arena.pos[Int(t)], lo, hi) { buf.append(t) }
                i += 1
            }
            return buf.count > from ? q : nil
        }
        guard q.cp >= least, q.cp <= 0x10FFFF, !(0xD800...0xDFFF).contains(q.cp) else { return nil }
        arena.opsLimit = arena.ops + Grammar.maxStepOps
        guard g.advance(&buf, range, q.cp, arena: &arena, from: from), buf.count > from else {
            buf.removeSubrange(from...)
            return nil
        }
        return PartialChar()
    }

    public func mask(_ logits: UnsafeMutableBufferPointer<Float>, eos: Set<Int32>) -> Bool {
        if broken {
            for i in 0..<logits.count { logits[i] = -.infinity }
            return false
        }
        let eosList = eos.filter { Int($0) < logits.count }.sorted()
        let eosLogits = eosList.map { logits[Int($0)] }
        let key = stateKey()
        let bits: [UInt64]
        if let hit = masks[key], hit.eos == eosList {
            bits = hit.bits
        } else {
            bits = allowedTokens(eos: eosList)
            if broken {
                for i in 0..<logits.count { logits[i] = -.infinity }
                return false
            }
            if masks.count >= GrammarConstraint.maxCachedMasks { masks.removeAll(keepingCapacity: true) }
            masks[key] = (eosList, bits)
        }
        var any = false
        for i in 0..<logits.count {
            if i >> 6 < bits.count && bits[i >> 6] & (1 << UInt64(i & 63)) != 0 {
                if logits[i] > -.infinity { any = true }
            } else {
                logits[i] = -.infinity
            }
        }
        // end of text only where the text is a whole sentence; where nothing can go on, false
        // (the text is unfinished: stop reason noContinuation)
        let end = canEnd
        for (id, l) in zip(eosList, eosLogits) { logits[Int(id)] = end ? l : -.infinity }
        return any || eosList.contains { logits[Int($0)] > -.infinity }
    }

    /// Masks already computed, by state: inside a string (or any loop) the state after each
    /// token is the state before it, so most tokens of a long value cost one lookup. At most
    /// 64 are kept (then the cache starts over).
    private var masks: [[Int32]: (eos: [Int32], bits: [UInt64])] = [:]
    static let maxCachedMasks = 64

    /// The state as its stacks' element chains (sorted) and the partial character: equal for
    /// states that allow the same tokens, however their nodes were made.
    private func stateKey() -> [Int32] {
        GrammarConstraint.key(stacks[...], partial, arena)
    }

    static func key(_ stacks: ArraySlice<Int32>, _ partial: PartialChar, _ arena: NodeArena) -> [Int32] {
        var chains: [[Int32]] = []
        chains.reserveCapacity(stacks.count)
        for t in stacks {
            var chain: [Int32] = []
            var n = t
            while n >= 0 { chain.append(arena.pos[Int(n)]); n = arena.parent[Int(n)] }
            chains.append(chain)
        }
        chains.sort { $0.lexicographicallyPrecedes($1) }
        var key: [Int32] = [Int32(bitPattern: partial.cp), Int32(partial.need), Int32(partial.len)]
        for c in chains { key.append(-2); key += c }
        return key
    }

    /// The ASCII bytes after which the state is the state again (inside a string: its plain
    /// characters), as a 128-bit set: a token made only of them fits without being fed.
    static func loopBytes(_ g: Grammar, _ stacks: Range<Int>, _ partial: PartialChar,
                          arena: inout NodeArena, buf: inout [Int32]) -> (UInt64, UInt64) {
        guard partial.need == 0 else { return (0, 0) }
        let here = key(buf[stacks], partial, arena)
        let mark = arena.count, end = buf.count
        var lo: UInt64 = 0, hi: UInt64 = 0
        for b in 0..<128 {
            if let p = step(g, UInt8(b), stacks, partial, arena: &arena, buf: &buf), buf.count - end == stacks.count,
               key(buf[end...], p, arena) == here {
                if b < 64 { lo |= 1 << UInt64(b) } else { hi |= 1 << UInt64(b - 64) }
            }
            buf.removeSubrange(end...)
            arena.truncate(to: mark)
        }
        return (lo, hi)
    }

    /// A bit per token id: whether its bytes continue the text (end-of-text ids left out).
    private func allowedTokens(eos: [Int32]) -> [UInt64] {
        let g = grammar
        var arena = self.arena
        self.arena = NodeArena()
        var buf = buffer
        buffer = []
        buf.removeAll(keepingCapacity: true)
        buf += stacks
        let mark0 = arena.count
        // level d: stacks buf[levelStart[d]..<levelStart[d+1]], character partials[d], arena size marks[d]
        var levelStart = [0, buf.count]
        var partials = [partial]
        var marks = [mark0]
        let vocab = self.vocab
        let order = vocab.order, start = vocab.start, lcp = vocab.lcp
        let asciiOnly = vocab.asciiOnly, asciiLo = vocab.asciiLo, asciiHi = vocab.asciiHi
        var bits = [UInt64](repeating: 0, count: (vocab.vocabSize + 63) / 64)
        let opsStart = arena.ops
        let (loopLo, loopHi) = GrammarConstraint.loopBytes(g, 0..<buf.count, partial, arena: &arena, buf: &buf)
        var shared = Int.max   // bytes the next token shares with the current path's
        var overBudget = false
        vocab.bytes.withUnsafeBufferPointer { bytes in
            for k in 0..<order.count {
                if arena.ops - opsStart > GrammarConstraint.maxMaskOps { overBudget = true; break }
                shared = min(shared, Int(lcp[k]))
                let id = Int(order[k])
                if eos.contains(Int32(id)) { continue }
                // only bytes the state loops on: it fits (and the path is left as it is)
                if asciiOnly[k] && asciiLo[k] & ~loopLo == 0 && asciiHi[k] & ~loopHi == 0 {
                    bits[id >> 6] |= 1 << UInt64(id & 63)
                    continue
                }
                let lo = Int(start[k]), hi = Int(start[k + 1])
                // keep the levels of the bytes shared with the path
                let keep = min(shared, partials.count - 1)
                if keep < partials.count - 1 {
                    partials.removeSubrange((keep + 1)...)
                    marks.removeSubrange((keep + 1)...)
                    levelStart.removeSubrange((keep + 2)...)
                    buf.removeSubrange(levelStart[keep + 1]...)
                    arena.truncate(to: marks[keep])
                }
                shared = Int.max
                var d = keep
                var fits = true
                while lo + d < hi {
                    guard let p = GrammarConstraint.step(g, bytes[lo + d], levelStart[d]..<levelStart[d + 1], partials[d],
                                                         arena: &arena, buf: &buf) else { fits = false; break }
                    levelStart.append(buf.count)
                    partials.append(p)
                    marks.append(arena.count)
                    d += 1
                }
                // refused at byte d: the path keeps levels 0...d, and a token that shares
                // more than d bytes is refused again at its first step
                if fits { bits[id >> 6] |= 1 << UInt64(id & 63) }
            }
        }
        arena.truncate(to: mark0)
        self.arena = arena
        buffer = buf
        if overBudget { broken = true }
        return bits
    }

    /// The most grammar work one mask may take (about a second): past it the grammar is too
    /// costly for this vocabulary and generation stops (noContinuation), not crawls.
    static let maxMaskOps = 1 << 27

    /// Feeds bytes to the state; false (and the constraint broken) when they do not fit.
    @discardableResult
    func acceptBytes(_ piece: [UInt8]) -> Bool {
        guard !broken else { return false }
        var buf = stacks
        var range = 0..<buf.count
        var p = partial
        for b in piece {
            guard let next = GrammarConstraint.step(grammar, b, range, p, arena: &arena, buf: &buf) else {
                broken = true
                return false
            }
            p = next
            range = range.upperBound..<buf.count
        }
        stacks = Array(buf[range])
        partial = p
        if arena.count > compactAbove { compact() }
        return true
    }

    /// Nodes are only appended while tokens are accepted; past this many the arena is rebuilt
    /// with the nodes the current stacks use (node ids stay far below Int32's range).
    var compactAbove = 1 << 22

    private func compact() {
        var fresh = NodeArena()
        var moved: [Int32: Int32] = [:]
        func copy(_ n: Int32) -> Int32 {
            // the chain below n, bottom first, then pushed up in order
            var chain: [Int32] = []
            var m = n
            while m >= 0, moved[m] == nil { chain.append(m); m = arena.parent[Int(m)] }
            var below = m < 0 ? -1 : (moved[m] ?? -1)   // (set: the loop stopped at a moved node)
            for c in chain.reversed() {
                below = fresh.push(arena.pos[Int(c)], below)
                moved[c] = below
            }
            return below
        }
        stacks = stacks.map { $0 < 0 ? $0 : copy($0) }
        arena = fresh
        masks.removeAll()
    }

    public func accept(_ id: Int32) {
        guard let piece = vocab.piece(id) else { broken = true; return }
        acceptBytes(Array(piece))
    }
}

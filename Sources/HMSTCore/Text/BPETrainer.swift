// BPETrainer: learns a byte-level BPE the way HF tokenizers' BpeTrainer does, so the same
// corpus gives the same vocabulary and merges: special tokens first, then the 256 byte
// symbols ordered by their byte-level character, then merges of the most frequent adjacent
// pair (ties: the smaller pair of ids), counted incrementally: each merge touches only the
// words that contain the pair, and a max-heap with lazy re-checks finds the next best pair.
// Training text is pre-tokenized line by line (lines keep their "\n"), as HF reads files.

public struct BPETrainingOptions: Sendable {
    public var vocabSize = 8192
    public var minFrequency = 2
    public var specialTokens = ["<|endoftext|>", "<|pad|>"]
    public init() {}
}

public enum BPETrainer {
    /// progress(done, total): the word-count pass reports bytes, the merge pass merges;
    /// return false to cancel.
    public static func train(texts: [[UInt8]], options: BPETrainingOptions,
                             progress: ((String, Int, Int) -> Bool)? = nil) throws -> Tokenizer {
        try validate(options)
        let (wordList, counts) = try countWords(texts, progress: progress)
        guard !wordList.isEmpty else { throw HMSTError.invalidArgument("the training texts are empty: nothing to learn merges from") }
        return try train(words: wordList, counts: counts, options: options, progress: progress)
    }

    /// Trains on files streamed in line-aligned blocks: memory grows with the number of
    /// distinct words, not with the size of the input.
    public static func train(files: [String], options: BPETrainingOptions,
                             progress: ((String, Int, Int) -> Bool)? = nil) throws -> Tokenizer {
        guard !files.isEmpty else { throw HMSTError.invalidArgument("no training files") }
        try validate(options)
        var total = 0
        for f in files { total += try FileIO.fileSize(f) }
        var merged: [[UInt8]: Int] = [:]
        var done = 0
        for f in files {
            var carry: [UInt8] = []
            var blocks: [[UInt8]] = []
            func flush() throws {
                guard !blocks.isEmpty else { return }
                let (w, c) = try countWords(blocks, progress: nil)
                for (word, n) in zip(w, c) { merged[word, default: 0] += n }
                blocks.removeAll()
                if let progress, !progress("words", done, total) { throw HMSTError(.cancelled, "tokenizer training cancelled") }
            }
            try Preprocessor.forEachBlock(f) { block in
                done += block.count
                carry += block
                // cut at the last newline so lines never straddle two blocks
                if let nl = carry.lastIndex(of: 0x0A) {
                    blocks.append(Array(carry[...nl]))
                    carry.removeFirst(nl + 1)
                }
                if blocks.reduce(0, { $0 + $1.count }) >= 64 << 20 { try flush() }
            }
            if !carry.isEmpty { blocks.append(carry) }
            try flush()
        }
        guard !merged.isEmpty else {
            throw HMSTError.invalidArgument("the training files are empty (\(files.joined(separator: ", "))): nothing to learn merges from")
        }
        let sorted = merged.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        return try train(words: sorted.map { $0.key }, counts: sorted.map { $0.value }, options: options, progress: progress)
    }

    static func validate(_ options: BPETrainingOptions) throws {
        guard options.vocabSize >= 256 + options.specialTokens.count else {
            throw HMSTError.invalidArgument("vocab size \(options.vocabSize) must be at least 256 + \(options.specialTokens.count) special tokens")
        }
        guard options.vocabSize <= 1 << 21 else { throw HMSTError.invalidArgument("vocab size \(options.vocabSize) is too large") }
        guard options.minFrequency >= 0 else { throw HMSTError.invalidArgument("min frequency must be >= 0") }
        if Set(options.specialTokens).count != options.specialTokens.count || options.specialTokens.contains("") {
            throw HMSTError.invalidArgument("special tokens must be distinct and non-empty")
        }
    }

    static func train(words wordList: [[UInt8]], counts: [Int], options: BPETrainingOptions,
                      progress: ((String, Int, Int) -> Bool)?) throws -> Tokenizer {

        // ---- initial vocabulary: specials, then the byte alphabet sorted by character
        var pieces: [[UInt8]] = options.specialTokens.map { Array($0.utf8) }
        var ids: [[UInt8]: Int32] = [:]
        let alphabet = (0..<256).sorted { ByteLevel.byteToScalar[$0].value < ByteLevel.byteToScalar[$1].value }
        var byteId = [Int32](repeating: 0, count: 256)
        for b in alphabet {
            byteId[b] = Int32(pieces.count)
            ids[[UInt8(b)]] = Int32(pieces.count)
            pieces.append([UInt8(b)])
        }

        // ---- words as symbol arrays, pair counts and where each pair occurs
        var words: [[Int32]] = wordList.map { $0.map { byteId[Int($0)] } }
        var pairCounts: [UInt64: Int] = [:]
        var whereToUpdate: [UInt64: [Int32]] = [:]
        for (w, symbols) in words.enumerated() where symbols.count > 1 {
            for i in 0..<(symbols.count - 1) {
                let p = pairKey(symbols[i], symbols[i + 1])
                pairCounts[p, default: 0] += counts[w]
                whereToUpdate[p, default: []].append(Int32(w))
            }
        }
        var queue = MergeHeap()
        for (p, pos) in whereToUpdate {
            let c = pairCounts[p] ?? 0
            if c > 0 { queue.push(MergeEntry(count: c, pair: p, pos: dedupe(pos))) }
        }
        whereToUpdate.removeAll()

        var merges: [(Int32, Int32)] = []
        let target = options.vocabSize - pieces.count
        while pieces.count < options.vocabSize {
            guard var top = queue.pop() else { break }
            let current = pairCounts[top.pair] ?? 0
            if top.count != current {
                top.count = current
                if current > 0 { queue.push(top) }
                continue
            }
            if top.count < 1 || top.count < options.minFrequency { break }
            let a = Int32(truncatingIfNeeded: top.pair >> 32), b = Int32(truncatingIfNeeded: top.pair & 0xFFFF_FFFF)
            let newBytes = pieces[Int(a)] + pieces[Int(b)]
            let newId: Int32
            if let existing = ids[newBytes] { newId = existing } else {
                newId = Int32(pieces.count)
                pieces.append(newBytes)
                ids[newBytes] = newId
            }
            merges.append((a, b))
            for w in top.pos {
                mergeWord(&words[Int(w)], a, b, newId) { pair, delta in
                    pairCounts[pair, default: 0] += delta * counts[Int(w)]
                    if delta > 0 { whereToUpdate[pair, default: []].append(w) }
                }
            }
            for (p, pos) in whereToUpdate {
                let c = pairCounts[p] ?? 0
                if c > 0 { queue.push(MergeEntry(count: c, pair: p, pos: dedupe(pos))) }
            }
            whereToUpdate.removeAll(keepingCapacity: true)
            if let progress, merges.count % 64 == 0, !progress("merges", merges.count, target) {
                throw HMSTError(.cancelled, "tokenizer training cancelled")
            }
        }
        _ = progress?("merges", merges.count, target)
        let model = try BPEModel(pieces: pieces, ids: ids, mergeList: merges, ignoreMerges: false)
        let added = options.specialTokens.enumerated().map {
            AddedToken(id: Int32($0.offset), content: $0.element, special: true)
        }
        return Tokenizer(model: model, addedTokens: added, addPrefixSpace: false)
    }

    @inline(__always) static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    static func dedupe(_ xs: [Int32]) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(xs.count)
        var last: Int32 = -1
        for x in xs.sorted() where x != last { out.append(x); last = x }
        return out
    }

    /// HF's Word::merge: every left-to-right occurrence of (a, b) becomes `n`, reporting the
    /// pair changes (-1 for pairs broken, +1 for pairs formed). One pass that compacts in place
    /// (read at r, write at w <= r): removing each merged symbol from the array made a long
    /// word (a megabyte of letters without a space) quadratic.
    static func mergeWord(_ s: inout [Int32], _ a: Int32, _ b: Int32, _ n: Int32, _ change: (UInt64, Int) -> Void) {
        let count = s.count
        var w = 0, r = 0
        while r < count {
            if s[r] == a && r + 1 < count && s[r + 1] == b {
                if w > 0 {
                    change(pairKey(s[w - 1], a), -1)
                    change(pairKey(s[w - 1], n), 1)
                }
                if r + 2 < count {
                    change(pairKey(b, s[r + 2]), -1)
                    change(pairKey(n, s[r + 2]), 1)
                }
                s[w] = n
                w += 1
                r += 2
            } else {
                s[w] = s[r]
                w += 1
                r += 1
            }
        }
        s.removeLast(count - w)
    }

    /// Pre-tokenizes every line of every text (in parallel) and counts the words.
    static func countWords(_ texts: [[UInt8]], progress: ((String, Int, Int) -> Bool)?) throws -> ([[UInt8]], [Int]) {
        // cut each text into chunks at line ends, ~1 MiB each
        var jobs: [(text: Int, range: Range<Int>)] = []
        for (t, text) in texts.enumerated() {
            var start = 0
            while start < text.count {
                var end = min(text.count, start + (1 << 20))
                while end < text.count && text[end - 1] != 0x0A { end += 1 }
                jobs.append((t, start..<end))
                start = end
            }
        }
        let partial = UnsafeMutableBufferPointer<[[UInt8]: Int]>.allocate(capacity: max(1, jobs.count))
        partial.initialize(repeating: [:])
        defer { _ = partial.deinitialize(); partial.deallocate() }
        let total = texts.reduce(0) { $0 + $1.count }
        let done = Locked(0)
        let cancelled = Locked(false)
        parallelFor(jobs.count) { j in
            var local: [[UInt8]: Int] = [:]
            texts[jobs[j].text].withUnsafeBufferPointer { b in
                var lineStart = jobs[j].range.lowerBound
                let end = jobs[j].range.upperBound
                while lineStart < end {
                    var lineEnd = lineStart
                    while lineEnd < end && b[lineEnd] != 0x0A { lineEnd += 1 }
                    if lineEnd < end { lineEnd += 1 }  // keep the newline
                    PreTokenizer.split(b, lineStart..<lineEnd) { s, e in
                        local[Array(UnsafeBufferPointer(rebasing: b[s..<e])), default: 0] += 1
                    }
                    lineStart = lineEnd
                }
            }
            partial[j] = local
            let d = done.withLock { $0 += jobs[j].range.count; return $0 }
            if let progress, !progress("words", d, total) { cancelled.set(true) }
        }
        if cancelled.get() { throw HMSTError(.cancelled, "tokenizer training cancelled") }
        var merged: [[UInt8]: Int] = [:]
        for p in partial { merged.merge(p, uniquingKeysWith: +) }
        // a fixed word order keeps training deterministic whatever the thread count
        let sorted = merged.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        return (sorted.map { $0.key }, sorted.map { $0.value })
    }
}

struct MergeEntry {
    var count: Int
    var pair: UInt64
    var pos: [Int32]

    /// Pops first: higher count, then the smaller pair (HF's Merge ordering).
    @inline(__always) func before(_ o: MergeEntry) -> Bool {
        count != o.count ? count > o.count : pair < o.pair
    }
}

struct MergeHeap {
    var items: [MergeEntry] = []

    mutating func push(_ e: MergeEntry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].before(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> MergeEntry? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < items.count && items[l].before(items[best]) { best = l }
            if r < items.count && items[r].before(items[best]) { best = r }
            if best == i { break }
            items.swapAt(i, best)
            i = best
        }
        return top
    }
}

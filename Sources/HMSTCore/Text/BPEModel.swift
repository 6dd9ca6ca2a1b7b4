// BPEModel: the vocabulary (id <-> bytes) and merge ranks of a byte-level BPE, and the encoding
// of one pre-token: start from single bytes, then repeatedly merge the adjacent pair of lowest
// rank (leftmost first), as HF tokenizers' BPE does.

final class BPEModel: @unchecked Sendable {
    /// id -> raw bytes (special/added tokens included, as their UTF-8 content)
    let pieces: [[UInt8]]
    /// raw bytes -> id, for vocabulary pieces (not added tokens)
    let ids: [[UInt8]: Int32]
    /// the id of each single byte
    let byteIds: [Int32]
    /// (left << 32 | right) -> (rank, merged id)
    let merges: [UInt64: (rank: Int32, id: Int32)]
    /// merges in rank order, for saving
    let mergeList: [(Int32, Int32)]
    /// look whole words up in the vocabulary before merging (HF "ignore_merges")
    let ignoreMerges: Bool

    init(pieces: [[UInt8]], ids: [[UInt8]: Int32], mergeList: [(Int32, Int32)], ignoreMerges: Bool) throws {
        self.pieces = pieces
        self.ids = ids
        self.ignoreMerges = ignoreMerges
        var byteIds = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = ids[[UInt8(b)]] else {
                throw HMSTError.badFormat("tokenizer vocabulary lacks the byte-level symbol for byte 0x\(String(b, radix: 16)) (\"\(ByteLevel.encode([UInt8(b)]))\"); byte-level BPE needs all 256")
            }
            byteIds[b] = id
        }
        self.byteIds = byteIds
        var m: [UInt64: (Int32, Int32)] = [:]
        m.reserveCapacity(mergeList.count)
        for (rank, (a, b)) in mergeList.enumerated() {
            let merged = pieces[Int(a)] + pieces[Int(b)]
            guard let id = ids[merged] else {
                throw HMSTError.badFormat("tokenizer merge #\(rank) \"\(ByteLevel.encode(pieces[Int(a)]))\" + \"\(ByteLevel.encode(pieces[Int(b)]))\" makes \"\(ByteLevel.encode(merged))\", which is not in the vocabulary")
            }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if m[key] == nil { m[key] = (Int32(rank), id) }
        }
        merges = m
        self.mergeList = mergeList
    }

    /// Appends the ids of word bytes w[range] to out.
    func encodeWord(_ w: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [Int32], scratch: inout [Int32]) {
        let n = range.count
        if n == 1 { out.append(byteIds[Int(w[range.lowerBound])]); return }
        if ignoreMerges, let id = ids[Array(w[range])] { out.append(id); return }
        scratch.removeAll(keepingCapacity: true)
        for i in range { scratch.append(byteIds[Int(w[i])]) }
        // O(n^2) in the word length, which is short; long words (runs of digits or spaces) are
        // still linear per merge
        while scratch.count > 1 {
            var bestRank = Int32.max
            var bestAt = -1
            var bestId: Int32 = 0
            for i in 0..<(scratch.count - 1) {
                let key = UInt64(UInt32(scratch[i])) << 32 | UInt64(UInt32(scratch[i + 1]))
                if let m = merges[key], m.rank < bestRank {
                    bestRank = m.rank
                    bestAt = i
                    bestId = m.id
                }
            }
            if bestAt < 0 { break }
            // merge every non-overlapping occurrence of this pair, left to right
            let a = scratch[bestAt], b = scratch[bestAt + 1]
            var r = 0, i = 0
            while i < scratch.count {
                if i + 1 < scratch.count && scratch[i] == a && scratch[i + 1] == b && i >= bestAt {
                    scratch[r] = bestId
                    i += 2
                } else {
                    scratch[r] = scratch[i]
                    i += 1
                }
                r += 1
            }
            scratch.removeLast(scratch.count - r)
        }
        out.append(contentsOf: scratch)
    }
}

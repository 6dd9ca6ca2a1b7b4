// Window loaders over a TokenDataset for training and evaluation.
// WindowSampler draws random contiguous windows of blockSize+1 tokens (inputs and shifted
// targets), shards weighted by how many windows they hold; deterministic for a seed and
// resumable from its state. SequentialWindows walks every shard in order with stride blockSize
// for evaluation passes.

public struct WindowSamplerState: Sendable, Equatable {
    public var rng: RNG
    public var drawn: Int
}

public struct WindowSampler: Sendable {
    public let dataset: TokenDataset
    public let blockSize: Int
    /// cumulative count of window starts per shard
    let cumulative: [Int]
    public private(set) var state: WindowSamplerState

    public init(dataset: TokenDataset, blockSize: Int, seed: UInt64) throws {
        guard blockSize >= 1 else { throw HMSTError.invalidArgument("block size \(blockSize) must be >= 1") }
        var c: [Int] = []
        var total = 0
        for s in dataset.shards {
            total += max(0, s.count - blockSize)  // starts 0 ..< count - blockSize leave room for +1
            c.append(total)
        }
        guard total > 0 else {
            throw HMSTError.invalidArgument("dataset \(dataset.directory) has no shard longer than block size + 1 = \(blockSize + 1) tokens")
        }
        self.dataset = dataset
        self.blockSize = blockSize
        cumulative = c
        state = WindowSamplerState(rng: RNG(seed: seed), drawn: 0)
    }

    public mutating func restore(_ s: WindowSamplerState) { state = s }

    /// Writes the next window into out[blockSize + 1]; nil out: draw it without reading it.
    public mutating func next(into out: UnsafeMutablePointer<Int32>?) {
        let total = cumulative[cumulative.count - 1]
        let r = Int(state.rng.next() % UInt64(total))
        state.drawn += 1
        guard let out else { return }
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {  // first shard whose cumulative count exceeds r
            let mid = (lo + hi) / 2
            if cumulative[mid] > r { hi = mid } else { lo = mid + 1 }
        }
        let start = r - (lo == 0 ? 0 : cumulative[lo - 1])
        dataset.shards[lo].copy(from: start, count: blockSize + 1, to: out)
    }

    /// B windows: out[B, blockSize + 1]
    public mutating func nextBatch(_ B: Int, into out: UnsafeMutablePointer<Int32>) {
        for b in 0..<B { next(into: out + b * (blockSize + 1)) }
    }

    /// Rank `rank`'s B windows of a global batch of ranks x B: all ranks x B are drawn (the
    /// stream advances as for one process with batch ranks x B), rows rank*B ..< (rank+1)*B
    /// are read into out[B, blockSize + 1]. Data parallelism's disjoint, resumable shards.
    public mutating func nextBatch(_ B: Int, rank: Int, ranks: Int, into out: UnsafeMutablePointer<Int32>) {
        for i in 0..<(B * ranks) {
            let mine = i / B == rank
            next(into: mine ? out + (i - rank * B) * (blockSize + 1) : nil)
        }
    }
}

public struct SequentialWindows: Sendable {
    public let dataset: TokenDataset
    public let blockSize: Int
    public private(set) var shard = 0
    public private(set) var offset = 0

    public init(dataset: TokenDataset, blockSize: Int) throws {
        guard blockSize >= 1 else { throw HMSTError.invalidArgument("block size \(blockSize) must be >= 1") }
        self.dataset = dataset
        self.blockSize = blockSize
    }

    /// Number of windows a full pass yields.
    public var windowCount: Int {
        dataset.shards.reduce(0) { $0 + ($1.count > blockSize ? ($1.count - 1) / blockSize : 0) }
    }

    /// Next window into out[blockSize + 1]; false at the end of the pass.
    public mutating func next(into out: UnsafeMutablePointer<Int32>) -> Bool {
        while shard < dataset.shards.count {
            let s = dataset.shards[shard]
            if offset + blockSize + 1 <= s.count {
                s.copy(from: offset, count: blockSize + 1, to: out)
                offset += blockSize
                return true
            }
            shard += 1
            offset = 0
        }
        return false
    }

    public mutating func rewind() { shard = 0; offset = 0 }
}

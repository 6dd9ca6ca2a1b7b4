// TokenDataset: a directory of token shards plus metadata.json, as `hmst preprocess` and
// `hmst split` write it; and ShardWriter, which writes one with bounded memory.
//   metadata.json: {"format":"hmst-tokens","version":1,"vocab_size":V,"token_dtype":"uint16",
//                   "eos_id":id|null,"tokenizer":path|null,"total_tokens":N,"documents":D,
//                   "shards":[{"file":"shard_00000.bin","tokens":n,"documents":d}],"sources":[...]}

public final class TokenDataset: @unchecked Sendable {
    public let directory: String
    public let shards: [TokenShard]
    public let vocabSize: Int
    public let eosId: Int32?
    public let tokenizer: String?
    public let sources: [String]
    public let totalTokens: Int
    public let documentCount: Int
    /// `fingerprint`, once computed (the shards are read-only mappings)
    let fingerprintCache = Locked<UInt64?>(nil)

    public init(directory: String) throws {
        self.directory = directory
        let metaPath = directory + "/metadata.json"
        guard FileIO.exists(metaPath) else {
            throw HMSTError.notFound("\(directory) is not a token dataset: no metadata.json (make one with `hmst preprocess`)")
        }
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(metaPath): \(m)") }
        let meta = try JSONValue.parse(file: metaPath)
        guard meta["format"]?.string == "hmst-tokens" else { throw bad("\"format\" is not \"hmst-tokens\"") }
        guard meta["version"]?.int == 1 else { throw bad("unsupported version \(meta["version"]?.serialized ?? "missing")") }
        guard let v = meta["vocab_size"]?.int, v >= 1 else { throw bad("missing or invalid vocab_size") }
        vocabSize = v
        if let e = meta["eos_id"], !e.isNull {
            guard let id = e.int, id >= 0, id < v else { throw bad("eos_id \(e.serialized) is outside the vocabulary") }
            eosId = Int32(id)
        } else {
            eosId = nil
        }
        tokenizer = meta["tokenizer"]?.string
        sources = meta["sources"]?.array?.compactMap { $0.string } ?? []
        guard let list = meta["shards"]?.array else { throw bad("missing \"shards\" list") }
        var shards: [TokenShard] = []
        var files = Set<String>()
        for (i, entry) in list.enumerated() {
            guard let file = entry["file"]?.string, !file.contains("/"), !file.isEmpty else {
                throw bad("shard \(i) has no plain file name")
            }
            guard files.insert(file).inserted else { throw bad("\(file) is listed twice (its tokens would count double)") }
            let shard = try TokenShard(path: directory + "/" + file)
            guard shard.vocabSize == v else { throw bad("\(file) has vocab \(shard.vocabSize), metadata says \(v)") }
            if let n = entry["tokens"]?.int, n != shard.count { throw bad("\(file) holds \(shard.count) tokens, metadata says \(n)") }
            shards.append(shard)
        }
        self.shards = shards
        totalTokens = shards.reduce(0) { $0 + $1.count }
        documentCount = shards.reduce(0) { $0 + $1.documentCount }
        if let n = meta["total_tokens"]?.int, n != totalTokens { throw bad("total_tokens \(n) but the shards hold \(totalTokens)") }
    }
}

extension TokenDataset {
    /// The end-of-text token of a fresh model trained on this data: the tokenizer's, or else
    /// the one the data's manifest names (pretokenized data given without its tokenizer). The
    /// CLI and the C trainer both ask here, so they cannot disagree.
    public func endOfTextToken(tokenizer: Tokenizer?) -> Int? {
        (tokenizer?.eosId ?? eosId).map(Int.init)
    }

    /// Datasets whose tokens take at most this many bytes are hashed whole by `fingerprint`.
    public static let fullFingerprintBytes = 4 << 30

    /// Whether `fingerprint` hashes every token (true up to fullFingerprintBytes) or a sample.
    public var fingerprintIsComplete: Bool { shards.reduce(0) { $0 + $1.count * $1.tokenBytes } <= TokenDataset.fullFingerprintBytes }

    /// A 64-bit fingerprint of the tokens, for ranks of a data-parallel job to check they read
    /// the same data. Up to 4 GiB of tokens every byte is hashed (about 0.3 s a GiB once the
    /// pages are cached): any difference shows. Above that, each shard's length and 16 runs of
    /// 64 tokens at evenly spaced places (the first and the last included), so it reads a few
    /// hundred KiB: a difference only between the runs does not show.
    public var fingerprint: UInt64 {
        if let f = fingerprintCache.get() { return f }
        let f = computeFingerprint()
        fingerprintCache.set(f)
        return f
    }

    private func computeFingerprint() -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ v: UInt64) { h = (h ^ v) &* 0x100_0000_01b3; h ^= h >> 29 }
        mix(UInt64(vocabSize))
        let complete = fingerprintIsComplete
        for shard in shards {
            mix(UInt64(shard.count))
            if complete {
                mix(FileChecksum.of(UnsafeRawBufferPointer(start: shard.tokens, count: shard.count * shard.tokenBytes)))
                continue
            }
            let run = min(64, shard.count), runs = shard.count > run ? 16 : 1
            for r in 0..<runs {
                let start = runs == 1 ? 0 : (shard.count - run) * r / (runs - 1)
                for i in start ..< start + run { mix(UInt64(UInt32(bitPattern: shard.token(i)))) }
            }
        }
        return h
    }

    /// What the agreement calls this dataset's fingerprint: "NAME (fingerprint)" when it covers
    /// every token, "NAME (sampled fingerprint)" when it does not.
    public func fingerprintLabel(_ name: String) -> String { "\(name) (\(fingerprintIsComplete ? "" : "sampled ")fingerprint)" }

    /// Bytes of text per token over the first 1M tokens (decoded with the tokenizer), for bits
    /// per byte; nil when there are none.
    public func bytesPerToken(tokenizer: Tokenizer) throws -> Double? {
        var tokens = 0, bytes = 0
        for shard in shards where tokens < 1 << 20 {
            let n = min(shard.count, (1 << 20) - tokens)
            bytes += try tokenizer.decode((0..<n).map { shard.token($0) }).count
            tokens += n
        }
        return tokens > 0 && bytes > 0 ? Double(bytes) / Double(tokens) : nil
    }
}

/// Appends documents and cuts shards of about `shardTokens` tokens; finish() writes metadata
/// last, so a directory with metadata.json is always complete.
public final class ShardWriter {
    public let directory: String
    public let vocabSize: Int
    let eosId: Int32?
    let shardTokens: Int
    var tokens: [Int32] = []
    var docStarts: [Int] = []
    var written: [(file: String, tokens: Int, documents: Int)] = []
    public private(set) var totalTokens = 0
    public private(set) var documents = 0

    /// Writing into a directory that holds a dataset replaces it: its metadata.json goes first
    /// (until finish() writes the new one the directory is no dataset, rather than old metadata
    /// over new shards), then its shards and any temp files a killed run left.
    public init(directory: String, vocabSize: Int, eosId: Int32?, shardTokens: Int = 1 << 26) throws {
        guard shardTokens >= 1 else { throw HMSTError.invalidArgument("shard size must be >= 1 token") }
        try FileIO.makeDirectories(directory)
        for name in ["metadata.json"] + FileIO.listDirectory(directory).filter(ShardWriter.isShardFile) {
            guard unlink(directory + "/" + name) == 0 || errno == ENOENT else {
                throw HMSTError.io("cannot remove the old \(directory)/\(name): \(FileIO.errnoMessage())")
            }
        }
        self.directory = directory
        self.vocabSize = vocabSize
        self.eosId = eosId
        self.shardTokens = shardTokens
    }

    /// Adds one document (its tokens; the EOS separator is appended here when there is one).
    public func append(document: [Int32]) throws {
        guard !document.isEmpty || eosId != nil else { return }
        docStarts.append(tokens.count)
        tokens += document
        if let eosId { tokens.append(eosId) }
        documents += 1
        if tokens.count >= shardTokens { try flush() }
    }

    /// shard_NNNNN.bin as flush() names them, and their temp files (shard_NNNNN.bin.tmp.PID)
    static func isShardFile(_ name: String) -> Bool {
        guard name.hasPrefix("shard_") else { return false }
        let rest = name.dropFirst("shard_".count)
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        let tail = rest.dropFirst(digits.count)
        return digits.count >= 5 && (tail == ".bin" || tail.hasPrefix(".bin.tmp."))
    }

    func flush() throws {
        guard !tokens.isEmpty else { return }
        let file = "shard_\(String(repeating: "0", count: max(0, 5 - String(written.count).count)))\(written.count).bin"
        try TokenShard.write(path: directory + "/" + file, tokens: tokens, documentStarts: docStarts, vocabSize: vocabSize)
        written.append((file, tokens.count, docStarts.count))
        totalTokens += tokens.count
        tokens.removeAll(keepingCapacity: true)
        docStarts.removeAll(keepingCapacity: true)
    }

    public func finish(tokenizer: String?, sources: [String]) throws {
        try flush()
        let w = JSONWriter()
        w.object {
            w.field("format", "hmst-tokens")
            w.field("version", 1)
            w.field("vocab_size", vocabSize)
            w.field("token_dtype", vocabSize <= 65536 ? "uint16" : "uint32")
            if let eosId { w.field("eos_id", Int(eosId)) } else { w.field("eos_id", JSONValue.null) }
            if let tokenizer { w.field("tokenizer", tokenizer) } else { w.field("tokenizer", JSONValue.null) }
            w.field("total_tokens", totalTokens)
            w.field("documents", documents)
            w.field("shards", JSONValue.array(written.map {
                .object([("file", .string($0.file)), ("tokens", .number(Double($0.tokens))), ("documents", .number(Double($0.documents)))])
            }))
            w.field("sources", sources)
        }
        try FileIO.writeAtomically(directory + "/metadata.json", text: w.output + "\n")
    }
}

// DatasetSplit: `hmst split`: a deterministic train/validation split at document boundaries.
// Documents are shuffled with the seed; the first ceil(fraction * D) go to validation, and both
// parts keep their documents in original order.

public enum DatasetSplit {
    public struct Result: Sendable {
        public var trainDirectory: String
        public var valDirectory: String
        public var trainDocuments: Int
        public var valDocuments: Int
        public var trainTokens: Int
        public var valTokens: Int
    }

    public static func split(dataset: TokenDataset, valFraction: Double, seed: UInt64,
                             trainDirectory: String, valDirectory: String) throws -> Result {
        guard valFraction > 0, valFraction < 1 else {
            throw HMSTError.invalidArgument("validation fraction \(valFraction) must be strictly between 0 and 1")
        }
        // a split written over the dataset it reads (hmst split DIR/train_split puts its outputs
        // beside DIR, that is into DIR itself) would shrink it by a tenth per run
        try FileIO.refuseOverwriting(inputs: [dataset.directory], outputs: [trainDirectory, valDirectory])
        let D = dataset.documentCount
        guard D >= 2 else { throw HMSTError.invalidArgument("\(dataset.directory) has \(D) document(s); a split needs at least 2") }
        var order = Array(0..<D)
        var rng = RNG(seed: seed)
        for i in stride(from: D - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let nVal = min(D - 1, max(1, Int((valFraction * Double(D)).rounded(.up))))
        var isVal = [Bool](repeating: false, count: D)
        for i in order.prefix(nVal) { isVal[i] = true }

        let eos = dataset.eosId
        let train = try ShardWriter(directory: trainDirectory, vocabSize: dataset.vocabSize, eosId: eos)
        let val = try ShardWriter(directory: valDirectory, vocabSize: dataset.vocabSize, eosId: eos)
        var global = 0
        for shard in dataset.shards {
            for d in 0..<shard.documentCount {
                var r = shard.document(d)
                // the writer re-appends the separator, so drop the stored one
                if let eos, r.count > 0, shard.token(r.upperBound - 1) == eos { r = r.lowerBound..<(r.upperBound - 1) }
                let doc = r.map { shard.token($0) }
                try (isVal[global] ? val : train).append(document: doc)
                global += 1
            }
        }
        try train.finish(tokenizer: relocated(dataset.tokenizer, from: dataset.directory), sources: [dataset.directory])
        try val.finish(tokenizer: relocated(dataset.tokenizer, from: dataset.directory), sources: [dataset.directory])
        return Result(trainDirectory: trainDirectory, valDirectory: valDirectory, trainDocuments: train.documents,
                      valDocuments: val.documents, trainTokens: train.totalTokens, valTokens: val.totalTokens)
    }

    /// A relative tokenizer path made absolute against the source dataset's directory.
    static func relocated(_ path: String?, from dir: String) -> String? {
        guard let path else { return nil }
        if path.hasPrefix("/") { return path }
        return Paths.absolute(dir + "/" + path)
    }
}

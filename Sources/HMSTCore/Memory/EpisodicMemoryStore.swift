// EpisodicMemoryStore: an EpisodicMemory as a directory (committed as MemoryFiles describes):
//   episodic.json               manifest: format, version, config, counts, data files, and
//                               "model": the ModelSignature of the model the keys were
//                               encoded with (absent in memories saved before session 37)
//   episodic-<gen>.safetensors  "keys" [M, N] and the SSM mixer as "mixer.<HF MambaMixer name>";
//                               "features" [M, F] when the memory keeps state features (the
//                               manifest then names F as "feature_size" and the soft tokens
//                               they are for as "features_for", their weights' hash)
//   entries-<gen>.jsonl         one entry a line: id, text, tokens, timestamp, access count,
//                               surprise, importance (ids as decimal strings), and "owner"
//                               when non-empty (entries written before owners load with "")

extension EpisodicMemory {
    static let manifestName = "episodic.json"
    static let formatName = "hmst-episodic-memory"
    static let formatVersion = 1

    /// Writes the memory to `directory` atomically. Thread-safe (holds the memory's lock).
    public func save(directory: String) throws {
        try FileIO.makeDirectories(directory)
        let gen = MemoryFiles.newGeneration()
        let dataName = "episodic-\(gen).safetensors", entriesName = "entries-\(gen).jsonl"
        try lock.withLock { _ in
            let M = entries.count, N = config.stateSize
            let keyBuf = FloatBuffer(count: M * N)
            keyBuf.pointer.update(from: keys, count: M * N)
            var tensors = [RawTensor(name: "keys", dtype: .f32, shape: [M, N],
                                     bytes: UnsafeRawBufferPointer(start: keyBuf.pointer, count: M * N * 4), owner: keyBuf)]
            if featureSize > 0 {
                let F = featureSize
                let fBuf = FloatBuffer(count: M * F)
                fBuf.pointer.update(from: features, count: M * F)
                tensors.append(RawTensor(name: "features", dtype: .f32, shape: [M, F],
                                         bytes: UnsafeRawBufferPointer(start: fBuf.pointer, count: M * F * 4), owner: fBuf))
            }
            for t in MambaTensor.allCases {
                tensors.append(RawTensor(name: "mixer." + t.hfName, dtype: .f32, shape: t.shape(mixerConfig),
                                         bytes: UnsafeRawBufferPointer(weights.buffer(t)), owner: weights))
            }
            let dataPath = directory + "/" + dataName
            try SafeTensorsWriter.writeRaw(path: dataPath, tensors: tensors)
            let dataInfo = try FileChecksum.of(path: dataPath)
            var lines = ""
            for e in entries {
                let w = JSONWriter()
                w.object {
                    w.field("id", String(e.id)); w.field("text", e.text)
                    w.field("tokens", JSONValue.array(e.tokens.map { .number(Double($0)) }))
                    w.field("timestamp", e.timestamp); w.field("access_count", e.accessCount)
                    w.field("surprise", e.surprise); w.field("importance", e.importance)
                    if !e.owner.isEmpty { w.field("owner", e.owner) }
                }
                lines += w.output + "\n"
            }
            let entriesInfo = try MemoryFiles.writeData(directory, entriesName, Array(lines.utf8))
            let w = JSONWriter()
            w.object {
                w.field("format", EpisodicMemory.formatName); w.field("version", EpisodicMemory.formatVersion)
                w.field("input_size", inputSize); w.field("state_size", config.stateSize)
                w.field("max_entries", config.maxEntries); w.field("max_tokens", config.maxTokens)
                w.field("seed", String(config.seed)); w.field("count", M); w.field("next_id", String(nextId))
                if featureSize > 0 { w.field("feature_size", featureSize); w.field("features_for", featureSource) }
                if let builtBy { w.field("model", builtBy.json) }
                MemoryFiles.describe(w, "data", file: dataName, dataInfo)
                MemoryFiles.describe(w, "entries", file: entriesName, entriesInfo)
            }
            try FileIO.writeAtomically(directory + "/" + EpisodicMemory.manifestName, text: w.output + "\n")
        }
        MemoryFiles.removeStale(directory, keep: [dataName, entriesName], manifest: EpisodicMemory.manifestName) { name in
            (name.hasPrefix("episodic-") && name.contains(".safetensors")) || (name.hasPrefix("entries-") && name.contains(".jsonl"))
        }
    }

    /// Reads a directory written by save(directory:): NOT_FOUND for a missing directory or
    /// file, BAD_FORMAT for a corrupt or inconsistent one, UNSUPPORTED for a newer version.
    public static func load(directory: String) throws -> EpisodicMemory {
        let (m, manifestPath) = try MemoryFiles.readManifest(directory: directory, name: manifestName, format: formatName,
                                                             version: formatVersion, kind: "an episodic memory")
        func bad(_ why: String) -> HMSTError { HMSTError.badFormat("\(manifestPath): \(why)") }
        guard let inputSize = m["input_size"]?.int, let stateSize = m["state_size"]?.int, let maxEntries = m["max_entries"]?.int,
              let maxTokens = m["max_tokens"]?.int, let seed = m["seed"]?.string.flatMap({ UInt64($0) }),
              let count = m["count"]?.int, count >= 0, let nextId = m["next_id"]?.string.flatMap({ Int64($0) }) else {
            throw bad("missing or mistyped input_size, state_size, max_entries, max_tokens, seed, count or next_id")
        }
        var config = EpisodicMemoryConfig()
        config.stateSize = stateSize; config.maxEntries = maxEntries; config.maxTokens = maxTokens; config.seed = seed
        do { try config.validate() } catch let e as HMSTError { throw bad(e.message) }
        guard inputSize >= 1, count <= maxEntries else { throw bad("input_size must be >= 1 and count <= max_entries") }
        let dataPath = try MemoryFiles.checkedFile(m["data"], directory: directory, manifest: manifestPath)
        let entriesPath = try MemoryFiles.checkedFile(m["entries"], directory: directory, manifest: manifestPath)
        let mixerConfig = try MambaConfig.episodicMemory(hiddenSize: inputSize, stateSize: stateSize)
        let file = try SafeTensorsFile(path: dataPath)
        let weights = try MambaMixerWeights.load(path: dataPath, prefix: "mixer.", config: mixerConfig)
        let memory = try EpisodicMemory(inputSize: inputSize, config: config, weights: weights)
        var keys = [Float](repeating: 0, count: count * stateSize)
        if count > 0 { try keys.withUnsafeMutableBytes { try file.copy("keys", dtype: .f32, count: count * stateSize, to: $0.baseAddress!) } }
        guard keys.allSatisfy(\.isFinite) else { throw HMSTError.badFormat("\(dataPath): keys are not finite") }
        var featureSize = 0, featureSource = "", features: [Float] = []
        if let f = m["feature_size"], !f.isNull {
            guard let F = f.int, F >= 1, F <= 1 << 20, let source = m["features_for"]?.string else {
                throw bad("feature_size must be a positive integer with features_for a string")
            }
            featureSize = F
            featureSource = source
            features = [Float](repeating: 0, count: count * F)
            if count > 0 { try features.withUnsafeMutableBytes { try file.copy("features", dtype: .f32, count: count * F, to: $0.baseAddress!) } }
            // NaN rows are entries without features; infinities are corruption
            guard !features.contains(where: \.isInfinite) else { throw HMSTError.badFormat("\(dataPath): features are not finite") }
        }
        let builtBy: ModelSignature?
        do { builtBy = try ModelSignature.read(manifestField: m["model"]) } catch let e as HMSTError { throw bad(e.message) }
        var entries: [EpisodicEntry] = []
        let text = try FileIO.readText(entriesPath)
        for (n, line) in text.lines().enumerated() {
            func badLine(_ why: String) -> HMSTError { HMSTError.badFormat("\(entriesPath): line \(n + 1): \(why)") }
            let j: JSONValue
            do { j = try JSONValue.parse(String(line)) } catch let e as HMSTError { throw badLine(e.message) }
            guard let id = j["id"]?.string.flatMap({ Int64($0) }), let t = j["text"]?.string, let toks = j["tokens"]?.array,
                  let ts = j["timestamp"]?.number, let ac = j["access_count"]?.int, let su = j["surprise"]?.number,
                  let im = j["importance"]?.number, ts.isFinite, su.isFinite, ac >= 0, id >= 0, id < nextId else {
                throw badLine("not a valid entry (id below next_id, text, tokens, finite timestamp and surprise, access_count >= 0)")
            }
            guard im.isFinite, im >= 0, im <= 1 else { throw badLine("importance \(im) is outside [0, 1]") }
            let tokens = toks.compactMap { $0.int.flatMap { $0 >= 0 ? Int32(exactly: $0) : nil } }
            guard tokens.count == toks.count else { throw badLine("tokens must be integers in 0 ... \(Int32.max)") }
            var owner = ""
            if let o = j["owner"], !o.isNull {
                guard let s = o.string else { throw HMSTError.badFormat("\(entriesPath): line \(n + 1): \"owner\" must be a string") }
                owner = s
            }
            entries.append(EpisodicEntry(id: id, text: t, tokens: tokens, timestamp: ts, accessCount: ac, surprise: su, importance: im,
                                         owner: owner))
        }
        guard entries.count == count else { throw HMSTError.badFormat("\(entriesPath): \(entries.count) entries, manifest says \(count)") }
        guard Set(entries.map(\.id)).count == count else { throw HMSTError.badFormat("\(entriesPath): duplicate ids") }
        memory.lock.withLock { _ in
            memory.entries = entries
            memory.keys = keys
            memory.nextId = nextId
            memory.features = features
            memory.featureSize = featureSize
            memory.featureSource = featureSource
            memory.builtBy = builtBy
        }
        try memory.lock.withLock { _ in
            for e in entries { try memory.lexical.insert(id: e.id, terms: LexicalTokenizer.terms(e.text)) }
        }
        return memory
    }
}

// Checkpoint: loading and saving HF-style checkpoint directories (config.json,
// model.safetensors or shards + model.safetensors.index.json, tokenizer.json).
// Loading validates every shard header and the tensor set against the config before any
// weight is read, places pages per the NUMA options, and uses f32/bf16/f16 tensors in place.
import CKernels

public enum WeightType: Sendable {
    /// f32, bf16 and f16 as stored (in place in the map)
    case asStored
    /// everything as f32 (bf16/f16 widened into owned memory)
    case f32
    /// matrices as bf16 (f32 rounded into owned memory); norms and router stay f32
    case bf16
    /// matrices as IEEE half (rounded into owned memory unless stored so; a value beyond ±65504
    /// fails the load); norms and router stay f32
    case f16
    /// matrices whose width is a multiple of 32 as int8 Q8_0 blocks (quantized into owned
    /// memory unless stored so); norms and router stay f32
    case int8
}

public struct ModelLoadOptions {
    public var placement = PlacementOptions()
    public var loadTokenizer = true
    public var weightType = WeightType.asStored
    /// Scan every tensor the model uses for NaN/Inf at load (touches every page); the error
    /// names the tensor and the first bad element. int8 scales are always checked.
    public var checkTensors = false
    /// Called with the fraction done; return false to cancel (HMSTError .cancelled).
    public var progress: ((Double) -> Bool)?
    public init() {}
}

/// The HF tensor names and shapes a config implies, in a stable order.
public func expectedTensors(_ c: MixtralConfig) -> [(name: String, shape: [Int])] {
    let d = c.dims
    var out: [(String, [Int])] = [(MixtralNames.embed, [d.V, d.C])]
    for l in 0..<d.L {
        let n = MixtralNames.layer(l, experts: d.E)
        out.append((n.attnNorm, [d.C]))
        out.append((n.q, [d.qDim, d.C]))
        out.append((n.k, [d.kvDim, d.C]))
        out.append((n.v, [d.kvDim, d.C]))
        out.append((n.o, [d.C, d.qDim]))
        out.append((n.ffnNorm, [d.C]))
        out.append((n.router, [d.E, d.C]))
        for e in 0..<d.E {
            out.append((n.w1[e], [d.F, d.C]))
            out.append((n.w2[e], [d.C, d.F]))
            out.append((n.w3[e], [d.F, d.C]))
        }
    }
    out.append((MixtralNames.finalNorm, [d.C]))
    if !d.tiedEmbeddings { out.append((MixtralNames.lmHead, [d.V, d.C])) }
    return out
}

/// One mapped shard: its header and where its data section now lives.
final class LoadedShard {
    let file: String
    let map: MappedFile
    let header: SafeTensorsHeader
    let region: PlacedRegion

    init(file: String, map: MappedFile, header: SafeTensorsHeader, region: PlacedRegion) {
        self.file = file
        self.map = map
        self.header = header
        self.region = region
    }

    func pointer(_ t: SafeTensorInfo) -> UnsafeRawPointer? { region.base.map { $0 + t.begin } }
}

/// Memory holding weights that a copy has replaced (int8 matrices reordered for decode) and
/// whose pages may be dropped: a read-only file mapping reads them again from the file if
/// anything touches them later; owned memory does not conform.
protocol ReleasableWeightMemory: AnyObject {
    func release(_ bytes: UnsafeRawBufferPointer)
}

extension LoadedShard: ReleasableWeightMemory {
    func release(_ bytes: UnsafeRawBufferPointer) { region.dropPages(bytes) }
}

extension LanguageModel {
    public static func load(path: String, options: ModelLoadOptions = ModelLoadOptions()) throws -> LanguageModel {
        let t0 = Clock.nowMs()
        if path.lowercased().hasSuffix(".gguf") && FileIO.exists(path) && !FileIO.isDirectory(path) {
            return try loadGGUF(path: path, options: options)
        }
        guard FileIO.isDirectory(path) else {
            throw FileIO.exists(path) ? HMSTError.invalidArgument("\(path) is a file; a checkpoint is a directory with config.json and model.safetensors")
                                      : HMSTError.notFound("checkpoint directory \(path) does not exist")
        }
        let configPath = path + "/config.json"
        guard FileIO.exists(configPath) else { throw HMSTError.notFound("\(configPath): no such file") }
        let configJSON = try JSONValue.parse(file: configPath)
        let config = try MixtralConfig(json: configJSON, source: configPath)
        let int8Layout = try Q8Format.parseConfig(configJSON, source: configPath)
        let quantized = int8Layout != nil
        var report = LoadReport()
        report.path = path
        if let h = configJSON["hmst"], h["untrained"]?.bool == true { report.untrained = true }

        // ---- which files hold which tensors
        var shardFiles: [String]
        var weightMap: [String: String]? = nil
        let single = path + "/model.safetensors", indexPath = path + "/model.safetensors.index.json"
        if FileIO.exists(single) {
            shardFiles = ["model.safetensors"]
        } else if FileIO.exists(indexPath) {
            let index = try JSONValue.parse(file: indexPath)
            guard let wm = index["weight_map"]?.object else { throw HMSTError.badFormat("\(indexPath): no \"weight_map\" object") }
            var map: [String: String] = [:]
            for (name, f) in wm {
                guard let file = f.string, !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
                    throw HMSTError.badFormat("\(indexPath): weight_map[\"\(name)\"] is not a plain file name")
                }
                map[name] = file
            }
            weightMap = map
            shardFiles = Array(Set(map.values)).sorted()
            for f in shardFiles where !FileIO.exists(path + "/" + f) {
                throw HMSTError.notFound("\(indexPath) names shard \(f), which does not exist")
            }
        } else {
            throw HMSTError.notFound("\(path) has neither model.safetensors nor model.safetensors.index.json")
        }

        // ---- map and validate every header before touching weights
        var shards: [LoadedShard] = []
        var location: [String: (LoadedShard, SafeTensorInfo)] = [:]
        var placements: [PlacementReport] = []
        for f in shardFiles {
            let map = try MappedFile(path: path + "/" + f)
            let header = try SafeTensorsHeader(file: map.bytes, source: path + "/" + f)
            let data = UnsafeRawBufferPointer(rebasing: map.bytes[header.dataOffset...])
            let (region, placement) = Placement.place(data, options: options.placement)
            placements.append(placement)
            let shard = LoadedShard(file: f, map: map, header: header, region: region)
            shards.append(shard)
            for t in header.tensors {
                if let prev = location[t.name] {
                    throw HMSTError.badFormat("tensor \(t.name) is in both \(prev.0.file) and \(f)")
                }
                if let wm = weightMap, wm[t.name] != f {
                    throw HMSTError.badFormat("\(indexPath): tensor \(t.name) is in \(f) but the weight_map says \(wm[t.name] ?? "nothing")")
                }
                location[t.name] = (shard, t)
            }
        }
        if let wm = weightMap {
            let missing = wm.keys.filter { location[$0] == nil }.sorted()
            if !missing.isEmpty {
                throw HMSTError.badFormat("\(indexPath) lists tensors its shards do not hold: \(missing.prefix(5).joined(separator: ", "))")
            }
        }
        var expected = expectedTensors(config)
        let expectedNames = Set(expected.map { $0.name })
        // a tied checkpoint may still carry a copy of the head; it is ignored
        let ignorable: Set<String> = config.tieWordEmbeddings ? [MixtralNames.lmHead] : []
        let missing = expected.filter { location[$0.name] == nil }.map { $0.name }
        if !missing.isEmpty {
            throw HMSTError.badFormat("checkpoint \(path) lacks \(missing.count) tensor(s) the config needs: \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", ..." : "")")
        }
        let unexpected = location.keys.filter {
            !expectedNames.contains($0) && !ignorable.contains($0) && !Q8Format.isScaleOfInt8($0, location: { location[$0]?.1 })
        }.sorted()
        if !unexpected.isEmpty {
            throw HMSTError.badFormat("checkpoint \(path) has \(unexpected.count) tensor(s) this config does not use: \(unexpected.prefix(5).joined(separator: ", "))\(unexpected.count > 5 ? ", ..." : "")")
        }
        for (name, shape) in expected {
            let t = location[name]!.1
            guard t.shape == shape else {
                throw HMSTError.badFormat("tensor \(name) has shape \(t.shape) but the config implies \(shape)")
            }
            if t.dtype == .i8 {
                try Q8Format.validate(name: name, shape: shape, quantizedConfig: quantized, scale: location[name + Q8Format.scaleSuffix]?.1)
                continue
            }
            guard t.dtype == .f32 || t.dtype == .bf16 || t.dtype == .f16 else {
                throw HMSTError.unsupported("tensor \(name) is \(t.dtype.rawValue); hmst loads F32, BF16, F16 and (with a q8_0 \"quantization\" entry) I8 weights")
            }
        }
        expected.removeAll()

        // ---- weights by role
        var owned: [AnyObject] = []
        let total = Double(location.count)
        var done = 0.0
        func tick(_ name: String) throws {
            done += 1
            if let p = options.progress, !p(done / total) {
                throw HMSTError(.cancelled, "loading \(path) cancelled at \(name)")
            }
        }
        func view(_ name: String, _ rows: Int, _ cols: Int, want: WeightType, ticked: Bool = false) throws -> Weight {
            let (shard, t) = location[name]!
            guard let p = shard.pointer(t) else { throw HMSTError.badFormat("tensor \(name) has no data") }
            if !ticked { try tick(name) }
            let n = rows * cols
            let addr = Int(bitPattern: p)
            if options.checkTensors && !ticked { try TensorCheck.requireFinite(name: name, dtype: t.dtype, data: p, count: n, cols: cols) }
            if t.dtype == .i8 {
                let (sShard, st) = location[name + Q8Format.scaleSuffix]!
                guard let sp = sShard.pointer(st) else { throw HMSTError.badFormat("tensor \(name)\(Q8Format.scaleSuffix) has no data") }
                let q = try Q8Format.view(name: name, values: p, scales: sp, rows: rows, cols: cols,
                                          rows4: Q8Format.storedRows4(name: name, rows: rows, cols: cols, layout: int8Layout ?? .rows),
                                          owner: shard)
                switch want {
                case .asStored, .int8: return q
                case .f32: return try convertWeight(q, toBF16: false)
                case .bf16: return try convertWeight(q, toBF16: true)
                case .f16: return try halfWeight(q, name: name)
                }
            }
            if want == .f16 && !(t.dtype == .f16 && addr % 2 == 0) {
                return try halfWeight(try view(name, rows, cols, want: .asStored, ticked: true), name: name)
            }
            if want == .int8 {
                let f = try view(name, rows, cols, want: .f32, ticked: true)
                return Q8Tensor.fits(cols: cols) ? Q8Tensor.quantize(f) : f
            }
            switch (t.dtype, want) {
            case (.f32, .asStored) where addr % 4 == 0, (.f32, .f32) where addr % 4 == 0:
                return Weight(.f32(p.assumingMemoryBound(to: Float.self)), rows: rows, cols: cols, owner: shard)
            case (.bf16, .asStored) where addr % 2 == 0, (.bf16, .bf16) where addr % 2 == 0:
                return Weight(.bf16(p.assumingMemoryBound(to: UInt16.self)), rows: rows, cols: cols, owner: shard)
            case (.f16, .asStored) where addr % 2 == 0, (.f16, .f16) where addr % 2 == 0:
                return Weight(.f16(p.assumingMemoryBound(to: UInt16.self)), rows: rows, cols: cols, owner: shard)
            default:
                // convert into owned memory: to bf16 if asked, else f32
                let f = try FloatBuffer(count: n, zeroed: false, for: "\(name) as f32")
                switch t.dtype {
                case .f32: UnsafeMutableRawPointer(f.pointer).copyMemory(from: p, byteCount: n * 4)
                case .bf16:
                    let tmp = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
                    UnsafeMutableRawPointer(tmp).copyMemory(from: p, byteCount: n * 2)
                    hk_bf16_to_f32(f.pointer, tmp, n)
                    tmp.deallocate()
                default:
                    let tmp = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
                    UnsafeMutableRawPointer(tmp).copyMemory(from: p, byteCount: n * 2)
                    hk_f16_to_f32(f.pointer, tmp, n)
                    tmp.deallocate()
                }
                if want == .bf16 {
                    let b = try OwnedTensor(count: n, bf16: true, for: "tensor \(name) as bf16")
                    hk_f32_to_bf16(b.raw.assumingMemoryBound(to: UInt16.self), f.pointer, n)
                    owned.append(b)
                    return b.weight(rows: rows, cols: cols)
                }
                owned.append(f)
                return Weight(.f32(UnsafePointer(f.pointer)), rows: rows, cols: cols, owner: f)
            }
        }
        let weights = try DecoderWeights(dims: config.dims,
                                         tensor: { name, r, c in try view(name, r, c, want: options.weightType) },
                                         f32: { name, r, c in try view(name, r, c, want: .f32) })

        var tokenizer: TextTokenizer? = nil
        let tokPath = path + "/tokenizer.json"
        if options.loadTokenizer && FileIO.exists(tokPath) {
            tokenizer = try Tokenizer(jsonPath: tokPath)
            if let tv = tokenizer?.vocabSize, tv > config.vocabSize {
                throw HMSTError.badFormat("\(tokPath) has \(tv) tokens but the model's vocab_size is \(config.vocabSize)")
            }
        }

        report.placement = mergePlacements(placements, requested: options.placement.strategy)
        report.placement.threads = Placement.placeThreads(options.placement.strategy)
        report.loadMs = Clock.nowMs() - t0
        let model = LanguageModel(decoder: Decoder(dims: config.dims, weights: weights), tokenizer: tokenizer,
                             config: configJSON, report: report, storage: shards + owned)
        model.retriever = try RetrieverProjection.load(checkpoint: path, hiddenSize: config.dims.C)
        model.decoder.exitHead = try ExitHead.load(checkpoint: path, dims: config.dims)
        model.decoder.copyHead = try CopyHead.load(checkpoint: path, dims: config.dims)
        model.episodicSoftTokens = try EpisodicSoftTokens.load(checkpoint: path, dims: config.dims)
        // the engine's meta-controller and critic, when the checkpoint has them
        do { model.controller = try MetaController.load(checkpoint: path, model: model) } catch let e as StaleController {
            model.controllerProblem = e.message
        }
        do { model.critic = try Engine.openVerifier(checkpoint: path, model: model) } catch let e as CriticForAnotherModel {
            model.criticProblem = e.message
            Log.warn(e.message + " (loaded without it)")
        }
        return model
    }

    static func mergePlacements(_ ps: [PlacementReport], requested: NUMAStrategy) -> PlacementReport {
        guard var r = ps.first else { var e = PlacementReport(); e.requested = requested; return e }
        for p in ps.dropFirst() {
            if p.applied != r.applied { r.applied = .disabled }
            r.pagesTouched += p.pagesTouched
            r.copied = r.copied && p.copied
            r.prefetched = r.prefetched && p.prefetched
            r.locked = r.locked && p.locked
            r.warnings += p.warnings
        }
        return r
    }

    /// A randomly initialised model (normal(0, 0.02), norms 1), marked untrained.
    public static func random(config: MixtralConfig, seed: UInt64, bf16: Bool = false, tokenizer: TextTokenizer? = nil) throws -> LanguageModel {
        let (weights, tensors) = try RandomWeights.make(dims: config.dims, seed: seed, bf16: bf16)
        var json = config.json()
        if case var .object(o) = json {
            o.append(("hmst", .object([("untrained", .bool(true)), ("seed", seed <= UInt64(Int64.max) ? .integer(Int64(seed)) : .string(String(seed)))])))
            json = .object(o)
        }
        var report = LoadReport()
        report.untrained = true
        return LanguageModel(decoder: Decoder(dims: config.dims, weights: weights), tokenizer: tokenizer,
                             config: json, report: report, storage: tensors.compactMap { $0.weight.owner })
    }

    /// The model's config as parsed (the JSON may carry more keys, which save keeps).
    public func modelConfig() throws -> MixtralConfig { try MixtralConfig(json: config) }

    /// Writes config.json, model.safetensors (f32, bf16, f16 or .i8: int8 Q8_0 matrices, Quant/Q8Format.swift,
    /// in `int8Layout`'s order) and tokenizer.json, each atomically.
    public func save(directory: String, dtype: SafeTensorDType = .f32, int8Layout: Q8Layout = .rows) throws {
        let c = try modelConfig()
        try FileIO.makeDirectories(directory)
        let byName = Dictionary(uniqueKeysWithValues: decoder.weights.named(tied: c.tieWordEmbeddings).map { ($0.name, $0.weight) })
        let tensors = try expectedTensors(c).map { t in
            guard let w = byName[t.name] else { throw HMSTError(.internal, "save: the decoder has no tensor \(t.name)") }
            return TensorToWrite(name: t.name, shape: t.shape, weight: w)
        }
        try SafeTensorsWriter.write(path: directory + "/model.safetensors", tensors: tensors, dtype: dtype, int8Layout: int8Layout)
        var json = config
        if case var .object(o) = json {
            let dt = dtype == .bf16 ? "bfloat16" : (dtype == .f16 ? "float16" : "float32")
            o.removeAll { $0.0 == "torch_dtype" || $0.0 == "dtype" || $0.0 == "quantization" }
            o.append(("torch_dtype", .string(dt)))
            // only when a matrix is stored int8 (none is when no width is a multiple of 32)
            if dtype == .i8, tensors.contains(where: { SafeTensorsWriter.quantizes(name: $0.name, shape: $0.shape) }) {
                o.append(("quantization", Q8Format.configEntry(layout: int8Layout)))
            }
            json = .object(o)
        }
        try FileIO.writeAtomically(directory + "/config.json", text: prettyJSON(json) + "\n")
        if let tokenizer {
            guard let t = tokenizer as? Tokenizer else { throw HMSTError.unsupported("this model's tokenizer cannot be saved as tokenizer.json") }
            try t.save(path: directory + "/tokenizer.json")
        }
        try decoder.copyHead?.save(checkpoint: directory)
    }
}

/// JSON with one key per line at the top level (config.json is read by people too).
func prettyJSON(_ v: JSONValue) -> String {
    guard let o = v.object else { return v.serialized }
    return "{\n" + o.map { "  " + JSONWriter.quote($0.0) + ": " + $0.1.serialized }.joined(separator: ",\n") + "\n}"
}

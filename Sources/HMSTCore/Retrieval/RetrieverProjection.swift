// RetrieverProjection: a DPR-style pair of linear maps on top of the frozen base model's pooled
// features f [Cin] of a text (RetrieverPooling.swift: the mean final hidden state, Cin = C, or
// that and the mean input token embedding, Cin = 2C): a query is q = unit(fᵀ·Wq), a document
// d = unit(fᵀ·Wd), Wq and Wd [Cin, D]; relevance is the cosine q·d. Trained by
// Train/Retriever/RetrieverTrainer.swift and stored in the checkpoint directory beside the model:
//   retriever.safetensors   "query.weight" [Cin, D], "document.weight" [Cin, D], f32
//   retriever.json          format, version, pooling, hidden_size C, input_size Cin, dim D,
//                           temperature, steps, and the hash of the weights and pooling (written
//                           second; load checks the pair agrees)
// Version 1 (pooling "hidden-mean" only) is still written for that pooling, byte for byte as
// before, so its hash and a memory's embedder name stay; another pooling writes version 2,
// which an older hmst refuses as newer instead of misreading [2C, D] weights.
// LanguageModel.load picks it up (model.retriever); RetrieverEmbedding.swift applies it.
import CBLAS

public final class RetrieverProjection: @unchecked Sendable {
    public static let weightsName = "retriever.safetensors"
    public static let configName = "retriever.json"
    static let formatName = "hmst-retriever"
    static let formatVersion = 2

    /// The model's hidden size.
    public let C: Int
    public let D: Int
    public let pooling: RetrieverPooling
    /// Cin = pooling.inputSize(C): the rows of each map.
    public let inputSize: Int
    public let query: [Float]      // Wq [Cin, D] row-major
    public let document: [Float]   // Wd [Cin, D]
    public let temperature: Float  // of training; kept for the record
    public let steps: Int
    /// 16 hex digits over both weights (and the pooling's name, unless it is "hidden-mean"):
    /// names the embedder that built a memory's vectors.
    public let hash: String

    /// C is the model's hidden size; query and document are [pooling.inputSize(C), D].
    public init(C: Int, D: Int, query: [Float], document: [Float], pooling: RetrieverPooling = .hidden,
                temperature: Float = 0.05, steps: Int = 0) throws {
        guard C >= 1, C <= 1 << 20, D >= 1, D <= 65536 else {
            throw HMSTError.invalidArgument("retriever: sizes C = \(C), D = \(D) must be in 1...1048576 and 1...65536")
        }
        let Cin = pooling.inputSize(C: C)
        guard query.count == Cin * D, document.count == Cin * D else {
            throw HMSTError.invalidArgument("retriever: weights must be [\(Cin), \(D)] (\(Cin * D) values each) for pooling \(pooling.rawValue)")
        }
        guard query.allSatisfy(\.isFinite), document.allSatisfy(\.isFinite) else {
            throw HMSTError.invalidArgument("retriever: weights are not finite")
        }
        self.C = C
        self.D = D
        self.pooling = pooling
        inputSize = Cin
        self.query = query
        self.document = document
        self.temperature = temperature
        self.steps = steps
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 * Cin * D + 64)
        query.withUnsafeBytes { bytes += $0 }
        document.withUnsafeBytes { bytes += $0 }
        // the first format's hash (weights alone) is kept for its pooling: memories built with
        // such a projection still accept it
        if pooling != .hidden { bytes += Array(pooling.rawValue.utf8) }
        hash = FileChecksum.hex(FileChecksum.of(bytes))
    }

    /// The name a memory records for vectors this projection built.
    public var embedderName: String { "projected-\(hash)" }

    /// unit(fᵀ·W): f [Cin] -> [D], W = Wq (isQuery) or Wd.
    public func project(_ e: [Float], isQuery: Bool) throws -> [Float] {
        guard e.count == inputSize else {
            throw HMSTError.invalidArgument("retriever: features have \(e.count) values, the projection reads \(inputSize) (pooling \(pooling.rawValue))")
        }
        var y = [Float](repeating: 0, count: D)
        // y[D] = Wᵀ[D, Cin] · f[Cin]
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(inputSize), Int32(D), 1, isQuery ? query : document, Int32(D), e, 1, 0, &y, 1)
        var ss = 0.0
        for v in y { ss += Double(v) * Double(v) }
        guard ss > 0, ss.isFinite else { return y }
        let s = Float(1 / ss.squareRoot())
        return y.map { $0 * s }
    }

    /// Writes retriever.safetensors then retriever.json into the checkpoint directory, each
    /// atomically; the json names the weights' hash, so a crash between them is detected at load.
    public func save(checkpoint dir: String) throws {
        let n = inputSize * D
        let q = FloatBuffer(count: n), d = FloatBuffer(count: n)
        q.pointer.update(from: query, count: n)
        d.pointer.update(from: document, count: n)
        let tensors = [
            RawTensor(name: "query.weight", dtype: .f32, shape: [inputSize, D], bytes: UnsafeRawBufferPointer(start: q.pointer, count: n * 4), owner: q),
            RawTensor(name: "document.weight", dtype: .f32, shape: [inputSize, D], bytes: UnsafeRawBufferPointer(start: d.pointer, count: n * 4), owner: d),
        ]
        // version 1, as the first format wrote it, for the pooling it knew
        let v1 = pooling == .hidden
        try HeadFiles.save(dir: dir, weightsName: RetrieverProjection.weightsName, tensors: tensors, configName: RetrieverProjection.configName,
                           format: RetrieverProjection.formatName, version: v1 ? 1 : RetrieverProjection.formatVersion, hash: hash,
                           training: nil) { w in
            if v1 {
                w.field("pooling", "mean of final-norm hidden states, unit length")
            } else {
                w.field("pooling", pooling.rawValue)
                w.field("input_size", inputSize)
            }
            w.field("hidden_size", C)
            w.field("dim", D)
            w.field("temperature", Double(temperature))
            w.field("steps", steps)
        }
    }

    /// The projection stored in a checkpoint directory, or nil when it has no retriever.json.
    /// BAD_FORMAT for a malformed pair, another hidden size or weights that do not match the
    /// json's hash; UNSUPPORTED for a newer version.
    public static func load(checkpoint dir: String, hiddenSize: Int) throws -> RetrieverProjection? {
        guard let (j, jsonPath, hash) = try HeadFiles.description(dir: dir, configName: configName, format: formatName, version: formatVersion,
                                                                  required: ["hidden_size", "dim"], what: "a retriever description") else { return nil }
        guard let C = j["hidden_size"]?.int, let D = j["dim"]?.int else {
            throw HMSTError.badFormat("\(jsonPath): hidden_size and dim must be integers")
        }
        guard C == hiddenSize else { throw HMSTError.badFormat("\(jsonPath): hidden_size \(C), the model's is \(hiddenSize)") }
        guard D >= 1, D <= 65536 else { throw HMSTError.badFormat("\(jsonPath): dim \(D) is outside 1...65536") }
        // version 1's "pooling" is a description; it knew one pooling
        var pooling = RetrieverPooling.hidden
        if j["version"]?.int ?? 1 >= 2 {
            guard let name = j["pooling"]?.string, let known = RetrieverPooling(rawValue: name) else {
                throw HMSTError.badFormat("\(jsonPath): pooling \(j["pooling"]?.string ?? "(missing)") is not one of \(RetrieverPooling.allCases.map(\.rawValue))")
            }
            pooling = known
            guard j["input_size"]?.int == pooling.inputSize(C: C) else {
                throw HMSTError.badFormat("\(jsonPath): input_size must be \(pooling.inputSize(C: C)) for pooling \(name) and hidden_size \(C)")
            }
        }
        let n = pooling.inputSize(C: C) * D
        let (file, weightsPath) = try HeadFiles.weights(dir: dir, weightsName: weightsName, describedBy: jsonPath)
        var q = [Float](repeating: 0, count: n), d = [Float](repeating: 0, count: n)
        try q.withUnsafeMutableBytes { try file.copy("query.weight", dtype: .f32, count: n, to: $0.baseAddress!) }
        try d.withUnsafeMutableBytes { try file.copy("document.weight", dtype: .f32, count: n, to: $0.baseAddress!) }
        let p: RetrieverProjection
        do {
            p = try RetrieverProjection(C: C, D: D, query: q, document: d, pooling: pooling,
                                        temperature: Float(j["temperature"]?.number ?? 0.05), steps: j["steps"]?.int ?? 0)
        } catch let e as HMSTError { throw HMSTError.badFormat("\(weightsPath): \(e.message)") }
        guard p.hash == hash else {
            throw HMSTError.badFormat("\(weightsPath) does not match \(jsonPath) (hash \(p.hash), expected \(hash)): retrain the retriever")
        }
        return p
    }
}

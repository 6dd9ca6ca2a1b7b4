// RetrieverProjection: a DPR-style pair of linear maps on top of the frozen base model's pooled
// embedding e [C] (LanguageModel.embed): a query is q = unit(eᵀ·Wq), a document d = unit(eᵀ·Wd),
// Wq and Wd [C, D]; relevance is the cosine q·d. Trained by Train/Retriever/RetrieverTrainer.swift
// and stored in the checkpoint directory beside the model:
//   retriever.safetensors   "query.weight" [C, D], "document.weight" [C, D], f32
//   retriever.json          format, version, hidden_size C, dim D, temperature, steps, and the
//                           hash of the weights (written second; load checks the pair agrees)
// LanguageModel.load picks it up (model.retriever); RetrieverEmbedding.swift applies it.
import CBLAS

public final class RetrieverProjection: @unchecked Sendable {
    public static let weightsName = "retriever.safetensors"
    public static let configName = "retriever.json"
    static let formatName = "hmst-retriever"
    static let formatVersion = 1

    public let C: Int
    public let D: Int
    public let query: [Float]      // Wq [C, D] row-major
    public let document: [Float]   // Wd [C, D]
    public let temperature: Float  // of training; kept for the record
    public let steps: Int
    /// 16 hex digits over both weights: names the embedder that built a memory's vectors.
    public let hash: String

    public init(C: Int, D: Int, query: [Float], document: [Float], temperature: Float = 0.05, steps: Int = 0) throws {
        guard C >= 1, D >= 1, D <= 65536 else { throw HMSTError.invalidArgument("retriever: sizes C = \(C), D = \(D) must be >= 1") }
        guard query.count == C * D, document.count == C * D else {
            throw HMSTError.invalidArgument("retriever: weights must be [\(C), \(D)] (\(C * D) values each)")
        }
        guard query.allSatisfy(\.isFinite), document.allSatisfy(\.isFinite) else {
            throw HMSTError.invalidArgument("retriever: weights are not finite")
        }
        self.C = C
        self.D = D
        self.query = query
        self.document = document
        self.temperature = temperature
        self.steps = steps
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 * C * D)
        query.withUnsafeBytes { bytes += $0 }
        document.withUnsafeBytes { bytes += $0 }
        hash = FileChecksum.hex(FileChecksum.of(bytes))
    }

    /// The name a memory records for vectors this projection built.
    public var embedderName: String { "projected-\(hash)" }

    /// unit(eᵀ·W): e [C] -> [D], W = Wq (isQuery) or Wd.
    public func project(_ e: [Float], isQuery: Bool) throws -> [Float] {
        guard e.count == C else { throw HMSTError.invalidArgument("retriever: embedding has \(e.count) values, the projection reads \(C)") }
        var y = [Float](repeating: 0, count: D)
        // y[D] = Wᵀ[D, C] · e[C]
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(C), Int32(D), 1, isQuery ? query : document, Int32(D), e, 1, 0, &y, 1)
        var ss = 0.0
        for v in y { ss += Double(v) * Double(v) }
        guard ss > 0, ss.isFinite else { return y }
        let s = Float(1 / ss.squareRoot())
        return y.map { $0 * s }
    }

    /// Writes retriever.safetensors then retriever.json into the checkpoint directory, each
    /// atomically; the json names the weights' hash, so a crash between them is detected at load.
    public func save(checkpoint dir: String) throws {
        let q = FloatBuffer(count: C * D), d = FloatBuffer(count: C * D)
        q.pointer.update(from: query, count: C * D)
        d.pointer.update(from: document, count: C * D)
        let tensors = [
            RawTensor(name: "query.weight", dtype: .f32, shape: [C, D], bytes: UnsafeRawBufferPointer(start: q.pointer, count: C * D * 4), owner: q),
            RawTensor(name: "document.weight", dtype: .f32, shape: [C, D], bytes: UnsafeRawBufferPointer(start: d.pointer, count: C * D * 4), owner: d),
        ]
        try SafeTensorsWriter.writeRaw(path: dir + "/" + RetrieverProjection.weightsName, tensors: tensors)
        let w = JSONWriter()
        w.object {
            w.field("format", RetrieverProjection.formatName)
            w.field("version", RetrieverProjection.formatVersion)
            w.field("pooling", "mean of final-norm hidden states, unit length")
            w.field("hidden_size", C)
            w.field("dim", D)
            w.field("temperature", Double(temperature))
            w.field("steps", steps)
            w.field("hash", hash)
        }
        try FileIO.writeAtomically(dir + "/" + RetrieverProjection.configName, text: w.output + "\n")
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
        let (file, weightsPath) = try HeadFiles.weights(dir: dir, weightsName: weightsName, describedBy: jsonPath)
        var q = [Float](repeating: 0, count: C * D), d = [Float](repeating: 0, count: C * D)
        try q.withUnsafeMutableBytes { try file.copy("query.weight", dtype: .f32, count: C * D, to: $0.baseAddress!) }
        try d.withUnsafeMutableBytes { try file.copy("document.weight", dtype: .f32, count: C * D, to: $0.baseAddress!) }
        let p: RetrieverProjection
        do {
            p = try RetrieverProjection(C: C, D: D, query: q, document: d, temperature: Float(j["temperature"]?.number ?? 0.05),
                                        steps: j["steps"]?.int ?? 0)
        } catch let e as HMSTError { throw HMSTError.badFormat("\(weightsPath): \(e.message)") }
        guard p.hash == hash else {
            throw HMSTError.badFormat("\(weightsPath) does not match \(jsonPath) (hash \(p.hash), expected \(hash)): retrain the retriever")
        }
        return p
    }
}

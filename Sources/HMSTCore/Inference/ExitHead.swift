// ExitHead: a trained early exit for the engine. After `layer` of the model's layers the
// residual stream x goes through its own RMSNorm gain g and a C×C adapter A, then the model's
// (frozen) LM head:  logits = W_head · A · rmsnorm(x; g).  Initialised at g = the final norm's
// gain and A = I, it starts exactly where reading the model's head early does, and training
// (Train/ExitHeadTrainer.swift, `hmst train-exit-head`) can only move it from there on the
// training loss. Stored in the checkpoint directory:
//   exit_head.safetensors  "norm.weight" [C], "adapter.weight" [C, C] (HF [out, in]), f32
//   exit_head.json         format, version, layer, hidden_size, the weights' hash, training
//                          summary (validation loss before / after, steps)
import CBLAS
import CKernels

public final class ExitHead: @unchecked Sendable {
    public static let weightsName = "exit_head.safetensors"
    public static let configName = "exit_head.json"
    static let formatName = "hmst-exit-head"
    static let formatVersion = 1

    public let layer: Int
    public let C: Int
    public let norm: [Float]
    public let adapter: [Float]
    public var summary: JSONValue = .object([])

    public init(layer: Int, C: Int, norm: [Float], adapter: [Float]) throws {
        guard layer >= 1, C >= 1, norm.count == C, adapter.count == C * C else {
            throw HMSTError.invalidArgument("exit head: layer \(layer) and sizes must fit C = \(C) (norm [C], adapter [C, C])")
        }
        guard norm.allSatisfy(\.isFinite), adapter.allSatisfy(\.isFinite) else { throw HMSTError.invalidArgument("exit head: weights are not finite") }
        self.layer = layer
        self.C = C
        self.norm = norm
        self.adapter = adapter
    }

    /// out[T, C] = A · rmsnorm(x[T, C]; g), the input of the LM head. scratch: [T, C].
    func apply(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int, eps: Float, scratch: UnsafeMutablePointer<Float>) {
        norm.withUnsafeBufferPointer { hk_rmsnorm(scratch, nil, x, $0.baseAddress!, T, C, eps) }
        adapter.withUnsafeBufferPointer { a in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(C), Int32(C), 1, scratch, Int32(C),
                        a.baseAddress!, Int32(C), 0, out, Int32(C))
        }
    }

    var hash: String {
        var bytes: [UInt8] = []
        norm.withUnsafeBytes { bytes += $0 }
        adapter.withUnsafeBytes { bytes += $0 }
        return FileChecksum.hex(FileChecksum.of(bytes))
    }

    /// Writes the weights, then the json naming their hash, each atomically.
    public func save(checkpoint dir: String) throws {
        let n = FloatBuffer(count: C), a = FloatBuffer(count: C * C)
        n.pointer.update(from: norm, count: C)
        a.pointer.update(from: adapter, count: C * C)
        let tensors = [
            RawTensor(name: "norm.weight", dtype: .f32, shape: [C], bytes: UnsafeRawBufferPointer(start: n.pointer, count: C * 4), owner: n),
            RawTensor(name: "adapter.weight", dtype: .f32, shape: [C, C], bytes: UnsafeRawBufferPointer(start: a.pointer, count: C * C * 4), owner: a),
        ]
        try HeadFiles.save(dir: dir, weightsName: ExitHead.weightsName, tensors: tensors, configName: ExitHead.configName,
                           format: ExitHead.formatName, version: ExitHead.formatVersion, hash: hash, training: summary) { w in
            w.field("layer", layer)
            w.field("hidden_size", C)
        }
    }

    /// The exit head stored with a checkpoint, or nil. BAD_FORMAT for malformed or mismatched
    /// files; INVALID_ARGUMENT for one made for another model (hidden size, layer count).
    public static func load(checkpoint dir: String, dims: DecoderDims) throws -> ExitHead? {
        guard let (j, jsonPath, hash) = try HeadFiles.description(dir: dir, configName: configName, format: formatName, version: formatVersion,
                                                                  required: ["layer", "hidden_size"], what: "an exit head description") else { return nil }
        guard let layer = j["layer"]?.int, let C = j["hidden_size"]?.int else {
            throw HMSTError.badFormat("\(jsonPath): layer and hidden_size must be integers")
        }
        guard C == dims.C, layer >= 1, layer < dims.L else {
            throw HMSTError.invalidArgument("\(jsonPath): an exit head after layer \(layer) of hidden size \(C) does not fit this model (\(dims.L) layers, hidden size \(dims.C))")
        }
        let (file, weightsPath) = try HeadFiles.weights(dir: dir, weightsName: weightsName, describedBy: jsonPath)
        var n = [Float](repeating: 0, count: C), a = [Float](repeating: 0, count: C * C)
        try n.withUnsafeMutableBytes { try file.copy("norm.weight", dtype: .f32, count: C, to: $0.baseAddress!) }
        try a.withUnsafeMutableBytes { try file.copy("adapter.weight", dtype: .f32, count: C * C, to: $0.baseAddress!) }
        let h: ExitHead
        do { h = try ExitHead(layer: layer, C: C, norm: n, adapter: a) } catch let e as HMSTError { throw HMSTError.badFormat("\(weightsPath): \(e.message)") }
        guard h.hash == hash else { throw HMSTError.badFormat("\(weightsPath) does not match \(jsonPath) (hash \(h.hash), expected \(hash))") }
        h.summary = j["training"] ?? .object([])
        return h
    }
}

// Exports: models, tokenization and model info. Documented in include/hmst.h.
import CHMST
import HMSTCore

final class ModelBox {
    let model: LanguageModel
    init(_ model: LanguageModel) { self.model = model }
}

func resolveModel(_ h: OpaquePointer?, _ name: String = "model") throws -> LanguageModel {
    try HandleRegistry.shared.resolve(h, as: ModelBox.self, name).model
}

@_cdecl("hmst_model_default_params")
public func hmst_model_default_params() -> hmst_model_params {
    var p = hmst_model_params()
    p.struct_size = UInt32(MemoryLayout<hmst_model_params>.size)
    p.numa = Int32(HMST_NUMA_DISABLED.rawValue)
    p.numa_copy = false
    p.prefetch = false
    p.mlock = false
    p.load_tokenizer = true
    p.progress = nil
    p.progress_user_data = nil
    p.check_tensors = false
    p.weights = Int32(HMST_WEIGHTS_AS_STORED.rawValue)
    return p
}

@_cdecl("hmst_model_free")
public func hmst_model_free(_ model: OpaquePointer?) {
    HandleRegistry.shared.release(model, as: ModelBox.self)
}

/// Reads a host params struct of possibly older (shorter) layout: fields beyond its
/// struct_size keep our defaults. Rejects sizes smaller than the struct_size field itself or
/// larger than 64 KiB (garbage).
/// minimum: the smallest struct_size any released header had for T (a shorter one would leave
/// fields the host set, such as a mode, silently at their defaults).
func readParams<T>(_ p: UnsafePointer<T>?, defaults: T, name: String, minimum: Int = 4) throws -> T {
    guard let p else { return defaults }
    let hostSize = Int(UnsafeRawPointer(p).load(as: UInt32.self))
    guard hostSize >= minimum, hostSize <= 1 << 16 else {
        throw HMSTError.invalidArgument("\(name)->struct_size is \(hostSize); initialise the struct with its _default_params() function")
    }
    var out = defaults
    withUnsafeMutableBytes(of: &out) { dst in
        let n = min(hostSize, dst.count)
        dst.baseAddress!.copyMemory(from: UnsafeRawPointer(p), byteCount: n)
    }
    return out
}

/// Writes an info struct up to the host's struct_size (kept as the host set it).
func writeInfo<T>(_ value: T, to out: UnsafeMutablePointer<T>?, minimum: Int, name: String) throws {
    let out = try required(out, name)
    let hostSize = Int(UnsafeRawPointer(out).load(as: UInt32.self))
    guard hostSize >= minimum else {
        throw HMSTError.invalidArgument("\(name)->struct_size is \(hostSize); set it to sizeof the struct (at least \(minimum))")
    }
    var v = value
    withUnsafeMutableBytes(of: &v) { src in
        src.storeBytes(of: UInt32(hostSize), toByteOffset: 0, as: UInt32.self)
        UnsafeMutableRawPointer(out).copyMemory(from: src.baseAddress!, byteCount: min(hostSize, src.count))
    }
}

@_cdecl("hmst_model_info")
public func hmst_model_info(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<hmst_model_info>?) -> Int32 {
    hmstCall {
        let m = try resolveModel(model)
        let d = m.dims
        var i = hmst_model_info()
        i.n_vocab = Int32(d.V)
        i.n_embd = Int32(d.C)
        i.n_layer = Int32(d.L)
        i.n_head = Int32(d.H)
        i.n_head_kv = Int32(d.KV)
        i.head_dim = Int32(d.Dh)
        i.n_ff = Int32(d.F)
        i.n_expert = Int32(d.E)
        i.n_expert_used = Int32(d.K)
        i.n_ctx_train = Int32(d.maxPositions)
        i.n_params = Int64(m.parameterCount)
        i.n_params_active = Int64(m.activeParameterCount)
        i.has_tokenizer = m.tokenizer == nil ? 0 : 1
        i.eos_token = m.tokenizer?.eosId ?? -1
        i.load_ms = m.report.loadMs
        i.numa_applied = m.report.placement.applied.rawValue
        i.weights_bf16 = m.weightsBF16 ? 1 : 0
        try writeInfo(i, to: out, minimum: 8, name: "out")
    }
}

@_cdecl("hmst_model_info_json")
public func hmst_model_info_json(_ model: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                 _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let m = try resolveModel(model)
        try writeString(ModelInfo.json(m), buf, cap, nOut)
    }
}

/// The tokenizer of a model handle, or UNSUPPORTED when its checkpoint has none.
func modelTokenizer(_ h: OpaquePointer?) throws -> TextTokenizer {
    guard let tok = try resolveModel(h).tokenizer else {
        throw HMSTError.unsupported("this model has no tokenizer (no tokenizer.json in the checkpoint)")
    }
    return tok
}

@_cdecl("hmst_tokenize")
public func hmst_tokenize(_ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLen: Int,
                          _ out: UnsafeMutablePointer<Int32>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        try encodeInto(try modelTokenizer(model), text, textLen, out, cap, nOut)
    }
}

@_cdecl("hmst_detokenize")
public func hmst_detokenize(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int,
                            _ out: UnsafeMutablePointer<CChar>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        try decodeInto(try modelTokenizer(model), tokens, n, out, cap, nOut)
    }
}

@_cdecl("hmst_model_load")
public func hmst_model_load(_ path: UnsafePointer<CChar>?, _ params: UnsafePointer<hmst_model_params>?,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let path = try cString(path, "path")
        let out = try required(out, "out_model")
        let p = try readParams(params, defaults: hmst_model_default_params(), name: "params")
        guard let strategy = NUMAStrategy(rawValue: p.numa) else {
            throw HMSTError.invalidArgument("params->numa = \(p.numa) is not an enum hmst_numa_strategy value")
        }
        var o = ModelLoadOptions()
        o.placement.strategy = strategy
        o.placement.copyToAnonymous = p.numa_copy
        o.placement.prefetch = p.prefetch
        o.placement.mlock = p.mlock
        o.loadTokenizer = p.load_tokenizer
        o.checkTensors = p.check_tensors
        switch p.weights {
        case Int32(HMST_WEIGHTS_AS_STORED.rawValue): o.weightType = .asStored
        case Int32(HMST_WEIGHTS_F32.rawValue): o.weightType = .f32
        case Int32(HMST_WEIGHTS_BF16.rawValue): o.weightType = .bf16
        case Int32(HMST_WEIGHTS_INT8.rawValue): o.weightType = .int8
        case Int32(HMST_WEIGHTS_F16.rawValue): o.weightType = .f16
        default: throw HMSTError.invalidArgument("params->weights = \(p.weights) is not an enum hmst_weight_type value")
        }
        if let cb = p.progress {
            let ud = p.progress_user_data
            o.progress = { fraction in cb(Float(fraction), ud) }
        }
        let model = try LanguageModel.load(path: path, options: o)
        for w in model.report.warnings + model.report.placement.warnings { Log.warn(w) }
        out.pointee = HandleRegistry.shared.register(ModelBox(model))
    }
}

@_cdecl("hmst_model_init_random")
public func hmst_model_init_random(_ preset: UnsafePointer<CChar>?, _ seed: UInt64, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let name = try cString(preset, "preset")
        let out = try required(out, "out_model")
        let config = try MixtralConfig.preset(name)
        let model = try LanguageModel.random(config: config, seed: seed)
        out.pointee = HandleRegistry.shared.register(ModelBox(model))
    }
}

@_cdecl("hmst_model_save")
public func hmst_model_save(_ model: OpaquePointer?, _ dir: UnsafePointer<CChar>?, _ dtype: UnsafePointer<CChar>?) -> Int32 {
    hmstCall {
        let m = try resolveModel(model)
        let dir = try cString(dir, "dir")
        let dt: SafeTensorDType
        var layout = Q8Layout.rows
        switch try cString(dtype, "dtype") {
        case "f32", "float32": dt = .f32
        case "bf16", "bfloat16": dt = .bf16
        case "f16", "float16": dt = .f16
        case "int8", "q8_0": dt = .i8
        case "int8-rows4": (dt, layout) = (.i8, .rows4)
        case let other: throw HMSTError.invalidArgument("dtype \"\(other)\" must be \"f32\", \"bf16\", \"f16\", \"int8\" or \"int8-rows4\"")
        }
        guard !dir.isEmpty else { throw HMSTError.invalidArgument("dir is empty") }
        try m.save(directory: dir, dtype: dt, int8Layout: layout)
    }
}

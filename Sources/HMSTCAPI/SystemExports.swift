// Exports: errors, versions, logging, system information and the thread knob.
// Every function here is documented in include/hmst.h.
import CHMST
import HMSTCore

@_cdecl("hmst_status_string")
public func hmst_status_string(_ status: Int32) -> UnsafePointer<CChar> {
    let s: StaticString
    switch Status(rawValue: status) {
    case .ok?: s = "OK"
    case .invalidArgument?: s = "INVALID_ARGUMENT"
    case .bufferTooSmall?: s = "BUFFER_TOO_SMALL"
    case .io?: s = "IO"
    case .badFormat?: s = "BAD_FORMAT"
    case .outOfMemory?: s = "OUT_OF_MEMORY"
    case .unsupported?: s = "UNSUPPORTED"
    case .cancelled?: s = "CANCELLED"
    case .notFound?: s = "NOT_FOUND"
    case .internal?: s = "INTERNAL"
    case nil: s = "UNKNOWN"
    }
    return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("hmst_last_error")
public func hmst_last_error() -> UnsafePointer<CChar> {
    chmst_get_error()
}

@_cdecl("hmst_clear_error")
public func hmst_clear_error() {
    chmst_clear_error()
}

@_cdecl("hmst_version")
public func hmst_version() -> UnsafePointer<CChar> {
    let s: StaticString = "0.1.0"
    return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("hmst_abi_version")
public func hmst_abi_version() -> Int32 {
    Version.abi
}

@_cdecl("hmst_sizeof")
public func hmst_sizeof(_ name: UnsafePointer<CChar>?) -> Int {
    guard let name else { return 0 }
    switch String(cString: name) {
    case "hmst_system_info": return Int(chmst_sizeof_system_info())
    case "hmst_model_params": return MemoryLayout<hmst_model_params>.size
    case "hmst_model_info": return MemoryLayout<hmst_model_info>.size
    case "hmst_context_params": return MemoryLayout<hmst_context_params>.size
    case "hmst_sampling_params": return MemoryLayout<hmst_sampling_params>.size
    case "hmst_generate_params": return MemoryLayout<hmst_generate_params>.size
    case "hmst_generation_stats": return MemoryLayout<hmst_generation_stats>.size
    case "hmst_tokenizer_train_params": return MemoryLayout<hmst_tokenizer_train_params>.size
    case "hmst_trainer_params": return MemoryLayout<hmst_trainer_params>.size
    case "hmst_train_progress": return MemoryLayout<hmst_train_progress>.size
    case "hmst_semantic_params": return MemoryLayout<hmst_semantic_params>.size
    case "hmst_episodic_params": return MemoryLayout<hmst_episodic_params>.size
    case "hmst_consolidate_params": return MemoryLayout<hmst_consolidate_params>.size
    case "hmst_memory_hit": return MemoryLayout<hmst_memory_hit>.size
    case "hmst_eval_params": return MemoryLayout<hmst_eval_params>.size
    case "hmst_retrieval_params": return MemoryLayout<hmst_retrieval_params>.size
    case "hmst_retrieval_hit": return MemoryLayout<hmst_retrieval_hit>.size
    case "hmst_memory_eval": return MemoryLayout<hmst_memory_eval>.size
    case "hmst_memory_train_progress": return MemoryLayout<hmst_memory_train_progress>.size
    case "hmst_memory_trainer_params": return MemoryLayout<hmst_memory_trainer_params>.size
    case "hmst_engine_params": return MemoryLayout<hmst_engine_params>.size
    case "hmst_engine_query_params": return MemoryLayout<hmst_engine_query_params>.size
    case "hmst_engine_result": return MemoryLayout<hmst_engine_result>.size
    case "hmst_data_parallel_params": return MemoryLayout<hmst_data_parallel_params>.size
    default: return 0
    }
}

@_cdecl("hmst_log_set")
public func hmst_log_set(_ callback: hmst_log_callback?, _ userData: UnsafeMutableRawPointer?) {
    chmst_log_set(callback, userData)
}

@_cdecl("hmst_log_set_level")
public func hmst_log_set_level(_ level: Int32) -> Int32 {
    hmstCall { try Log.setLevel(level) }
}

@_cdecl("hmst_system_info")
public func hmst_system_info(_ out: UnsafeMutablePointer<hmst_system_info>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        let hostSize = Int(out.pointee.struct_size)
        let ourSize = MemoryLayout<hmst_system_info>.size
        let minimum = Int(chmst_system_info_min_size())
        guard hostSize >= minimum else {
            throw HMSTError.invalidArgument("out->struct_size is \(hostSize); set it to sizeof(struct hmst_system_info) (at least \(minimum))")
        }
        let s = SystemInfo()
        var info = hmst_system_info()
        info.struct_size = out.pointee.struct_size
        copyString(s.version, into: &info.version)
        info.abi_version = s.abiVersion
        info.n_cpus = Int32(s.nCPUs)
        info.n_threads = Int32(s.nThreads)
        info.blas_threads = Int32(s.blasThreads)
        copyString(s.blasCore, into: &info.blas_core)
        copyString(s.blasConfig, into: &info.blas_config)
        info.simd_flags = s.simdFlags
        copyString(s.simdNames.joined(separator: " "), into: &info.simd_names)
        info.numa_available = s.numa.available ? 1 : 0
        info.numa_nodes = Int32(s.numa.nodeCount)
        info.numa_policy_permitted = s.numa.policyPermitted ? 1 : 0
        copyString(s.faissVersion, into: &info.faiss_version)
        copyString(s.blas.coreAtLoad, into: &info.blas_core_at_load)
        copyString(s.blas.bestCore, into: &info.blas_core_best)
        info.blas_below_capability = s.blas.belowCapability ? 1 : 0
        info.mixed_precision_bf16 = s.rates.mixedPrecisionCompute == .bf16 ? 1 : 0
        info.fma_gflops = s.rates.fmaGFLOPS
        info.bf16_gflops = s.rates.bf16GFLOPS
        copyString(s.kernels, into: &info.kernels)
        copyString(s.int8Kernels, into: &info.int8_kernels)
        info.bf16_weight_compute_bf16 = s.rates.bf16WeightCompute == .bf16 ? 1 : 0
        info.bf16_decode_compute_bf16 = s.rates.bf16DecodeCompute == .bf16 ? 1 : 0
        info.f32_gemm_hmst = s.rates.f32GEMM == .hmst ? 1 : 0
        info.f32_gemm_hmst_16bit = s.rates.f32GEMM16Bit == .hmst ? 1 : 0
        // Copy only as many bytes as the host's struct has; struct_size stays the host's.
        withUnsafeBytes(of: &info) { src in
            UnsafeMutableRawPointer(out).copyMemory(from: src.baseAddress!, byteCount: min(hostSize, ourSize))
        }
    }
}

@_cdecl("hmst_system_info_json")
public func hmst_system_info_json(_ buf: UnsafeMutablePointer<CChar>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall { try writeString(SystemInfo().json, buf, cap, nOut) }
}

@_cdecl("hmst_set_n_threads")
public func hmst_set_n_threads(_ n: Int32) -> Int32 {
    hmstCall { try Threads.set(Int(n)) }
}

@_cdecl("hmst_get_n_threads")
public func hmst_get_n_threads() -> Int32 {
    Int32(Threads.count)
}

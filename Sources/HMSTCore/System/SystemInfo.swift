// SystemInfo: what hmst_system_info() reports: versions, BLAS, SIMD, NUMA, FAISS, threads.
import CBLAS
import CFAISSShim
import CHMST
import CKernels

public enum Version {
    public static let string = "0.1.0"
    public static let abi: Int32 = 1
}

public struct SystemInfo: Sendable {
    public var version = Version.string
    public var abiVersion = Version.abi
    public var nCPUs = Threads.cpuCount
    public var nThreads = Threads.count
    public var blasThreads = Threads.blasThreads
    public var cpuModel = CPUModel.name
    public var blas = BLASStatus.current
    public var blasCore: String { blas.core }
    public var rates = ComputeRates.current
    public var blasConfig = SystemInfo.openBLASConfig
    public var simdFlags = chmst_cpu_features()
    public var numa = NUMATopology.current
    public var faissVersion = String(cString: hmstfs_version())
    public var ompThreads = Int(hmstfs_get_omp_threads())
    /// hmst's own kernel families in use on this CPU (CKernels' run-time dispatch)
    public var kernels = KernelLevel.current
    public var int8Kernels = KernelLevel.int8

    public init() {}

    /// openblas_get_config() rebuilds its answer in a static buffer on every call, so
    /// concurrent callers garble it: read it exactly once (a Swift static is initialised once).
    static let openBLASConfig = String(cString: openblas_get_config())

    /// Names of the set enum hmst_simd_flag bits, in bit order.
    public var simdNames: [String] {
        let names = ["sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                     "avx512vnni", "avx512bf16"]
        return names.enumerated().filter { simdFlags & (1 << UInt64($0.offset)) != 0 }.map { $0.element }
    }

    public var json: String {
        let w = JSONWriter()
        w.object {
            w.field("version", version)
            w.field("abi_version", Int(abiVersion))
            w.field("cpu", cpuModel)
            w.field("n_cpus", nCPUs)
            w.field("n_threads", nThreads)
            w.field("blas_threads", blasThreads)
            w.field("omp_threads", ompThreads)
            w.field("blas_core", blasCore)
            w.field("blas_core_at_load", blas.coreAtLoad)
            w.field("blas_core_best", blas.bestCore)
            w.field("blas_below_capability", blas.belowCapability)
            w.field("blas_action", blas.action.rawValue)
            if !blas.message.isEmpty { w.field("blas_message", blas.message) }
            w.field("blas_thread_timeout_log2_cycles", blas.threadTimeout)
            w.field("blas_thread_timeout_set_by_hmst", blas.threadTimeoutSetByHMST)
            w.field("fma_gflops_per_core", rates.fmaGFLOPS)
            w.field("bf16_gflops_per_core", rates.bf16GFLOPS)
            w.field("mixed_precision_compute", rates.mixedPrecisionCompute.rawValue)
            w.field("mixed_precision_reason", rates.reason)
            w.field("bf16_weight_compute", rates.bf16WeightCompute.rawValue)
            w.field("bf16_weight_compute_reason", rates.bf16WeightComputeReason)
            w.field("bf16_decode_compute", rates.bf16DecodeCompute.rawValue)
            w.field("bf16_decode_compute_reason", rates.bf16DecodeComputeReason)
            w.field("f32_gemm", rates.f32GEMM.rawValue)
            w.field("f32_gemm_16bit_weights", rates.f32GEMM16Bit.rawValue)
            w.field("f32_gemm_hmst_gflops", rates.f32GEMMRates.hmst)
            w.field("f32_gemm_openblas_gflops", rates.f32GEMMRates.openblas)
            w.field("f32_gemm_reason", rates.f32GEMMReason)
            w.field("blas_config", blasConfig)
            w.field("simd_flags", Int(simdFlags))
            w.field("simd", simdNames)
            w.field("kernels", kernels)
            w.field("int8_kernels", int8Kernels)
            w.field("int8_prompts", Int8PromptPath.now.rawValue)
            w.field("int8_gemv_max_tokens", Int8PromptPath.gemvMaxTokens)
            w.field("numa_available", numa.available)
            w.field("numa_nodes", numa.nodeCount)
            w.field("numa_policy_permitted", numa.policyPermitted)
            if let e = numa.policyError { w.field("numa_policy_error", e) }
            w.field("faiss_version", faissVersion)
        }
        return w.output
    }
}

/// Names of the kernel levels CKernels dispatches to (hmst_kernels.h, hmst_q8_0.h).
public enum KernelLevel {
    public static var current: String {
        switch hk_level() {
        case Int32(HK_LEVEL_BF16): return "avx512-bf16"
        case Int32(HK_LEVEL_AVX512): return "avx512"
        case Int32(HK_LEVEL_AVX2): return "avx2"
        default: return "portable"
        }
    }

    public static var int8: String {
        switch hk_q8_level() {
        case 2: return "avx512-vnni"
        case 1: return "avx2"
        default: return "portable"
        }
    }
}

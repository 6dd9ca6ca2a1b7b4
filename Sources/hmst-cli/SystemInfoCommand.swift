// hmst system-info: versions, BLAS, SIMD, NUMA and FAISS, as text or JSON.
import ArgumentParser
import HMSTCore

struct SystemInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system-info", abstract: "Print what hmst sees of this machine.")

    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false

    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let s = SystemInfo()
            if json {
                print(s.json)
                return
            }
            print("hmst \(s.version) (ABI \(s.abiVersion))")
            print("cpu:      \(s.cpuModel)")
            print("cpus:     \(s.nCPUs) available, \(s.nThreads) threads (OpenBLAS \(s.blasThreads), OpenMP \(s.ompThreads))")
            print("simd:     \(s.simdNames.joined(separator: " "))")
            print("kernels:  \(s.kernels) (int8: \(s.int8Kernels))")
            let b = s.blas
            let state = b.belowCapability ? "BELOW this CPU (best: \(b.bestCore))"
                : b.action == .switched ? "switched from \(b.coreAtLoad) at load" : "matches this CPU"
            print("openblas: \(s.blasCore), \(state) — \(s.blasConfig)")
            if !b.message.isEmpty { print("          \(b.message)") }
            if b.threadTimeout > 0 {
                print("          idle OpenBLAS workers sleep after 2^\(b.threadTimeout) cycles (\(b.threadTimeoutSetByHMST ? "hmst's setting; OPENBLAS_THREAD_TIMEOUT overrides" : "OpenBLAS's setting"))")
            }
            print("rates:    f32 FMA \(Int(s.rates.fmaGFLOPS.rounded())) GFLOP/s, bf16 dot \(Int(s.rates.bf16GFLOPS.rounded())) GFLOP/s per core")
            print("mixed precision: \(s.rates.reason)")
            print("bf16 weights: prefill \(s.rates.bf16WeightComputeReason)")
            print("              decode \(s.rates.bf16DecodeComputeReason)")
            print("f32 GEMM: \(s.rates.f32GEMMReason)")
            print("int8 weights: prompts of more than \(Int8PromptPath.gemvMaxTokens) tokens \(Int8PromptPath.now.description);")
            print("              shorter prompts and decode: the integer GEMV (\(s.int8Kernels))")
            let policy = s.numa.policyPermitted ? "permitted" : "refused (\(s.numa.policyError ?? "unknown"))"
            print("numa:     \(s.numa.available ? "available" : "unavailable"), \(s.numa.nodeCount) node(s), policy calls \(policy)")
            print("faiss:    \(s.faissVersion)")
        }
    }
}

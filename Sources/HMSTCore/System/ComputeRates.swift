// ComputeRates: what this CPU computes fastest, measured once per process. The decisions that hang
// on it: whether OpenBLAS runs kernels below the CPU's instruction set (CHMST/chmst_blas.c fixes
// that at load; BLASStatus reports it), which arithmetic --mixed-precision uses for its GEMMs,
// what bf16 weights multiply in, and which f32 GEMM runs (hmst's or OpenBLAS's).
// bf16 dot products (vdpbf16ps) are twice f32 FMA's rate on AMD Zen 4 but half of it on Intel's
// model 207 Xeons, so the choice is made from CPUID plus a few-millisecond measurement, never
// from the CPU's name.
import CBLAS
import CHMST
import CKernels

/// Which GEMM computes in f32: a prompt against a layer's weights (f32, f16, and bf16 where
/// bf16WeightCompute is f32) and training's f32 GEMMs (Train/Matmul.swift). `.hmst`: hmst's own
/// (CKernels/gemm_wt.c, AVX-512 or AVX2 CPUs), which widens 16-bit weights as it packs them; `.openblas`:
/// sgemm, 16-bit weights widened into scratch first. Both are exact f32 products and f32 sums,
/// in different orders.
public enum F32GEMM: String, Sendable { case hmst, openblas }

/// The OpenBLAS kernel family in use against the CPU's capability.
public struct BLASStatus: Sendable {
    public enum Action: String, Sendable { case none, switched, kept, failed }
    public var coreAtLoad: String
    public var core: String
    public var bestCore: String
    public var belowCapability: Bool
    public var action: Action
    public var message: String
    /// OpenBLAS's idle workers spin 2^threadTimeout cycles before they sleep (0: unknown)
    public var threadTimeout: Int = 0
    /// hmst shortened that spin at load (OPENBLAS_THREAD_TIMEOUT unset; CHMST/chmst_blas.c)
    public var threadTimeoutSetByHMST = false

    public static var current: BLASStatus {
        let s = chmst_blas_check()!.pointee
        let action: Action
        switch s.action {
        case Int32(CHMST_BLAS_SWITCHED.rawValue): action = .switched
        case Int32(CHMST_BLAS_KEPT.rawValue): action = .kept
        case Int32(CHMST_BLAS_FAILED.rawValue): action = .failed
        default: action = .none
        }
        return BLASStatus(coreAtLoad: cString(s.core_at_load), core: cString(s.core), bestCore: cString(s.best_core),
                          belowCapability: s.below_capability != 0, action: action, message: cString(s.message),
                          threadTimeout: Int(s.thread_timeout), threadTimeoutSetByHMST: s.thread_timeout_set != 0)
    }
}

/// Peak per-core rates and the compute type mixed precision uses on this CPU.
public struct ComputeRates: Sendable {
    /// f32 FMA peak of one core, GFLOP/s (0 without AVX2+FMA)
    public var fmaGFLOPS: Double
    /// bf16 dot-product peak of one core, GFLOP/s (0 without AVX512-BF16)
    public var bf16GFLOPS: Double
    /// the precision --mixed-precision runs its GEMMs in
    public var mixedPrecisionCompute: MatmulPrecision
    /// why, in words, for the training start line and system-info
    public var reason: String
    /// what bf16 weights multiply in, in prefill's GEMMs: bf16 (activations rounded to bf16,
    /// hk_gemm_bf16_wt, as llama.cpp's bf16 path does) where bf16 dot products beat f32 FMA by
    /// bf16Margin, else f32 (the weights widened for OpenBLAS's sgemm). The KV cache's bf16 keys
    /// and values are always read against f32.
    public var bf16WeightCompute: MatmulPrecision = .f32
    /// why, in words, for system-info
    public var bf16WeightComputeReason = ""
    /// what bf16 weights multiply in, in decode's GEMVs: bf16 (hk_gemv_bf16_dot) wherever the
    /// CPU has AVX512-BF16, whatever the dot products' rate. A GEMV is bound by loads and
    /// instructions, not by the multiplier: one vdpbf16ps takes 32 weights where widening them
    /// takes two conversions and two FMAs. On the Intel model 207, whose bf16 dot products run at
    /// half f32 FMA's rate, decode with bf16 weights was 6-13% faster this way (session 19,
    /// hmst-bench decode-ab, dense512 and moe512, 2 threads, two runs).
    public var bf16DecodeCompute: MatmulPrecision = .f32
    /// why, in words, for system-info
    public var bf16DecodeComputeReason = ""

    /// The f32 GEMM for f32 operands (prompts with f32 weights, training) and for prompts with
    /// 16-bit weights (ComputeRates.decideF32GEMM)
    public var f32GEMM: F32GEMM = .openblas
    public var f32GEMM16Bit: F32GEMM = .openblas
    /// one thread's GFLOP/s for both GEMMs on the same f32 weights (0 where not measured)
    public var f32GEMMRates: (hmst: Double, openblas: Double) = (0, 0)
    /// why, in words, for system-info
    public var f32GEMMReason = ""

    /// bf16 must beat f32 FMA by this factor: the bf16 GEMM also pays for packing to bf16.
    public static let bf16Margin = 1.25

    /// Measured on first use (a few ms), then cached for the process.
    public static let current: ComputeRates = measure()

    /// What a training step asked for `requested` computes in on this CPU, and why (for the
    /// start line): bf16 (--mixed-precision) becomes mixedPrecisionCompute; f32 stays f32.
    /// f32 compute names the f32 GEMM in use (hmst's or OpenBLAS's).
    public static func resolve(_ requested: MatmulPrecision) -> (precision: MatmulPrecision, reason: String) {
        let gemm = "f32 GEMMs: " + (f32GEMMNow(weightBytes: 4) == .hmst ? "hmst's" : "OpenBLAS")
        guard requested == .bf16 else { return (.f32, "f32 (\(gemm))") }
        let r = current
        return (r.mixedPrecisionCompute, "mixed precision: " + r.reason + (r.mixedPrecisionCompute == .f32 ? " (\(gemm))" : ""))
    }

    /// Benchmarks' and tests' A/B switch (nil: bf16WeightCompute). Not synchronised: set it
    /// before any generation starts.
    nonisolated(unsafe) public static var bf16WeightComputeOverride: MatmulPrecision? = nil

    /// Benchmarks' and tests' A/B switch for the f32 GEMM (nil: the measured choice; .hmst is
    /// still declined where hmst's kernel cannot run). Not synchronised: set it before any generation or
    /// training starts.
    nonisolated(unsafe) public static var f32GEMMOverride: F32GEMM? = nil

    /// The f32 GEMM for a B operand of `weightBytes` bytes an element (4: f32; 2: f16 or bf16, 1:
    /// int8, which OpenBLAS needs widened or dequantized first: the 16-bit weights' choice).
    public static func f32GEMMNow(weightBytes: Int) -> F32GEMM {
        guard hk_gemm_f32_level() > 0 else { return .openblas }
        return f32GEMMOverride ?? (weightBytes == 4 ? current.f32GEMM : current.f32GEMM16Bit)
    }

    /// What bf16 weights multiply in now in GEMMs (bf16WeightCompute unless overridden).
    static var bf16WeightComputeNow: MatmulPrecision { bf16WeightComputeOverride ?? current.bf16WeightCompute }
    /// What bf16 weights multiply in now in GEMVs (bf16DecodeCompute unless overridden).
    static var bf16DecodeComputeNow: MatmulPrecision { bf16WeightComputeOverride ?? current.bf16DecodeCompute }

    static func measure() -> ComputeRates {
        var fma = 0.0, bf16 = 0.0
        hk_measure_rates(&fma, &bf16)
        var r = decide(fma: fma, bf16: bf16, override: getenv("HMST_MIXED_PRECISION_COMPUTE").map { String(cString: $0) })
        let weightOverride = getenv("HMST_BF16_WEIGHT_COMPUTE").map { String(cString: $0) }
        (r.bf16WeightCompute, r.bf16WeightComputeReason) = decideWeightCompute(fma: fma, bf16: bf16, override: weightOverride)
        (r.bf16DecodeCompute, r.bf16DecodeComputeReason) = decideDecodeCompute(bf16: bf16, override: weightOverride)
        r.f32GEMMRates = hk_gemm_f32_level() > 0 ? measureF32GEMMs() : (0, 0)
        (r.f32GEMM, r.f32GEMM16Bit, r.f32GEMMReason) =
            decideF32GEMM(rates: r.f32GEMMRates, kernel: Int(hk_gemm_f32_level()),
                          override: getenv("HMST_F32_GEMM").map { String(cString: $0) })
        return r
    }

    /// hmst's GEMM must reach this share of OpenBLAS's rate to run prompts with 16-bit weights
    /// (f32 operands: 1). OpenBLAS needs 16-bit weights widened into scratch first, a pass
    /// over the layer hmst's kernel folds into its packing (4.5% of the CPU time of a dense512
    /// f16 prompt on Zen 4 in session 31).
    public static let f32GEMM16BitShare = 0.9

    /// The two f32 GEMMs on one thread (OpenBLAS held at one thread), f32 weights, 128 tokens x
    /// 256 rows x 512 deep (a prompt's shapes: a layer's rows split over threads), best of six
    /// each, in turns; about 2 ms. GFLOP/s.
    static func measureF32GEMMs() -> (hmst: Double, openblas: Double) {
        let M = 128, N = 256, K = 512
        var rng = RNG(seed: 1)
        let a = (0..<(M * K)).map { _ in rng.nextGaussian() }, w = (0..<(N * K)).map { _ in rng.nextGaussian() }
        var c = [Float](repeating: 0, count: M * N)
        var best = (hmst: Double.infinity, openblas: Double.infinity)
        Threads.withSingleThreadedBLAS {
            for _ in 0..<6 {
                let t0 = Clock.nowMs()
                let status = hk_gemm_f32_wt(M, N, K, a, K, w, Int32(HK_WT_F32), K, &c, N)
                let t1 = Clock.nowMs()
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(N), Int32(K), 1, a, Int32(K), w, Int32(K), 0, &c, Int32(N))
                let t2 = Clock.nowMs()
                if status == 0 { best.hmst = min(best.hmst, t1 - t0) }
                best.openblas = min(best.openblas, t2 - t1)
            }
        }
        let gflop = 2 * Double(M * N * K) / 1e6   // per ms
        return (best.hmst.isFinite ? gflop / best.hmst : 0, gflop / best.openblas)
    }

    /// The f32 GEMM for f32 operands and for 16-bit weights, and why. override: HMST_F32_GEMM (hmst
    /// or openblas, any case; anything else is not one), hmst honoured only where its kernel runs.
    /// kernel: hk_gemm_f32_level() (2 AVX-512, 1 AVX2, 0 none).
    static func decideF32GEMM(rates: (hmst: Double, openblas: Double), kernel: Int,
                              override: String?) -> (f32: F32GEMM, sixteen: F32GEMM, reason: String) {
        let measured = "hmst \(kernel == 2 ? "AVX-512" : "AVX2") \(Int(rates.hmst.rounded())), OpenBLAS \(Int(rates.openblas.rounded())) GFLOP/s on one thread"
        if let o = override?.lowercased(), let g = F32GEMM(rawValue: o) {
            if g == .hmst && kernel == 0 {
                return (.openblas, .openblas, "OpenBLAS (HMST_F32_GEMM=hmst ignored: hmst's needs AVX-512 or AVX2 with FMA and F16C)")
            }
            return (g, g, (g == .hmst ? "hmst" : "OpenBLAS") + " (HMST_F32_GEMM=\(g.rawValue))")
        }
        guard kernel > 0 else { return (.openblas, .openblas, "OpenBLAS: hmst's f32 GEMM needs AVX-512 or AVX2 with FMA and F16C") }
        guard rates.hmst > 0 else { return (.openblas, .openblas, "OpenBLAS: hmst's f32 GEMM could not run (no scratch memory)") }
        let f32: F32GEMM = rates.hmst >= rates.openblas ? .hmst : .openblas
        let sixteen: F32GEMM = rates.hmst >= f32GEMM16BitShare * rates.openblas ? .hmst : .openblas
        let name = { (g: F32GEMM) in g == .hmst ? "hmst" : "OpenBLAS" }
        return (f32, sixteen, "f32 operands \(name(f32)), f16/bf16/int8 weights \(name(sixteen)) (\(measured))")
    }

    /// Why a choice was made: an honoured override, an override the CPU cannot follow, a CPU
    /// without bf16 dot products, or the measured rates.
    enum Basis: Equatable { case override, overrideIgnored, noBF16, rates }

    /// The rule both choices follow: an override (bf16 or f32, any case; anything else is not
    /// one) wins when the CPU can do it; else bf16 where bf16 dot products beat f32 FMA by
    /// bf16Margin.
    static func rule(fma: Double, bf16: Double, override: String?) -> (precision: MatmulPrecision, basis: Basis) {
        if let o = override?.lowercased(), let p = MatmulPrecision(rawValue: o) {
            return p == .bf16 && bf16 <= 0 ? (.f32, .overrideIgnored) : (p, .override)
        }
        if bf16 <= 0 { return (.f32, .noBF16) }
        return (bf16 >= bf16Margin * fma ? .bf16 : .f32, .rates)
    }

    /// bf16WeightCompute's choice, from the same rates. override: HMST_BF16_WEIGHT_COMPUTE (bf16
    /// or f32), honoured when the CPU can do it.
    static func decideWeightCompute(fma: Double, bf16: Double, override: String?) -> (MatmulPrecision, String) {
        let ratio = String((bf16 / max(fma, 1e-9) * 100).rounded() / 100)
        let (p, basis) = rule(fma: fma, bf16: bf16, override: override)
        let what = p == .bf16 ? "multiplied in bf16, activations rounded to bf16" : "widened to f32"
        switch basis {
        case .overrideIgnored: return (p, "\(what) (HMST_BF16_WEIGHT_COMPUTE=bf16 ignored: no AVX512-BF16 on this CPU)")
        case .override: return (p, "\(what) (HMST_BF16_WEIGHT_COMPUTE=\(p.rawValue))")
        case .noBF16: return (p, "\(what): no AVX512-BF16 dot products on this CPU")
        case .rates:
            return (p, p == .bf16 ? "\(what) (bf16 dot products are \(ratio)x f32 FMA)"
                : "\(what) (bf16 dot products are \(ratio)x f32 FMA, below \(bf16Margin)x)")
        }
    }

    /// bf16DecodeCompute's choice: the same override (HMST_BF16_WEIGHT_COMPUTE), else bf16
    /// wherever the CPU has bf16 dot products at all.
    static func decideDecodeCompute(bf16: Double, override: String?) -> (MatmulPrecision, String) {
        // the rates rule with a margin every CPU with bf16 dot products clears
        let (p, basis) = rule(fma: 0, bf16: bf16, override: override)
        let what = p == .bf16 ? "bf16 dot products, activations rounded to bf16" : "weights widened to f32"
        switch basis {
        case .overrideIgnored: return (p, "\(what) (HMST_BF16_WEIGHT_COMPUTE=bf16 ignored: no AVX512-BF16 on this CPU)")
        case .override: return (p, "\(what) (HMST_BF16_WEIGHT_COMPUTE=\(p.rawValue))")
        case .noBF16: return (p, "\(what): no AVX512-BF16 dot products on this CPU")
        case .rates: return (p, "\(what) (a GEMV is bound by loads and instructions, not by the dot products' rate)")
        }
    }

    /// The decision, separate from the measurement so that tests can feed it numbers.
    /// override: HMST_MIXED_PRECISION_COMPUTE (bf16 or f32), honoured when the CPU can do it.
    static func decide(fma: Double, bf16: Double, override: String?) -> ComputeRates {
        let rates = "bf16 dot \(Int(bf16.rounded())) GFLOP/s, f32 FMA \(Int(fma.rounded())) GFLOP/s per core"
        let ratio = fma > 0 ? String((bf16 / fma * 100).rounded() / 100) : "inf"
        let (p, basis) = rule(fma: fma, bf16: bf16, override: override)
        let reason = switch basis {
        case .overrideIgnored: "HMST_MIXED_PRECISION_COMPUTE=bf16 ignored: no AVX512-BF16 on this CPU"
        case .override: "HMST_MIXED_PRECISION_COMPUTE=\(p.rawValue) (\(rates))"
        case .noBF16: "f32 compute: no AVX512-BF16 dot products on this CPU"
        case .rates: p == .bf16 ? "bf16 compute: \(rates) (\(ratio)x)" : "f32 compute: \(rates) (bf16 is \(ratio)x, below \(bf16Margin)x)"
        }
        return ComputeRates(fmaGFLOPS: fma, bf16GFLOPS: basis == .noBF16 ? 0 : bf16, mixedPrecisionCompute: p, reason: reason)
    }
}

private func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        let bytes = raw.bindMemory(to: UInt8.self)
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}

/// The CPU's name as /proc/cpuinfo gives it, with family and model, e.g.
/// "Intel(R) Xeon(R) Processor (family 6, model 207)": every benchmark figure names its CPU.
public enum CPUModel {
    public static let name: String = {
        guard let text = try? FileIO.readText("/proc/cpuinfo") else { return "unknown" }
        var model = "unknown", family = "?", number = "?"
        for line in text.lines().prefix(64) {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = String(parts[0].trimmingSpaces), value = String(parts[1].trimmingSpaces)
            switch key {
            case "model name": model = value
            case "cpu family": family = value
            case "model": number = value
            default: break
            }
        }
        return "\(model) (family \(family), model \(number))"
    }()
}

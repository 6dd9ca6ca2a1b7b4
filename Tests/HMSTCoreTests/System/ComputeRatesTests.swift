// The OpenBLAS kernel check and the compute choices of mixed precision, bf16 weights and the prompt
// GEMM (System/ComputeRates.swift).
import CHMST
import CKernels
@testable import HMSTCore
import XCTest

final class ComputeRatesTests: XCTestCase {
    /// Fails on a machine whose OpenBLAS runs kernels below the CPU after libhmst's fix-up.
    func testKernelsInUseMatchTheCPU() {
        let s = BLASStatus.current
        XCTAssertFalse(s.belowCapability, "OpenBLAS runs \(s.core), below \(s.bestCore): \(s.message)")
        XCTAssertFalse(s.core.isEmpty)
        XCTAssertNotEqual(s.action, .failed, s.message)
    }

    func testFamilyLevels() {
        XCTAssertEqual(chmst_blas_core_level("Prescott"), 1)
        XCTAssertEqual(chmst_blas_core_level("sandybridge"), 2)
        XCTAssertEqual(chmst_blas_core_level("Haswell"), 3)
        XCTAssertEqual(chmst_blas_core_level("Zen"), 3)
        XCTAssertEqual(chmst_blas_core_level("SkylakeX"), 4)
        XCTAssertEqual(chmst_blas_core_level("COOPERLAKE"), 4)
        XCTAssertEqual(chmst_blas_core_level("NoSuchCore"), 0)
        XCTAssertEqual(chmst_blas_core_level(nil), 0)
    }

    func testMixedPrecisionChoice() {
        // Intel model 207: vdpbf16ps at half the rate of f32 FMA -> f32 compute
        var r = ComputeRates.decide(fma: 160, bf16: 80, override: nil)
        XCTAssertEqual(r.mixedPrecisionCompute, .f32)
        XCTAssertTrue(r.reason.contains("0.5x"), r.reason)
        // Zen 4: bf16 twice f32 -> bf16
        r = ComputeRates.decide(fma: 100, bf16: 200, override: nil)
        XCTAssertEqual(r.mixedPrecisionCompute, .bf16)
        // a small edge does not pay for packing
        r = ComputeRates.decide(fma: 100, bf16: 120, override: nil)
        XCTAssertEqual(r.mixedPrecisionCompute, .f32)
        // no AVX512-BF16
        r = ComputeRates.decide(fma: 100, bf16: 0, override: nil)
        XCTAssertEqual(r.mixedPrecisionCompute, .f32)
        XCTAssertTrue(r.reason.contains("no AVX512-BF16"))
        // overrides, the impossible one refused
        XCTAssertEqual(ComputeRates.decide(fma: 160, bf16: 80, override: "bf16").mixedPrecisionCompute, .bf16)
        XCTAssertEqual(ComputeRates.decide(fma: 100, bf16: 200, override: "F32").mixedPrecisionCompute, .f32)
        XCTAssertEqual(ComputeRates.decide(fma: 100, bf16: 0, override: "bf16").mixedPrecisionCompute, .f32)
        XCTAssertEqual(ComputeRates.decide(fma: 160, bf16: 80, override: "junk").mixedPrecisionCompute, .f32)
    }

    func testBF16WeightComputeChoice() {
        XCTAssertEqual(ComputeRates.decideWeightCompute(fma: 160, bf16: 80, override: nil).0, .f32)    // Intel model 207
        XCTAssertEqual(ComputeRates.decideWeightCompute(fma: 251, bf16: 463, override: nil).0, .bf16)  // Zen 5
        XCTAssertEqual(ComputeRates.decideWeightCompute(fma: 100, bf16: 120, override: nil).0, .f32)
        let none = ComputeRates.decideWeightCompute(fma: 100, bf16: 0, override: nil)
        XCTAssertEqual(none.0, .f32)
        XCTAssertTrue(none.1.contains("no AVX512-BF16"), none.1)
        XCTAssertEqual(ComputeRates.decideWeightCompute(fma: 160, bf16: 80, override: "BF16").0, .bf16)
        XCTAssertEqual(ComputeRates.decideWeightCompute(fma: 251, bf16: 463, override: "f32").0, .f32)
        XCTAssertEqual(ComputeRates.decideWeightCompute(fma: 100, bf16: 0, override: "bf16").0, .f32)
    }

    func testBF16DecodeComputeChoice() {
        // decode's GEMVs: bf16 dot products wherever the CPU has them, at any rate
        XCTAssertEqual(ComputeRates.decideDecodeCompute(bf16: 80, override: nil).0, .bf16)     // Intel model 207
        XCTAssertEqual(ComputeRates.decideDecodeCompute(bf16: 463, override: nil).0, .bf16)    // Zen 5
        let none = ComputeRates.decideDecodeCompute(bf16: 0, override: nil)
        XCTAssertEqual(none.0, .f32)
        XCTAssertTrue(none.1.contains("no AVX512-BF16"), none.1)
        XCTAssertEqual(ComputeRates.decideDecodeCompute(bf16: 80, override: "f32").0, .f32)
        XCTAssertEqual(ComputeRates.decideDecodeCompute(bf16: 0, override: "bf16").0, .f32)
        XCTAssertEqual(ComputeRates.decideDecodeCompute(bf16: 80, override: "junk").0, .bf16)
    }

    func testF32GEMMChoice() {
        let d = { (h: Double, o: Double, kernel: Bool, override: String?) in
            ComputeRates.decideF32GEMM(rates: (h, o), kernel: kernel ? 2 : 0, override: override)
        }
        XCTAssertEqual(d(111, 99, true, nil).f32, .hmst)       // Zen 4, session 31
        XCTAssertEqual(d(111, 99, true, nil).sixteen, .hmst)
        // slower than OpenBLAS: f32 weights go to OpenBLAS; 16-bit weights stay while hmst's
        // kernel reaches 0.9 of its rate (OpenBLAS would need them widened first)
        XCTAssertEqual(d(95, 100, true, nil).f32, .openblas)
        XCTAssertEqual(d(95, 100, true, nil).sixteen, .hmst)
        XCTAssertEqual(d(85, 100, true, nil).sixteen, .openblas)
        XCTAssertTrue(d(85, 100, true, nil).reason.contains("hmst AVX-512 85, OpenBLAS 100"), d(85, 100, true, nil).reason)
        // no kernel for this CPU, or one that could not run: OpenBLAS, whatever the override
        XCTAssertEqual(d(0, 100, false, nil).f32, .openblas)
        XCTAssertEqual(d(0, 100, false, "hmst").sixteen, .openblas)
        XCTAssertTrue(d(0, 100, false, "hmst").reason.contains("ignored"), d(0, 100, false, "hmst").reason)
        XCTAssertEqual(d(0, 100, true, nil).sixteen, .openblas)
        // an override, any case, wins where the CPU can follow it; anything else is not one
        XCTAssertEqual(d(111, 99, true, "OpenBLAS").f32, .openblas)
        XCTAssertEqual(d(111, 99, true, "openblas").sixteen, .openblas)
        XCTAssertEqual(d(80, 100, true, "hmst").f32, .hmst)
        XCTAssertEqual(d(111, 99, true, "junk").f32, .hmst)
        // the measured choice on this machine: both rates measured where hmst's kernel runs, none elsewhere
        let r = ComputeRates.current
        XCTAssertTrue(ComputeRates.decideF32GEMM(rates: (100, 99), kernel: 1, override: nil).reason.contains("AVX2"))
        if hk_gemm_f32_level() > 0 {
            XCTAssertGreaterThan(r.f32GEMMRates.hmst, 1)
            XCTAssertGreaterThan(r.f32GEMMRates.openblas, 1)
        } else {
            XCTAssertEqual(ComputeRates.f32GEMMNow(weightBytes: 2), .openblas)
        }
    }

    func testMeasuredRatesAreSane() {
        let r = ComputeRates.current
        let f = chmst_cpu_features()
        if f & UInt64(HMST_SIMD_FMA.rawValue) != 0 { XCTAssertGreaterThan(r.fmaGFLOPS, 1) }
        if f & UInt64(HMST_SIMD_AVX512BF16.rawValue) != 0 { XCTAssertGreaterThan(r.bf16GFLOPS, 1) } else { XCTAssertEqual(r.bf16GFLOPS, 0) }
        XCTAssertTrue(CPUModel.name.contains("family"), CPUModel.name)
    }
}

// Linear: out = x · Wᵀ for the forward pass, choosing the kernel by shape and storage.
// T == 1 (decode): a GEMV that streams each weight row once, split over hmst's pool.
// T > 1 (prefill): an f32 GEMM, the weight rows split over hmst's pool: hmst's own
// (hk_gemm_f32_wt, AVX-512 and AVX2 CPUs) widens f16 and bf16 weights exactly as it packs them;
// OpenBLAS's sgemm, where ComputeRates measured it faster or neither kernel runs, takes them widened into
// a scratch buffer first (one pass over the weights, amortised over the T rows). int8 (Q8_0)
// weights, in prompts of more than int8GEMVMaxT tokens, take hmst's GEMM too, each weight
// dequantized as it is packed (hk_gemm_f32_q8), or are dequantized into that scratch for sgemm.
// Decode with int8 weights quantizes x once per call (per distinct input vector of a batch) and
// runs the integer GEMV (q8_0.c); f16 weights are widened inside the GEMV.
// On CPUs whose bf16 dot products beat f32 FMA (ComputeRates.bf16WeightCompute: AMD Zen 4 and
// 5), bf16 weights are multiplied as stored instead, with x rounded to bf16, as llama.cpp's bf16
// path does: hk_gemm_bf16_wt for prefill (the weight rows split over hmst's pool) and
// hk_gemv_bf16_dot for decode; int8 prompts there take the bf16 GEMM too, each weight
// dequantized to bf16 as it is packed (hk_gemm_bf16_q8).
import CBLAS
import CKernels

/// out[T, W.rows] = x[T, W.cols] · Wᵀ.  scratch: at least W.count floats when W is bf16/int8 and T > 1
/// (the workspace sizes it from the largest weight), unused otherwise.
func linearForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int, w: Weight,
                   scratch: UnsafeMutablePointer<Float>, threads: Int) {
    let rows = w.rows, cols = w.cols
    if T == 1 {
        gemvParallel(out: out, x: x, w: w, threads: threads)
        return
    }
    if w.isQ8 && T <= int8GEMVMaxT {
        // a short prompt: T integer GEMVs read the int8 weights T times, which costs less than
        // dequantizing them all for a GEMM (writing and reading twice or four times their bytes)
        gemvBatch((0..<T).map { GEMVJob(out: out + $0 * rows, x: x + $0 * cols, w: w) }, threads: threads)
        return
    }
    let wf: UnsafePointer<Float>
    switch w.storage {
    case let .f32(p):
        if hmstGEMM(out: out, x: x, T: T, w: UnsafeRawPointer(p), type: Int32(HK_WT_F32), rows: rows, cols: cols, threads: threads) { return }
        wf = p
    case let .bf16(p):
        if ComputeRates.bf16WeightComputeNow == .bf16, bf16GEMM(out: out, x: x, T: T, w: p, rows: rows, cols: cols, threads: threads) {
            return
        }
        if hmstGEMM(out: out, x: x, T: T, w: UnsafeRawPointer(p), type: Int32(HK_WT_BF16), rows: rows, cols: cols, threads: threads) { return }
        wf = widened(w, into: scratch, threads: threads)
    case let .f16(p):
        if hmstGEMM(out: out, x: x, T: T, w: UnsafeRawPointer(p), type: Int32(HK_WT_F16), rows: rows, cols: cols, threads: threads) { return }
        wf = widened(w, into: scratch, threads: threads)
    case let .q8(q, scales), let .q8Rows4(q, scales):
        var rows4 = false
        if case .q8Rows4 = w.storage { rows4 = true }
        if Int8PromptPath.now == .bf16,
           int8AsBF16GEMM(out: out, x: x, T: T, q: q, scales: scales, rows4: rows4, rows: rows, cols: cols, threads: threads) {
            return
        }
        if hmstQ8GEMM(out: out, x: x, T: T, q: q, scales: scales, rows4: rows4, rows: rows, cols: cols, threads: threads) { return }
        wf = widened(w, into: scratch, threads: threads)
    }
    sgemmRows(out: out, x: x, T: T, w: wf, rows: rows, cols: cols, threads: threads)
}

/// out[T, rows] = x[T, cols] · wᵀ by OpenBLAS. With two or more threads the weight rows are split
/// over hmst's pool (at least 64 a piece), each piece one sgemm, as bf16GEMM splits its GEMM:
/// Decoder.forward holds OpenBLAS at one thread for a prompt, since its threads, woken on every
/// call and spinning beside hmst's workers, lost 10-40% of prefill on 2 cores.
private func sgemmRows(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int, w: UnsafePointer<Float>,
                       rows: Int, cols: Int, threads: Int) {
    let parts = max(1, min(threads, rows / 64))
    parallelFor(parts, threads: parts) { i in
        let r0 = rows * i / parts / 16 * 16, r1 = i + 1 == parts ? rows : rows * (i + 1) / parts / 16 * 16
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(r1 - r0), Int32(cols),
                    1, x, Int32(cols), w + r0 * cols, Int32(cols), 0, out + r0, Int32(rows))
    }
}

/// Every row of w as f32 in scratch (Weight.copyRows: bf16 widened, int8 dequantized), rows split
/// over the pool.
private func widened(_ w: Weight, into scratch: UnsafeMutablePointer<Float>, threads: Int) -> UnsafePointer<Float> {
    let chunks = splitRange(w.rows, parts: threads * 2)
    parallelFor(chunks.count, threads: threads) { c in
        let r = chunks[c]
        w.copyRows(r.lowerBound, r.upperBound, to: scratch + r.lowerBound * w.cols)
    }
    return UnsafePointer(scratch)
}

/// Prefill with int8 weights on a CPU that multiplies bf16 weights in bf16 (Zen 4 and 5): the bf16
/// GEMM dequantizes each weight to bf16 as it packs it (exact for the int8 values; the block scale
/// rounds to 8 bits; hk_gemm_bf16_q8), W's rows split over the pool. llama.cpp's q8_0 prompt path
/// rounds its activations to 8 bits instead. False when the GEMM could not run (the caller takes
/// the f32 path).
private func int8AsBF16GEMM(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int, q: UnsafePointer<Int8>,
                            scales: UnsafePointer<Float>, rows4: Bool, rows: Int, cols: Int, threads: Int) -> Bool {
    overRowPanels(rows: rows, threads: threads) { r0, r1 in
        hk_gemm_bf16_q8(T, r1 - r0, cols, x, cols, q, scales, rows, r0, rows4 ? 1 : 0, out + r0, rows)
    }
}

/// Runs gemm(r0, r1) for rows [r0, r1) of a weight matrix split over the pool in multiples of
/// 32 rows (the GEMM kernels' panels; any smaller panel width divides it), one range a thread.
/// True when every call returned 0.
private func overRowPanels(rows: Int, threads: Int, _ gemm: (_ r0: Int, _ r1: Int) -> Int32) -> Bool {
    let panels = (rows + 31) / 32
    let parts = max(1, min(threads, panels))
    let status = UnsafeMutablePointer<Int32>.allocate(capacity: parts)
    defer { status.deallocate() }
    parallelFor(parts, threads: parts) { i in
        let r0 = panels * i / parts * 32, r1 = min(rows, panels * (i + 1) / parts * 32)
        status[i] = r1 > r0 ? gemm(r0, r1) : 0
    }
    return (0..<parts).allSatisfy { status[$0] == 0 }
}

/// out[T, rows] = x[T, cols] · Wᵀ in bf16 with f32 sums, W's rows split over the pool in
/// multiples of the kernel's 32-column panels. False (nothing to trust in out) when a thread
/// could not get its packing scratch: the caller widens instead.
private func bf16GEMM(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int, w: UnsafePointer<UInt16>,
                      rows: Int, cols: Int, threads: Int) -> Bool {
    overRowPanels(rows: rows, threads: threads) { r0, r1 in
        hk_gemm_bf16_wt(T, r1 - r0, cols, x, cols, w + r0 * cols, cols, out + r0, rows)
    }
}

/// out[T, rows] = x[T, cols] · wᵀ in f32 by hk_gemm_f32_wt, w's rows split over the pool in
/// multiples of 32 rows. False when ComputeRates chose OpenBLAS for this weight type (or hmst's
/// kernel cannot run here), or a thread could not get its packing scratch: the caller takes the
/// OpenBLAS path (and overwrites whatever was written).
private func hmstGEMM(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int, w: UnsafeRawPointer, type: Int32,
                      rows: Int, cols: Int, threads: Int) -> Bool {
    let elementBytes = type == Int32(HK_WT_F32) ? 4 : 2
    guard ComputeRates.f32GEMMNow(weightBytes: elementBytes) == .hmst else { return false }
    return overRowPanels(rows: rows, threads: threads) { r0, r1 in
        hk_gemm_f32_wt(T, r1 - r0, cols, x, cols, w + r0 * cols * elementBytes, type, cols, out + r0, rows)
    }
}

/// out[T, rows] = x[T, cols] · Wᵀ for int8 (Q8_0) weights in f32 by hk_gemm_f32_q8, which
/// dequantizes each weight as it packs it (the same values as dequantizing the matrix into scratch
/// for OpenBLAS, without that pass), W's rows split over the pool as hmstGEMM splits them. False
/// as hmstGEMM: the caller dequantizes for OpenBLAS.
private func hmstQ8GEMM(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, T: Int, q: UnsafePointer<Int8>,
                        scales: UnsafePointer<Float>, rows4: Bool, rows: Int, cols: Int, threads: Int) -> Bool {
    guard ComputeRates.f32GEMMNow(weightBytes: 1) == .hmst else { return false }   // Int8PromptPath.now's second rule
    return overRowPanels(rows: rows, threads: threads) { r0, r1 in
        hk_gemm_f32_q8(T, r1 - r0, cols, x, cols, q, scales, rows, r0, rows4 ? 1 : 0, out + r0, rows)
    }
}

/// Prompts of at most this many tokens multiply int8 weights by GEMVs instead of a GEMM.
nonisolated(unsafe) var int8GEMVMaxT = Int(getenv("HMST_INT8_GEMV_MAX_T").flatMap { Int(String(cString: $0)) } ?? 64)

/// How int8 weights are multiplied in prompts of more than `int8GEMVMaxT` tokens on this CPU, as
/// linearForward chooses (hmst system-info): in bf16 (hk_gemm_bf16_q8, where bf16 weights are
/// multiplied in bf16), in f32 on hmst's GEMM (hk_gemm_f32_q8) or in f32 on OpenBLAS's sgemm after
/// dequantizing each matrix into scratch.
public enum Int8PromptPath: String, Sendable {
    case bf16
    case hmstF32 = "hmst-f32"
    case openblasF32 = "openblas-f32"

    public static var now: Int8PromptPath {
        if ComputeRates.bf16WeightComputeNow == .bf16 { return .bf16 }
        return ComputeRates.f32GEMMNow(weightBytes: 1) == .hmst ? .hmstF32 : .openblasF32
    }

    /// Prompts of at most this many tokens (and decode) run the integer GEMV instead
    /// (`HMST_INT8_GEMV_MAX_T`, default 64).
    public static var gemvMaxTokens: Int { int8GEMVMaxT }

    public var description: String {
        switch self {
        case .bf16: return "multiplied in bf16, each weight dequantized to bf16 as the GEMM packs it"
        case .hmstF32: return "multiplied in f32 on hmst's GEMM, each weight dequantized as it packs it"
        case .openblasF32: return "dequantized to f32, then OpenBLAS's sgemm"
        }
    }
}

/// y[W.rows] = W · x[W.cols], rows split over the pool.
func gemvParallel(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: Weight, threads: Int) {
    gemvBatch([GEMVJob(out: out, x: x, w: w)], threads: threads)
}

/// Threads worth waking for a GEMV reading `bytes` of weights: at least gemvMinBytesPerThread a
/// thread, so tiny matrices stay on the calling thread.
@inline(__always) func gemvThreads(bytes: Int, _ threads: Int) -> Int {
    max(1, min(threads, bytes / gemvMinBytesPerThread))
}

/// The smallest share of a decode GEMV's weights worth a thread. A worker joins a job within a
/// microsecond or two, while streaming 128 KiB takes 5-6 us on a Zen 4 core: at 384 KiB (until
/// session 29) a 512 × 512 bf16 matrix (attention's output projection) ran on one thread.
/// `hmst-bench decode-ab --gemv-min-kib 384,128` on llamacpp_peer.py's moe512 bf16 GGUF: +0-2%.
/// Settable for such measurements; not meant to change while decoding.
public nonisolated(unsafe) var gemvMinBytesPerThread = 128 << 10

/// The most weight bytes in one task of a decode GEMV (the unit the pool's threads take in
/// turn). A thread streams its task's rows in one run, so larger tasks restart the hardware
/// prefetchers less often; gemvBatch still cuts a job into at least four tasks a thread (down to
/// 64 KiB a task) so the threads finish together. In one process on Zen 4 (`hmst-bench
/// decode-ab --model <llamacpp_peer.py's GGUF> --gemv-task-kib 64,256 --bandwidth`), 256 KiB
/// against the former fixed 64 KiB: moe512 bf16 +6-14%, f32 +6%, int8 +12%; dense512 bf16
/// +0-10%, f32 +3%, int8 +20% (512 KiB was no better). Settable for such measurements.
public nonisolated(unsafe) var gemvTaskBytes = 256 << 10

/// One GEMV of a batch: out[w.rows] = w · x[w.cols].
struct GEMVJob {
    let out: UnsafeMutablePointer<Float>
    let x: UnsafePointer<Float>
    let w: Weight
}

/// Several independent GEMVs as one parallel job (decode: q/k/v together, the chosen experts'
/// w1/w3 together), so the pool synchronises once instead of once per matrix.
func gemvBatch(_ jobs: [GEMVJob], threads: Int) {
    let bytes = jobs.reduce(0) { $0 + $1.w.count * $1.w.bytesPerElement }
    // int8 jobs: each distinct input vector quantized once, into one 64-byte aligned scratch
    var actOffset = [Int](repeating: 0, count: jobs.count)
    var inputs: [(x: UnsafePointer<Float>, cols: Int, offset: Int)] = []
    var actBytes = 0
    for (j, job) in jobs.enumerated() where job.w.isQ8 {
        if let seen = inputs.first(where: { $0.x == job.x && $0.cols == job.w.cols }) {
            actOffset[j] = seen.offset
            continue
        }
        actOffset[j] = actBytes
        inputs.append((job.x, job.w.cols, actBytes))
        actBytes += (hk_q8_act_bytes(job.w.cols) + 63) & ~63
    }
    let bf16Kind = Int64(ComputeRates.bf16DecodeComputeNow == .bf16 ? HK_GEMV_BF16_DOT : HK_GEMV_BF16)
    withUnsafeTemporaryAllocation(byteCount: max(64, actBytes), alignment: 64) { act in
        let base = act.baseAddress!
        for input in inputs { hk_q8_quantize_act(base + input.offset, input.x, input.cols) }
        // the tasks as plain C structs (hk_gemv_task), up to gemvTaskBytes of weights each
        let taskBytes = min(gemvTaskBytes, max(64 << 10, bytes / (4 * max(1, threads))))
        var tasks: [hk_gemv_task] = []
        tasks.reserveCapacity(64)
        for (j, job) in jobs.enumerated() {
            let w = job.w
            let kind: Int64, weights: UnsafeRawPointer, scales: UnsafePointer<Float>?
            switch w.storage {
            case let .f32(p): (kind, weights, scales) = (Int64(HK_GEMV_F32), UnsafeRawPointer(p), nil)
            case let .bf16(p): (kind, weights, scales) = (bf16Kind, UnsafeRawPointer(p), nil)
            case let .f16(p): (kind, weights, scales) = (Int64(HK_GEMV_F16), UnsafeRawPointer(p), nil)
            case let .q8(q, s): (kind, weights, scales) = (Int64(HK_GEMV_Q8), UnsafeRawPointer(q), s)
            case let .q8Rows4(q, s): (kind, weights, scales) = (Int64(HK_GEMV_Q8_ROWS4), UnsafeRawPointer(q), s)
            }
            var rowsPerTask = max(1, taskBytes / max(1, w.cols * w.bytesPerElement))
            if kind == Int64(HK_GEMV_Q8_ROWS4) { rowsPerTask = (rowsPerTask + 3) & ~3 }   // whole quads
            let jobAct = w.isQ8 ? UnsafeRawPointer(base + actOffset[j]) : nil
            var r = 0
            while r < w.rows {
                tasks.append(hk_gemv_task(y: job.out, w: weights, scales: scales, x: job.x, act: jobAct, kind: kind,
                                          rows: w.rows, cols: w.cols, r0: r, r1: min(w.rows, r + rowsPerTask)))
                r += rowsPerTask
            }
        }
        tasks.withUnsafeMutableBufferPointer { t in
            parallelFor(t.count, threads: gemvThreads(bytes: bytes, threads), task: hk_gemv_task_run,
                        context: UnsafeMutableRawPointer(t.baseAddress!))
        }
    }
}

/// C = alpha · op(A) op(B) + beta · C in f32 on the calling thread (row-major, as cblas_sgemm;
/// A stored [K, M] when transA, B [N, K] when transB): hmst's hk_gemm_f32 where ComputeRates
/// chose it for f32 operands, else (or when it declines) OpenBLAS.
func sgemmF32(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float, A: UnsafePointer<Float>, lda: Int,
              B: UnsafePointer<Float>, ldb: Int, beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
    if ComputeRates.f32GEMMNow(weightBytes: 4) == .hmst,
       hk_gemm_f32(transA ? 1 : 0, transB ? 1 : 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0 { return }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(M), Int32(N), Int32(K),
                alpha, A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
}

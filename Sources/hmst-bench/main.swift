// hmst-bench: inference speed of random-weight decoders, as JSON lines on stdout.
//   hmst-bench [--quick] [--case NAME] [--threads 1,2] [--dtypes f32,bf16,int8] [--kv f32|bf16]
//   hmst-bench train | tokenizer | memory | retrieval | lexical | ppo ...   (see each mode below)
// Each line: case, shape, threads, dtype, prefill and decode tokens/s, and the roofline:
// achieved GFLOP/s against measured sgemm GFLOP/s (prefill), and bytes read per token against
// measured memory bandwidth (decode).
import CBLAS
import CKernels
import Foundation
import HMSTCore

struct BenchShape {
    let name: String
    let dims: DecoderDims
}

func shape(_ name: String, C: Int, L: Int, H: Int, KV: Int, F: Int, E: Int, K: Int, V: Int) -> BenchShape {
    BenchShape(name: name, dims: DecoderDims(C: C, H: H, KV: KV, Dh: C / H, F: F, E: E, K: K, V: V, L: L, eps: 1e-5,
                                             ropeTheta: 10000, maxPositions: 2048, tiedEmbeddings: false))
}

func preset(_ name: String) -> BenchShape {
    var d = (try? MixtralConfig.preset(name).dims)!
    d.maxPositions = 2048
    return BenchShape(name: name, dims: d)
}

let shapes = [
    preset("micro"),
    shape("moe512", C: 512, L: 8, H: 8, KV: 8, F: 1536, E: 8, K: 2, V: 32000),
    shape("dense512", C: 512, L: 8, H: 8, KV: 8, F: 1536, E: 1, K: 1, V: 32000),
    preset("tiny"),
]

// ---- arguments ---------------------------------------------------------------------------------
var args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}
let quick = args.contains("--quick")
let only = option("--case")
let threadList = (option("--threads") ?? "1,2").split(separator: ",").compactMap { Int($0) }
let dtypes = (option("--dtypes") ?? "f32,bf16").split(separator: ",").map(String.init)
let promptLen = Int(option("--prompt") ?? "") ?? (quick ? 64 : 512)
let genLen = Int(option("--gen") ?? "") ?? (quick ? 16 : 128)
let kvTypes = (option("--kv") ?? "f32").split(separator: ",").compactMap { KVCacheType(rawValue: String($0)) }
let kvType = kvTypes.first ?? .f32

// ---- rooflines ---------------------------------------------------------------------------------
func sgemmGFLOPs(threads: Int) -> Double {
    openblas_set_num_threads(Int32(threads))
    let m = 512, n = 1536, k = 512
    let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
    var c = [Float](repeating: 0, count: m * n)
    var best = Double.infinity
    for _ in 0..<8 {
        let t0 = Clock.nowMs()
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
        best = min(best, Clock.nowMs() - t0)
    }
    return 2.0 * Double(m * n * k) / (best / 1000) / 1e9
}

/// A streaming read of 256 MiB of floats on `threads`, best of `passes`, in GB/s. `buffer`: one
/// made by readBuffer() to reuse across calls (decode-ab reads after every turn); nil, a fresh one.
func bandwidthGBs(threads: Int, passes: Int = 4, buffer: FloatBuffer? = nil) -> Double {
    let held = buffer ?? readBuffer()
    let n = held.count, buf = held.pointer
    let parts = splitRange(n, parts: threads)
    var best = Double.infinity
    let sums = UnsafeMutablePointer<Float>.allocate(capacity: threads)
    defer { sums.deallocate() }
    for _ in 0..<passes {
        let t0 = Clock.nowMs()
        parallelFor(parts.count, threads: threads) { p in
            var s0: SIMD16<Float> = .zero
            let r = parts[p]
            let base = UnsafeRawPointer(buf + r.lowerBound)
            var i = 0
            while i + 16 <= r.count {
                s0 += base.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                i += 16
            }
            sums[p] = s0.sum()
        }
        best = min(best, Clock.nowMs() - t0)
    }
    withExtendedLifetime(held) {}
    return Double(n * 4) / (best / 1000) / 1e9
}

/// bandwidthGBs' 256 MiB, every page written.
func readBuffer() -> FloatBuffer {
    let b = FloatBuffer(count: 64 << 20, zeroed: false)
    b.pointer.initialize(repeating: 1, count: b.count)
    return b
}

// ---- model cost --------------------------------------------------------------------------------
/// Bytes a matmul weight of this decoder streams per element: its storage's, plus an int8 block's
/// f32 scale spread over its 32 values.
func streamedBytesPerWeight(_ w: DecoderWeights) -> Double {
    let q = w.layers[0].q
    return Double(q.bytesPerElement) + (q.isQ8 ? 4.0 / 32 : 0)
}

func matmulParamsPerToken(_ d: DecoderDims) -> Double {
    let attn = d.C * d.H * d.Dh * 2 + d.C * d.KV * d.Dh * 2
    return Double(d.L * (attn + d.E * d.C + d.K * 3 * d.C * d.F))
}

func json(_ pairs: [(String, Any)]) -> String {
    "{" + pairs.map { k, v in
        let value: String
        switch v {
        case let s as String: value = "\"\(s)\""
        case let d as Double: value = d.isFinite ? String(format2(d)) : "null"
        default: value = "\(v)"
        }
        return "\"\(k)\":\(value)"
    }.joined(separator: ",") + "}"
}

func format2(_ d: Double) -> String {
    let r = (d * 100).rounded() / 100
    return String(r)
}

// ---- gemm mode: hmst-bench gemm — one-thread f32 sgemm (OpenBLAS) against the bf16 kernel ---------
//      on the training step's shapes (M tokens or rows, N outputs, K inputs; t = transposed operand)
if args.first == "gemm" {
    // the CPU, OpenBLAS's kernels and the measured per-core peaks every line is compared with
    // (SystemInfo applies the library's thread count: read it before going to one thread)
    let info = SystemInfo()
    openblas_set_num_threads(1)
    let peak = info.rates
    print(json([("bench", "gemm_peaks"), ("cpu", CPUModel.name), ("blas_core", info.blas.core),
                ("blas_core_at_load", info.blas.coreAtLoad), ("blas_below_capability", info.blas.belowCapability ? 1 : 0),
                ("fma_peak_gflops", peak.fmaGFLOPS), ("bf16_dot_peak_gflops", peak.bf16GFLOPS),
                ("mixed_precision_compute", peak.mixedPrecisionCompute.rawValue), ("f32_gemm", peak.f32GEMM.rawValue)]))
    let shapes: [(String, Bool, Bool, Int, Int, Int)] = [
        ("x·Wᵀ expert", false, true, 512, 512, 256), ("dy·W expert", false, false, 512, 256, 512),
        ("dyᵀ·x expert", true, false, 512, 256, 512), ("x·Wᵀ head", false, true, 2048, 4096, 256),
        ("dy·W head", false, false, 2048, 256, 4096), ("dyᵀ·x head", true, false, 4096, 256, 2048),
        // the nano preset's head (hmst train's default: vocabulary 16,384, 4 x 256 tokens a step)
        ("x·Wᵀ head 16k", false, true, 1024, 16384, 256), ("dy·W head 16k", false, false, 1024, 256, 16384),
        ("dyᵀ·x head 16k", true, false, 16384, 256, 1024), ("square 1024", false, false, 1024, 1024, 1024),
        ("prompt x·Wᵀ 512x768x512", false, true, 512, 768, 512), ("prompt x·Wᵀ 512x256x1536", false, true, 512, 256, 1536)]
    for (name, tA, tB, M, N, K) in shapes {
        var rng = RNG(seed: 1)
        let A = (0..<(M * K)).map { _ in rng.nextGaussian() }, B = (0..<(K * N)).map { _ in rng.nextGaussian() }
        var C = [Float](repeating: 0, count: M * N)
        let lda = tA ? M : K, ldb = tB ? K : N
        func time(_ body: () -> Void) -> Double {
            body()
            var best = Double.infinity
            for _ in 0..<5 { let t0 = Clock.nowMs(); body(); best = min(best, Clock.nowMs() - t0) }
            return best
        }
        let f32 = time { cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, Int32(M), Int32(N), Int32(K),
                                     1, A, Int32(lda), B, Int32(ldb), 0, &C, Int32(N)) }
        let bf16 = time { _ = hk_gemm_bf16(tA ? 1 : 0, tB ? 1 : 0, M, N, K, 1, A, lda, B, ldb, 0, &C, N) }
        // hmst's f32 GEMM (0 GFLOP/s where it declines: neither its AVX-512 nor its AVX2 form runs)
        let hmstRuns = hk_gemm_f32(tA ? 1 : 0, tB ? 1 : 0, M, N, K, 1, A, lda, B, ldb, 0, &C, N) == 0
        let hmstF32 = hmstRuns ? time { _ = hk_gemm_f32(tA ? 1 : 0, tB ? 1 : 0, M, N, K, 1, A, lda, B, ldb, 0, &C, N) } : .infinity
        let flops = 2.0 * Double(M * N * K)
        print(json([("bench", "gemm"), ("shape", name), ("M", M), ("N", N), ("K", K), ("threads", 1),
                    ("f32_gflops", flops / f32 / 1e6), ("hmst_f32_gflops", flops / hmstF32 / 1e6),
                    ("bf16_gflops", flops / bf16 / 1e6), ("bf16_over_f32", f32 / bf16),
                    ("f32_of_fma_peak", peak.fmaGFLOPS > 0 ? flops / f32 / 1e6 / peak.fmaGFLOPS : 0),
                    ("hmst_f32_of_fma_peak", peak.fmaGFLOPS > 0 ? flops / hmstF32 / 1e6 / peak.fmaGFLOPS : 0),
                    ("bf16_of_dot_peak", peak.bf16GFLOPS > 0 ? flops / bf16 / 1e6 / peak.bf16GFLOPS : 0)]))
    }
    exit(0)
}

// ---- training mode: hmst-bench train [--preset micro] [--batch 8] [--seq 256] [--steps 5] --------
//      [--precision f32,bf16] [--checkpointing] [--optimizer adamw|adamw8bit]
if args.first == "train" {
    let name = option("--preset") ?? "micro"
    let B = Int(option("--batch") ?? "") ?? 8
    let T = Int(option("--seq") ?? "") ?? 256
    let steps = Int(option("--steps") ?? "") ?? 5
    // "mixed" is what --mixed-precision runs on this CPU (ComputeRates): bf16 only where it is faster
    let precisions: [(name: String, precision: MatmulPrecision)] = (option("--precision") ?? "f32,bf16,mixed").split(separator: ",").compactMap {
        $0 == "mixed" ? ("mixed", ComputeRates.current.mixedPrecisionCompute) : MatmulPrecision(rawValue: String($0)).map { (String($0.rawValue), $0) }
    }
    let checkpointing = args.contains("--checkpointing")
    let eightBit = option("--optimizer") == "adamw8bit"
    var config = try MixtralConfig.preset(name, vocabSize: Int(option("--vocab") ?? ""))
    config.maxPositionEmbeddings = max(config.maxPositionEmbeddings, T)
    let model = try LanguageModel.random(config: config, seed: 1)
    for (precisionName, precision) in precisions {
        for threads in threadList {
            try Threads.set(threads)
            let params = try Parameters(model: model)
            let grad = ModelGrad(params: params, options: ModelGradOptions(precision: precision, gradientCheckpointing: checkpointing))
            let opt: Optimizer = eightBit ? try AdamW8bit(params: params) : try AdamW(params: params)
            var rng = RNG(seed: 2)
            let windows = (0..<(B * (T + 1))).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
            var times: [Double] = []
            var loss = 0.0
            for s in 0..<(steps + 1) {
                let t0 = Clock.nowMs()
                params.zeroGrads()
                loss = try grad.step(windows: windows, B: B, T: T, backward: true).loss
                opt.update(lr: 1e-3, gradScale: GradClip.scale(norm: GradClip.norm(params), maxNorm: 1))
                if s > 0 { times.append(Clock.nowMs() - t0) }  // the first step warms up
            }
            let ms = times.sorted()[times.count / 2]
            print(json([("bench", "train"), ("preset", name), ("params_m", Double(config.parameterCount) / 1e6), ("threads", threads),
                        ("batch", B), ("seq", T), ("step_ms_median", ms), ("tokens_per_s", Double(B * T) / ms * 1000),
                        ("last_loss", loss), ("dtype", precisionName), ("compute", precision.rawValue), ("cpu", CPUModel.name),
                        ("blas_core", BLASStatus.current.core), ("checkpointing", checkpointing ? 1 : 0),
                        ("activation_mb", Double(grad.bufferBytes.activations) / 1048576),
                        ("step_buffers_mb", Double(grad.bufferBytes.total) / 1048576),
                        ("optimizer", eightBit ? "adamw8bit" : "adamw"), ("optimizer_state_mb", Double(opt.stateBytes) / 1048576)]))
        }
    }
    exit(0)
}

// ---- tokenizer mode: hmst-bench tokenizer --corpus FILE [--vocab N] [--threads 1,2] ----------------
if args.first == "tokenizer" {
    guard let corpus = option("--corpus") else {
        StandardStream.error.write("hmst-bench tokenizer --corpus FILE [--vocab N]\n")
        exit(2)
    }
    let text = try FileIO.readAll(corpus)
    for vocab in (option("--vocab") ?? "2000,8000").split(separator: ",").compactMap({ Int($0) }) {
        var o = BPETrainingOptions()
        o.vocabSize = vocab
        for threads in threadList {
            try Threads.set(threads)
            let t0 = Clock.nowMs()
            let tok = try BPETrainer.train(texts: [text], options: o)
            let trainS = (Clock.nowMs() - t0) / 1000
            // one string, one thread (the pool is not used by encode(bytes:))
            var best = Double.infinity
            var nTokens = 0
            for _ in 0..<3 {
                let t1 = Clock.nowMs()
                nTokens = tok.encode(bytes: text).count
                best = min(best, Clock.nowMs() - t1)
            }
            let lines = text.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
            var bestBatch = Double.infinity
            for _ in 0..<3 {
                let t2 = Clock.nowMs()
                _ = tok.encodeBatch(lines, threads: threads)
                bestBatch = min(bestBatch, Clock.nowMs() - t2)
            }
            let mb = Double(text.count) / 1e6
            print(json([("bench", "tokenizer"), ("corpus_mb", mb), ("vocab", vocab), ("threads", threads),
                        ("train_s", trainS), ("tokens", nTokens),
                        ("encode_mb_s_single_string_1_thread", mb / (best / 1000)),
                        ("encode_mb_s_batch_by_line", mb / (bestBatch / 1000))]))
        }
    }
    exit(0)
}

// ---- gemv mode: hmst-bench gemv [--rows 1536] [--cols 512] — one-thread GEMV per weight type --------
//      at each kernel level (int8 with its per-call activation quantization); best of many calls.
if args.first == "gemv" {
    let rows = Int(option("--rows") ?? "") ?? 1536, cols = Int(option("--cols") ?? "") ?? 512
    var rng = RNG(seed: 1)
    let w = (0..<(rows * cols)).map { _ in rng.nextGaussian() * 0.02 }
    let x = (0..<cols).map { _ in rng.nextGaussian() }
    var y = [Float](repeating: 0, count: rows)
    // weights 64-byte aligned, as loaded checkpoints' are (SafeTensorsWriter): a 64-byte load
    // that splits a cache line costs the AVX-512 GEMVs 20-30% on Zen 5
    func aligned<T>(_ a: [T]) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(64, a.count * MemoryLayout<T>.stride), alignment: 64)
            .bindMemory(to: T.self, capacity: a.count)
        p.initialize(from: a, count: a.count)
        return p
    }
    var wb16 = [UInt16](repeating: 0, count: w.count), wh16 = wb16
    hk_f32_to_bf16(&wb16, w, w.count)
    hk_f32_to_f16(&wh16, w, w.count)
    var wq8 = [Int8](repeating: 0, count: w.count), ws = [Float](repeating: 0, count: w.count / 32)
    hk_q8_quantize(&wq8, &ws, w, w.count)
    let wf = aligned(w), wb = aligned(wb16), wh = aligned(wh16), wq = aligned(wq8)
    let act = UnsafeMutableRawPointer.allocate(byteCount: hk_q8_act_bytes(cols), alignment: 64)
    func best(_ body: () -> Void) -> Double {
        var b = Double.infinity
        for _ in 0..<7 {
            let t0 = Clock.nowMs()
            for _ in 0..<50 { body() }
            b = min(b, (Clock.nowMs() - t0) / 50)
        }
        return b * 1000  // µs
    }
    var line: [(String, Any)] = [("bench", "gemv"), ("rows", rows), ("cols", cols), ("kernel_level", Int(hk_level()))]
    line.append(("gemv_rows_f32", Int(hk_gemv_rows(0))))
    line.append(("gemv_rows_bf16", Int(hk_gemv_rows(1))))
    line.append(("gemv_rows_f16", Int(hk_gemv_rows(2))))
    line.append(("f32_us", best { hk_gemv_f32(&y, wf, x, cols, 0, rows) }))
    line.append(("bf16_us", best { hk_gemv_bf16(&y, wb, x, cols, 0, rows) }))
    line.append(("bf16_dot_us", best { hk_gemv_bf16_dot(&y, wb, x, cols, 0, rows) }))   // x rounded to bf16
    line.append(("f16_us", best { hk_gemv_f16(&y, wh, x, cols, 0, rows) }))
    do {   // the same weights 32 bytes off a cache line, as GGUF files align them
        let off = UnsafeMutableRawPointer.allocate(byteCount: wb16.count * 2 + 64, alignment: 64)
        let p = (off + 32).bindMemory(to: UInt16.self, capacity: wb16.count)
        p.update(from: wb16, count: wb16.count)
        line.append(("bf16_off32_us", best { hk_gemv_bf16(&y, p, x, cols, 0, rows) }))
        line.append(("bf16_dot_off32_us", best { hk_gemv_bf16_dot(&y, p, x, cols, 0, rows) }))
        off.deallocate()
    }
    if hk_level() >= Int32(HK_LEVEL_AVX512) {   // the AVX-512 GEMVs' rows per pass, both ways
        for r in [1, 4] {
            hk_set_gemv_rows(Int32(r))
            line.append(("f32_rows\(r)_us", best { hk_gemv_f32(&y, wf, x, cols, 0, rows) }))
            line.append(("bf16_rows\(r)_us", best { hk_gemv_bf16(&y, wb, x, cols, 0, rows) }))
            line.append(("f16_rows\(r)_us", best { hk_gemv_f16(&y, wh, x, cols, 0, rows) }))
        }
        hk_set_gemv_rows(0)
    }
    for level in (0..<Int(hk_level())).reversed() {  // the lower kernel levels (AVX2, portable)
        hk_set_max_level(Int32(level))
        line.append(("f32_level\(level)_us", best { hk_gemv_f32(&y, wf, x, cols, 0, rows) }))
        line.append(("bf16_level\(level)_us", best { hk_gemv_bf16(&y, wb, x, cols, 0, rows) }))
        line.append(("f16_level\(level)_us", best { hk_gemv_f16(&y, wh, x, cols, 0, rows) }))
    }
    hk_set_max_level(-1)
    for level in (0...Int(hk_q8_level())).reversed() {
        hk_q8_set_max_level(Int32(level))
        let t = best {
            hk_q8_quantize_act(act, x, cols)
            hk_gemv_q8(&y, wq, ws, act, cols, 0, rows)
        }
        line.append(("int8_level\(level)_us", t))
    }
    hk_q8_set_max_level(-1)
    if hk_q8_packable(rows, cols) != 0 {   // the row-quad layout decoders use (Q8Tensor.packedRows4)
        let pq = aligned(wq8), ps = aligned(ws)   // 64-byte aligned, as Q8Tensor's buffers are
        hk_q8_pack_rows4(pq, ps, wq, ws, rows, cols, 0, rows)
        line.append(("int8_rows4_us", best {
            hk_q8_quantize_act(act, x, cols)
            hk_gemv_q8_rows4(&y, pq, ps, act, rows, cols, 0, rows)
        }))
        // the lower levels over the same layout (a file saved as int8-rows4, read on AVX2 or portable CPUs)
        for level in (0..<Int(hk_q8_level())).reversed() {
            hk_q8_set_max_level(Int32(level))
            line.append(("int8_rows4_level\(level)_us", best {
                hk_q8_quantize_act(act, x, cols)
                hk_gemv_q8_rows4(&y, pq, ps, act, rows, cols, 0, rows)
            }))
        }
        hk_q8_set_max_level(-1)
        pq.deallocate()
        ps.deallocate()
    }
    line.append(("int8_quantize_act_us", best { hk_q8_quantize_act(act, x, cols) }))
    print(json(line))
    exit(0)
}

// ---- decode-ab mode: hmst-bench decode-ab [--case dense512] [--threads 2] [--dtypes f32,bf16,int8] ----
//      [--kv f32,bf16] [--rounds 8] [--per 16]: decode rates of several weight types (and, with
//      --threads 1,2, thread counts) measured in turns (16 tokens of each, round after round), so
//      that a shared machine's changing load hits all alike; medians of per-token times after a
//      --prompt-token prompt and from an empty context, and the spread (25th-75th percentile).
//      --kernel-levels 1,2 adds the kernel level (hmst_kernels.h: 0 portable, 1 AVX2, 2 AVX-512)
//      as one more axis, set before each turn (default: the CPU's own, -1); --gemv-rows 1,4 the
//      AVX-512 GEMVs' rows per pass (default: the CPU's, 0); --bf16-compute f32,bf16 what bf16
//      weights multiply in (default: the CPU's choice); --gemv-min-kib 384,128 the least weight
//      bytes per thread of a decode GEMV (gemvMinBytesPerThread). --model A[,B...]: checkpoints or
//      GGUF files of one shape instead of random weights, each a variant of its own (their dtype
//      "stored" by default: as loaded), so two files' encodings are timed in the same minutes.
if args.first == "decode-ab" {
    let s = shapes.first { $0.name == (only ?? "dense512") } ?? shapes[2]
    let threadCounts = threadList.isEmpty ? [2] : threadList
    let rounds = Int(option("--rounds") ?? "") ?? 8, per = Int(option("--per") ?? "") ?? 16
    try Threads.set(threadCounts.max() ?? 2)
    // --model A,B: checkpoints or GGUF files as loaded (their dims, which must agree) instead of
    // random weights of --case's shape
    let loaded = try (option("--model") ?? "").split(separator: ",").map { path -> (String, LanguageModel) in
        var o = ModelLoadOptions()
        o.loadTokenizer = false
        return (String(path), try LanguageModel.load(path: String(path), options: o))
    }
    let dims = loaded.first?.1.decoder.dims ?? s.dims
    if let other = loaded.first(where: { $0.1.decoder.dims != dims }) {
        StandardStream.error.write("--model: \(other.0) is not of \(loaded[0].0)'s shape\n")
        exit(2)
    }
    let bases: [(name: String, weights: DecoderWeights)] = loaded.isEmpty
        ? [(s.name, try RandomWeights.make(dims: dims, seed: 1, init: .routed).0)]
        : loaded.map { ($0.0, $0.1.decoder.weights) }
    let variantTypes = loaded.isEmpty ? dtypes : (option("--dtypes").map { _ in dtypes } ?? ["stored"])
    var rng = RNG(seed: 5)
    let prompt = (0..<promptLen).map { _ in Int32(rng.next() % UInt64(dims.V)) }
    let levels = (option("--kernel-levels") ?? "-1").split(separator: ",").compactMap { Int32($0) }
    let gemvRows = (option("--gemv-rows") ?? "0").split(separator: ",").compactMap { Int32($0) }
    // --bf16-compute f32,bf16: what bf16 weights multiply in (ComputeRates.bf16DecodeCompute; default: the CPU's)
    let bf16Computes: [MatmulPrecision?] = option("--bf16-compute").map { $0.split(separator: ",").map { MatmulPrecision(rawValue: String($0)) } } ?? [nil]
    let minKiBs = (option("--gemv-min-kib") ?? String(gemvMinBytesPerThread >> 10)).split(separator: ",").compactMap { Int($0) }
    let taskKiBs = (option("--gemv-task-kib") ?? String(gemvTaskBytes >> 10)).split(separator: ",").compactMap { Int($0) }
    // --bandwidth: after each turn, one streaming read of 256 MiB on the turn's threads, so the
    // decode's bytes per second can be set against what the memory gave in the same minutes
    let readBuf = args.contains("--bandwidth") ? readBuffer() : nil
    /// The kernel settings of one turn, applied before it runs.
    struct Knobs {
        var level: Int32, rows: Int32, compute: MatmulPrecision?, minKiB: Int, taskKiB: Int
        func apply() {
            hk_set_max_level(level)
            hk_set_gemv_rows(rows)
            ComputeRates.bf16WeightComputeOverride = compute
            gemvMinBytesPerThread = minKiB << 10
            gemvTaskBytes = taskKiB << 10
        }
    }
    /// One configuration decoded in turns: its sessions and what each turn measured.
    struct Turns {
        let model: String, dtype: String, kv: KVCacheType, threads: Int, knobs: Knobs, long: Session, empty: Session
        var tLong: [Double] = [], tEmpty: [Double] = [], read: [Double] = []
    }
    var knobSets: [Knobs] = []
    for compute in bf16Computes {
        for level in levels {
            for rows in gemvRows {
                for minKiB in minKiBs {
                    for taskKiB in taskKiBs { knobSets.append(Knobs(level: level, rows: rows, compute: compute, minKiB: minKiB, taskKiB: taskKiB)) }
                }
            }
        }
    }
    // "stored": as loaded; f32, bf16, f16, int8: converted
    let variantType: [String: WeightType] = ["stored": .asStored, "f32": .f32, "bf16": .bf16, "f16": .f16, "int8": .int8]
    var runs: [Turns] = []
    for knobs in knobSets {
        knobs.apply()
        for (model, base) in bases {
            for variant in variantTypes {
                guard let type = variantType[variant] else {
                    StandardStream.error.write("--dtypes: \(variant) is not stored, f32, bf16, f16 or int8\n")
                    exit(2)
                }
                let w = try base.converted(to: type)
                let dtype = w.typeDescription
                let decoder = Decoder(dims: dims, weights: w)
                for kvType in kvTypes {
                    for threads in threadCounts {
                        var p = SessionParams()
                        p.nCtx = promptLen + rounds * per + 8
                        p.nBatch = promptLen
                        p.nThreads = threads
                        p.kvType = kvType
                        let long = try Session(decoder: decoder, params: p), empty = try Session(decoder: decoder, params: p)
                        try long.evaluate(prompt)
                        try empty.evaluate([1])
                        runs.append(Turns(model: model, dtype: dtype, kv: kvType, threads: threads, knobs: knobs, long: long, empty: empty))
                    }
                }
            }
        }
    }
    var tok: Int32 = 1
    for _ in 0..<rounds {
        for i in runs.indices {
            runs[i].knobs.apply()
            for (session, isLong) in [(runs[i].long, true), (runs[i].empty, false)] {
                for _ in 0..<per {
                    let t0 = Clock.nowMs()
                    try session.evaluate([tok])
                    let dt = Clock.nowMs() - t0
                    if isLong { runs[i].tLong.append(dt) } else { runs[i].tEmpty.append(dt) }
                    tok = (tok &* 31 &+ 7) % Int32(dims.V)
                }
            }
            if let readBuf { runs[i].read.append(bandwidthGBs(threads: runs[i].threads, passes: 1, buffer: readBuf)) }
        }
    }
    func median(_ x: [Double]) -> Double { x.sorted()[x.count / 2] }
    // rates at the 75th and 25th percentile of per-token time: the slow and fast ends of the middle half
    func rate(_ x: [Double], _ q: Double) -> Double { 1000 / x.sorted()[min(x.count - 1, Int(Double(x.count) * q))] }
    // weights read per token from an empty context (the KV cache adds little there), against
    // the median streaming read of the same rounds
    func bandwidthFields(weights: DecoderWeights, tEmpty: [Double], reads: [Double]) -> [(String, Any)] {
        let bytesPerWeight = streamedBytesPerWeight(weights)
        let gb = (matmulParamsPerToken(dims) + Double(dims.V * dims.C)) * bytesPerWeight / 1e9
        let decode = gb * 1000 / median(tEmpty), read = median(reads)
        return [("weights_gb_per_token", gb), ("decode_gb_s_empty_ctx", decode), ("read_gb_s_median", read),
                ("read_gb_s_min", reads.min() ?? 0), ("read_gb_s_max", reads.max() ?? 0), ("decode_vs_read", decode / read)]
    }
    for r in runs {
        r.knobs.apply()
        let level = Int(hk_level()), rowsPerPass = Int(hk_gemv_rows(["f32": 0, "f16": 2][r.dtype] ?? 1))
        hk_set_max_level(-1)
        hk_set_gemv_rows(0)
        let fields: [(String, Any)] = [("bench", "decode-ab"), ("case", r.model), ("threads", r.threads), ("dtype", r.dtype), ("kv", r.kv.rawValue),
                    ("kernel_level", level), ("gemv_rows", rowsPerPass), ("gemv_min_kib", r.knobs.minKiB), ("gemv_task_kib", r.knobs.taskKiB),
                    ("bf16_compute", r.dtype == "bf16" ? (r.knobs.compute ?? ComputeRates.current.bf16DecodeCompute).rawValue : "-"),
                    ("prompt_tokens", promptLen), ("tokens_each", r.tLong.count),
                    ("decode_tok_s_median", 1000 / median(r.tLong)), ("decode_tok_s_empty_ctx_median", 1000 / median(r.tEmpty)),
                    ("decode_tok_s_empty_ctx_p25", rate(r.tEmpty, 0.75)), ("decode_tok_s_empty_ctx_p75", rate(r.tEmpty, 0.25)),
                    ("decode_tok_s_empty_ctx_mean", Double(r.tEmpty.count) * 1000 / r.tEmpty.reduce(0, +))]
        print(json(fields + (readBuf != nil ? bandwidthFields(weights: r.long.decoder.weights, tEmpty: r.tEmpty, reads: r.read) : [])))
    }
    exit(0)
}

// ---- prefill-ab mode: hmst-bench prefill-ab [--case dense512] [--threads 2] [--prompt 512] -------
//      [--rounds 7] [--weights f32,bf16-dot] [--kv f32|bf16] [--gemm hmst,openblas]: prompt processing of f32,
//      bf16 with the weights widened to f32 (hmst's f32 GEMM or OpenBLAS sgemm), bf16 multiplied in bf16
//      (hk_gemm_bf16_wt), f16 and int8 weights (int8-f32: multiplied in f32 as on CPUs without fast bf16),
//      measured in turns in one process; median tokens/s of a
//      whole prompt into an emptied context, and the spread. --gemm: each arm with each f32 GEMM;
//      --kernel-level N: hmst's kernels held at level N (1 AVX2) for the whole run.
if args.first == "prefill-ab" {
    // --kernel-level 1: hmst's kernels held at AVX2 (with OPENBLAS_CORETYPE=Haswell, an AVX2 CPU's paths on this one)
    if let level = option("--kernel-level").flatMap({ Int32($0) }) { hk_set_max_level(level) }
    let s = shapes.first { $0.name == (only ?? "dense512") } ?? shapes[2]
    let threads = threadList.max() ?? 2
    let rounds = Int(option("--rounds") ?? "") ?? 7
    try Threads.set(threads)
    let (base, _) = try RandomWeights.make(dims: s.dims, seed: 1)
    var rng = RNG(seed: 5)
    let prompt = (0..<promptLen).map { _ in Int32(rng.next() % UInt64(s.dims.V)) }
    let wanted = option("--weights").map { Set($0.split(separator: ",").map(String.init)) }
    // (arm, its weights' type, what bf16 weights multiply in); each type converted once, if wanted
    let armTypes: [(name: String, type: WeightType, prefill: MatmulPrecision?)] = [
        ("f32", .f32, nil), ("bf16-widened", .bf16, .f32), ("bf16-dot", .bf16, .bf16), ("f16", .f16, nil), ("int8", .int8, nil),
        ("int8-f32", .int8, .f32),
    ].filter { wanted?.contains($0.name) ?? true }
    var decoders: [WeightType: Decoder] = [:]
    for arm in armTypes where decoders[arm.type] == nil {
        decoders[arm.type] = Decoder(dims: s.dims, weights: try base.converted(to: arm.type))
    }
    // --gemm hmst,openblas: each weights arm with each f32 GEMM in turn (default: the measured choice)
    let gemmNames = option("--gemm")?.split(separator: ",").map(String.init) ?? []
    let gemms: [F32GEMM?] = gemmNames.isEmpty ? [nil] : gemmNames.compactMap { F32GEMM(rawValue: $0) }
    guard gemms.count == max(1, gemmNames.count) else {
        StandardStream.error.write("--gemm takes hmst and/or openblas, comma-separated\n")
        exit(2)
    }
    let arms = try armTypes.flatMap { arm in
        try gemms.map { gemm in
            guard let decoder = decoders[arm.type] else { throw HMSTError(.internal, "prefill-ab: no decoder for \(arm.name)") }
            return (name: arm.name, decoder: decoder, prefill: arm.prefill, gemm: gemm)
        }
    }
    var times = [[Double]](repeating: [], count: arms.count)
    var p = SessionParams()
    p.nCtx = promptLen + 8
    p.nBatch = promptLen
    p.nThreads = threads
    guard let kv = KVCacheType(rawValue: option("--kv") ?? "f32") else {
        StandardStream.error.write("--kv must be f32 or bf16\n")
        exit(2)
    }
    p.kvType = kv
    // one context per arm, emptied before each prompt (as llama-bench reuses its context)
    let sessions = try arms.map { try Session(decoder: $0.decoder, params: p) }
    for round in 0...rounds {   // round 0 warms up (and touches the context's pages)
        for (i, arm) in arms.enumerated() {
            ComputeRates.bf16WeightComputeOverride = arm.prefill
            ComputeRates.f32GEMMOverride = arm.gemm
            let session = sessions[i]
            session.reset()
            let t0 = Clock.nowMs()
            try session.evaluate(prompt)
            if round > 0 { times[i].append(Clock.nowMs() - t0) }
        }
    }
    ComputeRates.bf16WeightComputeOverride = nil
    ComputeRates.f32GEMMOverride = nil
    for (i, arm) in arms.enumerated() {
        let t = times[i].sorted()
        let bytes = arm.decoder.weights.layers[0].q.bytesPerElement
        // bf16-dot runs the bf16 GEMM; int8 that too where bf16 weights multiply in bf16, else an f32
        // GEMM as int8-f32 always does (hmst's dequantizing as it packs, or OpenBLAS on dequantized weights)
        let int8InBF16 = arm.name == "int8" && ComputeRates.current.bf16WeightCompute == .bf16
        let gemm = arm.name == "bf16-dot" || int8InBF16 ? "-" : (arm.gemm ?? ComputeRates.f32GEMMNow(weightBytes: bytes)).rawValue
        let rate = { (ms: Double) in Double(promptLen) * 1000 / ms }
        print(json([("bench", "prefill-ab"), ("case", s.name), ("cpu", CPUModel.name), ("threads", threads), ("weights", arm.name), ("gemm", gemm),
                    ("kernel_level", Int(hk_level())), ("blas_core", BLASStatus.current.core),
                    ("kv", kv.rawValue), ("prompt_tokens", promptLen), ("rounds", t.count), ("prefill_tok_s_median", rate(t[t.count / 2])),
                    ("prefill_tok_s_p25", rate(t[min(t.count - 1, t.count * 3 / 4)])), ("prefill_tok_s_p75", rate(t[t.count / 4]))]))
    }
    exit(0)
}

// ---- ppl mode: hmst-bench ppl --model CKPT --text FILE [--tokens 4096] [--window 128] ------------
//      [--decode-tokens 1024] [--weights f32,bf16,int8]: perplexity of one checkpoint held as each
//      weight type, over non-overlapping windows (prefill: GEMMs) and token by token (decode: GEMVs).
if args.first == "ppl" {
    guard let modelPath = option("--model"), let textPath = option("--text") else {
        StandardStream.error.write("usage: hmst-bench ppl --model CKPT --text FILE\n")
        exit(2)
    }
    let nTokens = Int(option("--tokens") ?? "") ?? 4096
    let window = Int(option("--window") ?? "") ?? 128
    let nDecode = Int(option("--decode-tokens") ?? "") ?? 1024
    let types = (option("--weights") ?? "f32,bf16,int8").split(separator: ",").map(String.init)
    if let t = threadList.first { try Threads.set(t) }
    func nll(_ logits: UnsafeBufferPointer<Float>, _ target: Int32) -> Double {
        var m = -Double.infinity
        for x in logits { m = max(m, Double(x)) }
        var s = 0.0
        for x in logits { s += exp(Double(x) - m) }
        return m + log(s) - Double(logits[Int(target)])
    }
    for type in types {
        var o = ModelLoadOptions()
        switch type {
        case "f32": o.weightType = .f32
        case "bf16": o.weightType = .bf16
        case "int8": o.weightType = .int8
        default: o.weightType = .asStored
        }
        let model = try LanguageModel.load(path: modelPath, options: o)
        guard let tok = model.tokenizer else { exit(2) }
        let ids = Array(tok.encode(bytes: try FileIO.readAll(textPath)).prefix(nTokens))
        var p = SessionParams()
        p.nCtx = window
        p.nBatch = window
        p.nThreads = threadList.first ?? 2
        let session = try Session(decoder: model.decoder, params: p)
        var total = 0.0, count = 0
        var start = 0
        while start + window + 1 <= ids.count {
            session.reset()
            try session.evaluate(Array(ids[start..<(start + window)]), allLogits: true)
            for i in 0..<window { total += nll(try session.logits(row: i), ids[start + i + 1]); count += 1 }
            start += window
        }
        var dTotal = 0.0, dCount = 0
        start = 0
        while start + window + 1 <= ids.count && dCount < nDecode {
            session.reset()
            for i in 0..<window {
                try session.evaluate([ids[start + i]])
                dTotal += nll(try session.logits(), ids[start + i + 1])
                dCount += 1
            }
            start += window
        }
        print(json([("bench", "ppl"), ("weights", model.weightsType), ("tokens_prefill", count),
                    ("ppl_prefill", exp(total / Double(max(1, count)))), ("tokens_decode", dCount),
                    ("ppl_decode", exp(dTotal / Double(max(1, dCount))))]))
    }
    exit(0)
}

// ---- sample mode: the sampler's cost per token on random logits (Gaussian, sd 3: peaked like a
//      trained model's; sd 0.1: flat like an untrained one), per vocabulary and setting
if args.first == "sample" {
    let vocabs = (option("--vocab") ?? "32000,128000").split(separator: ",").compactMap { Int($0) }
    let settings: [(String, Int, Float, Float)] = [("greedy", 0, 1, 0), ("top_k=50,top_p=0.9", 50, 0.9, 0), ("top_k=0,top_p=1", 0, 1, 0),
                                                    ("top_k=0,top_p=0.9", 0, 0.9, 0), ("top_k=0,min_p=0.05", 0, 1, 0.05)]
    var rng = RNG(seed: 1)
    for V in vocabs {
        for sd: Float in [3, 0.1] {
            let logits = (0..<V).map { _ in rng.nextGaussian() * sd }
            for (name, k, topP, minP) in settings {
                var p = SamplingParams()
                p.temperature = name == "greedy" ? 0 : 0.8
                p.topK = k
                p.topP = topP
                p.minP = minP
                var sampler = try Sampler(params: p)
                let n = 200
                var times: [Double] = []
                for _ in 0..<5 {
                    let t0 = Clock.nowMs()
                    for _ in 0..<n { _ = logits.withUnsafeBufferPointer { sampler.sample(logits: $0.baseAddress!, V: V, recent: []) } }
                    times.append((Clock.nowMs() - t0) / Double(n))
                }
                print(json([("bench", "sample"), ("vocab", V), ("logit_sd", Double(sd)), ("setting", name),
                            ("ms_per_token_median", times.sorted()[2])]))
            }
        }
    }
    exit(0)
}

// ---- constraint mode: what constrained generation costs per token (JSONConstraint, a JSON
//      Schema's GrammarConstraint, a GBNF JSON grammar, a required tool call in Hermes' syntax
//      over three tools, strings with patterns): building it (first over the tokenizer,
//      and again: GrammarConstraint shares the decoded vocabulary), then the mask before each
//      token of a document as the tokenizer encodes it (timed in the third round)
if args.first == "constraint" {
    guard let path = option("--tokenizer") else {
        StandardStream.error.write("usage: hmst-bench constraint --tokenizer tokenizer.json\n")
        exit(2)
    }
    let tokenizer = try Tokenizer(jsonPath: path)
    let doc = #"{"name": "Ada Lovelace", "born": 1815, "fields": ["mathematics", "computing"], "notes": {"first_program": true, "engine": "Analytical Engine", "score": 9.75}}"#
    let schema = #"""
        {"type": "object", "properties": {"name": {"type": "string"}, "born": {"type": "integer"},
         "fields": {"type": "array", "items": {"type": "string"}},
         "notes": {"type": "object", "properties": {"first_program": {"type": "boolean"}, "engine": {"type": "string"}, "score": {"type": "number"}}}},
         "required": ["name", "born"]}
        """#
    let gbnf = #"""
        root   ::= object
        value  ::= object | array | string | number | "true" | "false" | "null"
        object ::= "{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"
        array  ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
        string ::= "\"" ( [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\""
        number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
        ws     ::= [ \t\n]{0,20}
        """#
    let tools = try JSONValue.parse(#"""
        [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
           "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14}, "units": {"enum": ["metric", "imperial"]}},
           "required": ["city", "days"]}}},
         {"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
         {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]
        """#)
    let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3, \"units\": \"metric\"}}\n</tool_call>"
    let patternSchema = #"{"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}, "email": {"type": "string", "pattern": "^[a-z0-9._]+@[a-z0-9-]+\\.(com|org|net)$"}}, "required": ["code", "email"]}"#
    let patternDoc = #"{"code": "ABC-1234", "email": "ada.lovelace@example.org"}"#
    let multipleSchema = #"{"type": "object", "properties": {"price": {"type": "number", "multipleOf": 0.01, "minimum": 0}, "qty": {"type": "integer", "multipleOf": 5}}, "required": ["price", "qty"]}"#
    let multipleDoc = #"{"price": 1299.95, "qty": 40}"#
    let V = tokenizer.vocabSize
    let cases: [(String, String, () throws -> TokenConstraint)] = [
        ("json_object", doc, { JSONConstraint(tokenizer: tokenizer) }),
        ("json_schema", doc, { try GrammarConstraint(grammar: try JSONSchemaGrammar.grammar(schemaText: schema), tokenizer: tokenizer) }),
        ("gbnf_json", doc, { try GrammarConstraint(gbnf: gbnf, tokenizer: tokenizer) }),
        ("tool_call_hermes", call, {
            guard let g = try ToolCallFormat(.hermes).grammar(tools: tools, choice: .required, parallel: true) else { throw HMSTError.invalidArgument("no grammar") }
            return try GrammarConstraint(grammar: g, tokenizer: tokenizer)
        }),
        ("json_schema_pattern", patternDoc, { try GrammarConstraint(grammar: try JSONSchemaGrammar.grammar(schemaText: patternSchema), tokenizer: tokenizer) }),
        ("json_schema_multiple_of", multipleDoc, { try GrammarConstraint(grammar: try JSONSchemaGrammar.grammar(schemaText: multipleSchema), tokenizer: tokenizer) }),
        // tool_choice auto: free text, then the call held from its marker on
        ("tool_call_hermes_auto", "Let me look that up for you. " + call, {
            guard let g = try ToolCallFormat(.hermes).grammar(tools: tools, choice: .auto, parallel: true) else { throw HMSTError.invalidArgument("no grammar") }
            return try g.constraint(tokenizer: tokenizer)
        }),
    ]
    for (name, text, make) in cases {
        let ids = tokenizer.encode(bytes: Array(text.utf8))
        var buildMs: [Double] = [], maskMs: [Double] = []
        var allowedMedian = 0
        for round in 0..<3 {
            var t0 = Clock.nowMs()
            let c = try make()
            buildMs.append(Clock.nowMs() - t0)
            var logits = [Float](repeating: 0, count: V)
            var allowed: [Int] = []
            for id in ids {
                for i in 0..<V { logits[i] = 0 }
                t0 = Clock.nowMs()
                let ok = logits.withUnsafeMutableBufferPointer { c.mask($0, eos: []) }
                if round == 2 { maskMs.append(Clock.nowMs() - t0) }
                allowed.append(logits.filter { $0 > -.infinity }.count)
                guard ok, logits[Int(id)] > -.infinity else {
                    StandardStream.error.write("\(name): token \(id) of the document was masked out\n")
                    exit(1)
                }
                c.accept(id)
            }
            // (more calls may follow a call: whole, though not complete)
            guard c.isComplete || c.canEnd else { StandardStream.error.write("\(name): the document did not complete it\n"); exit(1) }
            allowedMedian = allowed.sorted()[allowed.count / 2]
        }
        let sorted = maskMs.sorted()
        print(json([("bench", "constraint"), ("constraint", name), ("vocab", V), ("doc_tokens", ids.count),
                    ("build_ms_first", buildMs[0]), ("build_ms_again", buildMs[2]), ("mask_ms_median", sorted[sorted.count / 2]),
                    ("mask_ms_max", sorted.last ?? 0), ("mask_ms_mean", maskMs.reduce(0, +) / Double(max(1, maskMs.count))),
                    ("allowed_tokens_median", allowedMedian)]))
    }
    exit(0)
}

// ---- chat-template mode: what rendering a chat costs (ChatTemplate over a Jinja file): the
//      template read once, then --rounds renders of the messages; the median and fastest ms
if args.first == "chat-template" {
    guard let templatePath = option("--template"), let messagesPath = option("--messages") else {
        StandardStream.error.write("usage: hmst-bench chat-template --template T.jinja --messages M.json [--rounds 200]\n")
        exit(2)
    }
    let rounds = max(1, Int(option("--rounds") ?? "200") ?? 200)
    let source = String(decoding: try FileIO.readAll(templatePath), as: UTF8.self)
    let t0 = Clock.nowMs()
    let template = try ChatTemplate(jinja: source, bosToken: "<s>", eosToken: "</s>", origin: templatePath)
    let parseMs = Clock.nowMs() - t0
    let parsed = try JSONValue.parse(bytes: try FileIO.readAll(messagesPath))
    let messages = parsed["messages"]?.array ?? []
    let tools = parsed["tools"]
    var ms: [Double] = []
    var bytes = 0
    for _ in 0..<rounds {
        let s = Clock.nowMs()
        let p = try template.render(messages: messages, addGenerationPrompt: true, tools: tools, now: 1_796_551_200)
        ms.append(Clock.nowMs() - s)
        bytes = p.bytes.count
    }
    ms.sort()
    print(json([("bench", "chat_template"), ("template", templatePath.split(separator: "/").last.map(String.init) ?? templatePath),
                ("messages", messages.count), ("prompt_bytes", bytes), ("parse_ms", parseMs),
                ("render_ms_median", ms[ms.count / 2]), ("render_ms_min", ms[0])]))
    exit(0)
}

// ---- signature mode: what recording a memory's model costs, and how far converted copies and
//      other checkpoints are from it (ModelSignature): one JSON line per weight type and per --against
if args.first == "signature" {
    guard let modelPath = option("--model") else {
        StandardStream.error.write("usage: hmst-bench signature --model CKPT [--weights f32,bf16,f16,int8] [--against CKPT,...]\n")
        exit(2)
    }
    let types = (option("--weights") ?? "f32,bf16,f16,int8").split(separator: ",").map(String.init)
    func load(_ path: String, _ type: String) throws -> LanguageModel {
        var o = ModelLoadOptions()
        switch type {
        case "f32": o.weightType = .f32
        case "bf16": o.weightType = .bf16
        case "f16": o.weightType = .f16
        case "int8": o.weightType = .int8
        default: o.weightType = .asStored
        }
        return try LanguageModel.load(path: path, options: o)
    }
    let base = try load(modelPath, "as-stored")
    var t0 = Clock.nowMs()
    let hash = ModelSignature.hash(of: base.tokenizer)
    let hashMs = Clock.nowMs() - t0
    t0 = Clock.nowMs()
    let reference = ModelSignature(model: base)
    let signatureMs = Clock.nowMs() - t0
    print(json([("bench", "signature"), ("model", modelPath), ("weights", base.weightsType), ("vocab", base.dims.V),
                ("layers", base.dims.L), ("tokenizer_hash_ms", hashMs), ("signature_ms", signatureMs),
                ("key_values", reference.values.count), ("coverage_values", reference.coverage.count), ("tokenizer_hash", hash)]))
    func report(_ what: String, _ path: String, _ model: LanguageModel) {
        let s = ModelSignature(model: model)
        let d = reference.distance(to: s)
        print(json([("bench", "signature_distance"), ("copy", what), ("path", path), ("weights", model.weightsType),
                    ("distance_pct", (d ?? .nan) * 100), ("matches", reference.mismatch(with: s) == nil)]))
    }
    for type in types { report(type, modelPath, try load(modelPath, type)) }
    for other in (option("--against") ?? "").split(separator: ",").map(String.init) { report("other", other, try load(other, "as-stored")) }
    exit(0)
}

// ---- memory mode: hmst-bench memory [--n 1000000] [--dim 256] [--queries 1000] [--nlist N] ----------
//      [--indexes "IVF4096,Flat;IVF4096,PQ32"] [--nprobe 1,4,16,64,256] [--threads N]
//      [--clusters 64] [--noise 1.0] [--latent 32]   (MemoryBench.swift)
if args.first == "memory" {
    var o = MemoryBenchOptions()
    o.n = Int(option("--n") ?? "") ?? o.n
    o.dim = Int(option("--dim") ?? "") ?? o.dim
    o.nQueries = Int(option("--queries") ?? "") ?? o.nQueries
    o.nlist = Int(option("--nlist") ?? "") ?? o.nlist
    o.threads = Int(option("--threads") ?? "") ?? o.threads
    o.clusters = Int(option("--clusters") ?? "") ?? o.clusters
    o.latent = Int(option("--latent") ?? "") ?? o.latent
    o.noise = Float(option("--noise") ?? "") ?? o.noise
    if let d = option("--indexes") { o.descriptions = d.split(separator: ";").map(String.init) }
    if let p = option("--nprobe") { o.nprobes = p.split(separator: ",").compactMap { Int($0) } }
    try MemoryBench.run(o)
    exit(0)
}

if args.first == "ppo" { PPOBench.main(option) }   // PPOBench.swift
if args.first == "controller" { ControllerBench.main(option) }   // PPOBench.swift

// ---- exit mode: the engine's early exit and expert selection against quality (ExitBench.swift)
if args.first == "exit" {
    guard let model = option("--model"), let data = option("--data") else {
        StandardStream.error.write("hmst-bench exit --model CKPT --data VAL_DIR [--windows 64] [--seq-len 128]\n")
        exit(2)
    }
    try ExitBench.run(model: model, data: data, windows: Int(option("--windows") ?? "") ?? 64, seqLen: Int(option("--seq-len") ?? "") ?? 128)
    exit(0)
}

// ---- retrieval / lexical modes (RetrievalBench.swift) ------------------------------------------
if args.first == "retrieval" {
    guard let model = option("--model"), let pairs = option("--pairs") else {
        StandardStream.error.write("hmst-bench retrieval --model CKPT --pairs PAIRS.jsonl [--distractors FILE] [--max-distractors N] [--index Flat] [--candidates 50] [--lexical-weights 1,3] [--k 4]\n")
        exit(2)
    }
    try RetrievalBench.runRetrieval(model: model, pairs: pairs, distractors: option("--distractors"),
                                    maxDistractors: Int(option("--max-distractors") ?? "") ?? 10_000, index: option("--index") ?? "Flat",
                                    candidates: Int(option("--candidates") ?? "") ?? 50,
                                    lexicalWeights: (option("--lexical-weights") ?? "1").split(separator: ",").compactMap { Float($0) },
                                    k: Int(option("--k") ?? "") ?? 4)
    exit(0)
}
if args.first == "lexical" {
    try RetrievalBench.runLexical(sizes: (option("--n") ?? "10000,1000000").split(separator: ",").compactMap { Int($0) },
                                  nQueries: Int(option("--queries") ?? "") ?? 200)
    exit(0)
}

// ---- run ---------------------------------------------------------------------------------------
for s in shapes where only == nil || only == s.name {
    for dtype in dtypes {
        let (made, _) = try RandomWeights.make(dims: s.dims, seed: 1, init: .routed, bf16: dtype == "bf16")
        let weights = dtype == "int8" ? try made.converted(to: .int8) : made
        let decoder = Decoder(dims: s.dims, weights: weights)
        for threads in threadList {
            try Threads.set(threads)
            let gflops = sgemmGFLOPs(threads: threads)
            let bw = bandwidthGBs(threads: threads)
            try Threads.set(threads)
            var p = SessionParams()
            p.nCtx = promptLen + genLen + 8
            p.nBatch = promptLen
            p.nThreads = threads
            p.kvType = kvType
            let session = try Session(decoder: decoder, params: p)
            var rng = RNG(seed: 5)
            let prompt = (0..<promptLen).map { _ in Int32(rng.next() % UInt64(s.dims.V)) }
            try session.evaluate(Array(prompt.prefix(8)))  // warm-up
            session.reset()
            var prefillMs = Double.infinity
            for _ in 0..<(quick ? 1 : 3) {
                session.reset()
                let t0 = Clock.nowMs()
                try session.evaluate(prompt)
                prefillMs = min(prefillMs, Clock.nowMs() - t0)
            }
            var tok: Int32 = 1
            // per-token times too: on a shared machine the median filters out preemption
            var perToken: [Double] = []
            let t1 = Clock.nowMs()
            for _ in 0..<genLen {
                let ta = Clock.nowMs()
                try session.evaluate([tok])
                perToken.append(Clock.nowMs() - ta)
                tok = (tok &* 31 &+ 7) % Int32(s.dims.V)
            }
            let decodeMs = Clock.nowMs() - t1
            let medianMs = perToken.sorted()[perToken.count / 2]
            // llama-bench's tg128: decode from an empty context (no prompt in the KV cache)
            session.reset()
            try session.evaluate([1])
            var perTokenEmpty: [Double] = []
            let t2 = Clock.nowMs()
            for _ in 0..<genLen {
                let ta = Clock.nowMs()
                try session.evaluate([tok])
                perTokenEmpty.append(Clock.nowMs() - ta)
                tok = (tok &* 31 &+ 7) % Int32(s.dims.V)
            }
            let decodeEmptyMs = Clock.nowMs() - t2
            let medianEmptyMs = perTokenEmpty.sorted()[perTokenEmpty.count / 2]
            let d = s.dims
            let bytesPerWeight = streamedBytesPerWeight(decoder.weights)
            let prefillTPS = Double(promptLen) / prefillMs * 1000
            let decodeTPS = Double(genLen) / decodeMs * 1000
            let flopsPerToken = 2 * matmulParamsPerToken(d)
            let avgCtx = Double(promptLen) + Double(genLen) / 2
            let kvBytes = Double(d.L * d.KV * d.Dh * 2 * (kvType == .bf16 ? 2 : 4)) * avgCtx
            let bytesPerToken = (matmulParamsPerToken(d) + Double(d.V * d.C)) * bytesPerWeight + kvBytes
            print(json([
                ("case", "\(s.name) C=\(d.C) L=\(d.L) H=\(d.H) KV=\(d.KV) F=\(d.F) E=\(d.E) K=\(d.K) V=\(d.V)"),
                ("params_total_m", Double(d.parameterCount) / 1e6), ("params_active_m", Double(d.activeParameterCount) / 1e6),
                ("threads", threads), ("dtype", dtype), ("kv", kvType.rawValue), ("prompt_tokens", promptLen), ("gen_tokens", genLen),
                ("prefill_tok_s", prefillTPS), ("decode_tok_s", decodeTPS),
                ("decode_tok_s_empty_ctx", Double(genLen) / decodeEmptyMs * 1000),
                ("decode_tok_s_median", 1000 / medianMs), ("decode_tok_s_empty_ctx_median", 1000 / medianEmptyMs),
                ("prefill_gflops", prefillTPS * flopsPerToken / 1e9), ("sgemm_gflops", gflops),
                ("prefill_vs_sgemm", prefillTPS * flopsPerToken / 1e9 / gflops),
                ("decode_gb_per_token", bytesPerToken / 1e9), ("decode_gb_s", decodeTPS * bytesPerToken / 1e9),
                ("bandwidth_gb_s", bw), ("decode_vs_bandwidth", decodeTPS * bytesPerToken / 1e9 / bw),
            ]))
        }
    }
}

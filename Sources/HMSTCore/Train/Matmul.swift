// Matmul: every GEMM of a training step, in f32 (hmst's hk_gemm_f32 or OpenBLAS, as ComputeRates
// measured at start-up) or mixed precision (bf16 operands, f32 accumulation, CKernels'
// hk_gemm_bf16), on hmst's pool: a group of independent GEMMs (run:
// the experts' projections, q/k/v, a linear's dx and dW) one whole GEMM per thread when they
// balance, any other GEMM split by output rows (or columns when there are few rows), each piece
// one single-threaded GEMM. OpenBLAS is held at one thread for the step
// (Threads.withSingleThreadedBLAS, System/Threads.swift), so its own workers never spin against
// ours on small expert and attention GEMMs.
import CKernels

public enum MatmulPrecision: String, Sendable, CaseIterable {
    case f32
    /// bf16 operands, f32 accumulation and f32 outputs (--mixed-precision)
    case bf16
}

struct Matmul {
    let precision: MatmulPrecision

    /// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C   (row-major, op = ᵀ when trans)
    /// A is stored [M, K] (or [K, M] when transA), B [K, N] (or [N, K] when transB).
    func gemm(transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Float = 1,
              A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
              beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int) {
        guard M > 0, N > 0 else { return }
        let work = M * N * max(K, 1)
        let parts = work < 1 << 18 ? 1 : min(Threads.count, max(M, N) / 16 + 1)
        if parts <= 1 {
            single(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
            return
        }
        // split the output so the operand every piece must read whole (and the bf16 kernel
        // packs whole) is the smaller one: rows of C when B is the smaller operand
        if M * K >= K * N {
            let ranges = splitRange(M, parts: parts)
            parallelFor(ranges.count) { i in
                let r = ranges[i]
                single(transA, transB, r.count, N, K, alpha, transA ? A + r.lowerBound : A + r.lowerBound * lda, lda,
                       B, ldb, beta, C + r.lowerBound * ldc, ldc)
            }
        } else {
            let ranges = splitRange(N, parts: parts)
            parallelFor(ranges.count) { i in
                let r = ranges[i]
                single(transA, transB, M, r.count, K, alpha, A, lda, transB ? B + r.lowerBound * ldb : B + r.lowerBound, ldb,
                       beta, C + r.lowerBound, ldc)
            }
        }
    }

    /// Runs independent chains of GEMMs: the calls of one chain in order, no two chains writing
    /// the same output. When the chains can keep every thread about equally busy (largest
    /// first, each to the least loaded thread, within 10% of an even split), each chain runs
    /// whole on one thread: larger single-threaded GEMMs pack their operands once per call and
    /// the pool synchronises once for the group, where splitting every GEMM across the threads
    /// (gemm) repacks the shared operand per piece and synchronises per GEMM. Otherwise every
    /// call goes through gemm. Which thread runs a chain never changes its result.
    func run(_ chains: [[GemmCall]]) {
        let works = chains.map { $0.reduce(0) { $0 + $1.work } }
        let total = works.reduce(0, +)
        let threads = Threads.count
        if threads > 1, total >= 1 << 19, Matmul.balanced(works, threads: threads) {
            let order = works.indices.sorted { works[$0] != works[$1] ? works[$0] > works[$1] : $0 < $1 }   // largest first
            parallelFor(order.count) { i in
                for c in chains[order[i]] { single(c.transA, c.transB, c.M, c.N, c.K, c.alpha, c.A, c.lda, c.B, c.ldb, c.beta, c.C, c.ldc) }
            }
            return
        }
        for chain in chains {
            for c in chain { gemm(c) }
        }
    }

    /// One call as gemm (split across the pool when large enough).
    func gemm(_ c: GemmCall) {
        gemm(transA: c.transA, transB: c.transB, M: c.M, N: c.N, K: c.K, alpha: c.alpha, A: c.A, lda: c.lda, B: c.B, ldb: c.ldb,
             beta: c.beta, C: c.C, ldc: c.ldc)
    }

    /// Whether works, dealt largest first each to the least loaded of `threads`, finish within
    /// 10% of total / threads (the dynamic schedule of parallelFor behaves about so).
    static func balanced(_ works: [Int], threads: Int) -> Bool {
        guard works.count >= threads else { return false }
        var load = [Int](repeating: 0, count: threads)
        for w in works.sorted(by: >) {
            let i = load.indices.min { load[$0] < load[$1] } ?? 0
            load[i] += w
        }
        let total = works.reduce(0, +)
        return Double(load.max() ?? 0) <= 1.1 * Double(total) / Double(threads)
    }

    private func single(_ tA: Bool, _ tB: Bool, _ M: Int, _ N: Int, _ K: Int, _ alpha: Float, _ A: UnsafePointer<Float>, _ lda: Int,
                        _ B: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ C: UnsafeMutablePointer<Float>, _ ldc: Int) {
        // bf16 when asked; f32 as well when the bf16 kernel cannot get its scratch memory: hmst's
        // f32 GEMM where ComputeRates chose it, else (or when it declines) OpenBLAS
        if precision == .bf16, hk_gemm_bf16(tA ? 1 : 0, tB ? 1 : 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0 { return }
        sgemmF32(transA: tA, transB: tB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb, beta: beta, C: C, ldc: ldc)
    }

    // ---- a linear layer, HF layout W [O, I] -------------------------------------------------

    /// y[N, O] = x[N, I] · Wᵀ
    func linear(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, I: Int, O: Int) {
        gemm(linearCall(y: y, x: x, w: w, N: N, I: I, O: O))
    }

    /// linear as a call for run: y[N, O] = x[N, I] · Wᵀ
    func linearCall(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, I: Int, O: Int) -> GemmCall {
        GemmCall(transA: false, transB: true, M: N, N: O, K: I, A: x, lda: I, B: w, ldb: I, beta: 0, C: y, ldc: O)
    }

    /// linearBackward's two GEMMs as calls for run (independent of each other):
    /// dx[N, I] = dxBeta · dx + dy[N, O] · W, and dW[O, I] += dyᵀ · x.
    func linearBackwardCalls(dx: UnsafeMutablePointer<Float>, dxBeta: Float = 1, dW: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                             x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, I: Int, O: Int) -> (dx: GemmCall, dW: GemmCall) {
        (GemmCall(transA: false, transB: false, M: N, N: I, K: O, A: dy, lda: O, B: w, ldb: I, beta: dxBeta, C: dx, ldc: I),
         GemmCall(transA: true, transB: false, M: O, N: I, K: N, A: dy, lda: O, B: x, ldb: I, beta: 1, C: dW, ldc: I))
    }

    /// Differentiates linear: dx[N, I] = dxBeta · dx + dy[N, O] · W, dW[O, I] += dyᵀ · x (the two
    /// GEMMs side by side on the pool when they balance).
    func linearBackward(dx: UnsafeMutablePointer<Float>, dxBeta: Float = 1, dW: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                        x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, I: Int, O: Int) {
        let calls = linearBackwardCalls(dx: dx, dxBeta: dxBeta, dW: dW, dy: dy, x: x, w: w, N: N, I: I, O: O)
        run([[calls.dx], [calls.dW]])
    }
}

/// One GEMM for Matmul.run, with gemm's arguments.
struct GemmCall {
    var transA: Bool, transB: Bool
    var M: Int, N: Int, K: Int
    var alpha: Float = 1
    var A: UnsafePointer<Float>, lda: Int
    var B: UnsafePointer<Float>, ldb: Int
    var beta: Float
    var C: UnsafeMutablePointer<Float>, ldc: Int
    var work: Int { M * N * max(K, 1) }
}

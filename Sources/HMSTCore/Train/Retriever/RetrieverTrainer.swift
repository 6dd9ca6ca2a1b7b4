// RetrieverTrainer: learns a RetrieverProjection (Retrieval/RetrieverProjection.swift) on
// (question, fact) pairs with the base model frozen, as DPR does (Karpukhin et al. 2020), with
// in-batch negatives: each question's fact is the positive, the batch's other facts negatives.
// The pooled embeddings are computed once; each step only touches Wq and Wd [C, D].
//   Q̃ = Eq·Wq, Q = rownorm(Q̃)  [B, D]      D̃ = Ed·Wd, P = rownorm(D̃)  [B, D]
//   S = Q·Pᵀ / τ  [B, B]        loss = (1/B) Σ_i (logsumexp_j S_ij − S_ii)   (InfoNCE)
// Adam (no weight decay), fixed temperature τ = 0.05. The backward follows the forward in
// lossAndGradients; a gradient check against central differences is in RetrieverTests.
import CBLAS

public struct RetrieverTrainingOptions: Sendable {
    public var steps = 800
    public var batchSize = 64
    /// D; nil: min(64, C). D = C starts both maps at the identity (the pooled embedding); a
    /// smaller D starts from one shared random projection and generalised better in
    /// README's measurement (held-out dense recall@4 0.85 at D = 64, 800 steps, against 0.38
    /// at D = C = 256, 300 steps)
    public var dim: Int?
    public var learningRate: Float = 1e-3
    public var temperature: Float = 0.05
    public var seed: UInt64 = 0
    public init() {}

    func validate() throws {
        guard steps >= 1, steps <= 1_000_000 else { throw HMSTError.invalidArgument("steps \(steps) must be in 1...1000000") }
        guard batchSize >= 2, batchSize <= 4096 else { throw HMSTError.invalidArgument("batch size \(batchSize) must be in 2...4096") }
        if let dim, dim < 1 || dim > 65536 { throw HMSTError.invalidArgument("dim \(dim) must be in 1...65536") }
        guard learningRate > 0, learningRate.isFinite else { throw HMSTError.invalidArgument("learning rate must be > 0") }
        guard temperature > 0, temperature.isFinite else { throw HMSTError.invalidArgument("temperature must be > 0") }
    }
}

public enum RetrieverTrainer {
    /// InfoNCE loss of one batch and its gradients. eq, ed: [B, C] pooled embeddings of the
    /// questions and their facts (row i of each is a pair); wq, wd: [C, D]. Writes (=, not +=)
    /// gq, gd: [C, D]. Returns the loss.
    static func lossAndGradients(eq: [Float], ed: [Float], B: Int, C: Int, D: Int, wq: [Float], wd: [Float], tau: Float,
                                 gq: inout [Float], gd: inout [Float]) -> Float {
        // forward: Q̃[B, D] = Eq[B, C]·Wq[C, D], and D̃ likewise
        var qt = [Float](repeating: 0, count: B * D), dt = [Float](repeating: 0, count: B * D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(B), Int32(D), Int32(C), 1, eq, Int32(C), wq, Int32(D), 0, &qt, Int32(D))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(B), Int32(D), Int32(C), 1, ed, Int32(C), wd, Int32(D), 0, &dt, Int32(D))
        // row norms, kept for the backward of the normalisation
        func normalise(_ x: [Float]) -> (y: [Float], n: [Float]) {
            var y = x, n = [Float](repeating: 0, count: B)
            for i in 0..<B {
                var ss: Float = 0
                for j in 0..<D { ss += x[i * D + j] * x[i * D + j] }
                n[i] = max(ss.squareRoot(), 1e-12)
                for j in 0..<D { y[i * D + j] = x[i * D + j] / n[i] }
            }
            return (y, n)
        }
        let (q, nq) = normalise(qt), (p, np) = normalise(dt)
        // S[B, B] = Q·Pᵀ / τ
        var s = [Float](repeating: 0, count: B * B)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(B), Int32(B), Int32(D), 1 / tau, q, Int32(D), p, Int32(D), 0, &s, Int32(B))
        // loss and dS = (softmax(S) − I) / B, row by row
        var loss = 0.0
        var ds = [Float](repeating: 0, count: B * B)
        for i in 0..<B {
            var m = -Float.infinity
            for j in 0..<B { m = max(m, s[i * B + j]) }
            var z = 0.0
            for j in 0..<B { z += Double(expf(s[i * B + j] - m)) }
            loss += Double(m) + log(z) - Double(s[i * B + i])
            for j in 0..<B { ds[i * B + j] = Float(Double(expf(s[i * B + j] - m)) / z) / Float(B) }
            ds[i * B + i] -= 1 / Float(B)
        }
        // backward of S = Q·Pᵀ/τ: dQ[B, D] = dS·P / τ,  dP[B, D] = dSᵀ·Q / τ
        var dq = [Float](repeating: 0, count: B * D), dp = [Float](repeating: 0, count: B * D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(B), Int32(D), Int32(B), 1 / tau, ds, Int32(B), p, Int32(D), 0, &dq, Int32(D))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(B), Int32(D), Int32(B), 1 / tau, ds, Int32(B), q, Int32(D), 0, &dp, Int32(D))
        // backward of y = x/|x|: dx = (dy − y·(y·dy)) / |x|
        func unnormalise(_ dy: inout [Float], _ y: [Float], _ n: [Float]) {
            for i in 0..<B {
                var dot: Float = 0
                for j in 0..<D { dot += y[i * D + j] * dy[i * D + j] }
                for j in 0..<D { dy[i * D + j] = (dy[i * D + j] - y[i * D + j] * dot) / n[i] }
            }
        }
        unnormalise(&dq, q, nq)
        unnormalise(&dp, p, np)
        // backward of Q̃ = Eq·Wq: gWq[C, D] = Eqᵀ·dQ̃, and gWd likewise
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(C), Int32(D), Int32(B), 1, eq, Int32(C), dq, Int32(D), 0, &gq, Int32(D))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(C), Int32(D), Int32(B), 1, ed, Int32(C), dp, Int32(D), 0, &gd, Int32(D))
        return Float(loss / Double(B))
    }

    /// Initial maps: the identity when D == C (the pooled embedding itself), else one shared
    /// Gaussian N(0, 1/D) map (a random projection keeps cosines roughly).
    static func initialWeights(C: Int, D: Int, seed: UInt64) -> [Float] {
        var w = [Float](repeating: 0, count: C * D)
        if C == D {
            for i in 0..<C { w[i * D + i] = 1 }
        } else {
            var rng = RNG(seed: seed)
            let s = 1 / Float(D).squareRoot()
            for i in w.indices { w[i] = rng.nextGaussian() * s }
        }
        return w
    }

    /// Trains on precomputed pooled embeddings eq, ed [n, C] (row i a pair; facts should be
    /// distinct, or a duplicate becomes a false negative). progress(step, loss) after each step.
    public static func train(eq: [Float], ed: [Float], n: Int, C: Int, options: RetrieverTrainingOptions,
                             progress: (Int, Float) -> Void = { _, _ in }) throws -> RetrieverProjection {
        try options.validate()
        guard n >= 2, eq.count == n * C, ed.count == n * C else {
            throw HMSTError.invalidArgument("train-retriever: need at least 2 pairs of [\(C)] embeddings")
        }
        let D = options.dim ?? min(64, C)
        let B = min(options.batchSize, n)
        var wq = initialWeights(C: C, D: D, seed: options.seed), wd = wq
        var mq = [Float](repeating: 0, count: C * D), vq = mq, md = mq, vd = mq
        var gq = mq, gd = mq
        var rng = RNG(seed: options.seed &+ 1)
        var order = Array(0..<n), cursor = n
        var bq = [Float](repeating: 0, count: B * C), bd = bq
        let beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8
        for step in 1...options.steps {
            // the next B pairs of a fresh permutation each epoch (Fisher-Yates)
            for b in 0..<B {
                if cursor == n {
                    for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                    cursor = 0
                }
                let r = order[cursor]
                cursor += 1
                for c in 0..<C { bq[b * C + c] = eq[r * C + c]; bd[b * C + c] = ed[r * C + c] }
            }
            let loss = lossAndGradients(eq: bq, ed: bd, B: B, C: C, D: D, wq: wq, wd: wd, tau: options.temperature, gq: &gq, gd: &gd)
            guard loss.isFinite else { throw HMSTError(.internal, "train-retriever: loss is not finite at step \(step)") }
            let c1 = 1 - pow(beta1, Float(step)), c2 = 1 - pow(beta2, Float(step))
            let lr = options.learningRate
            func adam(_ w: inout [Float], _ g: [Float], _ m: inout [Float], _ v: inout [Float]) {
                for i in w.indices {
                    m[i] = beta1 * m[i] + (1 - beta1) * g[i]
                    v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
                    w[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                }
            }
            adam(&wq, gq, &mq, &vq)
            adam(&wd, gd, &md, &vd)
            progress(step, loss)
        }
        return try RetrieverProjection(C: C, D: D, query: wq, document: wd, temperature: options.temperature, steps: options.steps)
    }

    /// (question, fact) pairs from a JSON-lines file: one {"question": "...", "fact": "..."} a
    /// line, other keys ignored. BAD_FORMAT names the first bad line.
    public static func readPairs(path: String) throws -> [(question: String, fact: String)] {
        var out: [(question: String, fact: String)] = []
        for (n, line) in try FileIO.readText(path).split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let j: JSONValue
            do { j = try JSONValue.parse(String(line)) } catch let e as HMSTError { throw HMSTError.badFormat("\(path): line \(n + 1): \(e.message)") }
            guard let q = j["question"]?.string, let f = j["fact"]?.string, !q.isEmpty, !f.isEmpty else {
                throw HMSTError.badFormat("\(path): line \(n + 1) lacks non-empty \"question\" and \"fact\" strings")
            }
            out.append((q, f))
        }
        guard !out.isEmpty else { throw HMSTError.badFormat("\(path): no pairs") }
        return out
    }

    /// Embeds every pair with the frozen model (pooled, no projection) and trains. Pairs whose
    /// fact repeats an earlier pair's fact are skipped (they would be false negatives).
    public static func train(model: LanguageModel, pairs: [(question: String, fact: String)], options: RetrieverTrainingOptions,
                             progress: (Int, Float) -> Void = { _, _ in }) throws -> RetrieverProjection {
        var seen = Set<String>()
        let unique = pairs.filter { seen.insert($0.fact).inserted }
        let C = model.dims.C
        var eq: [Float] = [], ed: [Float] = []
        eq.reserveCapacity(unique.count * C)
        ed.reserveCapacity(unique.count * C)
        for p in unique {
            eq += try model.embed(text: p.question)
            ed += try model.embed(text: p.fact)
        }
        return try train(eq: eq, ed: ed, n: unique.count, C: C, options: options, progress: progress)
    }
}

#if canImport(Glibc)
import Glibc
#endif

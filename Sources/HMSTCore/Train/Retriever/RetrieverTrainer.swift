// RetrieverTrainer: learns a RetrieverProjection (Retrieval/RetrieverProjection.swift) on
// (question, fact) pairs with the base model frozen, as DPR does (Karpukhin et al. 2020), with
// in-batch negatives: each question's fact is the positive, the batch's other facts (and each
// question's BM25 hard negatives) negatives. Features f (RetrieverPooling.swift, [Cin]) are
// computed once per distinct text; each step only touches Wq and Wd [Cin, D].
//   B questions, N = B·(1 + h) documents: the B positives (column i is row i's), then h hard
//   negatives per question.
//   Q̃ = Fq·Wq, Q = rownorm(Q̃)  [B, D]      D̃ = Fd·Wd, P = rownorm(D̃)  [N, D]
//   S = Q·Pᵀ / τ  [B, N]   loss = (1/B) Σ_i (logsumexp_{j ∉ X_i} S_ij − S_ii)   (InfoNCE)
// X_i: columns holding row i's own fact other than column i (a fact asked by two questions of
// the batch, or mined as another's hard negative, is no negative for its own questions).
// Adam (no weight decay), fixed temperature τ = 0.05. The backward follows the forward in
// lossAndGradients; a gradient check against central differences is in RetrieverTests.
import CBLAS

public struct RetrieverTrainingOptions: Sendable {
    public var steps = 800
    public var batchSize = 64
    /// D; nil: C for the default pooling, min(64, C) for "hidden" (README, "Retrieval").
    /// D = Cin starts both maps at the identity (the features themselves); another D from one
    /// shared random projection.
    public var dim: Int?
    public var learningRate: Float = 1e-3
    public var temperature: Float = 0.05
    public var seed: UInt64 = 0
    /// What the projection reads (RetrieverPooling.swift).
    public var pooling: RetrieverPooling = .hiddenAndTokens
    /// BM25 hard negatives per question (h): the training facts BM25 ranks highest for the
    /// question, its own fact excluded, join the batch's documents.
    public var hardNegatives = 1
    public init() {}

    func validate() throws {
        guard steps >= 1, steps <= 1_000_000 else { throw HMSTError.invalidArgument("steps \(steps) must be in 1...1000000") }
        guard batchSize >= 2, batchSize <= 4096 else { throw HMSTError.invalidArgument("batch size \(batchSize) must be in 2...4096") }
        if let dim, dim < 1 || dim > 65536 { throw HMSTError.invalidArgument("dim \(dim) must be in 1...65536") }
        // Adam's step is about the learning rate whatever the gradient: above 1 the unit-norm
        // projections are thrown far in one step. Below 1e-4 the scores S/τ and their gradients
        // (up to 2/τ) square past Float's range in Adam's second moment, and nothing is learned.
        guard learningRate > 0, learningRate <= 1 else { throw HMSTError.invalidArgument("learning rate \(learningRate) must be in (0, 1]") }
        guard temperature >= 1e-4, temperature <= 100 else { throw HMSTError.invalidArgument("temperature \(temperature) must be in [0.0001, 100]") }
        guard hardNegatives >= 0, hardNegatives <= 16 else { throw HMSTError.invalidArgument("hard negatives \(hardNegatives) must be in 0...16") }
    }

    /// D when dim is nil.
    func resolvedDim(C: Int) -> Int { dim ?? (pooling == .hidden ? min(64, C) : C) }
}

public enum RetrieverTrainer {
    /// InfoNCE loss of one batch and its gradients. eq: [B, Cin] features of the questions;
    /// ed: [N, Cin] of the documents, N >= B, row i of ed row i's positive; excluded: [B, N] or
    /// empty, true where column j is left out of row i's softmax (never j == i). wq, wd:
    /// [Cin, D]. Writes (=, not +=) gq, gd: [Cin, D]. Returns the loss.
    static func lossAndGradients(eq: [Float], ed: [Float], B: Int, N: Int, Cin: Int, D: Int, wq: [Float], wd: [Float], tau: Float,
                                 excluded: [Bool] = [], gq: inout [Float], gd: inout [Float]) -> Float {
        // forward: Q̃[B, D] = Eq[B, Cin]·Wq[Cin, D], D̃[N, D] = Ed[N, Cin]·Wd
        var qt = [Float](repeating: 0, count: B * D), dt = [Float](repeating: 0, count: N * D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(B), Int32(D), Int32(Cin), 1, eq, Int32(Cin), wq, Int32(D), 0, &qt, Int32(D))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(D), Int32(Cin), 1, ed, Int32(Cin), wd, Int32(D), 0, &dt, Int32(D))
        // row norms, kept for the backward of the normalisation
        func normalise(_ x: [Float], rows: Int) -> (y: [Float], n: [Float]) {
            var y = x, n = [Float](repeating: 0, count: rows)
            for i in 0..<rows {
                var ss: Float = 0
                for j in 0..<D { ss += x[i * D + j] * x[i * D + j] }
                n[i] = max(ss.squareRoot(), 1e-12)
                for j in 0..<D { y[i * D + j] = x[i * D + j] / n[i] }
            }
            return (y, n)
        }
        let (q, nq) = normalise(qt, rows: B), (p, np) = normalise(dt, rows: N)
        // S[B, N] = Q·Pᵀ / τ
        var s = [Float](repeating: 0, count: B * N)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(B), Int32(N), Int32(D), 1 / tau, q, Int32(D), p, Int32(D), 0, &s, Int32(N))
        // loss and dS = (softmax over the kept columns − I) / B, row by row; excluded columns
        // get no gradient
        let masked = excluded.count == B * N
        var loss = 0.0
        var ds = [Float](repeating: 0, count: B * N)
        for i in 0..<B {
            func kept(_ j: Int) -> Bool { !masked || j == i || !excluded[i * N + j] }
            var m = -Float.infinity
            for j in 0..<N where kept(j) { m = max(m, s[i * N + j]) }
            var z = 0.0
            for j in 0..<N where kept(j) { z += Double(expf(s[i * N + j] - m)) }
            loss += Double(m) + log(z) - Double(s[i * N + i])
            for j in 0..<N where kept(j) { ds[i * N + j] = Float(Double(expf(s[i * N + j] - m)) / z) / Float(B) }
            ds[i * N + i] -= 1 / Float(B)
        }
        // backward of S = Q·Pᵀ/τ: dQ[B, D] = dS·P / τ,  dP[N, D] = dSᵀ·Q / τ
        var dq = [Float](repeating: 0, count: B * D), dp = [Float](repeating: 0, count: N * D)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(B), Int32(D), Int32(N), 1 / tau, ds, Int32(N), p, Int32(D), 0, &dq, Int32(D))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(N), Int32(D), Int32(B), 1 / tau, ds, Int32(N), q, Int32(D), 0, &dp, Int32(D))
        // backward of y = x/|x|: dx = (dy − y·(y·dy)) / |x|
        func unnormalise(_ dy: inout [Float], _ y: [Float], _ n: [Float], rows: Int) {
            for i in 0..<rows {
                var dot: Float = 0
                for j in 0..<D { dot += y[i * D + j] * dy[i * D + j] }
                for j in 0..<D { dy[i * D + j] = (dy[i * D + j] - y[i * D + j] * dot) / n[i] }
            }
        }
        unnormalise(&dq, q, nq, rows: B)
        unnormalise(&dp, p, np, rows: N)
        // backward of Q̃ = Eq·Wq: gWq[Cin, D] = Eqᵀ·dQ̃, gWd[Cin, D] = Edᵀ·dD̃
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(Cin), Int32(D), Int32(B), 1, eq, Int32(Cin), dq, Int32(D), 0, &gq, Int32(D))
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(Cin), Int32(D), Int32(N), 1, ed, Int32(Cin), dp, Int32(D), 0, &gd, Int32(D))
        return Float(loss / Double(B))
    }

    /// Initial maps: the identity when D == Cin (the features themselves), else one shared
    /// Gaussian N(0, 1/D) map (a random projection keeps cosines roughly).
    static func initialWeights(Cin: Int, D: Int, seed: UInt64) -> [Float] {
        var w = [Float](repeating: 0, count: Cin * D)
        if Cin == D {
            for i in 0..<Cin { w[i * D + i] = 1 }
        } else {
            var rng = RNG(seed: seed)
            let s = 1 / Float(D).squareRoot()
            for i in w.indices { w[i] = rng.nextGaussian() * s }
        }
        return w
    }

    /// Trains on precomputed features: questions eq [n, Cin], documents ed [m, Cin];
    /// positive[i] (in 0..<m) is question i's document; hard[i] (empty, or h per question,
    /// [n, h]) its hard negatives (document indices, -1: none). Several questions may share a
    /// document. C is the model's hidden size (Cin = options.pooling.inputSize(C)).
    /// progress(step, loss) after each step.
    public static func train(queries eq: [Float], documents ed: [Float], n: Int, m: Int, positive: [Int], hard: [Int] = [], C: Int,
                             options: RetrieverTrainingOptions, progress: (Int, Float) -> Void = { _, _ in }) throws -> RetrieverProjection {
        try options.validate()
        let Cin = options.pooling.inputSize(C: C)
        guard n >= 2, m >= 2, eq.count == n * Cin, ed.count == m * Cin, positive.count == n, positive.allSatisfy({ $0 >= 0 && $0 < m }) else {
            throw HMSTError.invalidArgument("train-retriever: need at least 2 questions and 2 documents of [\(Cin)] features, and one document per question")
        }
        guard eq.allSatisfy(\.isFinite), ed.allSatisfy(\.isFinite) else { throw HMSTError.invalidArgument("train-retriever: features are not finite") }
        let h = hard.isEmpty ? 0 : hard.count / n
        guard hard.count == n * h, hard.allSatisfy({ $0 >= -1 && $0 < m }) else {
            throw HMSTError.invalidArgument("train-retriever: hard negatives must be [\(n), h] document indices (or -1)")
        }
        let D = options.resolvedDim(C: C)
        let B = min(options.batchSize, n)
        var wq = initialWeights(Cin: Cin, D: D, seed: options.seed), wd = wq
        var mq = [Float](repeating: 0, count: Cin * D), vq = mq, md = mq, vd = mq
        var gq = mq, gd = mq
        var rng = RNG(seed: options.seed &+ 1)
        var order = Array(0..<n), cursor = n
        var bq = [Float](repeating: 0, count: B * Cin)
        var docs = [Int](), rows = [Int]()
        var bd = [Float](repeating: 0, count: B * (1 + h) * Cin)
        var excluded: [Bool] = []
        let beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8
        for step in 1...options.steps {
            // the next B questions of a fresh permutation each epoch (Fisher-Yates)
            rows.removeAll(keepingCapacity: true)
            for _ in 0..<B {
                if cursor == n {
                    for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                    cursor = 0
                }
                rows.append(order[cursor])
                cursor += 1
            }
            // documents: the positives, then each question's hard negatives (a missing one
            // repeats the question's positive, which the mask then leaves out)
            docs = rows.map { positive[$0] }
            for k in 0..<h { for r in rows { let d = hard[r * h + k]; docs.append(d >= 0 ? d : positive[r]) } }
            let N = docs.count
            // gather the batch's feature rows: bq[B, Cin], bd[N, Cin]
            bq.withUnsafeMutableBufferPointer { dst in
                eq.withUnsafeBufferPointer { src in
                    for (b, r) in rows.enumerated() { (dst.baseAddress! + b * Cin).update(from: src.baseAddress! + r * Cin, count: Cin) }
                }
            }
            bd.withUnsafeMutableBufferPointer { dst in
                ed.withUnsafeBufferPointer { src in
                    for (j, d) in docs.enumerated() { (dst.baseAddress! + j * Cin).update(from: src.baseAddress! + d * Cin, count: Cin) }
                }
            }
            excluded = [Bool](repeating: false, count: B * N)
            for i in 0..<B { for j in 0..<N where j != i && docs[j] == docs[i] { excluded[i * N + j] = true } }
            let loss = lossAndGradients(eq: bq, ed: bd, B: B, N: N, Cin: Cin, D: D, wq: wq, wd: wd, tau: options.temperature,
                                        excluded: excluded, gq: &gq, gd: &gd)
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
        return try RetrieverProjection(C: C, D: D, query: wq, document: wd, pooling: options.pooling, temperature: options.temperature,
                                       steps: options.steps)
    }

    /// Trains on precomputed pairs: row i of eq and of ed [n, Cin] a (question, document) pair,
    /// each document distinct (a duplicate would be a false negative); no hard negatives.
    public static func train(eq: [Float], ed: [Float], n: Int, C: Int, options: RetrieverTrainingOptions,
                             progress: (Int, Float) -> Void = { _, _ in }) throws -> RetrieverProjection {
        try train(queries: eq, documents: ed, n: n, m: n, positive: Array(0..<n), C: C, options: options, progress: progress)
    }

    /// (question, fact) pairs from a JSON-lines file: one {"question": "...", "fact": "..."} a
    /// line, other keys ignored. BAD_FORMAT names the first bad line.
    public static func readPairs(path: String) throws -> [(question: String, fact: String)] {
        var out: [(question: String, fact: String)] = []
        for (n, line) in try FileIO.readText(path).lines().enumerated() {
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

    /// For each question, the h facts BM25 (over the distinct facts, k1 1.2, b 0.75) ranks
    /// highest other than its own: [questions.count, h] indices into facts, -1 where fewer match.
    static func bm25HardNegatives(questions: [String], positive: [Int], facts: [String], h: Int) throws -> [Int] {
        guard h > 0 else { return [] }
        let index = try BM25Index(texts: facts)
        var out = [Int](repeating: -1, count: questions.count * h)
        for (i, q) in questions.enumerated() {
            let hits = index.search(text: q, limit: h + 1).map { Int($0.id) }.filter { $0 != positive[i] }
            for (k, d) in hits.prefix(h).enumerated() { out[i * h + k] = d }
        }
        return out
    }

    /// Embeds every distinct question and fact with the frozen model (options.pooling, no
    /// projection), mines BM25 hard negatives and trains. Every pair is a training question;
    /// pairs that share a fact share its document.
    public static func train(model: LanguageModel, pairs: [(question: String, fact: String)], options: RetrieverTrainingOptions,
                             progress: (Int, Float) -> Void = { _, _ in }) throws -> RetrieverProjection {
        try options.validate()
        var factIndex: [String: Int] = [:], facts: [String] = []
        var positive: [Int] = []
        for p in pairs {
            if factIndex[p.fact] == nil { factIndex[p.fact] = facts.count; facts.append(p.fact) }
            positive.append(factIndex[p.fact]!)
        }
        let Cin = options.pooling.inputSize(C: model.dims.C)
        var eq: [Float] = [], ed: [Float] = []
        eq.reserveCapacity(pairs.count * Cin)
        ed.reserveCapacity(facts.count * Cin)
        // a question asked twice is embedded once; many texts go through one forward
        var questionIndex: [String: Int] = [:], unique: [String] = [], row: [Int] = []
        for p in pairs {
            if questionIndex[p.question] == nil {
                questionIndex[p.question] = unique.count
                unique.append(p.question)
            }
            row.append(questionIndex[p.question, default: 0])
        }
        let qf = try model.retrievalFeatures(texts: unique, pooling: options.pooling)
        for r in row { eq += qf[r] }
        for f in try model.retrievalFeatures(texts: facts, pooling: options.pooling) { ed += f }
        let questions = pairs.map(\.question)
        let hard = try bm25HardNegatives(questions: questions, positive: positive, facts: facts, h: options.hardNegatives)
        return try train(queries: eq, documents: ed, n: pairs.count, m: facts.count, positive: positive, hard: hard,
                         C: model.dims.C, options: options, progress: progress)
    }
}

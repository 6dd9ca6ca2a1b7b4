// EpisodicSoftTraining: Stage 2's episodic soft-token condition (issue 11). For a batch of
// SoftMemoryExamples: each memory text -> the model's final-norm hidden states (a forward-only
// step over the current parameters, gradient stopped there) -> the episodic SSM -> the state's
// features (its readouts, or the pooled unit key) -> K soft embeddings (EpisodicSoftTokens),
// injected at the placeholders of the ModelGrad step; after its backward, dL/d(injected rows) flows back through the projection and
// the SSM (MambaMixer.backward with dState). The optimizer is a companion of the Stage 2
// OptimizerStep (its own AdamW, same schedule, own clipping).
// Held-out evaluation in the same layout: state_oracle (the gold fact alone, as soft tokens) and
// state_on (the gold fact among k-1 distractors, all as soft tokens).

public final class EpisodicSoftTraining {
    public let softTokens: EpisodicSoftTokens
    public let optimizer: Optimizer
    /// forward-only steps over the model's parameters for the facts' hidden states, factRows
    /// texts of at most factTokens tokens at a time (a fixed shape, so its buffers are reused;
    /// a fact is one sentence of ~15 tokens, so 16 x 32 holds a step's facts in one forward)
    let factGrad: ModelGrad
    let tokenizer: Tokenizer
    /// readout: weight of the auxiliary loss that asks soft token k, read by the LM head, for
    /// the k-th token of its fact's value (0: none); the facts' values by text; the LM head [V, C]
    public var readoutWeight: Float = 0
    var valueTokens: [String: [Int32]] = [:]
    let head: UnsafeMutablePointer<Float>
    /// the input embeddings [V, C]
    let embed: UnsafeMutablePointer<Float>
    let V: Int
    static let factRows = 16, factTokens = 32

    public init(softTokens: EpisodicSoftTokens, params: Parameters, tokenizer: Tokenizer, options: ModelGradOptions,
                adam: AdamWConfig) throws {
        try softTokens.validate(for: params.config.dims)
        self.softTokens = softTokens
        self.tokenizer = tokenizer
        factGrad = ModelGrad(params: params, options: options)
        optimizer = try AdamW(params: softTokens, config: adam)
        embed = params.value(MixtralNames.embed)
        head = params.value(params.config.tieWordEmbeddings ? MixtralNames.embed : MixtralNames.lmHead)
        V = params.config.vocabSize
    }

    /// Enables the readout loss (see readoutWeight) for the corpus's facts.
    public func enableReadout(weight: Float, corpus: FactsCorpus) {
        readoutWeight = weight
        guard weight > 0 else { return }
        for f in corpus.facts where valueTokens[f.text] == nil { valueTokens[f.text] = tokenizer.encode(" " + f.value) }
    }

    /// The readout loss of one memory's K rows and its gradient into dSoft (added, scaled by
    /// readoutWeight / count): CE(head · soft_k, value token k) for k < min(K, value tokens).
    /// The LM head is read, not trained, here.
    func readout(rows: ArraySlice<Float>, targets: [Int32], count: Int, into dSoft: inout [Float]) -> Double {
        let K = softTokens.K, C = softTokens.C
        var loss = 0.0
        var logits = [Float](repeating: 0, count: V)
        let scale = readoutWeight / Float(max(1, count))
        let r = Array(rows)
        for k in 0..<min(K, targets.count) {
            let t = Int(targets[k])
            guard t >= 0, t < V else { continue }
            r.withUnsafeBufferPointer { rp in
                // logits[V] = head[V, C] · soft_k[C]
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(V), Int32(C), 1, head, Int32(C), rp.baseAddress! + k * C, 1, 0, &logits, 1)
            }
            var m = logits[0]
            for v in 1..<V { m = max(m, logits[v]) }
            var sum: Float = 0
            for v in 0..<V { logits[v] = expf(logits[v] - m); sum += logits[v] }
            for v in 0..<V { logits[v] /= sum }
            loss += -Double(logf(max(logits[t], Float.leastNormalMagnitude)))
            logits[t] -= 1
            // dsoft_k += scale · headᵀ · (p − onehot)
            dSoft.withUnsafeMutableBufferPointer { dp in
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(V), Int32(C), scale, head, Int32(C), logits, 1, 1, dp.baseAddress! + k * C, 1)
            }
        }
        return loss
    }

    /// The token each of the first `count` soft rows [count·C] names through the LM head (the
    /// argmax of rows · headᵀ): its copy token.
    func namedTokens(_ rows: [Float], count P: Int) -> [Int32] {
        let C = softTokens.C
        return EpisodicSoftTokens.copyTokens(rows: P, V: V) { out in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(P), Int32(V), Int32(C), 1, rows, Int32(C), head, Int32(C),
                        0, out, Int32(V))
        }
    }

    /// The RMS of the token embeddings: the scale a fresh projection's rows start at.
    public static func embeddingRMS(_ params: Parameters) -> Float {
        let e = params.value(MixtralNames.embed), n = params.config.vocabSize * params.config.hiddenSize
        var ss = 0.0
        for i in 0..<n { ss += Double(e[i]) * Double(e[i]) }
        return Float((ss / Double(max(1, n))).squareRoot())
    }

    /// What the mixer reads of each text under the current parameters (EpisodicSoftTokens.
    /// mixerInput: its final-norm hidden states [T, C], with the input embeddings for
    /// state_readout), over the last factTokens tokens of a longer text.
    public func hiddenStates(_ texts: [String]) throws -> [[Float]] {
        let R = EpisodicSoftTraining.factRows, Tf = EpisodicSoftTraining.factTokens, C = softTokens.C
        let pad = tokenizer.eosId ?? 0
        let toks: [[Int32]] = try texts.map {
            let t = tokenizer.encode($0)
            guard !t.isEmpty else { throw HMSTError.invalidArgument("episodic soft tokens: the memory \"\($0)\" has no tokens") }
            return Array(t.suffix(Tf))
        }
        var out: [[Float]] = []
        var i = 0
        while i < toks.count {
            let chunk = Array(toks[i..<min(toks.count, i + R)])
            var inputs = [Int32](repeating: pad, count: R * Tf)
            for (b, t) in chunk.enumerated() { for (j, id) in t.enumerated() { inputs[b * Tf + j] = id } }
            _ = try factGrad.step(inputs: inputs, targets: [Int32](repeating: -1, count: R * Tf), B: R, T: Tf, backward: false)
            factGrad.withLastHiddenStates { h, _, _ in
                for (b, t) in chunk.enumerated() { out.append(Array(UnsafeBufferPointer(start: h + b * Tf * C, count: t.count * C))) }
            }
            for (b, t) in chunk.enumerated() {
                out[i + b] = try softTokens.mixerInput(hidden: out[i + b], tokens: t) { id, row in row.update(from: embed + Int(id) * C, count: C) }
            }
            i += R
        }
        return out
    }

    /// What a batch's soft memories leave for backward: per memory, its features, trace and the
    /// rows of the injection that hold its K tokens.
    public struct Pending {
        var features: [[Float]] = []
        var traces: [EpisodicSoftTokens.Trace] = []
        var firstRow: [Int] = []
        /// per memory, the readout loss's gradient [K·C] (empty without it)
        var readoutGrad: [[Float]] = []
        public internal(set) var readoutLoss = 0.0
    }

    /// The injection for examples packed as rows b = rows[i] of a [B, T] batch (MemoryBatch.pack
    /// cuts an example from the left to T + 1 tokens: a memory whose placeholders were cut is
    /// left as placeholders). With trace, what backward needs.
    public func inject(_ examples: [SoftMemoryExample], rows: [Int], T: Int, trace: Bool) throws -> (InjectedEmbeddings, Pending) {
        let K = softTokens.K, C = softTokens.C
        var texts: [String] = [], at: [Int] = []
        for (i, e) in examples.enumerated() {
            let cut = max(0, e.example.tokens.count - (T + 1))
            for (m, slot) in e.slots.enumerated() where slot - cut >= 0 && slot - cut + K <= T {
                texts.append(e.texts[m])
                at.append(rows[i] * T + slot - cut)
            }
        }
        var pending = Pending()
        guard !texts.isEmpty else { return (InjectedEmbeddings(positions: [], rows: []), pending) }
        let hidden = try hiddenStates(texts)
        // positions must increase: memories in row order, each one's K tokens in a row
        let order = at.indices.sorted { at[$0] < at[$1] }
        var positions: [Int] = [], values: [Float] = []
        positions.reserveCapacity(texts.count * K)
        values.reserveCapacity(texts.count * K * C)
        let readoutOn = trace && readoutWeight > 0
        for j in order {
            let (_, features, tr) = try softTokens.encode(hidden: hidden[j], trace: trace)
            pending.firstRow.append(positions.count)
            let rows = try softTokens.project(features: features)
            values += rows
            positions += (0..<K).map { at[j] + $0 }
            if let tr { pending.features.append(features); pending.traces.append(tr) }
            if readoutOn {
                var g = [Float](repeating: 0, count: K * C)
                if let targets = valueTokens[texts[j]] {
                    pending.readoutLoss += readout(rows: rows[...], targets: targets, count: texts.count, into: &g) / Double(texts.count)
                }
                pending.readoutGrad.append(g)
            }
        }
        var copy: [Int32] = []
        if softTokens.copySources {
            copy = namedTokens(values, count: positions.count)
        }
        return (InjectedEmbeddings(positions: positions, rows: values, copyTokens: copy), pending)
    }

    /// Back-propagates dL/d(injected rows) [P, C] (ModelGrad.injectedGradient) into the
    /// projection and the SSM.
    public func backward(injectedGradient g: [Float], pending: Pending) throws {
        let K = softTokens.K, C = softTokens.C
        for (i, first) in pending.firstRow.enumerated() where i < pending.traces.count {
            let lo = first * C, hi = lo + K * C
            guard hi <= g.count else { throw HMSTError(.internal, "episodic soft tokens: the injected gradient is too short") }
            var d = Array(g[lo..<hi])
            if i < pending.readoutGrad.count { for c in 0..<d.count { d[c] += pending.readoutGrad[i][c] } }
            try softTokens.backward(dSoft: d, features: pending.features[i], trace: pending.traces[i])
        }
    }

    /// Read-out pre-training, before Stage 2 (the model is only read): `steps` AdamW steps of
    /// the soft tokens alone on the read-out loss (row k of a fact's soft tokens, read by the LM
    /// head, names the k-th token of its value) over `facts` (callers leave out the held-out
    /// ones), `batch` facts a step, learning rate cosine from lr to lr/10, clipped at norm 1.
    /// The SSM learns which of a fact's tokens to keep from thousands of facts instead of the
    /// few hundred a short Stage 2 gives it as soft examples. Returns the mean loss of each
    /// tenth of the steps.
    public func pretrainReadout(facts: [TuningFact], steps: Int, batch: Int = 16, lr: Float,
                                adam: AdamWConfig, seed: UInt64, progress: ((Int, Double) -> Void)? = nil) throws -> [Double] {
        guard steps >= 0, batch >= 1 else { throw HMSTError.invalidArgument("read-out pre-training: steps \(steps) and batch \(batch)") }
        guard steps > 0 else { return [] }
        let usable = facts.map { ($0.text, tokenizer.encode(" " + $0.value)) }.filter { !$0.1.isEmpty }
        guard !usable.isEmpty else { throw HMSTError.invalidArgument("read-out pre-training: no facts with a value to read out") }
        let opt = try AdamW(params: softTokens, config: adam)
        var rng = RNG(seed: seed)
        let K = softTokens.K, C = softTokens.C
        var tenths: [Double] = [], sum = 0.0, n = 0
        let keep = readoutWeight
        readoutWeight = 1
        defer { readoutWeight = keep }
        for step in 0..<steps {
            let chosen = (0..<batch).map { _ in usable[Int(rng.next() % UInt64(usable.count))] }
            let hidden = try hiddenStates(chosen.map(\.0))
            softTokens.zeroGrads()
            var loss = 0.0
            for (h, (_, value)) in zip(hidden, chosen) {
                let (_, features, trace) = try softTokens.encode(hidden: h, trace: true)
                let rows = try softTokens.project(features: features)
                var d = [Float](repeating: 0, count: K * C)
                loss += readout(rows: rows[...], targets: value, count: batch, into: &d) / Double(batch)
                guard let trace else { continue }
                try softTokens.backward(dSoft: d, features: features, trace: trace)
            }
            let norm = GradClip.norm(softTokens)
            guard norm.isFinite else { throw HMSTError(.internal, "read-out pre-training diverged at step \(step) (gradient norm \(norm))") }
            let cosine = 0.5 * (1 + cos(Double.pi * Double(step) / Double(max(1, steps - 1))))
            opt.update(lr: lr * Float(0.1 + 0.9 * cosine), gradScale: GradClip.scale(norm: norm, maxNorm: 1))
            sum += loss; n += 1
            if (step + 1) * 10 / steps > tenths.count || step == steps - 1 {
                tenths.append(sum / Double(max(1, n)))
                progress?(step + 1, sum / Double(max(1, n)))
                sum = 0; n = 0
            }
        }
        return tenths
    }

    /// The share of the questions' facts (each counted once) whose soft rows, read by the LM
    /// head, name their value's first token (row 0) and, over facts whose value has more than one
    /// token, its second (row 1; nil when K is 1 or no value has two tokens).
    public func readoutAccuracy(curriculum: MemoryCurriculum, questions: [FactQuestion]) throws -> (first: Double, second: Double?) {
        var seen = Set<String>(), texts: [String] = [], values: [[Int32]] = []
        for q in questions {
            let f = curriculum.corpus.fact(of: q)
            guard seen.insert(f.text).inserted else { continue }
            texts.append(f.text)
            values.append(tokenizer.encode(" " + f.value))
        }
        guard !texts.isEmpty else { throw HMSTError.invalidArgument("no facts to read out") }
        let hidden = try hiddenStates(texts)
        var first = 0, second = 0, withSecond = 0
        for (h, value) in zip(hidden, values) {
            let rows = try softTokens.project(features: try softTokens.encode(hidden: h).features)
            let P = min(softTokens.K, 2)
            let named = namedTokens(rows, count: P)
            if let v0 = value.first, named[0] == v0 { first += 1 }
            if value.count >= 2, P >= 2 {
                withSecond += 1
                if named[1] == value[1] { second += 1 }
            }
        }
        return (Double(first) / Double(texts.count), withSecond > 0 ? Double(second) / Double(withSecond) : nil)
    }

    /// Held-out answer NLL with memories as soft tokens only: "state_oracle" (the gold fact
    /// alone) and "state_on" (with k-1 distractors, drawn as MemoryEvaluator draws them, from
    /// the same seed), nats per answer token; and exact match.
    public func evaluate(grad: ModelGrad, curriculum: MemoryCurriculum, questions: [FactQuestion], B: Int, T: Int,
                         seed: UInt64 = 0x5eed) throws -> (nll: [String: Double], exactMatch: [String: Double]) {
        guard !questions.isEmpty else { throw HMSTError.invalidArgument("no questions to evaluate") }
        var rng = RNG(seed: seed)
        var examples: [(String, SoftMemoryExample)] = []
        let K = softTokens.K
        for q in questions {
            let (fact, _, on, g) = curriculum.evaluationMemories(for: q, rng: &rng)
            examples.append(("state_oracle", curriculum.softExample(memories: [fact.text], goldPosition: 0, question: q.question,
                                                                    answer: q.answer, condition: .gold, K: K)))
            examples.append(("state_on", curriculum.softExample(memories: on, goldPosition: g, question: q.question,
                                                                answer: q.answer, condition: .gold, K: K)))
        }
        let scores = try MemoryEvaluator.scoreAnswers(examples, grad: grad, pad: curriculum.tokenizer.eosId ?? 0, B: B, T: T,
                                                      example: \.example) { batch, inputs, targets in
            let (inj, _) = try inject(batch, rows: Array(0..<B), T: T, trace: false)
            _ = try grad.step(inputs: inputs, targets: targets, B: B, T: T, injected: inj, backward: false)
        }
        var nll: [String: Double] = [:], em: [String: Double] = [:]
        for s in ["state_oracle", "state_on"] {
            nll[s] = scores.nll(s)
            em[s] = scores.exactMatch(s, questions: questions.count)
        }
        return (nll, em)
    }
}

import CBLAS

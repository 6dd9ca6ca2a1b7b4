// Sampler: turns a row of logits into the next token. Order: logit bias, penalties on recent
// tokens (repetition, then frequency and presence), then greedy (temperature 0) or temperature,
// top-k, softmax, top-p, min-p, draw.
// Validation of the settings happens once in SamplingParams.validate(), not per token.

public struct SamplingParams: Sendable, Equatable {
    /// 0 = greedy (argmax)
    public var temperature: Float = 0.8
    /// 0 = off
    public var topK: Int = 50
    /// 1 = off
    public var topP: Float = 0.9
    /// 0 = off; keep tokens with p >= minP * p_max
    public var minP: Float = 0
    /// 1 = off; > 1 discourages tokens seen in the last `repeatLastN`
    public var repetitionPenalty: Float = 1
    /// Tokens the penalties look at: the last N of the context (prompt included, as llama.cpp)
    public var repeatLastN: Int = 64
    /// 0 = off; subtracted from a token's logit once per time it occurs in the last
    /// `repeatLastN` (OpenAI's frequency_penalty; negative values favour repeats)
    public var frequencyPenalty: Float = 0
    /// 0 = off; subtracted from the logit of every token that occurs in the last `repeatLastN`
    /// (OpenAI's presence_penalty)
    public var presencePenalty: Float = 0
    /// Added to these tokens' logits before anything else (OpenAI's logit_bias: -100 all but
    /// bans a token, +100 all but forces it; -inf bans it). Ids at or above the vocabulary
    /// are refused by generation (Session.generate).
    public var logitBias: [Int32: Float] = [:]
    public var seed: UInt64 = 0

    public init() {}

    public func validate() throws {
        func bad(_ m: String) -> HMSTError { HMSTError.invalidArgument(m) }
        guard temperature.isFinite, temperature >= 0 else { throw bad("temperature \(temperature) must be finite and >= 0") }
        guard topK >= 0 else { throw bad("top_k \(topK) must be >= 0 (0 = off)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw bad("top_p \(topP) must be in (0, 1]") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw bad("min_p \(minP) must be in [0, 1]") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else {
            throw bad("repetition_penalty \(repetitionPenalty) must be finite and > 0")
        }
        guard repeatLastN >= 0 else { throw bad("repeat_last_n \(repeatLastN) must be >= 0") }
        guard frequencyPenalty.isFinite else { throw bad("frequency_penalty \(frequencyPenalty) must be finite") }
        guard presencePenalty.isFinite else { throw bad("presence_penalty \(presencePenalty) must be finite") }
        for (id, b) in logitBias {
            guard id >= 0 else { throw bad("logit_bias names token \(id); ids are >= 0") }
            guard !b.isNaN, b != .infinity else { throw bad("logit_bias of token \(id) is \(b): a number, or -inf to ban it") }
        }
    }
}

public struct Sampler {
    public let params: SamplingParams
    public var rng: RNG
    private var candidates: [(id: Int32, p: Float)] = []
    private var scratch: [Float] = []
    private var counts: [Int32: Int] = [:]

    public init(params: SamplingParams) throws {
        try params.validate()
        self.params = params
        rng = RNG(seed: params.seed)
    }

    /// logits: [V] (not modified). recent: tokens the repetition penalty looks at. mask, when
    /// given, sets the logits of tokens that may not come next to -inf (a constraint: after the
    /// bias and penalties, before temperature and the cuts).
    public mutating func sample(logits: UnsafePointer<Float>, V: Int, recent: ArraySlice<Int32>,
                                mask: ((UnsafeMutableBufferPointer<Float>) -> Void)? = nil) -> Int32 {
        var buf = scratch.count == V ? scratch : [Float](repeating: 0, count: V)
        scratch = []
        defer { scratch = buf }
        return buf.withUnsafeMutableBufferPointer { l in
            guard let base = l.baseAddress, V > 0 else { return 0 }
            base.update(from: logits, count: V)
            for (id, b) in params.logitBias where Int(id) < V { l[Int(id)] += b }
            applyPenalties(l, recent: recent)
            mask?(l)
            if params.temperature == 0 { return Sampler.argmax(l) }
            return draw(l)
        }
    }

    /// The repetition penalty (a seen token's logit divided by it when positive, multiplied when
    /// not: llama.cpp's and HF's), then logit -= count · frequency + presence, count over the window.
    private mutating func applyPenalties(_ l: UnsafeMutableBufferPointer<Float>, recent: ArraySlice<Int32>) {
        let p = params
        guard p.repeatLastN > 0, p.repetitionPenalty != 1 || p.frequencyPenalty != 0 || p.presencePenalty != 0 else { return }
        counts.removeAll(keepingCapacity: true)
        for id in recent.suffix(p.repeatLastN) where id >= 0 && Int(id) < l.count { counts[id, default: 0] += 1 }
        for (id, n) in counts {
            var v = l[Int(id)]
            if p.repetitionPenalty != 1 { v = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty }
            l[Int(id)] = v - Float(n) * p.frequencyPenalty - p.presencePenalty
        }
    }

    /// The first index of the largest value (NaN never wins).
    static func argmax(_ l: UnsafeMutableBufferPointer<Float>) -> Int32 {
        var best = 0
        var bestV = -Float.infinity
        for i in 0..<l.count where l[i] > bestV {
            best = i
            bestV = l[i]
        }
        return Int32(best)
    }

    /// Temperature, top-k, softmax, top-p, min-p, draw. The survivors of a top-k or top-p are
    /// drawn in order of probability (ties: the smaller id first) and only they are sorted: the
    /// top k are selected with a heap (TopN), and a top-p without top-k widens a selection from 256
    /// (x8) until it holds top_p of the mass (a flat distribution ends up sorting all). With neither,
    /// every token is drawn from in id order, with no sort. O(V) per token in the common cases
    /// (sorting all V, as this did, took 15 ms a token at V = 128k).
    private mutating func draw(_ l: UnsafeMutableBufferPointer<Float>) -> Int32 {
        // logits relative to the largest, divided by T: a temperature so small that 1/T is inf
        // still leaves the largest at 0 and the rest below (l · (1/T) gave every token ±inf,
        // and a uniform draw over the tied +inf ones)
        let V = l.count
        var top = -Float.infinity
        for i in 0..<V where l[i] > top { top = l[i] }
        let shift = top.isFinite ? top : 0, T = params.temperature
        var valid = 0
        var m = -Float.infinity
        for i in 0..<V where !l[i].isNaN {
            let x = (l[i] - shift) / T
            l[i] = x
            if x > m { m = x }
            valid += 1
        }
        if valid == 0 { return 0 }
        // softmax weight of a scaled logit (m infinite: the tokens at m share everything)
        @inline(__always) func weight(_ x: Float) -> Float { m.isInfinite ? (x == m ? 1 : 0) : expf(x - m) }
        let topK = params.topK > 0 && params.topK < valid ? params.topK : 0
        if topK == 0 && params.topP >= 1 {
            // no cut by rank: every token, in id order; sums in Double (in Float, tokens after
            // a heavy one lose their weight to rounding and the walk could run off the end)
            var pmax: Float = 0
            for i in 0..<V where !l[i].isNaN {
                let w = weight(l[i])
                l[i] = w
                if w > pmax { pmax = w }
            }
            let floor = params.minP > 0 ? params.minP * pmax : 0
            var kept = 0.0
            for i in 0..<V where !l[i].isNaN && l[i] >= floor { kept += Double(l[i]) }
            var u = Double(rng.nextFloat()) * kept
            var last: Int32 = 0
            for i in 0..<V where !l[i].isNaN && l[i] >= floor && l[i] > 0 {
                u -= Double(l[i])
                last = Int32(i)
                if u < 0 { return last }
            }
            return last   // the last token with any weight (rounding left u at or above 0)
        }
        // the best `want` tokens, sorted; for top-p alone, widened until they hold top_p
        var z: Float = 0
        if topK == 0 { for i in 0..<V where !l[i].isNaN { z += weight(l[i]) } }
        // top-p alone: no token holds more than 1/z of the mass (the largest has weight 1), so
        // at least top_p·z of them are needed; start there (a flat distribution: all at once)
        var want = topK > 0 ? topK : min(valid, max(256, Int(min(Float(valid), (params.topP * z).rounded(.up)))))
        if topK == 0 && want * 8 >= valid / 8 { want = valid }
        while true {
            selectBest(l, count: want)
            if topK > 0 || want == valid { break }
            var cum: Float = 0
            var enough = false
            for c in candidates {
                cum += weight(c.p) / z
                if cum >= params.topP { enough = true; break }
            }
            if enough { break }
            // a flat distribution: past an eighth of the tokens, sorting them all is cheaper
            want = want * 8 >= valid / 8 ? valid : want * 8
        }
        // softmax over the survivors (top-k) or over all (top-p alone)
        if topK > 0 { z = 0; for c in candidates { z += weight(c.p) } }
        for i in candidates.indices { candidates[i].p = weight(candidates[i].p) / z }
        if params.topP < 1 {
            var cum: Float = 0
            var keep = candidates.count
            for i in candidates.indices {
                cum += candidates[i].p
                if cum >= params.topP { keep = i + 1; break }
            }
            candidates.removeLast(candidates.count - keep)
        }
        if params.minP > 0 {
            let floor = params.minP * candidates[0].p
            let keep = candidates.firstIndex { $0.p < floor } ?? candidates.count
            candidates.removeLast(candidates.count - max(1, keep))
        }
        var total: Float = 0
        for c in candidates { total += c.p }
        var u = rng.nextFloat() * total
        for c in candidates {
            u -= c.p
            if u < 0 { return c.id }
        }
        // rounding left u at or above 0: the least likely survivor with any weight
        return (candidates.last { $0.p > 0 } ?? candidates[candidates.count - 1]).id
    }

    /// candidates = the `count` largest non-NaN values of l (ids and values), sorted by value,
    /// ties by the smaller id (TopN).
    private mutating func selectBest(_ l: UnsafeMutableBufferPointer<Float>, count: Int) {
        candidates.removeAll(keepingCapacity: true)
        guard let base = l.baseAddress else { return }
        for i in TopN.largest(base, count: l.count, n: count) { candidates.append((Int32(i), l[i])) }
    }
}

// CriticMetrics: how well predicted probabilities of "the answer is correct" rank and are
// calibrated, apart from any model: AUROC (Mann–Whitney, ties count one half), expected
// calibration error over equal-width bins and its noise floor for a finite sample, the Brier
// score, and AUROC per stratum. The critic (Critic.swift) and its training report use these.
// References: Fawcett 2006 (AUROC as the Mann–Whitney statistic); Guo et al. 2017 (ECE, equal
// width bins); Brier 1950.

public enum CriticMetrics {
    /// P(score of a random positive > score of a random negative), ties counted 1/2: the
    /// Mann–Whitney U over n⁺·n⁻, from mid-ranks. NaN when a class is absent or a score is NaN.
    public static func auroc(scores: [Double], labels: [Bool]) -> Double {
        guard scores.count == labels.count, !scores.contains(where: \.isNaN) else { return .nan }
        let nPos = labels.filter { $0 }.count, nNeg = labels.count - nPos
        guard nPos > 0, nNeg > 0 else { return .nan }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        // sum of the positives' mid-ranks (1-based); a run of equal scores shares its mean rank
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let mid = Double(i + j + 2) / 2
            for r in i...j where labels[order[r]] { rankSum += mid }
            i = j + 1
        }
        let u = rankSum - Double(nPos) * Double(nPos + 1) / 2
        return u / (Double(nPos) * Double(nNeg))
    }

    /// Bin of a probability among `bins` equal-width bins of [0, 1]: [i/bins, (i+1)/bins), 1 in the last.
    @inline(__always) static func bin(_ p: Double, _ bins: Int) -> Int { min(bins - 1, max(0, Int(p * Double(bins)))) }

    /// Expected calibration error: Σ_b (n_b / n) · |mean(label)_b − mean(p)_b| over `bins`
    /// equal-width bins of [0, 1]; empty bins contribute nothing. NaN for no answers.
    public static func ece(probabilities p: [Double], labels: [Bool], bins: Int = 10) -> Double {
        guard !p.isEmpty, p.count == labels.count, bins >= 1 else { return .nan }
        var count = [Int](repeating: 0, count: bins)
        var sumP = [Double](repeating: 0, count: bins), sumY = [Double](repeating: 0, count: bins)
        for i in p.indices {
            let b = bin(p[i], bins)
            count[b] += 1
            sumP[b] += p[i]
            sumY[b] += labels[i] ? 1 : 0
        }
        var e = 0.0
        for b in 0..<bins where count[b] > 0 { e += abs(sumY[b] - sumP[b]) }   // n_b·|ȳ_b − p̄_b| = |Σy − Σp|
        return e / Double(p.count)
    }

    /// ECE's noise floor for these answers: the expected ECE of a perfectly calibrated predictor
    /// with the same n and the same confidences, i.e. labels drawn y_i ~ Bernoulli(p_i), by
    /// simulation (`draws` times, RNG(seed)). Returns the mean, the 95th percentile (a measured
    /// ECE above it is miscalibration beyond chance) and the central 95% range; a measured ECE
    /// near the mean is as good as n answers can show.
    public static func eceNoiseFloor(probabilities p: [Double], bins: Int = 10, draws: Int = 200, seed: UInt64 = 0)
        -> (mean: Double, p95: Double, low: Double, high: Double) {
        guard !p.isEmpty, draws >= 1 else { return (.nan, .nan, .nan, .nan) }
        var rng = RNG(seed: seed)
        var labels = [Bool](repeating: false, count: p.count)
        var values: [Double] = []
        values.reserveCapacity(draws)
        for _ in 0..<draws {
            for i in p.indices { labels[i] = rng.nextDouble() < p[i] }
            values.append(ece(probabilities: p, labels: labels, bins: bins))
        }
        let sorted = values.sorted()
        return (values.reduce(0, +) / Double(draws), EvalMetrics.quantile(sorted, 0.95),
                EvalMetrics.quantile(sorted, 0.025), EvalMetrics.quantile(sorted, 0.975))
    }

    /// Mean squared error of the probabilities against the 0/1 labels. NaN for no answers.
    public static func brier(probabilities p: [Double], labels: [Bool]) -> Double {
        guard !p.isEmpty, p.count == labels.count else { return .nan }
        var s = 0.0
        for i in p.indices {
            let d = p[i] - (labels[i] ? 1 : 0)
            s += d * d
        }
        return s / Double(p.count)
    }

    /// AUROC within each stratum, in order of first appearance, with its count and positives
    /// (NaN where a stratum holds one class only).
    public static func aurocByStratum(scores: [Double], labels: [Bool], strata: [String])
        -> [(stratum: String, auroc: Double, n: Int, positives: Int) ] {
        var order: [String] = []
        var members: [String: [Int]] = [:]
        for (i, s) in strata.enumerated() where i < scores.count {
            if members[s] == nil { order.append(s) }
            members[s, default: []].append(i)
        }
        return order.map { s in
            let idx = members[s] ?? []
            return (s, auroc(scores: idx.map { scores[$0] }, labels: idx.map { labels[$0] }), idx.count, idx.filter { labels[$0] }.count)
        }
    }
}

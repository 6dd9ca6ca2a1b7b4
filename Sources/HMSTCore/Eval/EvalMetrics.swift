// EvalMetrics: the arithmetic of the scores, apart from any model: multiple-choice accuracy
// (acc, acc_norm), answer normalisation and exact match, bits per byte and perplexities of
// rolling log-likelihoods, and the seeded percentile bootstrap for 95% intervals.
// Definitions follow lm-evaluation-harness (lm_eval/api/metrics.py and api/task.py) and the
// SQuAD v1.1 evaluation script; where we differ, the function's comment says how.

public enum EvalMetrics {
    /// Index of the largest value; ties go to the lowest index (numpy.argmax).
    public static func argmax(_ xs: [Double]) -> Int {
        var best = 0
        for i in xs.indices where xs[i] > xs[best] { best = i }
        return best
    }

    /// acc: the choice with the highest total log-likelihood is the gold one. acc_norm: the
    /// same after dividing each log-likelihood by its continuation's length in UTF-8 bytes
    /// (lm-eval divides by len(choice) in characters: equal for ASCII).
    public static func multipleChoice(logliks: [Double], choiceBytes: [Int], gold: Int) -> (acc: Double, accNorm: Double, pred: Int, predNorm: Int) {
        let pred = argmax(logliks)
        let norm = zip(logliks, choiceBytes).map { $0 / Double(max(1, $1)) }
        let predNorm = argmax(norm)
        return (pred == gold ? 1 : 0, predNorm == gold ? 1 : 0, pred, predNorm)
    }

    /// SQuAD v1.1's normalize_answer: lowercase, drop ASCII punctuation, drop the articles
    /// a / an / the as whole words, collapse whitespace to single spaces.
    public static func normalizeAnswer(_ s: String) -> String {
        let punctuation = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
        let noPunct = String(s.lowercased().filter { !punctuation.contains($0) })
        let words = noPunct.split(whereSeparator: { $0.isWhitespace }).filter { $0 != "a" && $0 != "an" && $0 != "the" }
        return words.joined(separator: " ")
    }

    public static func exactMatch(_ prediction: String, _ target: String) -> Bool {
        normalizeAnswer(prediction) == normalizeAnswer(target)
    }

    /// −Σ loglik / (Σ bytes · ln 2): lm-eval's bits_per_byte for loglikelihood_rolling.
    public static func bitsPerByte(loglik: Double, bytes: Int) -> Double {
        -loglik / (Double(bytes) * log(2.0))
    }

    /// A mean loss in nats per token as bits per byte, given the bytes a token covers on average
    /// (the same quantity: −Σ loglik / (Σ bytes · ln 2)).
    public static func bitsPerByte(natsPerToken: Double, bytesPerToken: Double) -> Double {
        natsPerToken / log(2.0) / bytesPerToken
    }

    /// exp(−Σ loglik / Σ units): word, byte or token perplexity, by what units counts.
    public static func perplexity(loglik: Double, units: Int) -> Double {
        exp(-loglik / Double(units))
    }

    /// Words as lm-eval's word_perplexity counts them: runs of non-whitespace.
    public static func wordCount(_ s: String) -> Int {
        s.split(whereSeparator: { $0.isWhitespace }).count
    }

    /// Percentile bootstrap: `resamples` times, draw n indices with replacement (RNG(seed)),
    /// apply statistic to them; the interval is the 2.5th and 97.5th percentiles of those values
    /// (linear interpolation, numpy's default). n == 0 gives (nan, nan); n == 1 gives the one value;
    /// infinite statistics count (the interval reaches inf), NaN ones are left out.
    public static func bootstrapInterval(n: Int, resamples: Int, seed: UInt64,
                                         statistic: (UnsafeBufferPointer<Int>) -> Double) -> (low: Double, high: Double) {
        guard n > 0, resamples > 0 else { return (.nan, .nan) }
        var rng = RNG(seed: seed)
        var idx = [Int](repeating: 0, count: n)
        var stats = [Double]()
        stats.reserveCapacity(resamples)
        for _ in 0..<resamples {
            for i in 0..<n { idx[i] = Int(rng.next() % UInt64(n)) }
            stats.append(idx.withUnsafeBufferPointer { statistic($0) })
        }
        // infinities are kept (a resample whose perplexity overflows is an infinite value, so
        // the interval reaches inf); only NaN statistics are dropped
        let ordered = stats.filter { !$0.isNaN }.sorted()
        guard !ordered.isEmpty else { return (.nan, .nan) }
        return (quantile(ordered, 0.025), quantile(ordered, 0.975))
    }

    /// Mean-of-values bootstrap, the common case.
    public static func bootstrapMean(_ values: [Double], resamples: Int, seed: UInt64) -> (low: Double, high: Double) {
        values.withUnsafeBufferPointer { v in
            bootstrapInterval(n: v.count, resamples: resamples, seed: seed) { idx in
                var s = 0.0
                for i in idx { s += v[i] }
                return s / Double(idx.count)
            }
        }
    }

    /// q-quantile of sorted values, linear between the two nearest ranks.
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        let t = pos - Double(lo)
        // equal neighbours (both inf included) or an exact rank: no interpolation, which would
        // give inf - inf = nan
        if t == 0 || sorted[lo] == sorted[hi] { return sorted[lo] }
        return sorted[lo] + (sorted[hi] - sorted[lo]) * t
    }
}

import XCTest
@testable import HMSTCore

final class SamplerTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, 0.5, 2.5, -1.0, 2.9]

    func draw(_ p: SamplingParams, n: Int, recent: [Int32] = []) throws -> [Int] {
        var s = try Sampler(params: p)
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<n { counts[Int(s.sample(logits: logits, V: logits.count, recent: recent[...]))] += 1 }
        return counts
    }

    func testGreedyAndTopK1AreArgmax() throws {
        var p = SamplingParams()
        p.temperature = 0
        XCTAssertEqual(try draw(p, n: 10)[1], 10)
        p.temperature = 1.5
        p.topK = 1
        XCTAssertEqual(try draw(p, n: 50)[1], 50)
        // temperatures whose inverse is inf in Float are greedy in the limit, not uniform
        p.topK = 0
        for t: Float in [1e-38, 1e-40, .leastNonzeroMagnitude] {
            p.temperature = t
            XCTAssertEqual(try draw(p, n: 50)[1], 50, "temperature \(t)")
        }
    }

    func testTemperatureMatchesSoftmaxFrequencies() throws {
        var p = SamplingParams()
        p.temperature = 1
        p.topK = 0
        p.topP = 1
        p.seed = 42
        let n = 60000
        let counts = try draw(p, n: n)
        let e = logits.map { exp(Double($0)) }
        let z = e.reduce(0, +)
        for i in 0..<logits.count {
            XCTAssertEqual(Double(counts[i]) / Double(n), e[i] / z, accuracy: 0.01, "token \(i)")
        }
    }

    func testTopPAndMinPCutTheTail() throws {
        var p = SamplingParams()
        p.temperature = 1
        p.topK = 0
        p.topP = 0.6  // the two most likely: p(1)=.33, p(5)=.30 -> cumulative .63
        let c = try draw(p, n: 2000)
        XCTAssertEqual(c[0] + c[2] + c[3] + c[4], 0)
        XCTAssertGreaterThan(c[1], 0)
        XCTAssertGreaterThan(c[5], 0)
        p.topP = 1
        p.minP = 0.5  // keep p >= 0.5 * p_max: tokens 1, 5, 3
        let m = try draw(p, n: 2000)
        XCTAssertEqual(m[0] + m[2] + m[4], 0)
        XCTAssertGreaterThan(m[3], 0)
    }

    func testRepetitionPenaltyAndSeeds() throws {
        var p = SamplingParams()
        p.temperature = 0
        p.repetitionPenalty = 2
        let c = try draw(p, n: 5, recent: [1])  // 3.0 / 2 = 1.5 < 2.9
        XCTAssertEqual(c[5], 5)
        p.temperature = 1
        p.seed = 7
        XCTAssertEqual(try draw(p, n: 100), try draw(p, n: 100))
        var bad = SamplingParams()
        bad.temperature = -1
        XCTAssertThrowsError(try Sampler(params: bad))
        bad = SamplingParams()
        bad.topP = 0
        XCTAssertThrowsError(try Sampler(params: bad))
        bad = SamplingParams()
        bad.minP = .nan
        XCTAssertThrowsError(try Sampler(params: bad))
        for field in [\SamplingParams.frequencyPenalty, \SamplingParams.presencePenalty] {
            bad = SamplingParams()
            bad[keyPath: field] = .infinity
            XCTAssertThrowsError(try Sampler(params: bad))
        }
    }

    /// The sampler before it selected instead of sorting everything (session 38), as the reference:
    /// top-k and top-k + top-p pick the same tokens from the same seed; top-p alone too (its
    /// normalizer is summed in another order: a rounding apart at most); min-p alike.
    static func reference(_ logits: [Float], _ p: SamplingParams, _ rng: inout RNG) -> Int32 {
        var top = -Float.infinity
        for x in logits where x > top { top = x }
        let shift = top.isFinite ? top : 0
        var c: [(id: Int32, p: Float)] = logits.enumerated().filter { !$0.element.isNaN }.map { (Int32($0.offset), ($0.element - shift) / p.temperature) }
        c.sort { $0.p > $1.p || ($0.p == $1.p && $0.id < $1.id) }
        if p.topK > 0 && p.topK < c.count { c.removeLast(c.count - p.topK) }
        let m = c[0].p
        var sum: Float = 0
        for i in c.indices { c[i].p = m.isInfinite ? (c[i].p == m ? 1 : 0) : expf(c[i].p - m); sum += c[i].p }
        for i in c.indices { c[i].p /= sum }
        if p.topP < 1 {
            var cum: Float = 0, keep = c.count
            for i in c.indices { cum += c[i].p; if cum >= p.topP { keep = i + 1; break } }
            c.removeLast(c.count - keep)
        }
        if p.minP > 0 {
            let floor = p.minP * c[0].p
            let keep = c.firstIndex { $0.p < floor } ?? c.count
            c.removeLast(c.count - max(1, keep))
        }
        var total: Float = 0
        for x in c { total += x.p }
        var u = rng.nextFloat() * total
        for x in c { u -= x.p; if u < 0 { return x.id } }
        return c[c.count - 1].id
    }

    func testSelectionDrawsWhatSortingDrew() throws {
        var gen = RNG(seed: 5)
        for (k, topP, minP) in [(50, Float(1), Float(0)), (40, 0.9, 0), (0, 0.9, 0), (0, 0.5, 0.05), (7, 1, 0.3), (0, 0.999, 0)] {
            var p = SamplingParams()
            p.temperature = 0.9
            p.topK = k
            p.topP = topP
            p.minP = minP
            var same = 0
            let n = 150
            for trial in 0..<n {
                // 3,000 logits with ties (rounded) and a NaN, sometimes flat, sometimes peaked
                let scale: Float = trial % 3 == 0 ? 0.05 : 3
                var logits = (0..<3000).map { _ in (gen.nextFloat() * 8 * scale).rounded() / 4 }
                logits[17] = .nan
                p.seed = UInt64(trial)
                var s = try Sampler(params: p)
                var r = RNG(seed: UInt64(trial))
                let got = logits.withUnsafeBufferPointer { s.sample(logits: $0.baseAddress!, V: $0.count, recent: []) }
                if got == SamplerTests.reference(logits, p, &r) { same += 1 }
            }
            if k > 0 { XCTAssertEqual(same, n, "top_k \(k) top_p \(topP) min_p \(minP)") }
            else { XCTAssertGreaterThanOrEqual(same, n * 97 / 100, "top_p \(topP) min_p \(minP)") }   // a cut at a rounding's distance
        }
        // top-p alone over 40,000 peaked logits: the selection starts at 256 and widens. Its
        // normalizer is summed in id order, the reference's in rank order: over thousands of
        // survivors the Float sums differ by a rounding, which moves a draw by a few ranks
        var p = SamplingParams()
        p.temperature = 0.9
        p.topK = 0
        p.topP = 0.95
        var same = 0
        for trial in 0..<30 {
            let logits = (0..<40000).map { _ in (gen.nextGaussian() * 2.5 * 4).rounded() / 4 }
            p.seed = UInt64(trial)
            var s = try Sampler(params: p)
            var r = RNG(seed: UInt64(trial))
            let got = logits.withUnsafeBufferPointer { s.sample(logits: $0.baseAddress!, V: $0.count, recent: []) }
            let want = SamplerTests.reference(logits, p, &r)
            if got == want { same += 1; continue }
            let rank = Dictionary(uniqueKeysWithValues: logits.enumerated()
                .sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }.enumerated().map { ($1.offset, $0) })
            XCTAssertLessThanOrEqual(abs(rank[Int(got)]! - rank[Int(want)]!), 16, "trial \(trial)")
        }
        XCTAssertGreaterThanOrEqual(same, 15)
        // nothing cut: never a token without weight (a banned last token stays banned, however the sums round)
        var q = SamplingParams()
        q.temperature = 1
        q.topK = 0
        q.topP = 1
        q.logitBias = [39999: -.infinity]
        var logits = (0..<40000).map { _ in gen.nextGaussian() - 30 }
        logits[39998] = 10
        var s = try Sampler(params: q)
        for _ in 0..<400 {
            XCTAssertNotEqual(logits.withUnsafeBufferPointer { s.sample(logits: $0.baseAddress!, V: $0.count, recent: []) }, 39999)
        }
    }

    /// OpenAI's formula: logit[j] -= count[j] · frequency + (count[j] > 0) · presence, the
    /// counts over the last repeat_last_n tokens, after the repetition penalty.
    func testFrequencyAndPresencePenalties() throws {
        var p = SamplingParams()
        p.temperature = 0
        // token 1 (3.0) against token 5 (2.9), at frequency 0.04
        p.frequencyPenalty = 0.04
        XCTAssertEqual(try draw(p, n: 3, recent: [1, 1, 1])[5], 3)      // 3.0 - 0.12 = 2.88 < 2.9
        p.repeatLastN = 2
        XCTAssertEqual(try draw(p, n: 3, recent: [1, 1, 1])[1], 3)      // only the last 2 count: 2.92
        p.repeatLastN = 0
        XCTAssertEqual(try draw(p, n: 3, recent: [1, 1, 1])[1], 3)      // none count
        p.repeatLastN = 64
        p.frequencyPenalty = 0
        p.presencePenalty = 0.2                                          // once, however often
        XCTAssertEqual(try draw(p, n: 3, recent: [1])[5], 3)             // 2.8 < 2.9
        XCTAssertEqual(try draw(p, n: 3, recent: [1, 5, 5, 5])[1], 3)   // both seen: 2.8 against 2.7
        p.presencePenalty = -1                                           // negative: favours what was seen
        XCTAssertEqual(try draw(p, n: 3, recent: [4])[1], 3)             // -1.0 + 1 = 0, still below 3.0
        XCTAssertEqual(try draw(p, n: 3, recent: [3])[3], 3)             // 2.5 + 1 = 3.5 > 3.0
        // after the repetition penalty: 1 -> 3.0 / 2 - 0.2 = 1.3, 5 -> 2.9 / 2 - 0.2 = 1.25, 3 keeps 2.5
        p.repetitionPenalty = 2
        p.presencePenalty = 0.2
        XCTAssertEqual(try draw(p, n: 3, recent: [1, 5])[3], 3)
        // logit bias: added first; -inf bans, a large bias forces
        var b = SamplingParams()
        b.temperature = 0
        b.logitBias = [1: -0.2]
        XCTAssertEqual(try draw(b, n: 3)[5], 3)                            // 2.8 < 2.9
        b.logitBias = [1: -.infinity, 5: -.infinity]
        XCTAssertEqual(try draw(b, n: 3)[3], 3)
        b.temperature = 1
        b.topK = 0
        b.topP = 1
        b.logitBias = [4: 100]
        XCTAssertEqual(try draw(b, n: 200)[4], 200)
        b.logitBias = [2: -.infinity]
        XCTAssertEqual(try draw(b, n: 2000)[2], 0)
        for bad in [[Int32(1): Float.nan], [1: .infinity], [-1: 1]] {
            b.logitBias = bad
            XCTAssertThrowsError(try Sampler(params: b)) { XCTAssertTrue("\($0)".contains("logit_bias"), "\($0)") }
        }
        // off by default, and out-of-vocabulary ids in the window are skipped
        XCTAssertEqual(try draw(SamplingParams(), n: 1, recent: [-1, 99]).reduce(0, +), 1)
    }
}

/// id = byte, 256 = end of text.
final class ByteTokenizer: TextTokenizer, @unchecked Sendable {
    var vocabSize: Int { 257 }
    var eosId: Int32? { 256 }
    func encode(bytes: [UInt8]) -> [Int32] { bytes.map(Int32.init) }
    func decode(_ ids: [Int32]) throws -> [UInt8] {
        try ids.compactMap {
            guard $0 >= 0 && $0 <= 256 else { throw HMSTError.invalidArgument("id \($0)") }
            return $0 == 256 ? nil : UInt8($0)
        }
    }
}

final class TextGenerationTests: XCTestCase {
    func makeSession() throws -> Session {
        let d = DecoderDims(C: 32, H: 4, KV: 2, Dh: 8, F: 48, E: 8, K: 2, V: 257, L: 2, eps: 1e-5,
                            ropeTheta: 10000, maxPositions: 256, tiedEmbeddings: true)
        let (w, _) = try RandomWeights.make(dims: d, seed: 3, std: 0.5)
        return try Session(decoder: Decoder(dims: d, weights: w), params: SessionParams())
    }

    func testLogitBiasForcesATokenAndIdsBeyondTheVocabularyAreRefused() throws {
        let s = try makeSession()
        var req = TextGenerationRequest()
        req.sampling.temperature = 0
        req.stopAtEOS = false
        req.maxTokens = 6
        req.sampling.logitBias = [Int32(UInt8(ascii: "q")): 1000]
        XCTAssertEqual(try s.generate(prompt: Array("hello".utf8), tokenizer: ByteTokenizer(), req).text, Array("qqqqqq".utf8))
        s.reset()
        req.sampling.logitBias = [257: 1]
        XCTAssertThrowsError(try s.generate(prompt: Array("hello".utf8), tokenizer: ByteTokenizer(), req)) {
            XCTAssertTrue("\($0)".contains("logit_bias names token 257"), "\($0)")
        }
        XCTAssertEqual(s.position, 0)   // refused before the prompt was evaluated
    }

    func testStopStringsTrimAndStreamingMatchesResult() throws {
        let s = try makeSession()
        var req = TextGenerationRequest()
        req.sampling.temperature = 0
        req.stopAtEOS = false
        req.maxTokens = 40
        let full = try s.generate(prompt: Array("hello".utf8), tokenizer: ByteTokenizer(), req)
        XCTAssertEqual(full.tokens.count, 40)
        XCTAssertEqual(full.stats.stopReason, .maxTokens)
        let stop = Array(full.text[20..<23])
        let expectedEnd = TextGeneration.find(stop, in: full.text, from: 0)!
        s.reset()
        var streamed: [UInt8] = []
        req.stopStrings = [String(decoding: stop, as: UTF8.self)]
        req.onPiece = { _, piece in streamed += piece; return true }
        // only valid if the stop bytes are valid UTF-8; skip otherwise
        guard String(validating: stop, as: UTF8.self) != nil else { return }
        let cut = try s.generate(prompt: Array("hello".utf8), tokenizer: ByteTokenizer(), req)
        XCTAssertEqual(cut.stats.stopReason, .stopString)
        XCTAssertEqual(cut.text, Array(full.text[0..<expectedEnd]))
        XCTAssertTrue(streamed.starts(with: cut.text))
    }

    func testCallbackStopsAndStatsAreFilled() throws {
        let s = try makeSession()
        var req = TextGenerationRequest()
        req.maxTokens = 30
        req.sampling.seed = 1
        var n = 0
        req.onPiece = { _, _ in n += 1; return n < 5 }
        let r = try s.generate(prompt: Array("abc".utf8), tokenizer: ByteTokenizer(), req)
        XCTAssertEqual(r.stats.stopReason == .callback || r.stats.stopReason == .eos, true)
        XCTAssertLessThanOrEqual(r.tokens.count, 5)
        XCTAssertEqual(r.stats.promptTokens, 3)
        XCTAssertGreaterThan(r.stats.timeToFirstTokenMs, 0)
        // same seed, same text
        s.reset()
        n = -1000
        let a = try s.generate(prompt: Array("abc".utf8), tokenizer: ByteTokenizer(), req)
        s.reset()
        let b = try s.generate(prompt: Array("abc".utf8), tokenizer: ByteTokenizer(), req)
        XCTAssertEqual(a.tokens, b.tokens)
    }
}

final class TopNTests: XCTestCase {
    /// The heap and the sort-everything path agree with a plain sort: largest first, ties by
    /// the smaller index, NaNs skipped, fewer results when fewer values are numbers.
    func testTopNMatchesASortOnEitherPath() {
        var rng = RNG(seed: 9)
        for count in [1, 7, 100, 5000] {
            var v = (0..<count).map { _ in Float(Int(rng.next() % 50)) / 4 }   // many ties
            if count > 3 { v[2] = .nan }
            let order = v.indices.filter { !v[$0].isNaN }.sorted { v[$0] > v[$1] || (v[$0] == v[$1] && $0 < $1) }
            for n in [1, 3, count / 9 + 1, count / 8 + 1, count, count + 5] {
                let got = v.withUnsafeBufferPointer { TopN.largest($0.baseAddress!, count: count, n: n) }
                XCTAssertEqual(got, Array(order.prefix(n)), "count \(count) n \(n)")
            }
        }
        XCTAssertEqual([Float.nan, .nan].withUnsafeBufferPointer { TopN.largest($0.baseAddress!, count: 2, n: 1) }, [])
    }
}

// Prompt caching: Session.keepPrefix rewinds a context to the longest prefix it shares with a
// new prompt, and evaluating the rest must give what a fresh context gives for the whole prompt
// (logits, expert trace, history); positions after an injected row are never reused; rewind's
// bounds.
import XCTest
@testable import HMSTCore

final class PromptCacheTests: XCTestCase {
    static let dims = DecoderDims(C: 32, H: 4, KV: 2, Dh: 8, F: 48, E: 8, K: 2, V: 61, L: 2, eps: 1e-5,
                                  ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: false)

    func makeSession(nBatch: Int = 64) throws -> Session {
        let (w, _) = try RandomWeights.make(dims: PromptCacheTests.dims, seed: 5, std: 0.3)
        var p = SessionParams()
        p.nBatch = nBatch
        p.nThreads = 2
        p.traceRoutes = true
        return try Session(decoder: Decoder(dims: PromptCacheTests.dims, weights: w), params: p)
    }

    /// Logits of every token of `tokens` in a fresh context, and its trace.
    func fresh(_ s: Session, _ tokens: [Int32]) throws -> ([[Float]], ExpertTrace) {
        var p = s.params
        p.nBatch = 64
        let f = try Session(decoder: s.decoder, params: p)
        try f.evaluate(tokens, allLogits: true)
        return (try (0..<tokens.count).map { Array(try f.logits(row: $0)) }, f.trace)
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

    /// A prefix copied from another context (a server's other slot) and the rest evaluated
    /// gives what a fresh context gives; copies refused where the rows would not match.
    func testCopiedPrefixFromAnotherContext() throws {
        let a = try makeSession()
        let shared: [Int32] = (0..<24).map { Int32(($0 * 7 + 3) % 61) }
        try a.evaluate(shared + [1, 2, 3])
        let b = try Session(decoder: a.decoder, params: a.params)   // another slot over the same model
        try b.evaluate([9, 9, 9, 9])
        let prompt = shared + [40, 41, 42]
        XCTAssertEqual(b.copyPrefix(from: a, count: 100), 27, "clamped to what a holds")
        XCTAssertEqual(b.copyPrefix(from: a, count: shared.count), shared.count)
        XCTAssertEqual(b.history, shared)
        XCTAssertEqual(b.position, shared.count)
        XCTAssertEqual(b.keepPrefix(of: prompt), shared.count, "the copied rows are reused")
        try b.evaluate(Array(prompt[shared.count...]), allLogits: true)
        let (ref, refTrace) = try fresh(b, prompt)
        for (row, pos) in (shared.count..<prompt.count).enumerated() {
            XCTAssertLessThan(maxDiff(Array(try b.logits(row: row)), ref[pos]), 1e-4, "position \(pos)")
        }
        XCTAssertEqual(b.trace.experts, refTrace.experts)

        // refused: itself, another decoder, another cache type, another budget
        XCTAssertEqual(a.copyPrefix(from: a, count: 5), 0)
        let other = try Session(decoder: try Decoder(dims: PromptCacheTests.dims,
                                                     weights: RandomWeights.make(dims: PromptCacheTests.dims, seed: 6, std: 0.3).0),
                                params: a.params)
        XCTAssertEqual(other.copyPrefix(from: a, count: 5), 0)
        var p16 = a.params
        p16.kvType = .bf16
        XCTAssertEqual(try Session(decoder: a.decoder, params: p16).copyPrefix(from: a, count: 5), 0)
        let shallow = try Session(decoder: a.decoder, params: a.params)
        try shallow.setBudget(ComputeBudget(layers: 1))
        XCTAssertEqual(shallow.copyPrefix(from: a, count: 5), 0)
        XCTAssertEqual(b.history, prompt, "a refused copy leaves the context as it was")
    }

    func testKeptPrefixPlusTheRestEqualsAFreshContext() throws {
        let s = try makeSession()
        let first: [Int32] = [3, 17, 60, 0, 5, 5, 42, 9, 1, 33]
        var greedy = SamplingParams()
        greedy.temperature = 0
        var r = GenerationRequest()
        r.maxTokens = 6
        r.sampling = greedy
        let (reply, _) = try s.generate(prompt: first, r)
        XCTAssertEqual(reply.count, 6)
        // the history holds what was evaluated: the prompt and every reply token but the last
        XCTAssertEqual(s.history, first + reply.dropLast())

        // a new turn: the first prompt, the reply, then new tokens
        let next = first + reply + [7, 8, 9]
        let kept = s.keepPrefix(of: next)
        XCTAssertEqual(kept, first.count + reply.count - 1)
        XCTAssertEqual(s.position, kept)
        XCTAssertThrowsError(try s.logits(), "the logits of the dropped state are gone")
        try s.evaluate(Array(next[kept...]), allLogits: true)
        let (ref, refTrace) = try fresh(s, next)
        for (row, pos) in (kept..<next.count).enumerated() {
            XCTAssertLessThan(maxDiff(Array(try s.logits(row: row)), ref[pos]), 1e-4, "position \(pos)")
        }
        XCTAssertEqual(s.history, next)
        XCTAssertEqual(s.trace.experts, refTrace.experts)

        // a prompt that diverges early: rewound to the shared part
        let other: [Int32] = [3, 17, 60, 11, 12]
        XCTAssertEqual(s.keepPrefix(of: other), 3)
        XCTAssertEqual(s.history, [3, 17, 60])
        XCTAssertEqual(s.trace.count, 3)
        try s.evaluate(Array(other[3...]))
        XCTAssertLessThan(maxDiff(Array(try s.logits()), try fresh(s, other).0.last!), 1e-4)

        // the same prompt again: its last token is evaluated again, for its logits
        XCTAssertEqual(s.keepPrefix(of: other), other.count - 1)
        // nothing shared, and an empty prompt: an empty context
        XCTAssertEqual(s.keepPrefix(of: [50, 3]), 0)
        XCTAssertEqual(s.position, 0)
        try s.evaluate([50, 3])
        XCTAssertEqual(s.keepPrefix(of: []), 0)
        XCTAssertEqual(s.position, 0)
    }

    /// A prompt longer than a batch, kept in part: the rest is evaluated in chunks from the
    /// middle of one.
    func testKeptPrefixWithChunkedRest() throws {
        let s = try makeSession(nBatch: 4)
        let a = (0..<20).map { Int32(($0 * 7 + 3) % 61) }
        try s.evaluate(a)
        let b = Array(a[0..<9]) + (0..<12).map { Int32(($0 * 5 + 1) % 61) }
        XCTAssertEqual(s.keepPrefix(of: b), 9)
        try s.evaluate(Array(b[9...]))
        XCTAssertLessThan(maxDiff(Array(try s.logits()), try fresh(s, b).0.last!), 1e-4)
        XCTAssertEqual(s.reusableLength, b.count)
    }

    func testPositionsFromAnInjectedRowAreNotReused() throws {
        let s = try makeSession()
        let C = PromptCacheTests.dims.C
        let tokens: [Int32] = [1, 2, 3, 4, 0, 6, 7]
        let row = (0..<C).map { Float($0) / Float(C) - 0.5 }
        try s.evaluate(tokens, injected: InjectedEmbeddings(positions: [4], rows: row))
        XCTAssertEqual(s.reusableLength, 4)
        try s.evaluate([9, 10])   // what follows an injected row is not reusable either
        XCTAssertEqual(s.reusableLength, 4)
        XCTAssertEqual(s.keepPrefix(of: tokens + [9, 10, 11]), 4, "the placeholder token 0 is not the row the cache holds")
        try s.evaluate(Array((tokens + [9, 10, 11])[4...]))
        XCTAssertEqual(s.reusableLength, 10)
        XCTAssertLessThan(maxDiff(Array(try s.logits()), try fresh(s, tokens + [9, 10, 11]).0.last!), 1e-4)
        // an injection in a later call leaves the earlier positions reusable
        try s.evaluate([5, 5], injected: InjectedEmbeddings(positions: [1], rows: row))
        XCTAssertEqual(s.reusableLength, 11)
        s.reset()
        XCTAssertEqual(s.reusableLength, 0)
    }

    func testRewindClampsAndClearsTheLogits() throws {
        let s = try makeSession()
        try s.evaluate([1, 2, 3, 4])
        s.rewind(to: 10)
        XCTAssertEqual(s.position, 4)
        XCTAssertEqual(s.history, [1, 2, 3, 4])
        XCTAssertThrowsError(try s.logits())
        s.rewind(to: 2)
        XCTAssertEqual(s.history, [1, 2])
        XCTAssertEqual(s.trace.count, 2)
        s.rewind(to: -3)
        XCTAssertEqual(s.position, 0)
        XCTAssertEqual(s.trace.count, 0)
    }

    /// logLikelihoods rewinds between continuations; with a route trace on too (it used to
    /// fall back to one pass per continuation).
    func testLogLikelihoodsWithTraceMatchOnePassEach() throws {
        let s = try makeSession()
        let context: [Int32] = [4, 8, 15, 16, 23]
        let conts: [[Int32]] = [[42], [1, 2, 3], [60, 0]]
        let shared = try s.logLikelihoods(context: context, continuations: conts)
        XCTAssertEqual(s.trace.count, s.history.count)
        for (c, score) in zip(conts, shared) {
            let one = try s.logLikelihood(context + c, from: context.count)
            XCTAssertEqual(score.logprob, one.logprob, accuracy: 1e-4)
            XCTAssertEqual(score.count, one.count)
        }
    }
}

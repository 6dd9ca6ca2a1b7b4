import XCTest
@testable import HMSTCore

final class ThreadsTests: XCTestCase {
    func testParallelForRunsEveryTaskOnce() throws {
        try Threads.set(2)
        let n = 10_000
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        hits.initialize(repeating: 0, count: n)
        defer { hits.deallocate() }
        for _ in 0..<20 {
            parallelFor(n) { i in hits[i] += 1 }
        }
        XCTAssertTrue((0..<n).allSatisfy { hits[$0] == 20 })
    }

    func testNestedAndConcurrentCallsDoNotDeadlock() throws {
        try Threads.set(2)
        let out = Locked(0)
        parallelFor(8) { _ in
            parallelFor(8) { _ in out.withLock { $0 += 1 } }
        }
        XCTAssertEqual(out.get(), 64)
    }

    /// Regression: a worker created by a resize must join a job posted before it first ran
    /// (it used to wait for the next job while the caller waited for it: a deadlock).
    func testJobRightAfterResizeCompletes() throws {
        for i in 0..<300 {
            try Threads.set(1 + i % 3)
            let n = Locked(0)
            parallelFor(16) { _ in n.withLock { $0 += 1 } }
            XCTAssertEqual(n.get(), 16)
        }
        try Threads.set(0)
    }

    /// Many tiny jobs back to back (the worker often shows up after the caller has taken every
    /// task and closed the job, or joins half-way): every task still runs exactly once per job.
    func testTinyJobsBackToBackRunEveryTaskOnce() throws {
        try Threads.set(2)
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: 4)
        hits.initialize(repeating: 0, count: 4)
        defer { hits.deallocate() }
        for round in 0..<20_000 {
            let n = 2 + round % 3
            parallelFor(n) { i in hits[i] += 1 }
            for i in 0..<n where hits[i] != 1 { XCTFail("round \(round) task \(i) ran \(hits[i]) times"); return }
            for i in 0..<n { hits[i] = 0 }
        }
        try Threads.set(0)
    }

    /// Decode splits each GEMV into the same row ranges whatever the thread count, so one token at
    /// a time gives bit-identical logits on 1 and 2 threads, for every weight type.
    func testDecodeLogitsBitIdenticalOnOneAndTwoThreads() throws {
        try Threads.set(2)
        defer { try? Threads.set(0) }
        // big enough that the q/k/v batch, the experts and the LM head are split over threads
        let d = DecoderDims(C: 256, H: 4, KV: 2, Dh: 64, F: 768, E: 4, K: 2, V: 4096, L: 2, eps: 1e-5,
                            ropeTheta: 10000, maxPositions: 64, tiedEmbeddings: false)
        let (w32, _) = try RandomWeights.make(dims: d, seed: 3, std: 0.05)
        for w in [w32, try w32.converted(to: .bf16), try w32.converted(to: .int8)] {
            let dec = Decoder(dims: d, weights: w)
            var runs: [[Float]] = []
            for threads in [1, 2] {
                var p = SessionParams()
                p.nThreads = threads
                p.nCtx = 32
                let s = try Session(decoder: dec, params: p)
                var all: [Float] = []
                for t: Int32 in [5, 900, 17, 4000, 3, 3, 250, 1] {
                    try s.evaluate([t])
                    all += Array(try s.logits())
                }
                runs.append(all)
            }
            XCTAssertEqual(runs[0], runs[1])
        }
    }

    func testSetValidates() throws {
        XCTAssertThrowsError(try Threads.set(-1))
        XCTAssertThrowsError(try Threads.set(5000))
        try Threads.set(3)
        XCTAssertEqual(Threads.count, 3)
        XCTAssertEqual(Threads.blasThreads, 3)
        try Threads.set(0)
    }

    func testSplitRange() {
        XCTAssertEqual(splitRange(10, parts: 3), [0..<4, 4..<7, 7..<10])
        XCTAssertEqual(splitRange(2, parts: 8), [0..<1, 1..<2])
        XCTAssertEqual(splitRange(0, parts: 4), [])
    }
}

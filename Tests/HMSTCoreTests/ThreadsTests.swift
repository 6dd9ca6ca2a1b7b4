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

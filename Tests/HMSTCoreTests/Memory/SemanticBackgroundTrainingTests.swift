// Lazy IVF training on a background thread: adds and searches go on while it trains, changes
// made meanwhile are carried into the trained index, and waitForTraining ends in the ready phase.
import XCTest
@testable import HMSTCore

final class SemanticBackgroundTrainingTests: XCTestCase {
    func testTrainingInTheBackground() throws {
        let dim = 8
        let mem = try SemanticMemory(dim: dim, description: "IVF4,Flat", metric: .l2)
        mem.trainInBackground = true
        XCTAssertTrue(mem.trainInBackground)
        var phases = Set<String>()
        var next: Int64 = 0
        while next < 400 {
            let ids = (next..<(next + 20)).map { $0 }
            try mem.add(vectors: MemoryTestData.vectors(ids: ids, dim: dim), metadata: MemoryTestData.metas(ids), ids: ids)
            next += 20
            phases.insert(mem.stats().phase.rawValue)
            // searches during training see every entry added so far
            let probe = Int64(next - 1)
            XCTAssertEqual(try mem.search(query: MemoryTestData.vector(id: probe, dim: dim), k: 1, nprobe: 4).first?.id, probe)
            if next == 200 { XCTAssertEqual(try mem.remove(ids: [5]).removed, 1) }
        }
        mem.waitForTraining()
        let s = mem.stats()
        XCTAssertEqual(s.phase, .ready, "phases seen: \(phases), error: \(s.lastTrainingError ?? "-")")
        XCTAssertEqual(s.count, 399)
        XCTAssertFalse(try mem.search(query: MemoryTestData.vector(id: 5, dim: dim), k: 3, nprobe: 4).contains { $0.id == 5 })
        for id: Int64 in [0, 160, 399] {
            XCTAssertEqual(try mem.search(query: MemoryTestData.vector(id: id, dim: dim), k: 1, nprobe: 4).first?.id, id)
        }
    }
}

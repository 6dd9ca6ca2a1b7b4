// The FAISS shim: C++ exceptions become HMSTError (never an abort), and the basic index life
// cycle works through it. Semantic memory's own behaviour is tested with it in later suites.
import XCTest
@testable import HMSTCore

final class FaissIndexTests: XCTestCase {
    func testBadFactoryStringIsAnErrorNotACrash() {
        XCTAssertThrowsError(try FaissIndex(dim: 8, description: "NoSuchIndex123", metric: .l2)) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("FAISS") ?? false, "\(e)")
        }
        XCTAssertThrowsError(try FaissIndex(dim: 0, description: "Flat", metric: .l2))
    }

    func testFlatAddSearchRemoveRoundTrip() throws {
        let dim = 4
        let index = try FaissIndex(dim: dim, description: "Flat", metric: .l2)
        let x: [Float] = [0, 0, 0, 0, 1, 0, 0, 0, 0, 5, 0, 0]
        try index.add(x, ids: [100, 200, 300])
        XCTAssertEqual(index.count, 3)
        let r = try index.search([0.9, 0, 0, 0], k: 2)
        XCTAssertEqual(r.ids, [200, 100])
        XCTAssertEqual(try index.remove(ids: [200, 999]), 1)
        XCTAssertEqual(try index.search([0.9, 0, 0, 0], k: 1).ids, [100])
        XCTAssertThrowsError(try index.add([1, 2, 3], ids: [1]))  // not a multiple of dim
        XCTAssertThrowsError(try index.search([0, 0, 0, 0], k: 0))
    }

    func testUntrainedIVFAddIsAnErrorAndTrainingWorks() throws {
        let dim = 8
        let index = try FaissIndex(dim: dim, description: "IVF4,Flat", metric: .l2)
        XCTAssertFalse(index.isTrained)
        XCTAssertThrowsError(try index.add([Float](repeating: 0, count: dim), ids: [1]))
        var rng = SplitMix(seed: 1)
        let n = 400
        let x = (0..<(n * dim)).map { _ in Float(rng.next() % 1000) / 1000 }
        try index.train(x)
        try index.add(x, ids: (0..<Int64(n)).map { $0 })
        let r = try index.search(Array(x[0..<dim]), k: 1, nprobe: 4)
        XCTAssertEqual(r.ids, [0])
        let path = "/tmp/hmst-faiss-\(getpid()).index"
        defer { unlink(path) }
        try index.write(path: path)
        let back = try FaissIndex.read(path: path)
        XCTAssertEqual(back.count, n)
        try FileIO.writeAtomically(path, text: "not an index")
        XCTAssertThrowsError(try FaissIndex.read(path: path)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .badFormat)
        }
    }
}

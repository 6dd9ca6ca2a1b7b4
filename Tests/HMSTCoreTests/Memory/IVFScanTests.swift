// hmst's own IVF-Flat list scan (CFAISSShim/ivf_flat_scan.cpp) against FAISS's: the same ids
// and distances up to float rounding, for L2 and inner product, batches above and below the
// 20-query line where the list assignment changes hands, dimensions with and without a
// 16-lane tail, k beyond what the probed lists hold, and the portable kernel beside AVX-512.
// Plus hand-computed distances and the memory-level array search.
import CFAISSShim
import CKernels
import XCTest
@testable import HMSTCore

final class IVFScanTests: XCTestCase {
    override func tearDown() {
        FaissIndex.ownIVFScan = true
        hmstfs_set_ivf_grouped(-1, 0)
        hk_set_max_level(-1)
    }

    /// n clustered vectors [n, dim]: 12 centres, Gaussian noise.
    private func clustered(_ n: Int, dim: Int, rng: inout RNG) -> [Float] {
        let centres = (0..<(12 * dim)).map { _ in 3 * rng.nextGaussian() }
        var x = [Float](repeating: 0, count: n * dim)
        for i in 0..<n {
            let c = Int(rng.next() % 12)
            for j in 0..<dim { x[i * dim + j] = centres[c * dim + j] + rng.nextGaussian() }
        }
        return x
    }

    private func search(_ index: FaissIndex, _ q: [Float], k: Int, nprobe: Int, own: Bool) throws -> (distances: [Float], ids: [Int64]) {
        FaissIndex.ownIVFScan = own
        defer { FaissIndex.ownIVFScan = true }
        return try index.search(q, k: k, nprobe: nprobe)
    }

    /// The same results up to float rounding: position by position the distances agree; the ids
    /// agree as sets per row, except ids whose distance ties (within rounding) with the row's
    /// last one, which either side may keep; an id both return has the same distance on both;
    /// the -1 padding is the same. Ids at equal distances may come in either order (the two
    /// kernels sum in different orders, so near-equal distances can swap).
    private func assertSame(_ a: (distances: [Float], ids: [Int64]), _ b: (distances: [Float], ids: [Int64]), k: Int,
                            _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.ids.count, b.ids.count, what, file: file, line: line)
        func tol(_ x: Float) -> Float { 1e-4 * max(1, abs(x)) }
        for (x, y) in zip(a.distances, b.distances) {
            XCTAssertEqual(x, y, accuracy: tol(y), "\(what): distances differ", file: file, line: line)
        }
        for row in 0..<(a.ids.count / k) {
            let r = (row * k)..<((row + 1) * k)
            XCTAssertEqual(a.ids[r].filter { $0 < 0 }.count, b.ids[r].filter { $0 < 0 }.count, "\(what): padding", file: file, line: line)
            var bDistance: [Int64: Float] = [:]
            for i in r where b.ids[i] >= 0 { bDistance[b.ids[i]] = b.distances[i] }
            guard let last = r.last(where: { b.ids[$0] >= 0 }) else { continue }
            let boundary = b.distances[last]
            for i in r where a.ids[i] >= 0 {
                if let d = bDistance[a.ids[i]] {
                    XCTAssertEqual(a.distances[i], d, accuracy: tol(d), "\(what): id \(a.ids[i])", file: file, line: line)
                } else {
                    XCTAssertEqual(a.distances[i], boundary, accuracy: tol(boundary),
                                   "\(what): id \(a.ids[i]) is not in FAISS's row and does not tie with its last", file: file, line: line)
                }
            }
        }
    }

    func testOwnScanReturnsFaissResults() throws {
        var rng = RNG(seed: 17)
        for metric in [VectorMetric.l2, .innerProduct] {
            for dim in [16, 40, 128] {
                let index = try FaissIndex(dim: dim, description: "IVF16,Flat", metric: metric)
                let x = clustered(1500, dim: dim, rng: &rng)
                try index.train(x)
                try index.add(x, ids: (0..<1500).map { Int64($0) * 3 + 7 })
                for nq in [1, 5, 19, 20, 37] {
                    let q = clustered(nq, dim: dim, rng: &rng)
                    for (k, nprobe) in [(1, 1), (7, 1), (10, 3), (25, 16), (400, 1)] {
                        let what = "\(metric) dim \(dim) nq \(nq) k \(k) nprobe \(nprobe)"
                        let faiss = try search(index, q, k: k, nprobe: nprobe, own: false)
                        let own = try search(index, q, k: k, nprobe: nprobe, own: true)
                        assertSame(own, faiss, k: k, what)
                        if k == 400 {  // one list of ~94 vectors: the rest is padding, as FAISS pads
                            XCTAssertTrue(own.ids.contains(-1), what)
                        }
                        for level in 0..<Int(hk_level()) {   // the lower kernels: portable, AVX2 under AVX-512
                            hk_set_max_level(Int32(level))
                            assertSame(try search(index, q, k: k, nprobe: nprobe, own: true), faiss, k: k, "\(what), kernel level \(level)")
                        }
                        hk_set_max_level(-1)
                    }
                }
            }
        }
    }

    func testOwnScanSplitsBatchesOverThreadsWithTheSameAnswer() throws {
        var rng = RNG(seed: 5)
        let dim = 24
        let index = try FaissIndex(dim: dim, description: "IVF8,Flat", metric: .l2)
        let x = clustered(800, dim: dim, rng: &rng)
        try index.train(x)
        try index.add(x, ids: (0..<800).map { Int64($0) })
        let q = clustered(101, dim: dim, rng: &rng)
        let before = hmstfs_get_omp_threads()
        defer { hmstfs_set_omp_threads(before) }
        hmstfs_set_omp_threads(1)
        let one = try search(index, q, k: 5, nprobe: 2, own: true)
        hmstfs_set_omp_threads(3)
        let three = try search(index, q, k: 5, nprobe: 2, own: true)
        XCTAssertEqual(one.ids, three.ids)
        XCTAssertEqual(one.distances, three.distances)
        assertSame(three, try search(index, q, k: 5, nprobe: 2, own: false), k: 5, "3 threads")
    }

    /// Batches that share lists are scanned list by list (every query probing a list reads each
    /// block of it while it is in cache) into per-pair distance rows, then pushed in probe order:
    /// the answer is the query-by-query scan's, bit for bit, ties included (duplicated vectors),
    /// for L2 and inner product, a dimension with a 16-lane tail, k beyond the probed lists,
    /// several threads, rounds small enough that a batch takes several, and every kernel shape.
    func testListByListBatchesEqualQueryByQuery() throws {
        var rng = RNG(seed: 31)
        let before = hmstfs_get_omp_threads()
        defer { hmstfs_set_omp_threads(before) }
        for (dim, metric) in [(24, VectorMetric.l2), (67, .l2), (67, .innerProduct)] {
            let index = try FaissIndex(dim: dim, description: "IVF16,Flat", metric: metric)
            var x = clustered(3000, dim: dim, rng: &rng)
            x += Array(x[0..<(200 * dim)])   // 200 exact duplicates: ties the order must settle
            try index.train(x)
            try index.add(x, ids: (0..<3200).map { Int64($0) })
            let q = clustered(90, dim: dim, rng: &rng) + Array(x[0..<(10 * dim)])
            // kernels: this CPU's; the four-vector AVX-512 shape forced (the one-stream CPUs
            // otherwise); AVX2; portable. Each against the query-by-query scan with the same kernel.
            for (rows, level, (k, nprobe)) in [(0, -1, (5, 4)), (0, -1, (30, 16)), (0, -1, (4000, 2)), (4, -1, (30, 16)),
                                               (1, -1, (30, 16)), (0, 1, (30, 16)), (0, 0, (30, 16))] {
                hk_set_gemv_rows(Int32(rows))
                hk_set_max_level(Int32(level))
                defer { hk_set_gemv_rows(0) }
                let what = "dim \(dim) \(metric) k \(k) nprobe \(nprobe) rows \(rows) level \(level)"
                hmstfs_set_ivf_grouped(0, 0)
                hmstfs_set_omp_threads(1)
                let byQuery = try search(index, q, k: k, nprobe: nprobe, own: true)
                for (threads, round) in [(1, 0), (3, 0), (2, 5000)] {
                    hmstfs_set_ivf_grouped(1, Int64(round))
                    hmstfs_set_omp_threads(Int32(threads))
                    let byList = try search(index, q, k: k, nprobe: nprobe, own: true)
                    XCTAssertEqual(byList.ids, byQuery.ids, "\(what), \(threads) threads, round \(round)")
                    XCTAssertEqual(byList.distances, byQuery.distances, "\(what), \(threads) threads, round \(round)")
                }
            }
        }
    }

    /// Fewer queries than threads: each query's probed vectors are cut into slices scanned by
    /// different threads and merged; the answer is the one-thread answer, bit for bit.
    func testOwnScanSplitsOneQueryOverThreadsWithTheSameAnswer() throws {
        var rng = RNG(seed: 23)
        let dim = 64
        let index = try FaissIndex(dim: dim, description: "IVF4,Flat", metric: .l2)
        let x = clustered(6000, dim: dim, rng: &rng)   // ~1,500 vectors a list: 2+ slices of 32k floats
        try index.train(x)
        try index.add(x, ids: (0..<6000).map { Int64($0) })
        let ipIndex = try FaissIndex(dim: dim, description: "IVF4,Flat", metric: .innerProduct)
        try ipIndex.train(x)
        try ipIndex.add(x, ids: (0..<6000).map { Int64($0) })
        let before = hmstfs_get_omp_threads()
        defer { hmstfs_set_omp_threads(before) }
        for (ix, name) in [(index, "l2"), (ipIndex, "ip")] {
            for nq in [1, 2, 3] {
                let q = clustered(nq, dim: dim, rng: &rng)
                for (k, nprobe) in [(1, 1), (10, 2), (50, 4), (7000, 4)] {
                    let what = "\(name) nq \(nq) k \(k) nprobe \(nprobe)"
                    hmstfs_set_omp_threads(1)
                    let one = try search(ix, q, k: k, nprobe: nprobe, own: true)
                    for threads in [2, 4, 7] {
                        hmstfs_set_omp_threads(Int32(threads))
                        let split = try search(ix, q, k: k, nprobe: nprobe, own: true)
                        XCTAssertEqual(split.distances, one.distances, "\(what), \(threads) threads")
                        if k < 7000 {
                            XCTAssertTrue(split.ids == one.ids, "\(what), \(threads) threads: ids differ")
                        } else {   // every vector: exact ties among 6,000 distances may come in either order
                            XCTAssertTrue(Set(split.ids) == Set(one.ids), "\(what), \(threads) threads: id sets differ")
                        }
                    }
                    if k < 7000 { assertSame(one, try search(ix, q, k: k, nprobe: nprobe, own: false), k: k, what) }
                    else { XCTAssertEqual(one.ids.filter { $0 < 0 }.count, nq * 1000, what) }   // all 6,000, then padding
                }
            }
        }
    }

    func testHandComputedDistances() throws {
        // two lists trained on two far-apart groups; query (0, 0, 0):
        // (1, 2, 2) -> L2 1 + 4 + 4 = 9;  (3, 0, 4) -> 9 + 16 = 25;  (30, 30, 30) in the other list
        let x: [Float] = [1, 2, 2, 3, 0, 4, 30, 30, 30, 31, 30, 30]
        let l2 = try FaissIndex(dim: 3, description: "IVF2,Flat", metric: .l2)
        try l2.train(x)
        try l2.add(x, ids: [10, 11, 12, 13])
        let r = try l2.search([0, 0, 0], k: 3, nprobe: 1)
        XCTAssertEqual(r.ids, [10, 11, -1])
        XCTAssertEqual(Array(r.distances[0..<2]), [9, 25])
        XCTAssertEqual(r.distances[2], .greatestFiniteMagnitude)
        // inner product with (1, 1, 1): 5 and 7, best (largest) first; nprobe 2 reaches both lists
        let ip = try FaissIndex(dim: 3, description: "IVF2,Flat", metric: .innerProduct)
        try ip.train(x)
        try ip.add(x, ids: [10, 11, 12, 13])
        let s = try ip.search([1, 1, 1], k: 4, nprobe: 2)
        XCTAssertEqual(s.ids, [13, 12, 11, 10])
        XCTAssertEqual(s.distances, [91, 90, 7, 5])
    }

    func testArraySearchMatchesHitSearch() throws {
        var rng = RNG(seed: 9)
        let dim = 32
        let mem = try SemanticMemory(dim: dim, description: "IVF8,Flat", metric: .l2, nprobe: 2)
        let x = clustered(600, dim: dim, rng: &rng)
        try mem.add(vectors: x, metadata: (0..<600).map { _ in MemoryMetadata(text: "") })
        XCTAssertEqual(mem.stats().phase, .ready)
        let q = clustered(25, dim: dim, rng: &rng)
        let hits = try mem.search(queries: q, k: 6)
        let arrays = try mem.searchArrays(queries: q, k: 6)
        XCTAssertEqual(arrays.ids, hits.flatMap { $0.map(\.id) })
        XCTAssertEqual(arrays.scores, hits.flatMap { $0.map(\.score) })
        // removed ids never come back, and rows pad with -1 / NaN past the live entries
        _ = try mem.remove(ids: [arrays.ids[0]])
        XCTAssertFalse(try mem.searchArrays(queries: Array(q[0..<dim]), k: 6).ids.contains(arrays.ids[0]))
        let small = try SemanticMemory(dim: 2, description: "Flat", metric: .l2)
        try small.add(vectors: [0, 0, 3, 4], metadata: [MemoryMetadata(text: "a"), MemoryMetadata(text: "b")])
        let padded = try small.searchArrays(queries: [0, 0], k: 3)
        XCTAssertEqual(padded.ids, [0, 1, -1])
        XCTAssertEqual(Array(padded.scores[0..<2]), [0, 25])
        XCTAssertTrue(padded.scores[2].isNaN)
        XCTAssertThrowsError(try small.searchArrays(queries: [0, 0, 0], k: 1))      // not a whole vector
        XCTAssertThrowsError(try small.searchArrays(queries: [0, .nan], k: 1))      // NaN
        XCTAssertThrowsError(try small.searchArrays(queries: [0, 0], k: 0))         // k
        XCTAssertThrowsError(try small.searchArrays(queries: [0, 0], k: 1, nprobe: 0))
    }
}

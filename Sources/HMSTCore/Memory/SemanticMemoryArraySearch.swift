// SemanticMemoryArraySearch: search results as flat id and score arrays, for callers that hand
// arrays on (the C API, and through it Python's numpy arrays). Same checks, lock and answers as
// SemanticMemory.search(queries:k:nprobe:), without building a SemanticHit (and copying its
// metadata) per hit: at IVF256 over 100k vectors and nprobe 1 that bookkeeping cost about as
// much as the scan itself.

extension SemanticMemory {
    /// queries: [n, dim] -> ids: [n, k], scores: [n, k], best first per row; id -1 and score NaN
    /// pad rows with fewer than k hits. Throws as search(queries:k:nprobe:). Thread-safe (read
    /// lock).
    public func searchArrays(queries: [Float], k: Int, nprobe: Int? = nil) throws -> (ids: [Int64], scores: [Float]) {
        guard k > 0, k <= 1 << 20 else { throw HMSTError.invalidArgument("search: k = \(k) must be in 1...1048576") }
        if let nprobe, nprobe < 1 { throw HMSTError.invalidArgument("search: nprobe \(nprobe) must be >= 1") }
        let (q, n) = try VectorChecks.prepare(queries, dim: config.dim, metric: config.metric, "search")
        return try lock.withReadLock {
            let live = entries.count
            guard live > 0 else { throw HMSTError.notFound("search: the memory is empty") }
            // over-fetch by the tombstones so k live hits survive the filter
            let kk = min(k, live) + tombstones.count
            let probe = (lazy || nlist == 0) ? 0 : min(nprobe ?? config.nprobe, nlist)
            var r = try index.search(q, k: kk, nprobe: probe)
            if kk == k && tombstones.isEmpty {
                r.distances.withUnsafeMutableBufferPointer { d in
                    r.ids.withUnsafeBufferPointer { ids in
                        for i in 0..<ids.count where ids[i] < 0 { d[i] = .nan }
                    }
                }
                return (r.ids, r.distances)
            }
            var ids = [Int64](repeating: -1, count: n * k)
            var scores = [Float](repeating: .nan, count: n * k)
            for row in 0..<n {
                var j = 0
                for c in 0..<kk where j < k {
                    let id = r.ids[row * kk + c]
                    if id < 0 || tombstones.contains(id) { continue }
                    ids[row * k + j] = id
                    scores[row * k + j] = r.distances[row * kk + c]
                    j += 1
                }
            }
            return (ids, scores)
        }
    }
}

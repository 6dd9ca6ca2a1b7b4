// MemoryBench: `hmst-bench memory`: SemanticMemory over FAISS on synthetic clustered vectors.
// For each index description and nprobe, one JSON line: build time (lazy exact phase, IVF
// training on the snapshot, migration, the rest of the adds), index bytes and process RSS,
// recall@10 against exact (flat) search, and queries/s batched and one query at a time.
// Data: a Gaussian mixture in a low-dimensional latent space mapped linearly into `dim` (see
// mixture()), fixed seeds, cosine metric (SemanticMemory's default).
import CBLAS
import Foundation
import HMSTCore

struct MemoryBenchOptions {
    var n = 1_000_000
    var dim = 256
    var nQueries = 1000
    var nSingle = 300          // queries timed one at a time
    var latent = 32
    var clusters = 64
    var noise: Float = 1.0
    var k = 10
    var nlist = 0              // 0: the power of two nearest 4 * sqrt(n)
    var descriptions: [String] = []  // default: IVF<nlist>,Flat and IVF<nlist>,PQ32
    var nprobes = [1, 4, 16, 64, 256]
    var threads = 0
}

enum MemoryBench {
    /// -> [n, dim]: latent points z = centre + noise * N(0, I) in `latent` dimensions (centres
    /// ~ N(0, I), from `centreSeed`), mapped by a fixed random [latent, dim] matrix, plus 0.05 *
    /// N(0, 1) in every ambient dimension: clustered, low intrinsic dimension, like embeddings.
    static func mixture(n: Int, dim: Int, latent: Int, clusters: Int, noise: Float, centreSeed: UInt64, seed: UInt64) -> [Float] {
        var crng = RNG(seed: centreSeed)
        let centres = (0..<(clusters * latent)).map { _ in crng.nextGaussian() }
        let scale = 1 / Float(latent).squareRoot()
        let a = (0..<(latent * dim)).map { _ in crng.nextGaussian() * scale }   // [latent, dim]
        var z = [Float](repeating: 0, count: n * latent)
        var out = [Float](repeating: 0, count: n * dim)
        let parts = splitRange(n, parts: 16)
        z.withUnsafeMutableBufferPointer { zb in
            out.withUnsafeMutableBufferPointer { ob in
                guard let zp = zb.baseAddress, let op = ob.baseAddress else { return }
                parallelFor(parts.count) { p in
                    var rng = RNG(seed: seed &+ UInt64(p) &* 0x9E37_79B9)
                    for i in parts[p] {
                        let c = Int(rng.next() % UInt64(clusters))
                        for j in 0..<latent { zp[i * latent + j] = centres[c * latent + j] + noise * rng.nextGaussian() }
                        for j in 0..<dim { op[i * dim + j] = 0.05 * rng.nextGaussian() }
                    }
                }
                // out[n, dim] += z[n, latent] · a[latent, dim]
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(dim), Int32(latent), 1,
                            zp, Int32(latent), a, Int32(dim), 1, op, Int32(dim))
            }
        }
        return out
    }

    static func rssBytes() -> Int {
        guard let text = try? FileIO.readText("/proc/self/statm") else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func round4(_ x: Double) -> Double { (x * 10000).rounded() / 10000 }

    static func run(_ o: MemoryBenchOptions) throws {
        if o.threads > 0 { try Threads.set(o.threads) }
        let nlist = o.nlist > 0 ? o.nlist : 1 << Int((log2(4 * Double(o.n).squareRoot())).rounded())
        let descriptions = o.descriptions.isEmpty ? ["IVF\(nlist),Flat", "IVF\(nlist),PQ32"] : o.descriptions
        var t0 = Clock.nowMs()
        let x = mixture(n: o.n, dim: o.dim, latent: o.latent, clusters: o.clusters, noise: o.noise, centreSeed: 1, seed: 2)
        let q = mixture(n: o.nQueries, dim: o.dim, latent: o.latent, clusters: o.clusters, noise: o.noise, centreSeed: 1, seed: 3)
        let dataS = (Clock.nowMs() - t0) / 1000
        let metas = [MemoryMetadata](repeating: MemoryMetadata(text: "synthetic", source: "bench", timestamp: 0), count: o.n)

        // ground truth: exact search over the same normalised vectors
        t0 = Clock.nowMs()
        var truth: [Set<Int64>] = []
        do {
            let exact = try SemanticMemory(dim: o.dim, description: "Flat", metric: .cosine)
            try exact.add(vectors: x, metadata: metas)
            truth = try exact.search(queries: q, k: o.k).map { Set($0.map(\.id)) }
        }
        let exactS = (Clock.nowMs() - t0) / 1000
        StandardStream.error.write("data \(dataS) s, exact ground truth \(exactS) s\n")

        for description in descriptions {
            let rss0 = rssBytes()
            let mem = try SemanticMemory(dim: o.dim, description: description, metric: .cosine)
            let batch = 50_000
            let tb = Clock.nowMs()
            var start = 0
            while start < o.n {
                let end = min(o.n, start + batch)
                try mem.add(vectors: Array(x[(start * o.dim)..<(end * o.dim)]), metadata: Array(metas[start..<end]))
                start = end
            }
            let buildS = (Clock.nowMs() - tb) / 1000
            let s = mem.stats()
            guard s.phase == .ready else {
                throw HMSTError(.internal, "\(description) did not train: \(s.lastTrainingError ?? "below its threshold")")
            }
            let trainS = (s.lastTrainingMs ?? 0) / 1000
            let rss1 = rssBytes()
            StandardStream.error.write("\(description): built in \(buildS) s (training \(trainS) s)\n")
            for nprobe in o.nprobes where nprobe <= max(1, s.nlist) {
                _ = try mem.search(queries: Array(q[0..<(o.dim * 10)]), k: o.k, nprobe: nprobe)  // warm-up
                let t1 = Clock.nowMs()
                let got = try mem.search(queries: q, k: o.k, nprobe: nprobe)
                let batchMs = Clock.nowMs() - t1
                var found = 0
                for (hits, want) in zip(got, truth) { found += hits.filter { want.contains($0.id) }.count }
                let nSingle = min(o.nSingle, o.nQueries)
                let t2 = Clock.nowMs()
                for i in 0..<nSingle {
                    _ = try mem.search(query: Array(q[(i * o.dim)..<((i + 1) * o.dim)]), k: o.k, nprobe: nprobe)
                }
                let singleMs = Clock.nowMs() - t2
                let w = JSONWriter()
                w.object {
                    w.field("bench", "memory")
                    w.field("index", description)
                    w.field("n", o.n)
                    w.field("dim", o.dim)
                    w.field("metric", "cosine")
                    w.field("threads", Threads.count)
                    w.field("nlist", s.nlist)
                    w.field("nprobe", nprobe)
                    w.field("build_s", round4(buildS))
                    w.field("train_s", round4(trainS))
                    w.field("add_s", round4(buildS - trainS))
                    w.field("index_mb", round4(Double(s.indexBytes) / 1e6))
                    w.field("rss_mb", round4(Double(rss1) / 1e6))
                    w.field("rss_delta_mb", round4(Double(rss1 - rss0) / 1e6))
                    w.field("recall_at_\(o.k)", round4(Double(found) / Double(o.nQueries * o.k)))
                    w.field("qps_batch", round4(Double(o.nQueries) / (batchMs / 1000)))
                    w.field("qps_single", round4(Double(nSingle) / (singleMs / 1000)))
                    w.field("ms_per_query_single", round4(singleMs / Double(nSingle)))
                    w.field("queries", o.nQueries)
                    w.field("data", "mixture of \(o.clusters) gaussians (noise \(o.noise)) in \(o.latent) latent dims, random linear map, +0.05 ambient noise")
                }
                print(w.output)
                fflush(stdout)
            }
        }
    }
}

// RetrievalBench: `hmst-bench retrieval` and `hmst-bench lexical`.
//   retrieval --model CKPT --pairs PAIRS.jsonl [--distractors FILE] [--max-distractors N]
//             [--index Flat] [--candidates 50] [--lexical-weights 1,3] [--k 4]
//     PAIRS: one {"question": "...", "fact": "..."} per line (other keys ignored; a fact shared
//     by several questions is stored once); FILE: distractor texts, one per line. Every fact and
//     distractor goes into one SemanticMemory (model embeddings + BM25); each question is asked
//     in dense, lexical and hybrid mode (one line per lexical weight). JSON lines: the build
//     (embedding and indexing seconds), then per mode recall@1 and recall@k of the gold fact's
//     text and queries/s (query embedding excluded; its mean ms is reported once).
//   lexical [--n 10000,1000000] [--queries 200]
//     The lexical index alone at scale, on synthetic short texts (10 words drawn by Zipf from
//     50k made-up words, as benchmarks/fts5_probe.py): adds into a SemanticMemory (dim 4, Flat),
//     save, load (which rebuilds the BM25 index from the texts), the rebuild alone, and BM25
//     top-50 query latency for 6-word queries. Compare with fts5_probe.py's SQLite FTS5 numbers.
import Foundation
import HMSTCore

enum RetrievalBench {
    struct Pair {
        let question: String
        let fact: String
    }

    static func readPairs(_ path: String) throws -> [Pair] {
        try RetrieverTrainer.readPairs(path: path).map { Pair(question: $0.question, fact: $0.fact) }
    }

    static func r4(_ x: Double) -> Double { (x * 10000).rounded() / 10000 }

    static func line(_ pairs: [(String, Any)]) {
        let w = JSONWriter()
        w.object {
            for (k, v) in pairs {
                switch v {
                case let s as String: w.field(k, s)
                case let i as Int: w.field(k, i)
                case let d as Double: w.field(k, d)
                case let f as Float: w.field(k, Double(f))
                default: w.field(k, "\(v)")
                }
            }
        }
        print(w.output)
        fflush(stdout)
    }

    static func runRetrieval(model path: String, pairs pairsPath: String, distractors: String?, maxDistractors: Int, index: String,
                             candidates: Int, lexicalWeights: [Float], k: Int) throws {
        let model = try LanguageModel.load(path: path)
        let pairs = try readPairs(pairsPath)
        var texts: [String] = []
        var seen = Set<String>()
        for p in pairs where seen.insert(p.fact).inserted { texts.append(p.fact) }
        let nFacts = texts.count
        if let distractors {
            for l in try FileIO.readText(distractors).lines() where texts.count - nFacts < maxDistractors {
                let t = l.trimmingCharacters(in: .whitespaces)
                if !t.isEmpty, seen.insert(t).inserted { texts.append(t) }
            }
        }
        let mem = try SemanticMemory(config: SemanticMemoryConfig(dim: model.embeddingDim, description: index))
        var t0 = Clock.nowMs()
        let vectors = try mem.embeddings(of: texts, model: model)
        let embedS = (Clock.nowMs() - t0) / 1000
        t0 = Clock.nowMs()
        let ids = try mem.add(vectors: vectors, metadata: texts.map { MemoryMetadata(text: $0) }, embeddedBy: model)
        let indexS = (Clock.nowMs() - t0) / 1000
        let gold = Dictionary(uniqueKeysWithValues: zip(texts.prefix(nFacts), ids.prefix(nFacts)))
        line([("bench", "retrieval"), ("phase", "build"), ("model", path), ("facts", nFacts), ("distractors", texts.count - nFacts),
              ("questions", pairs.count), ("index", index), ("embedder", model.embedderName), ("embed_s", r4(embedS)), ("index_s", r4(indexS))])

        t0 = Clock.nowMs()
        let queries = try pairs.map { try mem.queryEmbedding(of: $0.question, model: model) }
        let embedMs = (Clock.nowMs() - t0) / Double(pairs.count)
        var runs: [(String, RetrievalOptions)] = [("dense", RetrievalOptions(mode: .dense, k: k)), ("lexical", RetrievalOptions(mode: .lexical, k: k))]
        for w in lexicalWeights {
            var o = RetrievalOptions(mode: .hybrid, k: k)
            o.nCandidates = candidates
            o.lexicalWeight = w
            runs.append(("hybrid", o))
        }
        for (name, o) in runs {
            var at1 = 0, atK = 0
            let t1 = Clock.nowMs()
            for (i, p) in pairs.enumerated() {
                let hits = try mem.retrieve(text: p.question, query: queries[i], options: o)
                guard let g = gold[p.fact] else { continue }
                if hits.first?.id == g { at1 += 1 }
                if hits.contains(where: { $0.id == g }) { atK += 1 }
            }
            let s = (Clock.nowMs() - t1) / 1000
            var fields: [(String, Any)] = [("bench", "retrieval"), ("mode", name)]
            if name == "hybrid" {
                fields += [("rrf_k", Double(o.rrfK)), ("candidates", o.nCandidates), ("lexical_weight", Double(o.lexicalWeight))]
            }
            fields += [("recall_at_1", r4(Double(at1) / Double(pairs.count))), ("recall_at_\(k)", r4(Double(atK) / Double(pairs.count))),
                       ("qps", r4(Double(pairs.count) / max(s, 1e-9))), ("query_embed_ms", r4(embedMs))]
            line(fields)
        }
    }

    /// Synthetic short texts: 10 words each, drawn by a Zipf law from `vocab` made-up words.
    static func syntheticTexts(n: Int, seed: UInt64) -> (texts: [String], rng: RNG) {
        var rng = RNG(seed: seed)
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let vocab = (0..<50_000).map { _ in String((0..<(3 + Int(rng.next() % 7))).map { _ in letters[Int(rng.next() % 26)] }) }
        var cdf: [Double] = []
        var total = 0.0
        for i in 0..<vocab.count { total += 1 / Double(i + 1); cdf.append(total) }
        func word() -> String {
            let u = rng.nextDouble() * total
            var lo = 0, hi = cdf.count - 1
            while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] < u { lo = mid + 1 } else { hi = mid } }
            return vocab[lo]
        }
        let texts = (0..<n).map { _ in (0..<10).map { _ in word() }.joined(separator: " ") }
        return (texts, rng)
    }

    static func runLexical(sizes: [Int], nQueries: Int) throws {
        for n in sizes {
            var (texts, rng) = syntheticTexts(n: n, seed: 1)
            let dir = NSTemporaryDirectory() + "hmst-bench-lexical-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let mem = try SemanticMemory(config: SemanticMemoryConfig(dim: 4, description: "Flat"))
            var v = [Float](repeating: 0, count: n * 4)
            for i in 0..<n { v[i * 4 + i % 4] = 1 }
            var t0 = Clock.nowMs()
            _ = try mem.add(vectors: v, metadata: texts.map { MemoryMetadata(text: $0, timestamp: 0) })
            let addS = (Clock.nowMs() - t0) / 1000
            t0 = Clock.nowMs()
            try mem.save(directory: dir)
            let saveS = (Clock.nowMs() - t0) / 1000
            t0 = Clock.nowMs()
            let back = try SemanticMemory.load(directory: dir)
            let loadS = (Clock.nowMs() - t0) / 1000
            t0 = Clock.nowMs()
            _ = try BM25Index(texts: texts)
            let rebuildS = (Clock.nowMs() - t0) / 1000
            let queries = (0..<nQueries).map { _ in
                let words = texts[Int(rng.next() % UInt64(n))].split(separator: " ")
                return (0..<6).map { _ in String(words[Int(rng.next() % UInt64(words.count))]) }.joined(separator: " ")
            }
            var o = RetrievalOptions(mode: .lexical, k: 50)
            o.nCandidates = 50
            t0 = Clock.nowMs()
            for q in queries { _ = try back.retrieve(text: q, query: nil, options: o) }
            let queryMs = (Clock.nowMs() - t0) / Double(nQueries)
            line([("bench", "lexical"), ("engine", "hmst-bm25-in-memory"), ("n", n), ("terms", back.lexicalCounts.terms),
                  ("add_s", r4(addS)), ("save_s", r4(saveS)), ("load_s", r4(loadS)), ("rebuild_s", r4(rebuildS)),
                  ("query_ms", r4(queryMs)), ("rss_mb", MemoryBench.rssBytes() / (1 << 20))])
            _ = mem
        }
    }
}

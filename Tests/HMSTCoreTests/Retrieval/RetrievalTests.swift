// Retrieval: the lexical tokenizer, BM25 scores against hand-computed values, reciprocal rank
// fusion by hand, removal (and compaction) against a freshly built index, save/load of both
// memories, and question -> fact retrieval where BM25 finds what a random model's vectors miss.
import XCTest
@testable import HMSTCore

final class LexicalIndexTests: XCTestCase {
    func testTokenizer() {
        XCTAssertEqual(LexicalTokenizer.terms("What is the Capital-of FRANCE? 42ème, x_y"), ["capital", "france", "42ème", "x", "y"])
        XCTAssertEqual(LexicalTokenizer.terms("The cat", dropStopwords: false), ["the", "cat"])
        XCTAssertEqual(LexicalTokenizer.terms("  ...  "), [])
    }

    /// Three documents, N = 3, avgdl = 10/3, k1 = 1.2, b = 0.75 (values from the formula in
    /// BM25Index.swift, worked in Python):
    ///   "cat":      idf = ln(1 + 1.5/2.5) = ln 1.6; d1 (tf 1, |D| 3) 0.490051, d2 (tf 2) 0.664957
    ///   "dog fast": d2 = ln 1.6 · 2.2/2.11 = 0.490051; d3 (|D| 4) = (ln 1.6 + ln(8/3)) · 2.2/2.38 = 1.341106
    func testBM25MatchesHandComputedScores() throws {
        let ix = BM25Index()
        try ix.insert(id: 1, terms: LexicalTokenizer.terms("cat sat mat"))
        try ix.insert(id: 2, terms: LexicalTokenizer.terms("Cat, cat; dog"))
        try ix.insert(id: 3, terms: LexicalTokenizer.terms("dog runs fast far"))
        let cat = ix.search(terms: ["cat"], limit: 10)
        XCTAssertEqual(cat.map(\.id), [2, 1])
        XCTAssertEqual(cat[0].score, 0.664957, accuracy: 1e-5)
        XCTAssertEqual(cat[1].score, 0.490051, accuracy: 1e-5)
        let dogFast = ix.search(terms: LexicalTokenizer.terms("the dog, fast? dog"), limit: 10)
        XCTAssertEqual(dogFast.map(\.id), [3, 2])
        XCTAssertEqual(dogFast[0].score, 1.341106, accuracy: 1e-5)
        XCTAssertEqual(dogFast[1].score, 0.490051, accuracy: 1e-5)
        XCTAssertEqual(try XCTUnwrap(ix.score(id: 3, terms: ["dog", "fast"])), 1.341106, accuracy: 1e-5)
        XCTAssertEqual(ix.score(id: 1, terms: ["dog"]), 0)
        XCTAssertNil(ix.score(id: 9, terms: ["dog"]))
        XCTAssertEqual(ix.search(terms: ["cat"], limit: 1).map(\.id), [2])
        XCTAssertEqual(ix.search(terms: ["zebra"], limit: 5), [])
        XCTAssertThrowsError(try ix.insert(id: 1, terms: ["again"]))
    }

    func testDocumentFrequenciesAndLexicalCoverageByHand() throws {
        let ix = BM25Index()
        try ix.insert(id: 1, terms: LexicalTokenizer.terms("cat sat mat"))
        try ix.insert(id: 2, terms: LexicalTokenizer.terms("Cat, cat; dog"))
        try ix.insert(id: 3, terms: LexicalTokenizer.terms("dog runs fast far"))
        let (n, df) = ix.documentFrequencies(["cat", "fast", "zebra"])
        XCTAssertEqual(n, 3); XCTAssertEqual(df, [2, 1, 0])
        let scoped = ix.documentFrequencies(["cat", "dog"], within: { $0 != 3 })
        XCTAssertEqual(scoped.n, 2); XCTAssertEqual(scoped.df, [2, 1])
        let terms = LexicalCoverage.uniqueTerms("cat zebra, fast cat")
        XCTAssertEqual(terms, ["cat", "zebra", "fast"])
        // N = 3: idf(cat) = ln 1.6, idf(fast) = ln(8/3), idf(zebra) = ln 8 (no entry holds it)
        let c = LexicalCoverage(terms: terms, n: 3, df: [2, 0, 1], best: "the cat is fast")
        let total = log(1.6) + log(8.0) + log(8.0 / 3)
        XCTAssertEqual(Double(c.coverage), (log(1.6) + log(8.0 / 3)) / total, accuracy: 1e-5)
        XCTAssertEqual(c.seenCoverage, 1, accuracy: 1e-6)
        XCTAssertEqual(Double(c.novelty), log(8.0) / total, accuracy: 1e-5)
        let half = LexicalCoverage(terms: terms, n: 3, df: [2, 0, 1], best: "a cat")
        XCTAssertEqual(Double(half.seenCoverage), log(1.6) / (log(1.6) + log(8.0 / 3)), accuracy: 1e-5)
        XCTAssertEqual(LexicalCoverage(terms: terms, n: 3, df: [2, 0, 1], best: nil).coverage, 0)
        XCTAssertEqual(LexicalCoverage(terms: [], n: 3, df: [], best: "cat"), LexicalCoverage())
    }

    /// A memory's coverage of a question about an entity it holds and of one it has never seen.
    func testMemoryCoverageTellsKnownFromUnseenEntities() throws {
        let mem = try SemanticMemory(dim: 4)
        let texts = ["The capital of Florulia is Penu.", "The capital of Mendi is Render.", "Mendi was founded in 1141."]
        _ = try mem.add(vectors: (0..<3).flatMap { [Float($0 + 1), 1, 0, 0] }, metadata: texts.map { MemoryMetadata(text: $0) })
        let known = mem.lexicalCoverage(of: "What is the capital of Florulia?")
        let unseen = mem.lexicalCoverage(of: "What is the capital of Zorbania?")
        XCTAssertEqual(known.coverage, 1, accuracy: 1e-6)
        XCTAssertEqual(known.novelty, 0)
        XCTAssertLessThan(unseen.coverage, 0.3)
        XCTAssertGreaterThan(unseen.novelty, 0.7)
        XCTAssertEqual(unseen.seenCoverage, 1, accuracy: 1e-6, "what it holds of the question ('capital') is covered")
    }

    /// minCoverage keeps hits about the question's entity and drops those about another, in
    /// every mode, with each kept hit's coverage by hand. Five entries, N = 5:
    ///   "capital": df 3, idf ln(1 + 2.5/3.5) = ln(12/7); "florulia": df 2, idf ln(1 + 3.5/2.5) = ln 2.4
    ///   Mendi's capital covers 0.381 of the question, Florulia's founding 0.619
    func testCoverageFilterByHandInEveryMode() throws {
        let mem = try SemanticMemory(dim: 4)
        let texts = ["The capital of Florulia is Penu.", "The capital of Mendi is Render.", "Florulia was founded in 1141.",
                     "Mendi was founded in 1200.", "The capital of Kesh is Lor."]
        let ids = try mem.add(vectors: (0..<5).flatMap { [Float($0 + 1), 1, 0, 0] }, metadata: texts.map { MemoryMetadata(text: $0) })
        let q = "What is the capital of Florulia?"
        let total = log(12.0 / 7) + log(2.4)
        for mode in [RetrievalMode.lexical, .hybrid, .dense] {
            var o = RetrievalOptions(mode: mode, k: 5)
            let all = try mem.retrieve(text: q, query: [1, 1, 0, 0], options: o)
            XCTAssertTrue(all.allSatisfy { $0.coverage == nil }, "no filter, no coverage")
            o.minCoverage = 0.5
            let kept = try mem.retrieve(text: q, query: [1, 1, 0, 0], options: o)
            XCTAssertEqual(Set(kept.map(\.id)), [ids[0], ids[2]], "\(mode): the two Florulia entries")
            let byId = Dictionary(uniqueKeysWithValues: kept.map { ($0.id, Double($0.coverage ?? -1)) })
            XCTAssertEqual(try XCTUnwrap(byId[ids[0]]), 1, accuracy: 1e-6)
            XCTAssertEqual(try XCTUnwrap(byId[ids[2]]), log(2.4) / total, accuracy: 1e-5)
            XCTAssertEqual(kept.map(\.id), all.map(\.id).filter { byId[$0] != nil }, "\(mode): order kept")
            o.minCoverage = 0.9
            XCTAssertEqual(try mem.retrieve(text: q, query: [1, 1, 0, 0], options: o).map(\.id), [ids[0]])
            o.k = 1
            o.minCoverage = 0.5   // filtered before the k best are taken: a Florulia entry, never Mendi's
            XCTAssertTrue(try [ids[0], ids[2]].contains(XCTUnwrap(mem.retrieve(text: q, query: [1, 1, 0, 0], options: o).first?.id)))
        }
        // a word no entry holds weighs nothing: "name" does not lower the gold's coverage
        var lo = RetrievalOptions(mode: .lexical, k: 5)
        lo.minCoverage = 0.99
        XCTAssertEqual(try mem.retrieve(text: "Name the capital of Florulia.", query: nil, options: lo).map(\.id), [ids[0]])
        var o = RetrievalOptions(mode: .dense, k: 2)
        o.minCoverage = 0.5
        XCTAssertThrowsError(try mem.retrieve(text: nil, query: [1, 1, 0, 0], options: o)) {
            XCTAssertTrue("\($0)".contains("min_coverage"))
        }
        for bad: Float in [-0.1, 1.5, .nan] {
            o.minCoverage = bad
            XCTAssertThrowsError(try mem.retrieve(text: q, query: [1, 1, 0, 0], options: o)) {
                XCTAssertTrue("\($0)".contains("min_coverage"))
            }
        }
        // the episodic tier filters the same way, and only returned hits count as accesses
        var ec = EpisodicMemoryConfig()
        ec.stateSize = 4
        let epi = try EpisodicMemory(inputSize: 8, config: ec)
        var eids: [Int64] = []
        for (i, t) in texts.enumerated() { eids.append(try epi.add(key: [Float(i + 1), 1, 0, 0], text: t)) }
        var eo = RetrievalOptions(mode: .lexical, k: 5)
        eo.minCoverage = 0.5
        XCTAssertEqual(Set(try epi.retrieve(text: q, key: nil, options: eo).map(\.id)), [eids[0], eids[2]])
        XCTAssertEqual(try epi.entry(id: eids[1]).accessCount, 0)
        XCTAssertEqual(try epi.entry(id: eids[0]).accessCount, 1)
    }

    func testRemoveMatchesAFreshIndexAndCompacts() throws {
        var rng = RNG(seed: 3)
        let words = (0..<40).map { "w\($0)" }
        let docs = (0..<3000).map { _ in (0..<(3 + Int(rng.next() % 6))).map { _ in words[Int(rng.next() % 40)] } }
        let ix = BM25Index()
        for (i, d) in docs.enumerated() { try ix.insert(id: Int64(i), terms: d) }
        let gone = Set((0..<3000).filter { $0 % 7 != 0 })   // removes 2571: compaction runs
        for i in gone { XCTAssertTrue(ix.remove(id: Int64(i), terms: docs[i])) }
        XCTAssertFalse(ix.remove(id: 1, terms: docs[1]))
        let fresh = BM25Index()
        for (i, d) in docs.enumerated() where !gone.contains(i) { try fresh.insert(id: Int64(i), terms: d) }
        XCTAssertEqual(ix.count, fresh.count)
        for q in [["w1"], ["w2", "w30"], ["w5", "w5", "w39"]] {
            let a = ix.search(terms: q, limit: 20), b = fresh.search(terms: q, limit: 20)
            XCTAssertEqual(a.map(\.id), b.map(\.id))
            for (x, y) in zip(a, b) { XCTAssertEqual(x.score, y.score, accuracy: 1e-5) }
        }
        try ix.insert(id: 1, terms: ["w1"])   // a removed id may come back
        XCTAssertTrue(ix.contains(1))
    }

    func testTopKSelection() {
        let hits = (0..<500).map { LexicalHit(id: Int64($0), score: Float(($0 * 37) % 101)) }
        XCTAssertEqual(TopK.select(hits, k: 7), Array(hits.sorted(by: TopK.better).prefix(7)))
    }

    /// dense A,B,C and lexical C,D (ids 1..4), rrfK 60: C = 1/63 + 1/61 = 0.0322664, A = 1/61,
    /// B = D = 1/62 (tie: equal best rank 2, so the smaller id, B, first).
    func testReciprocalRankFusionByHand() {
        let r = RankFusion.fuse(dense: [(1, 0.9), (2, 0.8), (3, 0.7)], lexical: [(3, 5.0), (4, 2.0)], k: 10, rrfK: 60)
        XCTAssertEqual(r.map(\.id), [3, 1, 2, 4])
        XCTAssertEqual(r[0].score, Float(1.0 / 63 + 1.0 / 61), accuracy: 1e-7)
        XCTAssertEqual(r[1].score, Float(1.0 / 61), accuracy: 1e-7)
        XCTAssertEqual(r[2].score, Float(1.0 / 62), accuracy: 1e-7)
        XCTAssertEqual(r[0].dense, RetrievalPart(score: 0.7, rank: 3))
        XCTAssertEqual(r[0].lexical, RetrievalPart(score: 5.0, rank: 1))
        XCTAssertNil(r[1].lexical)
        XCTAssertNil(r[3].dense)
        XCTAssertEqual(r[3].lexical, RetrievalPart(score: 2.0, rank: 2))
        XCTAssertEqual(RankFusion.fuse(dense: [(1, 0.9), (2, 0.8), (3, 0.7)], lexical: [(3, 5.0), (4, 2.0)], k: 2).map(\.id), [3, 1])
        // lexical weight 2: C = 1/63 + 2/61, D = 2/62, A = 1/61, B = 1/62
        let w = RankFusion.fuse(dense: [(1, 0.9), (2, 0.8), (3, 0.7)], lexical: [(3, 5.0), (4, 2.0)], k: 4, lexicalWeight: 2)
        XCTAssertEqual(w.map(\.id), [3, 4, 1, 2])
        XCTAssertEqual(w[1].score, Float(2.0 / 62), accuracy: 1e-7)
    }

    /// fusionScore puts hits of any mode on RRF's scale: a hybrid hit's own score, a lexical
    /// hit at rank r 1/(60 + r) where its own score is BM25 (what the engine merges tiers by).
    func testFusionScoreIsTheHybridScaleForEveryMode() {
        func hits(_ t: [(id: Int64, score: Float, dense: RetrievalPart?, lexical: RetrievalPart?)]) -> [RetrievalHit] {
            t.map { RetrievalHit(id: $0.id, score: $0.score, dense: $0.dense, lexical: $0.lexical, text: "") }
        }
        var o = RetrievalOptions()
        let hybrid = hits(RankFusion.fuse(dense: [(1, 0.9), (2, 0.8), (3, 0.7)], lexical: [(3, 5.0), (4, 2.0)], k: 10, rrfK: 60))
        for h in hybrid { XCTAssertEqual(h.fusionScore(o), h.score, accuracy: 1e-7) }
        o.lexicalWeight = 2
        let weighted = hits(RankFusion.fuse(dense: [(1, 0.9), (2, 0.8), (3, 0.7)], lexical: [(3, 5.0), (4, 2.0)], k: 4, lexicalWeight: 2))
        for h in weighted { XCTAssertEqual(h.fusionScore(o), h.score, accuracy: 1e-7) }
        o.mode = .lexical   // weights are hybrid's alone
        let lexical = hits(RankFusion.single([(7, 9.5), (8, 6.0)], dense: false))
        XCTAssertEqual(lexical.map(\.score), [9.5, 6.0])
        XCTAssertEqual(lexical.map { $0.fusionScore(o) }, [Float(1.0 / 61), Float(1.0 / 62)])
        // so a lexical tier's best no longer outranks a hybrid tier's best agreed hit
        XCTAssertGreaterThan(hybrid[0].fusionScore(RetrievalOptions()), lexical[0].fusionScore(o))
    }
}

final class MemoryRetrievalTests: XCTestCase {
    private func tempDir() -> String {
        let d = NSTemporaryDirectory() + "hmst-retrieval-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        addTeardownBlock { _ = try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    private static let texts = ["the cat sat on the mat", "Paris is the capital of France", "dogs chase cats in the park"]

    func testSemanticModesRemoveAndSaveLoad() throws {
        let mem = try SemanticMemory(dim: 4, description: "Flat")
        let v: [Float] = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
        let ids = try mem.add(vectors: v, metadata: Self.texts.map { MemoryMetadata(text: $0) })
        var o = RetrievalOptions(mode: .lexical, k: 3)
        let lex = try mem.retrieve(text: "capital of france?", query: nil, options: o)
        XCTAssertEqual(lex.map(\.id), [ids[1]])
        XCTAssertEqual(lex[0].text, Self.texts[1])
        XCTAssertNil(lex[0].dense)
        XCTAssertEqual(lex[0].lexical?.rank, 1)

        o.mode = .dense
        let dense = try mem.retrieve(text: nil, query: [0, 0, 1, 0], options: o)
        XCTAssertEqual(dense.first?.id, ids[2])
        XCTAssertEqual(try XCTUnwrap(dense.first?.score), 1, accuracy: 1e-6)
        XCTAssertNil(dense[0].lexical)

        o.mode = .hybrid
        let hy = try mem.retrieve(text: "cat on a mat", query: [0, 0, 1, 0], options: o)
        // dense ranks 2 (c), then 0 and 1 tied at 0 (FAISS order); lexical: doc 0 ("cat", "mat"), doc 2 ("cats" is another term)
        XCTAssertEqual(Set(hy.prefix(2).map(\.id)), [ids[0], ids[2]])
        let top = try XCTUnwrap(hy.first { $0.id == ids[0] })
        XCTAssertEqual(top.lexical?.rank, 1)
        XCTAssertNotNil(top.dense)

        XCTAssertThrowsError(try mem.retrieve(text: nil, query: [0, 0, 1, 0], options: RetrievalOptions(mode: .hybrid))) { e in
            XCTAssertTrue("\(e)".contains("text"), "\(e)")
        }
        XCTAssertThrowsError(try mem.retrieve(text: "x", query: nil, options: RetrievalOptions(mode: .dense)))
        XCTAssertThrowsError(try mem.retrieve(text: "x", query: [1, 2], options: RetrievalOptions(mode: .dense)))
        XCTAssertThrowsError(try mem.retrieve(text: "x", query: nil, options: RetrievalOptions(mode: .lexical, k: 0)))

        _ = try mem.remove(ids: [ids[1]])
        XCTAssertEqual(try mem.retrieve(text: "capital of france", query: nil, options: RetrievalOptions(mode: .lexical)), [])
        let dir = tempDir()
        try mem.save(directory: dir)
        let back = try SemanticMemory.load(directory: dir)
        XCTAssertEqual(back.lexicalCounts.documents, 2)
        let a = try mem.retrieve(text: "cat mat park", query: nil, options: RetrievalOptions(mode: .lexical))
        let b = try back.retrieve(text: "cat mat park", query: nil, options: RetrievalOptions(mode: .lexical))
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.map(\.id), [ids[0], ids[2]])
        XCTAssertEqual(try back.retrieve(text: "france", query: nil, options: RetrievalOptions(mode: .lexical)), [])

        let empty = try SemanticMemory(dim: 4, description: "Flat")
        XCTAssertEqual(try empty.retrieve(text: "cat", query: [1, 0, 0, 0], options: RetrievalOptions()), [])
    }

    func testEpisodicModesEvictionRemoveAndSaveLoad() throws {
        var c = EpisodicMemoryConfig()
        c.stateSize = 4
        c.maxEntries = 3
        let mem = try EpisodicMemory(inputSize: 8, config: c)
        var ids: [Int64] = []
        for (i, t) in Self.texts.enumerated() {
            var key = [Float](repeating: 0, count: 4)
            key[i] = 1
            ids.append(try mem.add(key: key, text: t, importance: 0.5, timestamp: Double(i)))
        }
        let lex = try mem.retrieve(text: "capital france", key: nil, options: RetrievalOptions(mode: .lexical))
        XCTAssertEqual(lex.map(\.id), [ids[1]])
        XCTAssertEqual(try mem.entry(id: ids[1]).accessCount, 1)
        let hy = try mem.retrieve(text: "park", key: [0, 0, 0.9, 0.1], options: RetrievalOptions(mode: .hybrid, k: 1))
        XCTAssertEqual(hy.map(\.id), [ids[2]])
        XCTAssertEqual(hy[0].dense?.rank, 1)
        XCTAssertEqual(hy[0].lexical?.rank, 1)
        XCTAssertEqual(hy[0].score, Float(2.0 / 61), accuracy: 1e-7)

        // eviction (full at 3: the oldest of equal importance goes) drops its text from the index
        let newId = try mem.add(key: [0, 0, 0, 1], text: "a new fact about zebras", importance: 0.5, timestamp: 10)
        XCTAssertThrowsError(try mem.entry(id: ids[0]))
        XCTAssertEqual(try mem.retrieve(text: "cat mat", key: nil, options: RetrievalOptions(mode: .lexical)), [])
        XCTAssertEqual(try mem.retrieve(text: "zebras", key: nil, options: RetrievalOptions(mode: .lexical)).map(\.id), [newId])
        XCTAssertEqual(mem.remove(ids: [newId]), 1)
        XCTAssertEqual(try mem.retrieve(text: "zebras", key: nil, options: RetrievalOptions(mode: .lexical)), [])

        let dir = tempDir()
        try mem.save(directory: dir)
        let back = try EpisodicMemory.load(directory: dir)
        let q = "capital of the park"
        let a = try mem.retrieve(text: q, key: nil, options: RetrievalOptions(mode: .lexical))
        let b = try back.retrieve(text: q, key: nil, options: RetrievalOptions(mode: .lexical))
        XCTAssertEqual(a.map(\.id), b.map(\.id))
        XCTAssertEqual(a.map(\.score), b.map(\.score))
        XCTAssertEqual(Set(a.map(\.id)), [ids[1], ids[2]])
    }

    /// Hybrid searches on two threads while a third adds and removes: every hit names a live
    /// entry whose text carries the query word (both parts read under one lock).
    func testConcurrentRetrieveWithAddsAndRemoves() throws {
        let mem = try SemanticMemory(dim: 4, description: "Flat")
        func vec(_ i: Int) -> [Float] { [Float(i % 7) + 1, Float(i % 5), 1, Float(i % 3)] }
        _ = try mem.add(vectors: (0..<200).flatMap(vec), metadata: (0..<200).map { MemoryMetadata(text: "item w\($0 % 10) n\($0)") })
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 3) { worker in
            if worker == 0 {
                for i in 200..<600 {
                    guard let id = try? mem.add(vectors: vec(i), metadata: [MemoryMetadata(text: "item w\(i % 10) n\(i)")]).first else {
                        failures.withLock { $0 += 1 }; continue
                    }
                    if i % 2 == 0 { _ = try? mem.remove(ids: [id - 150]) }
                }
            } else {
                for i in 0..<300 {
                    let word = "w\(i % 10)"
                    do {
                        for h in try mem.retrieve(text: word, query: vec(i), options: RetrievalOptions(mode: .hybrid, k: 5))
                        where h.lexical != nil && !h.text.contains(word) {
                            failures.withLock { $0 += 1 }
                        }
                    } catch { failures.withLock { $0 += 1 } }
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, 0)
        XCTAssertEqual(mem.lexicalCounts.documents, mem.count)
    }

    /// Facts about made-up places, questions in other words: a random model's pooled vectors
    /// cannot tell the facts apart, BM25 finds them by their rare names, hybrid keeps that.
    func testQuestionFindsFactLexicallyWhereDenseMisses() throws {
        let model = try byteModel(hidden: 32)
        var rng = RNG(seed: 11)
        func name() -> String { String((0..<7).map { _ in Character(UnicodeScalar(UInt8(97 + rng.next() % 26))) }).capitalized }
        let facts = (0..<40).map { _ in (place: name(), city: name()) }
        let mem = try SemanticMemory(dim: 32, description: "Flat")
        var ids: [Int64] = []
        for f in facts { ids.append(try mem.add(text: "The capital of \(f.place) is \(f.city).", model: model)) }
        var hits: [String: (at1: Int, at4: Int)] = [:]
        for (name, mode, lexicalWeight) in [("dense", RetrievalMode.dense, Float(1)), ("lexical", .lexical, 1), ("hybrid", .hybrid, 1), ("hybrid-w3", .hybrid, 3)] {
            var at1 = 0, at4 = 0
            var o = RetrievalOptions(mode: mode, k: 4)
            o.lexicalWeight = lexicalWeight
            for (i, f) in facts.enumerated() {
                let r = try mem.retrieve(text: "Which city is the capital of \(f.place)?", model: model, options: o)
                if r.first?.id == ids[i] { at1 += 1 }
                if r.contains(where: { $0.id == ids[i] }) { at4 += 1 }
            }
            hits[name] = (at1, at4)
        }
        print("question -> fact, 40 facts, random model:", hits.sorted { $0.key < $1.key })
        XCTAssertEqual(hits["lexical"]?.at1, 40)
        // equal-weight RRF lets the random dense ranks dilute BM25's (32 of 40 at 4 here); a
        // lexical weight of 3 keeps every fact in the top 4
        XCTAssertGreaterThan(hits["hybrid"]?.at4 ?? 0, hits["dense"]?.at4 ?? 40)
        XCTAssertGreaterThanOrEqual(hits["hybrid-w3"]?.at4 ?? 0, 38)
        XCTAssertLessThan(hits["dense"]?.at1 ?? 40, 20, "a random model's vectors should not find these facts")
    }
}

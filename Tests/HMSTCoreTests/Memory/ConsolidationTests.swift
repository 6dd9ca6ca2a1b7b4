// Consolidation: the importance score's terms, a pass that moves the important entries into
// semantic memory (found there by the text's embedding), and the background thread running
// while other threads search both memories.
import XCTest
@testable import HMSTCore

final class ConsolidationTests: XCTestCase {
    func entry(_ id: Int64, access: Int = 0, age: Double = 0, surprise: Double = 0, importance: Double = 0.5) -> EpisodicEntry {
        EpisodicEntry(id: id, text: "t\(id)", tokens: [], timestamp: 1000 - age, accessCount: access, surprise: surprise, importance: importance)
    }

    func testScoreTerms() {
        let o = ConsolidationOptions()
        let s = Consolidator.scores([entry(1), entry(2, access: 5), entry(3, age: 7200), entry(4, surprise: 6), entry(5, importance: 1)],
                                    now: 1000, options: o)
        XCTAssertGreaterThan(s[1], s[0])          // accessed more
        XCTAssertLessThan(s[2], s[0])             // older
        XCTAssertGreaterThan(s[3], s[0])          // more surprising
        XCTAssertGreaterThan(s[4], s[0])          // caller-important
        XCTAssertTrue(s.allSatisfy { $0 >= 0 && $0 <= 1 })
        var bad = o
        bad.accessWeight = -1
        XCTAssertThrowsError(try bad.validate())
    }

    func testPassMovesImportantEntries() throws {
        let model = try byteModel()
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 16
        let episodic = try EpisodicMemory(model: model, config: cfg)
        let semantic = try SemanticMemory(config: SemanticMemoryConfig(dim: model.dims.C, description: "Flat"))
        let keep = try episodic.add(text: "an unimportant note", model: model, importance: 0, timestamp: 0)
        let move = try episodic.add(text: "the launch code is 0000", model: model, importance: 1)
        for _ in 0..<3 { _ = try episodic.search(text: "the launch code is 0000", model: model, k: 1) }
        var o = ConsolidationOptions()
        o.threshold = 0.5
        let r = try Consolidator.run(episodic: episodic, semantic: semantic, model: model, options: o)
        XCTAssertEqual(r.scanned, 2)
        XCTAssertEqual(r.moved.map(\.episodic), [move])
        XCTAssertEqual(episodic.allEntries().map(\.id), [keep])
        // found in semantic memory by the embedding of its text, with its provenance
        let hits = try semantic.search(query: try model.embed(text: "the launch code is 0000"), k: 1)
        XCTAssertEqual(hits.first?.id, r.moved[0].semantic)
        XCTAssertEqual(hits.first?.metadata.text, "the launch code is 0000")
        XCTAssertEqual(hits.first?.metadata.source, "episodic:\(move)")
        XCTAssertEqual(hits.first?.score ?? 0, 1, accuracy: 1e-4)
        // a semantic memory of another dimension is refused
        let wrong = try SemanticMemory(config: SemanticMemoryConfig(dim: 7, description: "Flat"))
        XCTAssertThrowsError(try Consolidator.run(episodic: episodic, semantic: wrong, model: model))
    }

    func testBackgroundConsolidationDoesNotBlockSearches() throws {
        let model = try byteModel()
        var cfg = EpisodicMemoryConfig()
        cfg.stateSize = 16
        let episodic = try EpisodicMemory(model: model, config: cfg)
        let semantic = try SemanticMemory(config: SemanticMemoryConfig(dim: model.dims.C, description: "Flat"))
        for i in 0..<12 { try episodic.add(text: "memory number \(i)", model: model, importance: i % 2 == 0 ? 1 : 0) }
        var o = ConsolidationOptions()
        o.threshold = 0.5
        // the score is the caller's importance alone: the searches below raise two entries' access
        // counts, so with access in the score how many cross the threshold would depend on how many
        // searches ran before a pass (8 instead of 6 under load)
        (o.accessWeight, o.recencyWeight, o.surpriseWeight) = (0, 0, 0)
        let bg = try BackgroundConsolidator(episodic: episodic, semantic: semantic, model: model, options: o, interval: 0.05)
        try bg.start()
        XCTAssertThrowsError(try bg.start())
        let query = try model.embed(text: "memory number 4")
        let searches = Locked(0), failures = Locked(0)
        let deadline = Clock.nowMs() + 3000
        DispatchQueueless.concurrent(3) { _ in
            while Clock.nowMs() < deadline && semantic.stats().count < 6 {
                do {
                    _ = try semantic.search(query: query, k: 3)
                    _ = try episodic.search(key: [Float](repeating: 1, count: 16), k: 2)
                    searches.withLock { $0 += 1 }
                } catch let e as HMSTError where e.message.contains("empty") {
                    searches.withLock { $0 += 1 }
                } catch { failures.withLock { $0 += 1 } }
            }
        }
        bg.stop()
        bg.stop()
        XCTAssertEqual(failures.get(), 0)
        XCTAssertGreaterThan(searches.get(), 0)
        XCTAssertEqual(semantic.stats().count, 6, "status \(bg.status)")
        XCTAssertEqual(episodic.count, 6)
        XCTAssertGreaterThanOrEqual(bg.status.passes, 1)
        XCTAssertNil(bg.status.lastError)
    }
}

/// Runs body(i) for i in 0..<n on n threads and waits (tests only; no Foundation here).
enum DispatchQueueless {
    static func concurrent(_ n: Int, _ body: @escaping (Int) -> Void) {
        final class Box { let body: (Int) -> Void; let i: Int; init(_ b: @escaping (Int) -> Void, _ i: Int) { body = b; self.i = i } }
        var threads: [pthread_t] = []
        for i in 0..<n {
            var t = pthread_t()
            let ctx = Unmanaged.passRetained(Box(body, i)).toOpaque()
            pthread_create(&t, nil, { raw in
                let b = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                b.body(b.i)
                return nil
            }, ctx)
            threads.append(t)
        }
        for t in threads { pthread_join(t, nil) }
    }
}

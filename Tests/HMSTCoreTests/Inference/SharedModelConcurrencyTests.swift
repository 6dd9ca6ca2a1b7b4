// The server's shared-model path without HTTP: several Sessions (slots) generating at once on
// one read-only model give exactly what each gives alone, and owner-scoped searches run while
// other threads add to and save the memory tiers. Run under ThreadSanitizer with
//   swift test --sanitize=thread --scratch-path .build-tsan --filter SharedModelConcurrencyTests
import Dispatch
import XCTest
@testable import HMSTCore

final class SharedModelConcurrencyTests: XCTestCase {
    func testSessionsGenerateConcurrentlyOnOneModel() throws {
        let model = try byteModel()
        var p = SessionParams()
        p.nCtx = 128
        p.nThreads = 1
        let prompts = (0..<4).map { Array("prompt number \($0): the cat".utf8).map(Int32.init) }
        func run(_ s: Session, _ i: Int) throws -> [Int32] {
            s.reset()
            var r = GenerationRequest()
            r.maxTokens = 24
            r.sampling.temperature = i % 2 == 0 ? 0 : 0.9   // greedy and seeded sampling
            r.sampling.seed = UInt64(i)
            return try s.generate(prompt: prompts[i], r).tokens
        }
        let alone = try (0..<4).map { try run(try Session(decoder: model.decoder, params: p), $0) }
        let sessions = try (0..<4).map { _ in try Session(decoder: model.decoder, params: p) }
        let results = Locked([[Int32]](repeating: [], count: 4))
        let failures = Locked([String]())
        for _ in 0..<2 {   // twice: the second round reuses every session's cache
            DispatchQueue.concurrentPerform(iterations: 4) { i in
                do {
                    let t = try run(sessions[i], i)
                    results.withLock { $0[i] = t }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            XCTAssertEqual(failures.get(), [])
            XCTAssertEqual(results.get(), alone)
        }
        XCTAssertTrue(alone.allSatisfy { $0.count == 24 })
    }

    func testOwnerSearchesWhileAddingAndSaving() throws {
        let model = try byteModel()
        let dir = tempDirectory("memory-concurrency")
        defer { removeTree(dir) }
        let store = try MemoryStore(directory: dir)
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        _ = try store.episodic(creatingFor: model, config: c)
        _ = try store.semantic(creatingFor: model, description: "Flat")
        _ = try store.add(text: "seed entry", model: model, tier: .semantic, owner: "o0")
        _ = try store.add(text: "seed entry", model: model, tier: .episodic, owner: "o0")
        let failures = Locked([String]())
        let perWriter = 12
        DispatchQueue.concurrentPerform(iterations: 5) { w in
            do {
                switch w {
                case 0, 1:   // writers, one per tier
                    for i in 0..<perWriter {
                        _ = try store.add(text: "writer \(w) fact \(i)", model: model, tier: w == 0 ? .semantic : .episodic, owner: "o\(i % 3)")
                    }
                case 2:      // saver
                    for _ in 0..<4 { try store.save() }
                default:     // searchers: only their owner's entries, ever
                    for i in 0..<perWriter {
                        let owner = "o\(i % 3)"
                        for h in try store.search(text: "fact \(i)", model: model, tier: .both, k: 4, owner: owner) {
                            if h.owner != owner { failures.withLock { $0.append("owner \(owner) saw \(h.owner)'s entry") } }
                        }
                    }
                }
            } catch {
                failures.withLock { $0.append("thread \(w): \(error)") }
            }
        }
        XCTAssertEqual(failures.get(), [])
        try store.save()
        let again = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertEqual(again.semantic?.count, perWriter + 1)
        XCTAssertEqual(again.episodic?.count, perWriter + 1)
        XCTAssertEqual(try again.ids(owner: "o1", tier: .semantic).count, perWriter / 3)
    }
}

// The engine's memory scoped by owner (EngineQuery.owner, RetrievalOptions.owner): BM25 over
// one owner's documents scores as an index holding only them (a hand-computed value); both
// tiers' retrieval in every mode returns only the owner's entries, with the scores a memory
// holding only them gives; and an engine asked as one owner, over a memory shared with
// another, observes the same signals, cites the same entries and gives the same answer as an
// engine over the owner's entries alone. Plus the engine over a host's session, and one
// controller shared by concurrent engines (as the server's slots share the checkpoint's).
import Foundation
import XCTest
@testable import HMSTCore

final class EngineOwnerTests: XCTestCase {
    /// A random micro model with the golden BPE tokenizer (the engine needs a Tokenizer).
    func engineModel() throws -> LanguageModel {
        let tok = try Tokenizer(jsonPath: Golden.root + "/tokenizer/hmst_tokenizer.json")
        let c = try MixtralConfig(vocabSize: tok.vocabSize, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
                                numKeyValueHeads: 2, maxPositionEmbeddings: 512, ropeTheta: 10000, numLocalExperts: 4, numExpertsPerTok: 2)
        return try LanguageModel.random(config: c, seed: 5, tokenizer: tok)
    }

    let aliceFacts = ["alice keeps her red bicycle in the garage", "alice was born in lisbon", "alice drinks green tea"]
    let bobFacts = ["bob keeps his red car in the garage", "bob was born in oslo", "bob red red red garage"]

    func testBM25WithinScoresAsAnIndexOfTheDocumentsAlone() {
        let mixed = BM25Index(), alone = BM25Index()
        let docs: [(Int64, String, Bool)] = [(1, "red apple", true), (2, "green pear", true), (3, "red red red", false), (4, "red car", false)]
        for (id, text, mine) in docs {
            try? mixed.insert(id: id, terms: LexicalTokenizer.terms(text))
            if mine { try? alone.insert(id: id, terms: LexicalTokenizer.terms(text)) }
        }
        let mine: Set<Int64> = [1, 2]
        let q = LexicalTokenizer.terms("red")
        let scoped = mixed.search(terms: q, limit: 10, within: { mine.contains($0) })
        // N = 2, df(red) = 1, avgdl = 2, |D1| = 2, tf = 1:
        // idf = ln(1 + 1.5 / 1.5) = ln 2; score = ln 2 · 2.2 / (1 + 1.2 · (0.25 + 0.75 · 2 / 2)) = ln 2
        XCTAssertEqual(scoped.map(\.id), [1])
        XCTAssertEqual(scoped[0].score, Float(log(2.0)), accuracy: 1e-6)
        XCTAssertEqual(scoped, alone.search(terms: q, limit: 10))
        // unscoped, the other documents change the statistics (and come first)
        let all = mixed.search(terms: q, limit: 10)
        XCTAssertEqual(Set(all.map(\.id)), [1, 3, 4])
        XCTAssertNotEqual(all.first { $0.id == 1 }?.score, scoped[0].score)
        // nobody in scope, or a scope without the term: nothing
        XCTAssertEqual(mixed.search(terms: q, limit: 10, within: { _ in false }), [])
        XCTAssertEqual(mixed.search(terms: q, limit: 10, within: { $0 == 2 }), [])
        // a removed document is out of scope too
        mixed.remove(id: 1, terms: LexicalTokenizer.terms("red apple"))
        XCTAssertEqual(mixed.search(terms: q, limit: 10, within: { mine.contains($0) }), [])
    }

    /// Semantic (Flat) and episodic tiers holding alice's facts and, when withBob, bob's
    /// interleaved with them, plus one entry without an owner.
    func memories(_ model: LanguageModel, withBob: Bool) throws -> (SemanticMemory, EpisodicMemory) {
        let sem = try SemanticMemory(dim: model.embeddingDim, description: "Flat")
        let epi = try EpisodicMemory(model: model)
        for (i, a) in aliceFacts.enumerated() {
            _ = try sem.add(text: a, model: model, owner: "alice")
            _ = try epi.add(text: a, model: model, owner: "alice")
            if withBob {
                _ = try sem.add(text: bobFacts[i], model: model, owner: "bob")
                _ = try epi.add(text: bobFacts[i], model: model, owner: "bob")
            }
        }
        _ = try sem.add(text: "an unowned red garage", model: model)
        _ = try epi.add(text: "an unowned red garage", model: model)
        return (sem, epi)
    }

    func assertSameHits(_ a: [RetrievalHit], _ b: [RetrievalHit], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.map(\.text), b.map(\.text), file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.score, y.score, accuracy: 1e-5, file: file, line: line)
            XCTAssertEqual(x.dense?.rank, y.dense?.rank, file: file, line: line)
            XCTAssertEqual(x.lexical?.rank, y.lexical?.rank, file: file, line: line)
            XCTAssertEqual(x.lexical?.score ?? 0, y.lexical?.score ?? 0, accuracy: 1e-5, file: file, line: line)
            XCTAssertEqual(x.dense?.score ?? 0, y.dense?.score ?? 0, accuracy: 1e-5, file: file, line: line)
        }
    }

    func testRetrievalInBothTiersSeesOnlyTheOwner() throws {
        let model = try engineModel()
        let (sem, epi) = try memories(model, withBob: true)
        let (semA, epiA) = try memories(model, withBob: false)
        XCTAssertEqual(sem.count(owner: "alice"), 3)
        XCTAssertEqual(sem.count(owner: ""), 1)
        XCTAssertEqual(sem.count(owner: nil), 7)
        XCTAssertEqual(epi.count(owner: "bob"), 3)
        XCTAssertEqual(epi.count(owner: "carol"), 0)
        let bobText = Set(bobFacts)
        for mode in RetrievalMode.allCases {
            var o = RetrievalOptions(mode: mode, k: 10)
            o.owner = "alice"
            for query in ["bob keeps his red car in the garage", "red garage", "where was alice born"] {
                let s = try sem.retrieve(text: query, model: model, options: o)
                let e = try epi.retrieve(text: query, model: model, options: o)
                XCTAssertFalse((s + e).contains { bobText.contains($0.text) || $0.text.hasPrefix("an unowned") }, "\(mode) \(query)")
                // a memory of alice's entries alone gives the same hits and scores (owner "alice"
                // there too, to leave out the unowned entry)
                assertSameHits(s, try semA.retrieve(text: query, model: model, options: o))
                assertSameHits(e, try epiA.retrieve(text: query, model: model, options: o))
            }
            // bob's own query text finds his entry first, for him
            o.owner = "bob"
            let lexicalOrHybrid = mode != .dense
            if lexicalOrHybrid {
                XCTAssertEqual(try sem.retrieve(text: "bob was born in oslo", model: model, options: o).first?.text, "bob was born in oslo")
                XCTAssertEqual(try epi.retrieve(text: "bob was born in oslo", model: model, options: o).first?.text, "bob was born in oslo")
            }
            XCTAssertTrue(try sem.retrieve(text: "red garage", model: model, options: o).allSatisfy { bobText.contains($0.text) })
            // owner "" is the unowned entry; an unknown owner gets nothing
            o.owner = ""
            XCTAssertEqual(try epi.retrieve(text: "red garage", model: model, options: o).map(\.text), ["an unowned red garage"])
            o.owner = "carol"
            XCTAssertEqual(try sem.retrieve(text: "red garage", model: model, options: o), [])
            XCTAssertEqual(try epi.retrieve(text: "red garage", model: model, options: o), [])
        }
    }

    func testEngineAskedAsOneOwnerIgnoresTheOther() throws {
        let model = try engineModel()
        let (sem, epi) = try memories(model, withBob: true)
        let (semA, epiA) = try memories(model, withBob: false)
        let shared = try Engine(model: model, semantic: sem, episodic: epi)
        let alone = try Engine(model: model, semantic: semA, episodic: epiA)
        for question in ["bob keeps his red car in the garage", "where was alice born?"] {
            var q = EngineQuery(question)
            q.policy = .fixed(EngineDecisions(episodic: true, semantic: true))
            q.maxTokens = 6
            q.owner = "alice"
            let r = try shared.ask(q)
            let ra = try alone.ask(q)
            XCTAssertEqual(r.owner, "alice")
            XCTAssertFalse(r.citations.isEmpty)
            XCTAssertTrue(r.citations.allSatisfy { aliceFacts.contains($0.text) }, "\(r.citations.map(\.text))")
            XCTAssertEqual(r.citations.map(\.text), ra.citations.map(\.text))
            XCTAssertEqual(r.tokens, ra.tokens)
            XCTAssertEqual(r.answer, ra.answer)
            // the controller's view: the same signals (bob's entries are not even counted)
            let (s, sa) = (r.signals, ra.signals)
            XCTAssertEqual(s.semantic.entries, 3)
            XCTAssertEqual(s.episodic.entries, 3)
            for (x, y) in [(s.semantic, sa.semantic), (s.episodic, sa.episodic)] {
                XCTAssertEqual(x.entries, y.entries)
                XCTAssertEqual(x.capacity, y.capacity)
                XCTAssertEqual(x.topDense, y.topDense, accuracy: 1e-5)
                XCTAssertEqual(x.denseGap, y.denseGap, accuracy: 1e-5)
                XCTAssertEqual(x.topLexical, y.topLexical, accuracy: 1e-5)
                XCTAssertEqual(x.lexicalGap, y.lexicalGap, accuracy: 1e-5)
            }
            let v = shared.observation(try shared.observe(q)), va = alone.observation(try alone.observe(q))
            for (x, y) in zip(v, va) { XCTAssertEqual(x, y, accuracy: 1e-5) }
            // bob sees only his; nil (no scope) sees everyone's
            q.owner = "bob"
            XCTAssertTrue(try shared.ask(q).citations.allSatisfy { bobFacts.contains($0.text) })
            q.owner = nil
            let all = try shared.ask(q)
            XCTAssertNil(all.owner)
            XCTAssertEqual(all.signals.semantic.entries, 7)
            XCTAssertEqual(all.citations.count, 4)   // k = 4 of the 14 entries
            // an owner with no entries: no memory at all, as an engine without tiers
            q.owner = "carol"
            let none = try shared.ask(q)
            XCTAssertEqual(none.citations, [])
            XCTAssertEqual(none.signals.semantic, TierSignals())
            XCTAssertEqual(none.signals.episodic, TierSignals())
        }
        XCTAssertTrue(EngineReport.json(try shared.ask({ var q = EngineQuery("x"); q.owner = "alice"; q.maxTokens = 1; return q }())).contains(#""owner":"alice""#))
    }

    func testSharedControllerDecidesConcurrently() throws {
        let model = try engineModel()
        let net = try ActorCritic(observationSize: StateSummary.size, actionHeads: [2, 2, 2, 2, 2], seed: 3)
        let mc = try MetaController(network: net, hidden: [64, 64], model: model, exitLayer: 1, projectionSeed: 7)
        let obs = (0..<32).map { i in (0..<StateSummary.size).map { j in Float(sin(Double(i * 31 + j))) } }
        let expected = try obs.map { try mc.decide($0).1.yes }
        XCTAssertGreaterThan(Set(expected.map { $0[0] }).count, 1)   // the observations matter
        let wrong = Locked(0)
        // the network's forward writes its own activation buffers: without the lock in decide,
        // concurrent calls read each other's halves
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for rep in 0..<300 {
                let i = (t * 7 + rep) % obs.count
                let got = try? mc.decide(obs[i]).1.yes
                if got != expected[i] { wrong.withLock { $0 += 1 } }
            }
        }
        XCTAssertEqual(wrong.withLock { $0 }, 0)
    }

    func testEngineOnAHostSession() throws {
        let model = try engineModel()
        let other = try engineModel()
        var sp = SessionParams()
        sp.nCtx = 256
        let session = try Session(decoder: model.decoder, params: sp)
        XCTAssertThrowsError(try Engine(model: other, session: session)) { XCTAssertTrue("\($0)".contains("another model"), "\($0)") }
        let e = try Engine(model: model, session: session)
        var q = EngineQuery("who keeps a red bicycle?")
        q.policy = .fixed(EngineDecisions(earlyExit: true, expertSelection: true))
        q.maxTokens = 3
        var attempts: [Int] = []
        let r = try e.ask(q, onAttempt: { n, d in attempts.append(n); XCTAssertTrue(d.earlyExit) })
        XCTAssertEqual(attempts, [0])
        XCTAssertTrue(r.decisions.earlyExit)
        // the host's session is left empty at the full budget, ready for its other users
        XCTAssertEqual(session.position, 0)
        XCTAssertEqual(session.budget, ComputeBudget())
        q.text = "   "
        XCTAssertThrowsError(try e.ask(q))
        XCTAssertEqual(session.budget, ComputeBudget())
    }
}

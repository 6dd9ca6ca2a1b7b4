// The kNN-LM control (Eval/KNNLM.swift): λ = 0 is the model alone, computed independently; a
// datastore holding the exact fact lowers the answer's NLL; bad settings are refused.
import XCTest
@testable import HMSTCore

final class KNNLMTests: XCTestCase {
    let facts = ["the capital of velmora is tarsk.", "the river of ostrel is quen.", "the colour of brin is teal."]

    func testLambdaZeroIsTheModelAndTheDatastoreHelps() throws {
        let model = try byteModel()
        var cfg = KNNLMConfig()
        cfg.k = 8
        cfg.lambdas = [0, 0.5, 1]
        let knn = try KNNLM(model: model, texts: facts, config: cfg)
        XCTAssertEqual(knn.count, facts.reduce(0) { $0 + $1.utf8.count - 1 })
        let prompt = "the capital of velmora is", target = " tarsk."
        let (nll, n) = try knn.targetNLL(prompt: prompt, target: target)
        XCTAssertEqual(n, target.utf8.count)
        // λ = 0: the sum of −log p of the target bytes, from an independent encode of the whole text
        let all = Array((prompt + target).utf8).map(Int32.init)
        let e = try model.encode(tokens: all)
        XCTAssertEqual(e.nextTokenLogProbs.count, all.count - 1)
        XCTAssertEqual(e.surprise, -e.nextTokenLogProbs.reduce(0, +) / Double(all.count - 1), accuracy: 1e-9)
        let ref = -e.nextTokenLogProbs[(prompt.utf8.count - 1)...].reduce(0, +)
        XCTAssertEqual(nll[0], ref, accuracy: 1e-6)
        // every query's own key is in the store at distance 0 with the right next token
        XCTAssertLessThan(nll[1], nll[0] - 1)
        XCTAssertTrue(nll[2].isFinite)
        // a target the store never saw gains nothing at λ = 1 beyond the floor: still finite
        let (other, _) = try knn.targetNLL(prompt: "the capital of velmora is", target: " zzz")
        XCTAssertTrue(other.allSatisfy { $0.isFinite })
    }

    func testBadSettings() throws {
        let model = try byteModel()
        var cfg = KNNLMConfig()
        cfg.k = 0
        XCTAssertThrowsError(try KNNLM(model: model, texts: facts, config: cfg))
        cfg = KNNLMConfig()
        cfg.lambdas = [1.5]
        XCTAssertThrowsError(try KNNLM(model: model, texts: facts, config: cfg))
        XCTAssertThrowsError(try KNNLM(model: model, texts: ["a"]))  // one token: no pairs
        let knn = try KNNLM(model: model, texts: facts)
        XCTAssertThrowsError(try knn.targetNLL(prompt: "", target: " x"))
    }
}

import Foundation
import XCTest
@testable import HMSTCore

final class MixtralConfigTests: XCTestCase {
    /// Mixtral-8x7B's published sizes: 46,702,792,704 parameters, 12,879,925,248 active.
    func testParameterCountsMatchMixtral8x7B() throws {
        let c = try MixtralConfig(vocabSize: 32000, hiddenSize: 4096, intermediateSize: 14336, numHiddenLayers: 32,
                                numAttentionHeads: 32, numKeyValueHeads: 8, maxPositionEmbeddings: 32768,
                                ropeTheta: 1e6, numLocalExperts: 8, numExpertsPerTok: 2)
        XCTAssertEqual(c.parameterCount, 46_702_792_704)
        XCTAssertEqual(c.activeParameterCount, 12_879_925_248)
    }

    func testPresetsAreNearTheSeedSizes() throws {
        let want: [String: (Double, Double)] = ["nano": (5e6, 20e6), "micro": (5e6, 20e6), "tiny": (80e6, 130e6), "small": (0.8e9, 1.2e9),
                                                "base": (10e9, 14e9), "large": (26e9, 34e9)]
        for name in MixtralConfig.presetNames {
            let c = try MixtralConfig.preset(name)
            let (lo, hi) = want[name]!
            XCTAssertTrue(Double(c.parameterCount) >= lo && Double(c.parameterCount) <= hi, "\(name): \(c.parameterCount)")
            XCTAssertLessThan(c.activeParameterCount, c.parameterCount)
            XCTAssertEqual(try MixtralConfig(json: c.json()), c)
        }
    }

    func testRopeThetaIsReadAtTopLevelAndUnderRopeParameters() throws {
        let base = #"{"model_type":"mixtral","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1"#
        XCTAssertEqual(try MixtralConfig(json: try JSONValue.parse(base + #","rope_theta":5000}"#)).ropeTheta, 5000)
        XCTAssertEqual(try MixtralConfig(json: try JSONValue.parse(base + #","rope_parameters":{"rope_theta":7000,"rope_type":"default"}}"#)).ropeTheta, 7000)
        XCTAssertThrowsError(try MixtralConfig(json: try JSONValue.parse(base + #","rope_parameters":{"rope_theta":7000,"rope_type":"yarn"}}"#)))
        XCTAssertThrowsError(try MixtralConfig(json: try JSONValue.parse(base + #","head_dim":3}"#)))
        XCTAssertThrowsError(try MixtralConfig(json: try JSONValue.parse(base + #","num_experts_per_tok":9}"#)))
        XCTAssertThrowsError(try MixtralConfig(json: try JSONValue.parse(base.replacingOccurrences(of: "\"vocab_size\":10", with: "\"vocab_size\":-1") + "}")))
        XCTAssertNoThrow(try MixtralConfig(json: try JSONValue.parse(base + #","head_dim":null,"eos_token_id":[2,3]}"#)))
        // transformers reads the last of two vocab_size keys; a first-match reader the first: refused
        XCTAssertThrowsError(try JSONValue.parse(base + #","vocab_size":11}"#))
    }
}

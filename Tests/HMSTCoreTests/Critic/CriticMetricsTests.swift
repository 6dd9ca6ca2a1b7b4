// The critic's metrics against hand-computed values (AUROC with ties, ECE over equal-width bins
// and its simulated noise floor, Brier, AUROC per stratum) and its fits: logistic regression
// recovering known coefficients, temperature and Platt calibration recovering a known map.
import XCTest
@testable import HMSTCore

final class CriticMetricsTests: XCTestCase {
    func testAUROCAgainstHandValues() {
        // sklearn's roc_auc_score example: 3 of the 4 positive/negative pairs ranked right
        XCTAssertEqual(CriticMetrics.auroc(scores: [0.1, 0.4, 0.35, 0.8], labels: [false, false, true, true]), 0.75, accuracy: 1e-12)
        // ties count one half: positives {2, 3} vs negatives {1, 2}: 1 + 0.5 + 1 + 1 over 4 pairs
        XCTAssertEqual(CriticMetrics.auroc(scores: [1, 2, 2, 3], labels: [false, true, false, true]), 0.875, accuracy: 1e-12)
        XCTAssertEqual(CriticMetrics.auroc(scores: [0.5, 0.5, 0.5], labels: [true, false, false]), 0.5, accuracy: 1e-12)
        // perfect and reversed
        XCTAssertEqual(CriticMetrics.auroc(scores: [0.9, 0.1], labels: [true, false]), 1)
        XCTAssertEqual(CriticMetrics.auroc(scores: [0.1, 0.9], labels: [true, false]), 0)
        // undefined with one class, or a NaN score
        XCTAssertTrue(CriticMetrics.auroc(scores: [0.1, 0.9], labels: [true, true]).isNaN)
        XCTAssertTrue(CriticMetrics.auroc(scores: [.nan, 0.9], labels: [true, false]).isNaN)
    }

    func testAUROCMatchesPairCountingOnRandomData() {
        var rng = RNG(seed: 11)
        let n = 300
        let scores = (0..<n).map { _ in Double(Int(rng.nextDouble() * 20)) / 20 }   // many ties
        let labels = (0..<n).map { _ in rng.nextDouble() < 0.4 }
        var wins = 0.0, pairs = 0.0
        for i in 0..<n where labels[i] {
            for j in 0..<n where !labels[j] {
                pairs += 1
                wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0
            }
        }
        XCTAssertEqual(CriticMetrics.auroc(scores: scores, labels: labels), wins / pairs, accuracy: 1e-12)
    }

    func testECEAgainstHandValues() {
        // bin 0: p̄ 0.05, ȳ 0 (1 answer); bin 1: p̄ 0.15, ȳ 0.5 (2); bin 9: p̄ 0.95, ȳ 1 (1)
        // ECE = 1/4·0.05 + 2/4·0.35 + 1/4·0.05 = 0.2
        XCTAssertEqual(CriticMetrics.ece(probabilities: [0.05, 0.15, 0.15, 0.95], labels: [false, true, false, true]), 0.2, accuracy: 1e-12)
        // p = 1 falls in the last bin; p = 0.1 opens bin 1
        XCTAssertEqual(CriticMetrics.ece(probabilities: [1.0], labels: [true]), 0, accuracy: 1e-12)
        XCTAssertEqual(CriticMetrics.bin(1.0, 10), 9)
        XCTAssertEqual(CriticMetrics.bin(0.1, 10), 1)
        XCTAssertEqual(CriticMetrics.bin(0.0999, 10), 0)
        // two bins: [0.2, 0.4] with labels [0, 1] share bin 0: |0.5 − 0.3| = 0.2; one bin gives the same
        XCTAssertEqual(CriticMetrics.ece(probabilities: [0.2, 0.4], labels: [false, true], bins: 2), 0.2, accuracy: 1e-12)
        // a different binning: 10 bins split them: 1/2·0.2 + 1/2·0.6 = 0.4
        XCTAssertEqual(CriticMetrics.ece(probabilities: [0.2, 0.4], labels: [false, true]), 0.4, accuracy: 1e-12)
        XCTAssertTrue(CriticMetrics.ece(probabilities: [], labels: []).isNaN)
    }

    func testECENoiseFloor() {
        // one answer at 0.5: |y − 0.5| = 0.5 whatever y is
        XCTAssertEqual(CriticMetrics.eceNoiseFloor(probabilities: [0.5], draws: 50, seed: 1).mean, 0.5, accuracy: 1e-12)
        // two answers at 0.5: ȳ ∈ {0, ½, 1} with prob ¼, ½, ¼ -> E|ȳ − ½| = 0.25
        let two = CriticMetrics.eceNoiseFloor(probabilities: [0.5, 0.5], draws: 4000, seed: 2)
        XCTAssertEqual(two.mean, 0.25, accuracy: 0.015)
        XCTAssertEqual(two.p95, 0.5, accuracy: 1e-12)
        XCTAssertEqual(two.low, 0, accuracy: 1e-12)    // the central 95%: from 0 to ½
        XCTAssertEqual(two.high, 0.5, accuracy: 1e-12)
        // certain answers are always right: no noise
        XCTAssertEqual(CriticMetrics.eceNoiseFloor(probabilities: [1, 1, 1], draws: 20, seed: 3).mean, 0)
        // the floor shrinks like 1/sqrt(n): 2,000 answers spread over the bins stay well under 0.05
        var rng = RNG(seed: 4)
        let p = (0..<2000).map { _ in rng.nextDouble() }
        let f = CriticMetrics.eceNoiseFloor(probabilities: p, draws: 100, seed: 5)
        XCTAssertLessThan(f.mean, 0.03)
        XCTAssertGreaterThan(f.mean, 0.005)
        // seeded
        XCTAssertEqual(f.mean, CriticMetrics.eceNoiseFloor(probabilities: p, draws: 100, seed: 5).mean)
    }

    func testBrierAndStrata() {
        XCTAssertEqual(CriticMetrics.brier(probabilities: [0.9, 0.2], labels: [true, false]), 0.025, accuracy: 1e-12)
        XCTAssertEqual(CriticMetrics.brier(probabilities: [0.5], labels: [true]), 0.25, accuracy: 1e-12)
        let s = CriticMetrics.aurocByStratum(scores: [0.9, 0.1, 0.4, 0.6, 0.3], labels: [true, false, true, false, true],
                                             strata: ["a", "a", "b", "b", "c"])
        XCTAssertEqual(s.map(\.stratum), ["a", "b", "c"])
        XCTAssertEqual(s[0].auroc, 1)
        XCTAssertEqual(s[1].auroc, 0)
        XCTAssertTrue(s[2].auroc.isNaN)
        XCTAssertEqual(s.map(\.n), [2, 2, 1])
        XCTAssertEqual(s.map(\.positives), [1, 1, 1])
    }
}

final class CriticFitTests: XCTestCase {
    func testLogisticRegressionRecoversKnownCoefficients() throws {
        var rng = RNG(seed: 21)
        let n = 20000
        var x: [Double] = [], y: [Double] = []
        for _ in 0..<n {
            let a = Double(rng.nextGaussian()), b = Double(rng.nextGaussian())
            x += [a, b]
            y.append(rng.nextDouble() < CriticFit.sigmoid(2 * a - 0.5 * b - 1) ? 1 : 0)
        }
        let f = try CriticFit.logistic(x: x, y: y, n: n, d: 2, l2: 0)
        XCTAssertEqual(f.weights[0], 2, accuracy: 0.1)
        XCTAssertEqual(f.weights[1], -0.5, accuracy: 0.06)
        XCTAssertEqual(f.bias, -1, accuracy: 0.06)
    }

    func testLogisticRegressionIsOptimalWithL2() throws {
        // separable data: without L2 the weight would run off; with it the gradient vanishes
        let x: [Double] = [-2, -1, 1, 2], y: [Double] = [0, 0, 1, 1]
        let l2 = 0.5
        let f = try CriticFit.logistic(x: x, y: y, n: 4, d: 1, l2: l2)
        var gw = l2 * f.weights[0], gb = 0.0
        for i in 0..<4 {
            let p = CriticFit.sigmoid(f.weights[0] * x[i] + f.bias)
            gw += (p - y[i]) * x[i]
            gb += p - y[i]
        }
        XCTAssertEqual(gw, 0, accuracy: 1e-8)
        XCTAssertEqual(gb, 0, accuracy: 1e-8)
        XCTAssertEqual(f.bias, 0, accuracy: 1e-8)   // symmetric data
        XCTAssertGreaterThan(f.weights[0], 0.5)
        XCTAssertThrowsError(try CriticFit.logistic(x: [1, .nan], y: [0, 1], n: 2, d: 1, l2: 0))
        XCTAssertThrowsError(try CriticFit.logistic(x: [1, 2, 3], y: [0, 1], n: 2, d: 1, l2: 0))
    }

    func testCholeskySolve() throws {
        // [[4, 2], [2, 3]] x = [2, 1] -> x = [0.5, 0]
        let s = try CriticFit.solveSPD([4, 2, 2, 3], [2, 1], 2)
        XCTAssertEqual(s[0], 0.5, accuracy: 1e-12)
        XCTAssertEqual(s[1], 0, accuracy: 1e-12)
        XCTAssertThrowsError(try CriticFit.solveSPD([1, 2, 2, 1], [1, 1], 2))
    }

    /// Labels drawn from σ(z / T) for a known T; the fit finds T back.
    func testTemperatureCalibrationRecoversTheTemperature() throws {
        var rng = RNG(seed: 31)
        let n = 20000, T = 2.5
        let z = (0..<n).map { _ in 3 * Double(rng.nextGaussian()) }
        let y = z.map { rng.nextDouble() < CriticFit.sigmoid($0 / T) }
        guard case let .temperature(t) = try CriticCalibration.fit(kind: "temperature", logits: z, labels: y) else {
            return XCTFail("not a temperature")
        }
        XCTAssertEqual(t, T, accuracy: 0.12)
        // Platt finds a = 1/T, b = 0 on the same data, and a shift when there is one
        guard case let .platt(a, b) = try CriticCalibration.fit(kind: "platt", logits: z, labels: y) else { return XCTFail("not Platt") }
        XCTAssertEqual(a, 1 / T, accuracy: 0.02)
        XCTAssertEqual(b, 0, accuracy: 0.05)
        let y2 = z.map { rng.nextDouble() < CriticFit.sigmoid(0.7 * $0 - 1) }
        guard case let .platt(a2, b2) = try CriticCalibration.fit(kind: "platt", logits: z, labels: y2) else { return XCTFail("not Platt") }
        XCTAssertEqual(a2, 0.7, accuracy: 0.04)
        XCTAssertEqual(b2, -1, accuracy: 0.06)
        // calibrating makes ECE small on fresh data from the same map
        let cal = CriticCalibration.platt(a: a2, b: b2)
        let z3 = (0..<n).map { _ in 3 * Double(rng.nextGaussian()) }
        let y3 = z3.map { rng.nextDouble() < CriticFit.sigmoid(0.7 * $0 - 1) }
        XCTAssertLessThan(CriticMetrics.ece(probabilities: z3.map { cal.probability(logit: $0) }, labels: y3), 0.02)
        XCTAssertGreaterThan(CriticMetrics.ece(probabilities: z3.map(CriticFit.sigmoid), labels: y3), 0.1)
        // one class only cannot be calibrated
        XCTAssertThrowsError(try CriticCalibration.fit(kind: "platt", logits: [1, 2], labels: [true, true])) { e in
            XCTAssertTrue("\(e)".contains("both kinds"), "\(e)")
        }
        XCTAssertThrowsError(try CriticCalibration.fit(kind: "isotonic", logits: [1, 2], labels: [true, false]))
    }
}

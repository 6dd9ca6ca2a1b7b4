// CartPole-v1 against gymnasium 1.4.0: Tests/Golden/cartpole/trajectories.txt, written by
// tools/golden/make_cartpole_golden.py (fixed start states, fixed action sequences; one episode
// reaches the 500-step truncation).
import XCTest
@testable import HMSTCore

final class CartPoleTests: XCTestCase {
    func testTrajectoriesMatchGymnasium() throws {
        let text = try String(contentsOfFile: Golden.root + "/cartpole/trajectories.txt", encoding: .utf8)
        var env = CartPole()
        var nEpisodes = 0, nSteps = 0, truncations = 0
        var maxErr = 0.0
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f[0] == "episode" {
                let s = f[1...4].map { Double($0)! }
                env.setState(x: s[0], xDot: s[1], theta: s[2], thetaDot: s[3])
                nEpisodes += 1
                continue
            }
            XCTAssertEqual(f[0], "step")
            let action = Int(f[1])!
            let want = f[2...5].map { Double($0)! }
            let r = env.step([action])
            let got = [env.state.x, env.state.xDot, env.state.theta, env.state.thetaDot]
            for k in 0..<4 {
                maxErr = max(maxErr, abs(got[k] - want[k]))
                XCTAssertEqual(got[k], want[k], accuracy: 1e-6, "step \(nSteps) component \(k)")
            }
            XCTAssertEqual(r.observation, got.map { Float($0) })
            XCTAssertEqual(r.reward, Float(Double(f[6])!))
            XCTAssertEqual(r.terminated, f[7] == "1", "terminated at step \(nSteps)")
            XCTAssertEqual(r.truncated, f[8] == "1", "truncated at step \(nSteps)")
            if r.truncated { truncations += 1 }
            nSteps += 1
        }
        XCTAssertEqual(nEpisodes, 3)
        XCTAssertEqual(nSteps, 530)
        XCTAssertEqual(truncations, 1)
        XCTAssertLessThan(maxErr, 1e-12)
    }

    func testResetIsSeededAndWithinBounds() {
        var a = CartPole(), b = CartPole()
        let oa = a.reset(seed: 7), ob = b.reset(seed: 7)
        XCTAssertEqual(oa, ob)
        XCTAssertNotEqual(a.reset(seed: nil), oa)
        for s in 0..<200 {
            let o = a.reset(seed: UInt64(s))
            XCTAssertTrue(o.allSatisfy { abs($0) <= 0.05 }, "\(o)")
            XCTAssertEqual(a.elapsedSteps, 0)
        }
    }

    func testPushingOneWayTerminatesOnAngleOrPosition() {
        var env = CartPole()
        env.setState(x: 0, xDot: 0, theta: 0, thetaDot: 0)
        var n = 0
        while true {
            n += 1
            let r = env.step([0])
            XCTAssertEqual(r.reward, 1)
            if r.terminated { break }
            XCTAssertLessThan(n, 100)
        }
        XCTAssertGreaterThan(abs(env.state.theta), CartPole.thetaThreshold)
    }
}

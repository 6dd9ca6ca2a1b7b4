// CartPole-v1 with gymnasium's physics (classic_control/cartpole.py, Euler integration): the
// state is Double as gymnasium's float64, the observation its Float copy. Reward 1 per step,
// the terminating step included; terminated when |x| > 2.4 or |theta| > 12 degrees; truncated
// at 500 steps (gymnasium's TimeLimit). A reset draws each state component uniformly in
// [-0.05, 0.05) from the environment's own RNG (not numpy's, so seeds do not match gymnasium's);
// setState places the cart at a given state, as the golden trajectory test does.
import Foundation

public struct CartPole: Environment {
    public static let gravity = 9.8, massCart = 1.0, massPole = 0.1, length = 0.5, forceMag = 10.0, tau = 0.02
    public static let thetaThreshold = 12 * 2 * Double.pi / 360, xThreshold = 2.4
    public static let maxSteps = 500

    public private(set) var state: (x: Double, xDot: Double, theta: Double, thetaDot: Double) = (0, 0, 0, 0)
    public private(set) var elapsedSteps = 0
    var rng: RNG

    public init(seed: UInt64 = 0) { rng = RNG(seed: seed) }

    public var observationSize: Int { 4 }
    public var actionHeads: [Int] { [2] }

    public var observation: [Float] { [Float(state.x), Float(state.xDot), Float(state.theta), Float(state.thetaDot)] }

    public mutating func reset(seed: UInt64?) -> [Float] {
        if let seed { rng = RNG(seed: seed) }
        func u() -> Double { rng.nextDouble() * 0.1 - 0.05 }
        state = (u(), u(), u(), u())
        elapsedSteps = 0
        return observation
    }

    /// Starts an episode from the given state.
    public mutating func setState(x: Double, xDot: Double, theta: Double, thetaDot: Double) {
        state = (x, xDot, theta, thetaDot)
        elapsedSteps = 0
    }

    public mutating func step(_ action: [Int]) -> EnvironmentStep {
        let C = CartPole.self
        let totalMass = C.massPole + C.massCart, poleMassLength = C.massPole * C.length
        let (x, xDot, theta, thetaDot) = state
        let force = action.first == 1 ? C.forceMag : -C.forceMag
        let cosT = cos(theta), sinT = sin(theta)
        let temp = (force + poleMassLength * (thetaDot * thetaDot) * sinT) / totalMass
        let thetaAcc = (C.gravity * sinT - cosT * temp) / (C.length * (4.0 / 3.0 - C.massPole * (cosT * cosT) / totalMass))
        let xAcc = temp - poleMassLength * thetaAcc * cosT / totalMass
        state = (x + C.tau * xDot, xDot + C.tau * xAcc, theta + C.tau * thetaDot, thetaDot + C.tau * thetaAcc)
        elapsedSteps += 1
        let s = state
        let terminated = s.x < -C.xThreshold || s.x > C.xThreshold || s.theta < -C.thetaThreshold || s.theta > C.thetaThreshold
        return EnvironmentStep(observation: observation, reward: 1, terminated: terminated,
                               truncated: !terminated && elapsedSteps >= C.maxSteps)
    }
}

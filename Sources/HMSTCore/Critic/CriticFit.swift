// CriticFit: the small convex fits behind the critic: L2-regularised logistic regression by
// Newton's method (the critic's head over a few features, and the probe over the hidden
// state), standardisation, and the calibration maps fitted on a validation split: temperature
// scaling p = σ(z / T) (Guo et al. 2017) and Platt scaling p = σ(a·z + b) (Platt 1999).
// Everything here is in Double; n rows of d features, row-major; the products go through OpenBLAS.
import CBLAS

public struct Standardizer: Sendable, Equatable {
    /// [d] column means and standard deviations (a constant column gets std 1)
    public var mean: [Float]
    public var std: [Float]

    /// Column statistics of x [n, d] (population std).
    public init(x: [Double], n: Int, d: Int) {
        var m = [Double](repeating: 0, count: d), s = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { m[j] += x[i * d + j] } }
        for j in 0..<d { m[j] /= Double(max(1, n)) }
        for i in 0..<n { for j in 0..<d { let v = x[i * d + j] - m[j]; s[j] += v * v } }
        mean = m.map { Float($0) }
        std = s.map { v in
            let sd = (v / Double(max(1, n))).squareRoot()
            return sd > 1e-12 && sd.isFinite ? Float(sd) : 1
        }
    }

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    /// x [n, d] standardised in place.
    public func apply(_ x: inout [Double], n: Int, d: Int) {
        for i in 0..<n { for j in 0..<d { x[i * d + j] = (x[i * d + j] - Double(mean[j])) / Double(std[j]) } }
    }
}

public struct LogisticFit: Sendable, Equatable {
    /// [d] weights and the intercept: z = w·x + b, p = σ(z)
    public var weights: [Double]
    public var bias: Double
    public var iterations: Int

    public func logit(_ x: UnsafeBufferPointer<Double>) -> Double {
        var z = bias
        for j in weights.indices { z += weights[j] * x[j] }
        return z
    }
}

public enum CriticFit {
    @inline(__always) public static func sigmoid(_ z: Double) -> Double {
        z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
    }

    /// log(1 + e^z), stable.
    @inline(__always) static func softplus(_ z: Double) -> Double { z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)) }

    /// Minimises Σ_i [softplus(z_i) − y_i·z_i] + (l2/2)·|w|², z = X·w + b (b not penalised), by
    /// Newton's method with step halving. x: [n, d]. Converges when the step is below tol.
    /// Per iteration: z and the gradient by dgemv, the Hessian Xₐᵀ·S·Xₐ (Xₐ = [X, 1]) by dsyrk on
    /// the rows scaled by √s_i, s_i = p_i(1 − p_i), then a Cholesky solve of [d+1, d+1].
    public static func logistic(x: [Double], y: [Double], n: Int, d: Int, l2: Double,
                                maxIterations: Int = 50, tol: Double = 1e-8) throws -> LogisticFit {
        guard n >= 1, d >= 0, x.count == n * d, y.count == n else {
            throw HMSTError.invalidArgument("logistic fit: x has \(x.count) values, y \(y.count), for n = \(n), d = \(d)")
        }
        guard l2 >= 0, l2.isFinite else { throw HMSTError.invalidArgument("logistic fit: l2 \(l2) must be finite and >= 0") }
        if let bad = x.first(where: { !$0.isFinite }) { throw HMSTError.invalidArgument("logistic fit: a feature value is \(bad)") }
        let D = d + 1   // parameters: w then b
        // xa [n, D] = [X, 1]: the intercept as a last column of ones
        var xa = [Double](repeating: 1, count: n * D)
        for i in 0..<n { for j in 0..<d { xa[i * D + j] = x[i * d + j] } }
        var theta = [Double](repeating: 0, count: D)
        var z = [Double](repeating: 0, count: n)
        /// z[n] = Xₐ · t, and the objective at t
        func objective(_ t: [Double]) -> Double {
            cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(D), 1, xa, Int32(D), t, 1, 0, &z, 1)
            var f = 0.0
            for i in 0..<n { f += softplus(z[i]) - y[i] * z[i] }
            for j in 0..<d { f += 0.5 * l2 * t[j] * t[j] }
            return f
        }
        var f = objective(theta)
        var it = 0
        var r = [Double](repeating: 0, count: n)
        var grad = [Double](repeating: 0, count: D)
        var hess = [Double](repeating: 0, count: D * D)
        var scaled = [Double](repeating: 0, count: n * D)
        while it < maxIterations {
            it += 1
            _ = objective(theta)   // z at theta
            for i in 0..<n {
                let p = sigmoid(z[i])
                r[i] = p - y[i]
                let w = max(p * (1 - p), 1e-12).squareRoot()
                for j in 0..<D { scaled[i * D + j] = w * xa[i * D + j] }
            }
            // grad[D] = Xₐᵀ · r + λ·w ;  hess[D, D] (upper) = scaledᵀ · scaled + λ·I (not on b)
            cblas_dgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(D), 1, xa, Int32(D), r, 1, 0, &grad, 1)
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(D), Int32(n), 1, scaled, Int32(D), 0, &hess, Int32(D))
            for j in 0..<d { grad[j] += l2 * theta[j]; hess[j * D + j] += l2 }
            hess[d * D + d] += 1e-9   // the intercept alone: keeps H definite when every p saturates
            for j in 0..<D { for k in 0..<j { hess[j * D + k] = hess[k * D + j] } }
            guard let step = try? solveSPD(hess, grad, D) else { break }
            var t = 1.0
            var next = theta
            var fNext = f
            while t > 1e-6 {
                for j in 0..<D { next[j] = theta[j] - t * step[j] }
                fNext = objective(next)
                if fNext <= f + 1e-12 * abs(f) { break }
                t *= 0.5
            }
            if t <= 1e-6 { break }
            let moved = zip(next, theta).reduce(0.0) { max($0, abs($1.0 - $1.1)) }
            theta = next
            f = fNext
            if moved < tol { break }
        }
        guard theta.allSatisfy(\.isFinite) else { throw HMSTError(.internal, "logistic fit diverged") }
        return LogisticFit(weights: Array(theta[0..<d]), bias: theta[d], iterations: it)
    }

    /// Solves A·x = b for a symmetric positive definite A [n, n] (Cholesky). Throws when A is not.
    static func solveSPD(_ a: [Double], _ b: [Double], _ n: Int) throws -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0, s.isFinite else { throw HMSTError(.internal, "matrix is not positive definite") }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        var y = b
        for i in 0..<n {
            var s = y[i]
            for k in 0..<i { s -= l[i * n + k] * y[k] }
            y[i] = s / l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = y[i]
            for k in (i + 1)..<n { s -= l[k * n + i] * y[k] }
            y[i] = s / l[i * n + i]
        }
        return y
    }
}

/// The map from the critic's raw logit z to a calibrated probability.
public enum CriticCalibration: Sendable, Equatable {
    case none
    /// p = σ(z / T), T > 0
    case temperature(Double)
    /// p = σ(a·z + b)
    case platt(a: Double, b: Double)

    public var kind: String {
        switch self {
        case .none: return "none"
        case .temperature: return "temperature"
        case .platt: return "platt"
        }
    }

    public func probability(logit z: Double) -> Double {
        switch self {
        case .none: return CriticFit.sigmoid(z)
        case let .temperature(t): return CriticFit.sigmoid(z / t)
        case let .platt(a, b): return CriticFit.sigmoid(a * z + b)
        }
    }

    /// Fits the map on validation logits and labels by maximum likelihood: kind "temperature"
    /// (one parameter) or "platt" (two). Needs both labels present.
    public static func fit(kind: String, logits: [Double], labels: [Bool]) throws -> CriticCalibration {
        let n = logits.count
        guard n == labels.count, n > 0 else { throw HMSTError.invalidArgument("calibration: no validation answers") }
        let pos = labels.filter { $0 }.count
        guard pos > 0, pos < n else {
            throw HMSTError.invalidArgument("calibration: the validation split has \(pos) correct answers of \(n); it needs both kinds")
        }
        let y = labels.map { $0 ? 1.0 : 0.0 }
        switch kind {
        case "none": return .none
        case "temperature":
            // logistic regression of y on z without intercept: weight a = 1/T
            let f = try CriticFit.logistic(x: logits, y: y, n: n, d: 1, l2: 0, maxIterations: 100)
            // the intercept is fitted too; refit with it pinned at 0 by a 1-D Newton on a
            var a = f.weights[0]
            for _ in 0..<100 {
                var g = 0.0, h = 0.0
                for i in 0..<n {
                    let p = CriticFit.sigmoid(a * logits[i])
                    g += (p - y[i]) * logits[i]
                    h += p * (1 - p) * logits[i] * logits[i]
                }
                guard h > 1e-12 else { break }
                let step = g / h
                a -= step
                if abs(step) < 1e-10 { break }
            }
            guard a > 1e-6, a.isFinite else {
                throw HMSTError.invalidArgument("calibration: the critic's scores do not rise with correctness on the validation split (1/T = \(a)); use platt")
            }
            return .temperature(1 / a)
        case "platt":
            let f = try CriticFit.logistic(x: logits, y: y, n: n, d: 1, l2: 1e-6, maxIterations: 100)
            return .platt(a: f.weights[0], b: f.bias)
        default:
            throw HMSTError.invalidArgument("calibration \"\(kind)\": expected platt, temperature or none")
        }
    }
}

// ObservationScaling: the controller's input standardisation, (x − mean) · scale per feature,
// fitted on the training queries' state summaries and stored with the controller (CleanRL's
// PPO normalises observations the same way for continuous-control tasks). The state summary
// mixes probabilities, cosine scores, counts and projections of the query encoding, whose spreads
// differ by 10x; standardised inputs let PPO's small MLP leave the cheapest fixed action
// (measured on two query mixes over 5 entity splits each: README, "The controller").

public struct ObservationScaling: Sendable, Equatable {
    public var mean: [Float]
    /// 1 / standard deviation; 1 for a feature that does not vary in the fitted rows
    public var scale: [Float]

    public init(mean: [Float], scale: [Float]) throws {
        guard !mean.isEmpty, mean.count == scale.count, mean.allSatisfy(\.isFinite), scale.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw HMSTError.invalidArgument("observation scaling: mean and scale need the same number of finite values, scales > 0")
        }
        self.mean = mean
        self.scale = scale
    }

    /// The mean and 1/std (population) of each feature over rows.
    public static func fit(_ rows: [[Float]]) throws -> ObservationScaling {
        guard let n = rows.first?.count, n > 0, rows.allSatisfy({ $0.count == n }) else {
            throw HMSTError.invalidArgument("observation scaling: fitted on no rows, or rows of different lengths")
        }
        var mean = [Double](repeating: 0, count: n), sq = [Double](repeating: 0, count: n)
        for r in rows { for j in 0..<n { mean[j] += Double(r[j]) } }
        for j in 0..<n { mean[j] /= Double(rows.count) }
        for r in rows { for j in 0..<n { sq[j] += (Double(r[j]) - mean[j]) * (Double(r[j]) - mean[j]) } }
        let scale = sq.map { s -> Float in
            let sd = (s / Double(rows.count)).squareRoot()
            return sd > 1e-6 ? Float(1 / sd) : 1
        }
        return try ObservationScaling(mean: mean.map(Float.init), scale: scale)
    }

    public func apply(_ x: [Float]) -> [Float] {
        var out = x
        for j in 0..<min(x.count, mean.count) { out[j] = (x[j] - mean[j]) * scale[j] }
        return out
    }
}

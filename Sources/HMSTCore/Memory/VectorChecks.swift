// VectorChecks: the input checks SemanticMemory runs before FAISS sees a vector batch: shape
// against the dimension, finiteness, and the L2 normalisation the cosine metric needs. Pure
// functions; they throw INVALID_ARGUMENT naming the first bad row.

enum VectorChecks {
    /// x: [n, dim] row-major -> n. `what` names the caller in errors.
    static func rows(_ x: [Float], dim: Int, _ what: String) throws -> Int {
        guard !x.isEmpty else { throw HMSTError.invalidArgument("\(what): no vectors given") }
        guard x.count % dim == 0 else {
            throw HMSTError.invalidArgument("\(what): \(x.count) floats is not a whole number of \(dim)-dimensional vectors (dimension mismatch)")
        }
        return x.count / dim
    }

    /// Throws at the first NaN or infinity.
    static func requireFinite(_ x: [Float], dim: Int, _ what: String) throws {
        for (i, v) in x.enumerated() where !v.isFinite {
            throw HMSTError.invalidArgument("\(what): vector \(i / dim) has a non-finite value (\(v)) at component \(i % dim)")
        }
    }

    /// x: [n, dim] -> each row divided by its L2 norm; a zero row cannot be normalised.
    static func normalized(_ x: [Float], dim: Int, _ what: String) throws -> [Float] {
        var out = x
        let n = x.count / dim
        try out.withUnsafeMutableBufferPointer { p in
            for r in 0..<n {
                var ss: Double = 0
                for c in 0..<dim { let v = Double(p[r * dim + c]); ss += v * v }
                guard ss > 0, ss.isFinite else {
                    throw HMSTError.invalidArgument("\(what): vector \(r) has norm \(ss.squareRoot()); the cosine metric needs a non-zero finite norm")
                }
                let inv = Float(1 / ss.squareRoot())
                for c in 0..<dim { p[r * dim + c] *= inv }
            }
        }
        return out
    }

    /// Shape and finiteness, then normalisation for cosine: what add and search both need.
    static func prepare(_ x: [Float], dim: Int, metric: SemanticMetric, _ what: String) throws -> (x: [Float], n: Int) {
        let n = try rows(x, dim: dim, what)
        try requireFinite(x, dim: dim, what)
        return (metric == .cosine ? try normalized(x, dim: dim, what) : x, n)
    }
}

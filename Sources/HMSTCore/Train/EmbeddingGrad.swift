// Token embedding for training: a row gather forward, a scatter-add backward.

enum EmbeddingGrad {
    /// x[N, C] = E[tokens[n]]   (ids validated by the caller)
    static func forward(x: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, N: Int, C: Int) {
        for n in 0..<N { (x + n * C).update(from: table + Int(tokens[n]) * C, count: C) }
    }

    /// dE[tokens[n]] += dx[n]
    static func backward(dTable: UnsafeMutablePointer<Float>, dx: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, N: Int, C: Int) {
        for n in 0..<N {
            let row = dTable + Int(tokens[n]) * C
            for c in 0..<C { row[c] += dx[n * C + c] }
        }
    }
}

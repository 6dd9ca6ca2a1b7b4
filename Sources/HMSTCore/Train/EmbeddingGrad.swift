// Token embedding for training: a row gather forward, a scatter-add backward.

enum EmbeddingGrad {
    /// x[N, C] = E[tokens[n]]   (ids validated by the caller)
    static func forward(x: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, N: Int, C: Int) {
        parallelRows(N, grain: 256) { r in
            for n in r { (x + n * C).update(from: table + Int(tokens[n]) * C, count: C) }
        }
    }

    /// dE[tokens[n]] += dx[n], the columns split over the pool (a token may repeat, so rows
    /// cannot be; each column's sum runs over n in order, whatever the split)
    static func backward(dTable: UnsafeMutablePointer<Float>, dx: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, N: Int, C: Int) {
        let parts = N * C >= 1 << 16 ? splitRange(C, parts: min(Threads.count, max(1, C / 32))) : [0..<C]
        parallelFor(parts.count) { p in
            let cols = parts[p]
            for n in 0..<N {
                let row = dTable + Int(tokens[n]) * C, src = dx + n * C
                for c in cols { row[c] += src[c] }
            }
        }
    }
}

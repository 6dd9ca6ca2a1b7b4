// Softmax cross-entropy over logits, mean over the counted rows (target -1 = ignored).
// Rows run in parallel; the loss sums per-range partials in a fixed order.
import CKernels

enum CrossEntropy {
    /// logits: [N, V] (overwritten with probabilities), targets: [N]. Returns the mean loss
    /// and how many rows counted; dlogits = (p − onehot) / count is written by backward.
    static func forward(logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int) -> (loss: Double, count: Int) {
        let ranges = splitRange(N, parts: min(Threads.count, max(1, N / 16)))
        var sums = [Double](repeating: 0, count: ranges.count), counts = [Int](repeating: 0, count: ranges.count)
        sums.withUnsafeMutableBufferPointer { sp in
            counts.withUnsafeMutableBufferPointer { cp in
                parallelFor(ranges.count) { part in
                    var total = 0.0, count = 0
                    for n in ranges[part] {
                        let row = logits + n * V
                        _ = hk_softmax(row, V)  // row now holds p
                        let t = Int(targets[n])
                        guard t >= 0 else { continue }
                        // -log p_t, from p clamped to stay finite
                        total += -Double(log(max(row[t], Float.leastNormalMagnitude)))
                        count += 1
                    }
                    sp[part] = total
                    cp[part] = count
                }
            }
        }
        let count = counts.reduce(0, +)
        return (count > 0 ? sums.reduce(0, +) / Double(count) : 0, count)
    }

    /// Differentiates forward: probs (from forward) become dlogits = scale · (p − onehot).
    static func backward(probs: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int, scale: Float) {
        parallelRows(N, grain: 16) { r in
            for n in r {
                let row = probs + n * V
                let t = Int(targets[n])
                if t < 0 {
                    row.update(repeating: 0, count: V)
                    continue
                }
                for v in 0..<V { row[v] *= scale }
                row[t] -= scale
            }
        }
    }
}

// Softmax cross-entropy over logits, mean over the counted rows (target -1 = ignored).
import CKernels

enum CrossEntropy {
    /// logits: [N, V] (overwritten with probabilities), targets: [N]. Returns the mean loss
    /// and how many rows counted; dlogits = (p − onehot) / count is written by backward.
    static func forward(logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int) -> (loss: Double, count: Int) {
        var total = 0.0
        var count = 0
        for n in 0..<N {
            let row = logits + n * V
            _ = hk_softmax(row, V)  // row now holds p
            let t = Int(targets[n])
            guard t >= 0 else { continue }
            // -log p_t = lse - z_t, computed from p to stay finite
            total += -Double(log(max(row[t], Float.leastNormalMagnitude)))
            count += 1
        }
        return (count > 0 ? total / Double(count) : 0, count)
    }

    /// Differentiates forward: probs (from forward) become dlogits = scale · (p − onehot).
    static func backward(probs: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int, scale: Float) {
        for n in 0..<N {
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

#if canImport(Glibc)
import Glibc
#endif

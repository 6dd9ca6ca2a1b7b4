// MLP: a tanh multilayer perceptron over a slice of a flat parameter buffer, forward and
// backward by hand with cblas_sgemm. Layer l maps sizes[l] -> sizes[l+1] with W [out, in]
// (row-major, as PyTorch's nn.Linear) then b [out]; tanh after every layer but the last.
// Activations of the last forward are kept for the backward; the buffers grow to the largest
// batch seen. Orthogonal initialisation as torch.nn.init.orthogonal_ with a gain per layer,
// biases 0 (CleanRL's layer_init).
import CBLAS
import Foundation

/// A fixed-size heap buffer with a stable pointer (no copy-on-write, no exclusivity checks in
/// hot loops).
public final class PPOBuffer<T> {
    public let p: UnsafeMutablePointer<T>
    public let count: Int
    public init(count: Int, value: T) {
        self.count = count
        p = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        p.initialize(repeating: value, count: max(count, 1))
    }
    deinit { p.deallocate() }
    public subscript(i: Int) -> T {
        get { p[i] }
        set { p[i] = newValue }
    }
    public var array: [T] { Array(UnsafeBufferPointer(start: p, count: count)) }
}

final class MLP {
    let sizes: [Int]
    let wOffsets: [Int]
    let bOffsets: [Int]
    let offset: Int
    let parameterCount: Int
    var outputs: [PPOBuffer<Float>] = []
    var delta = PPOBuffer<Float>(count: 0, value: 0)
    var dIn = PPOBuffer<Float>(count: 0, value: 0)
    var capacity = 0

    var nLayers: Int { sizes.count - 1 }
    var outputSize: Int { sizes[sizes.count - 1] }

    /// sizes = [input, hidden..., output]; the parameters start at `offset` of the buffer.
    init(sizes: [Int], offset: Int) {
        self.sizes = sizes
        self.offset = offset
        var w = [Int](), b = [Int](), at = offset
        for l in 0..<(sizes.count - 1) {
            w.append(at)
            at += sizes[l] * sizes[l + 1]
            b.append(at)
            at += sizes[l + 1]
        }
        wOffsets = w
        bOffsets = b
        parameterCount = at - offset
    }

    func reserve(_ B: Int) {
        guard B > capacity else { return }
        capacity = B
        outputs = (1..<sizes.count).map { PPOBuffer<Float>(count: B * sizes[$0], value: 0) }
        let widest = sizes.max() ?? 1
        delta = PPOBuffer<Float>(count: B * widest, value: 0)
        dIn = PPOBuffer<Float>(count: B * widest, value: 0)
    }

    /// Orthogonal weights scaled by gains[l], zero biases.
    func initialise(_ params: UnsafeMutablePointer<Float>, gains: [Float], rng: inout RNG) {
        for l in 0..<nLayers {
            let rows = sizes[l + 1], cols = sizes[l]
            orthogonal(rows: rows, cols: cols, gain: gains[l], rng: &rng, into: params + wOffsets[l])
            (params + bOffsets[l]).update(repeating: 0, count: rows)
        }
    }

    /// out [B, outputSize] = MLP(x [B, sizes[0]]); the pointer stays valid until the next call.
    func forward(_ params: UnsafePointer<Float>, _ x: UnsafePointer<Float>, B: Int) -> UnsafePointer<Float> {
        reserve(B)
        var input = x
        for l in 0..<nLayers {
            let nIn = sizes[l], nOut = sizes[l + 1]
            let y = outputs[l].p
            let bias = params + bOffsets[l]
            for r in 0..<B { (y + r * nOut).update(from: bias, count: nOut) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(B), Int32(nOut), Int32(nIn),
                        1, input, Int32(nIn), params + wOffsets[l], Int32(nIn), 1, y, Int32(nOut))
            if l < nLayers - 1 {
                for i in 0..<(B * nOut) { y[i] = tanhf(y[i]) }
            }
            input = UnsafePointer(y)
        }
        return UnsafePointer(outputs[nLayers - 1].p)
    }

    /// Adds to grads the gradient of a loss whose gradient w.r.t. the last forward's output is
    /// dOut [B, outputSize]; x must be the input of that forward.
    func backward(_ params: UnsafePointer<Float>, _ grads: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                  B: Int, dOut: UnsafePointer<Float>) {
        delta.p.update(from: dOut, count: B * outputSize)
        for l in stride(from: nLayers - 1, through: 0, by: -1) {
            let nIn = sizes[l], nOut = sizes[l + 1]
            let input = l == 0 ? x : UnsafePointer(outputs[l - 1].p)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(nOut), Int32(nIn), Int32(B),
                        1, delta.p, Int32(nOut), input, Int32(nIn), 1, grads + wOffsets[l], Int32(nIn))
            let gb = grads + bOffsets[l]
            for r in 0..<B {
                let d = delta.p + r * nOut
                for j in 0..<nOut { gb[j] += d[j] }
            }
            guard l > 0 else { break }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(B), Int32(nIn), Int32(nOut),
                        1, delta.p, Int32(nOut), params + wOffsets[l], Int32(nIn), 0, dIn.p, Int32(nIn))
            let h = outputs[l - 1].p
            for i in 0..<(B * nIn) { delta.p[i] = dIn.p[i] * (1 - h[i] * h[i]) }
        }
    }
}

/// W [rows, cols] with orthonormal rows (rows <= cols) or columns (rows >= cols), times gain:
/// Gram–Schmidt on a Gaussian matrix, the distribution of torch.nn.init.orthogonal_.
func orthogonal(rows: Int, cols: Int, gain: Float, rng: inout RNG, into w: UnsafeMutablePointer<Float>) {
    let n = max(rows, cols), k = min(rows, cols)
    // k orthonormal vectors of length n.
    var q = [[Double]]()
    for _ in 0..<k {
        var v = (0..<n).map { _ in Double(rng.nextGaussian()) }
        for _ in 0..<2 {   // twice for orthogonality to rounding
            for u in q {
                var dot = 0.0
                for i in 0..<n { dot += u[i] * v[i] }
                for i in 0..<n { v[i] -= dot * u[i] }
            }
        }
        let norm = (v.reduce(0) { $0 + $1 * $1 }).squareRoot()
        q.append(v.map { $0 / max(norm, 1e-12) })
    }
    for r in 0..<rows {
        for c in 0..<cols {
            // rows >= cols: column c is q[c]; rows < cols: row r is q[r].
            w[r * cols + c] = gain * Float(rows >= cols ? q[c][r] : q[r][c])
        }
    }
}

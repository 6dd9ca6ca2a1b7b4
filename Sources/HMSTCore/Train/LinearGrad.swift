// Linear layer for training, forward and backward side by side (f32, row-major, HF layout
// W [O, I]). Backward accumulates (+=) into dx and dW, so the trainer zeroes grads once a step.
import CBLAS

enum LinearGrad {
    /// y[N, O] = x[N, I] · Wᵀ
    static func forward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, I: Int, O: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(O), Int32(I), 1, x, Int32(I), w, Int32(I), 0, y, Int32(O))
    }

    /// Differentiates forward: dx[N, I] += dy[N, O] · W,  dW[O, I] += dyᵀ · x.
    /// dx may be nil when the input needs no gradient (the first layer's embedding lookup does).
    static func backward(dx: UnsafeMutablePointer<Float>?, dW: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, I: Int, O: Int) {
        if let dx {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(I), Int32(O), 1, dy, Int32(O), w, Int32(I), 1, dx, Int32(I))
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(O), Int32(I), Int32(N), 1, dy, Int32(O), x, Int32(I), 1, dW, Int32(I))
    }
}

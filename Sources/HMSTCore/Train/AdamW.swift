// AdamW (Loshchilov & Hutter): Adam moments with bias correction and weight decay decoupled
// from the gradient, applied to the tensors whose ParameterRole decays (matrices and
// embeddings; not norms, biases or per-channel vectors). Works on the flat Parameters buffers; its state is two more buffers.
import CKernels

public struct AdamWConfig: Sendable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.1
    public init() {}
}

public final class AdamW: Optimizer {
    public let kind = "adamw"
    public let config: AdamWConfig
    let params: any ParameterSet
    let m: FloatBuffer
    let v: FloatBuffer
    /// 1 where weight decay applies, per parameter tensor
    let decays: [Bool]
    public private(set) var step = 0

    public init(params: any ParameterSet, config: AdamWConfig = AdamWConfig()) throws {
        self.params = params
        self.config = config
        m = try FloatBuffer(count: params.count, for: "AdamW's first moments (\(params.count) values)")
        v = try FloatBuffer(count: params.count, for: "AdamW's second moments (\(params.count) values)")
        decays = params.decayMask
    }

    public func stateTensors() -> [RawTensor] { [m.raw("adamw.m", dtype: .f32), v.raw("adamw.v", dtype: .f32)] }

    public func loadState(_ file: SafeTensorsFile, step: Int) throws {
        try file.copy("adamw.m", dtype: .f32, count: m.count, to: m.pointer)
        try file.copy("adamw.v", dtype: .f32, count: v.count, to: v.pointer)
        self.step = step
    }

    /// Bytes of optimizer state.
    public var stateBytes: Int { (m.count + v.count) * 4 }

    /// One update with learning rate lr from params.grads (already clipped/scaled).
    public func update(lr: Float, gradScale: Float) {
        step += 1
        let c = config
        forEachTensor(params, decays: decays, config: c, step: step) { _, start, n, wd, bc1, bc2 in
            parallelFor((n + 8191) / 8192) { chunk in
                let lo = chunk * 8192, hi = min(n, lo + 8192)
                AdamW.updateF32(p: params.values.pointer + start + lo, g: params.grads.pointer + start + lo,
                                m: m.pointer + start + lo, v: v.pointer + start + lo, n: hi - lo,
                                c: c, lr: lr, wd: wd, bc1: bc1, bc2: bc2, scale: gradScale)
            }
        }
    }

    /// The f32 AdamW rule over n elements (also used by AdamW8bit for small tensors).
    static func updateF32(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                          v: UnsafeMutablePointer<Float>, n: Int, c: AdamWConfig, lr: Float, wd: Float, bc1: Float, bc2: Float,
                          scale: Float) {
        var a = hk_adam_params(beta1: c.beta1, beta2: c.beta2, eps: c.eps, lr: lr, weight_decay: wd, bc1: bc1, bc2: bc2, grad_scale: scale)
        hk_adamw_update(p, g, m, v, n, &a)
    }
}

public enum GradClip {
    /// The global L2 norm of params.grads (f32 partial sums per 4096 in SIMD lanes,
    /// hk_sumsq_blocks, combined in Double in a fixed order, so the result does not depend on
    /// the thread count's timing).
    public static func norm(_ params: any ParameterSet) -> Float {
        let g = params.grads.pointer
        let ranges = splitRange(params.count, parts: min(Threads.count, max(1, params.count >> 16)))
        var sums = [Double](repeating: 0, count: ranges.count)
        sums.withUnsafeMutableBufferPointer { sp in
            parallelFor(ranges.count) { part in
                sp[part] = hk_sumsq_blocks(g + ranges[part].lowerBound, ranges[part].count, 4096)
            }
        }
        return Float(sums.reduce(0, +).squareRoot())
    }

    /// The factor that brings a gradient of norm `norm` to at most maxNorm (1 when it is
    /// within, or maxNorm <= 0 turns clipping off).
    public static func scale(norm: Float, maxNorm: Float) -> Float {
        maxNorm > 0 && norm > maxNorm && norm.isFinite ? maxNorm / norm : 1
    }

    /// Scales params.grads so their global L2 norm is at most maxNorm; returns the norm before.
    @discardableResult
    public static func clip(_ params: any ParameterSet, maxNorm: Float) -> Float {
        let norm = norm(params)
        let s = scale(norm: norm, maxNorm: maxNorm)
        if s != 1 {
            let g = params.grads.pointer
            parallelRows(params.count, grain: 1 << 16) { r in for i in r { g[i] *= s } }
        }
        return norm
    }
}

/// Linear warmup then cosine decay to minLR, counted in optimizer steps.
public struct LRSchedule: Sendable, Equatable {
    public var maxLR: Float
    public var minLR: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(maxLR: Float, minLR: Float? = nil, warmupSteps: Int, totalSteps: Int) {
        self.maxLR = maxLR
        self.minLR = minLR ?? maxLR / 10
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The rate for optimizer step `step` (0-based).
    public func lr(at step: Int) -> Float {
        if step < warmupSteps { return maxLR * Float(step + 1) / Float(warmupSteps) }
        if step >= totalSteps { return minLR }
        let progress = Float(step - warmupSteps) / Float(max(1, totalSteps - warmupSteps))
        return minLR + 0.5 * (maxLR - minLR) * (1 + cosf(Float.pi * progress))
    }
}

// MambaMixerWeights: the nine tensors of one HF `MambaMixer` in one flat f32 buffer (HF names,
// shapes and order), loaded from safetensors or initialised as transformers does. The same type
// holds gradients (zeroed, same layout), so an optimizer sees one values and one grads buffer.
// The forward, step and backward live in MambaMixer.swift and MambaMixerGrad.swift.
import CKernels

/// One tensor of a MambaMixer, in HF's `state_dict` order.
public enum MambaTensor: Int, CaseIterable, Sendable {
    case inProj, convWeight, convBias, xProj, dtProj, dtBias, aLog, d, outProj

    /// The name under a mixer's prefix, as in `backbone.layers.0.mixer.<name>`.
    public var hfName: String {
        switch self {
        case .inProj: return "in_proj.weight"
        case .convWeight: return "conv1d.weight"
        case .convBias: return "conv1d.bias"
        case .xProj: return "x_proj.weight"
        case .dtProj: return "dt_proj.weight"
        case .dtBias: return "dt_proj.bias"
        case .aLog: return "A_log"
        case .d: return "D"
        case .outProj: return "out_proj.weight"
        }
    }

    /// The HF shape for config c.
    public func shape(_ c: MambaConfig) -> [Int] {
        let C = c.hiddenSize, Di = c.intermediateSize, N = c.stateSize, W = c.convKernel, R = c.timeStepRank
        switch self {
        case .inProj: return [2 * Di, C]
        case .convWeight: return [Di, 1, W]
        case .convBias: return [Di]
        case .xProj: return [R + 2 * N, Di]
        case .dtProj: return [Di, R]
        case .dtBias: return [Di]
        case .aLog: return [Di, N]
        case .d: return [Di]
        case .outProj: return [C, Di]
        }
    }
}

public final class MambaMixerWeights: @unchecked Sendable {
    public let config: MambaConfig
    /// All nine tensors back to back in MambaTensor order; offsets[t.rawValue] locates one.
    public let storage: FloatBuffer
    public let offsets: [Int]
    /// elements of the nine tensors (storage may be longer when shared: see init(config:sharing:))
    public let count: Int

    /// Zeros (a gradient buffer, or weights to fill).
    public init(config: MambaConfig) {
        self.config = config
        (offsets, count) = MambaMixerWeights.layout(config)
        storage = FloatBuffer(count: count)
    }

    /// A view of the first `count` elements of a larger buffer (a ParameterSet that holds the
    /// mixer beside other tensors: the episodic soft tokens). The buffer must hold at least
    /// MambaMixerWeights.elementCount(config) elements.
    init(config: MambaConfig, sharing buffer: FloatBuffer) throws {
        self.config = config
        (offsets, count) = MambaMixerWeights.layout(config)
        guard buffer.count >= count else {
            throw HMSTError(.internal, "a shared mixer buffer of \(buffer.count) floats cannot hold the mixer's \(count)")
        }
        storage = buffer
    }

    /// Elements of the nine tensors of a mixer of config c.
    public static func elementCount(_ c: MambaConfig) -> Int { layout(c).count }

    static func layout(_ c: MambaConfig) -> (offsets: [Int], count: Int) {
        var offs: [Int] = [], total = 0
        for t in MambaTensor.allCases {
            offs.append(total)
            total += t.shape(c).reduce(1, *)
        }
        return (offs, total)
    }

    /// The tensor's elements, row-major in its HF shape.
    public func pointer(_ t: MambaTensor) -> UnsafeMutablePointer<Float> { storage.pointer + offsets[t.rawValue] }
    public func count(_ t: MambaTensor) -> Int { t.shape(config).reduce(1, *) }
    public func buffer(_ t: MambaTensor) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer(t), count: count(t))
    }

    public func zero() { storage.pointer.update(repeating: 0, count: count) }

    /// Weights as `MambaMixer.__init__` / `init_mamba_weights` draw them (same distributions, our
    /// RNG): Linear U(±1/√fan_in), conv U(±1/√W), A_log = log(1...N) per channel, D = 1,
    /// dt_proj U(±R^-½), dt_proj.bias = softplus⁻¹(dt) with dt log-uniform in [1e-3, 1e-1].
    public static func random(config c: MambaConfig, seed: UInt64) -> MambaMixerWeights {
        let w = MambaMixerWeights(config: c)
        var rng = RNG(seed: seed)
        func uniform(_ t: MambaTensor, _ bound: Float) {
            let p = w.pointer(t)
            for i in 0..<w.count(t) { p[i] = (2 * rng.nextFloat() - 1) * bound }
        }
        uniform(.inProj, 1 / Float(c.hiddenSize).squareRoot())
        uniform(.convWeight, 1 / Float(c.convKernel).squareRoot())
        uniform(.convBias, 1 / Float(c.convKernel).squareRoot())
        uniform(.xProj, 1 / Float(c.intermediateSize).squareRoot())
        uniform(.dtProj, 1 / Float(c.timeStepRank).squareRoot())
        uniform(.outProj, 1 / Float(c.intermediateSize).squareRoot())
        if !c.useConvBias { w.buffer(.convBias).update(repeating: 0) }
        let N = c.stateSize, Di = c.intermediateSize
        let aLog = w.pointer(.aLog), dParam = w.pointer(.d), bias = w.pointer(.dtBias)
        for d in 0..<Di {
            for n in 0..<N { aLog[d * N + n] = Float(log(Double(n + 1))) }
            dParam[d] = 1
            let lo = log(1e-3), hi = log(1e-1)
            let dt = max(1e-4, exp(lo + rng.nextDouble() * (hi - lo)))
            bias[d] = Float(dt + log(-expm1(-dt)))  // softplus⁻¹(dt) = dt + log(1 − e^−dt)
        }
        return w
    }

    /// Loads the mixer tensors `prefix + name` (e.g. prefix "backbone.layers.0.mixer.") from a
    /// mapped safetensors file, converting F32/BF16/F16 to f32. Shapes must match the config;
    /// conv1d.bias is required exactly when use_conv_bias is true.
    public static func load(map: MappedFile, header: SafeTensorsHeader, prefix: String = "",
                            config c: MambaConfig) throws -> MambaMixerWeights {
        let w = MambaMixerWeights(config: c)
        for t in MambaTensor.allCases {
            let name = prefix + t.hfName
            if t == .convBias, !c.useConvBias {
                guard header.tensor(name) == nil else {
                    throw HMSTError.badFormat("\(map.path): \(name) is present but use_conv_bias is false")
                }
                continue
            }
            guard let info = header.tensor(name) else { throw HMSTError.badFormat("\(map.path): missing tensor \(name)") }
            // HF stores conv1d.weight as [Di, 1, W]; accept it squeezed to [Di, W] as well
            let want = t.shape(c)
            guard info.shape == want || (t == .convWeight && info.shape == [want[0], want[2]]) else {
                throw HMSTError.badFormat("\(map.path): \(name) has shape \(info.shape), expected \(want)")
            }
            guard let base = map.base else { throw HMSTError.badFormat("\(map.path): empty file") }
            let src = base + header.dataOffset + info.begin
            let out = w.pointer(t), n = w.count(t)
            switch info.dtype {
            case .f32: UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: n * 4)
            case .bf16, .f16:
                var bits = [UInt16](repeating: 0, count: n)
                bits.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: src, count: n * 2)) }
                if info.dtype == .bf16 { hk_bf16_to_f32(out, bits, n) } else { hk_f16_to_f32(out, bits, n) }
            default:
                throw HMSTError.unsupported("\(map.path): \(name) is \(info.dtype.rawValue); hmst loads F32, BF16 and F16 weights")
            }
        }
        return w
    }

    /// Loads from a safetensors file path; see load(map:header:prefix:config:).
    public static func load(path: String, prefix: String = "", config: MambaConfig) throws -> MambaMixerWeights {
        let map = try MappedFile(path: path)
        let header = try SafeTensorsHeader(map: map)
        return try load(map: map, header: header, prefix: prefix, config: config)
    }
}

// Parameters: every trainable tensor of the decoder in one flat f32 buffer, in the HF tensor
// order of expectedTensors(config), with a gradient buffer of the same layout. Optimizers and
// the future gradient all-reduce work on the flat buffers; the model reads tensors by offset.
// ParameterSet is what optimizers, clipping and OptimizerStep see of it (and of any other
// model's parameters: an SSM, a controller, a critic): names, shapes, flat buffers and a role
// per tensor, from which the optimizer decides weight decay.

/// What a parameter tensor is to the optimizer. The model that owns the tensor says which role
/// it has; optimizers never guess from names.
public enum ParameterRole: String, Sendable {
    /// a weight matrix (projections, experts, routers, LM head): decayed
    case matrix
    /// an embedding table: decayed, as GPT-2/llm.c and the seed's train.py do
    case embedding
    /// a norm gain: not decayed
    case norm
    /// a bias: not decayed
    case bias
    /// a per-channel parameter that is not a weight matrix (an SSM's A_log, D, dt bias, a
    /// learned scale): not decayed, since pulling it to zero changes what it means
    case vector

    /// Whether decoupled weight decay applies to tensors of this role.
    public var decays: Bool { self == .matrix || self == .embedding }
}

/// Trainable tensors in one flat f32 buffer with a gradient buffer of the same layout.
public protocol ParameterSet: AnyObject {
    var names: [String] { get }
    var shapes: [[Int]] { get }
    /// element offset of each tensor in values and grads
    var offsets: [Int] { get }
    /// total elements
    var count: Int { get }
    var values: FloatBuffer { get }
    var grads: FloatBuffer { get }
    /// one per tensor
    var roles: [ParameterRole] { get }
}

/// A ParameterSet's storage for tensors of `shapes` lying one after another: where each starts,
/// the total element count, and zeroed values and grads of that many elements.
func parameterStorage(_ shapes: [[Int]]) -> (offsets: [Int], count: Int, values: FloatBuffer, grads: FloatBuffer) {
    var offsets: [Int] = [], total = 0
    for s in shapes { offsets.append(total); total += s.reduce(1, *) }
    return (offsets, total, FloatBuffer(count: total), FloatBuffer(count: total))
}

extension ParameterSet {
    /// Zeroes every gradient, in parallel parts when the set is large (a one-thread memset of a
    /// 15M-parameter model's 62 MB of gradients was 2-4% of a training step).
    public func zeroGrads() { parallelZero(grads.pointer, count: count) }
    /// Per tensor: whether weight decay applies (from its role).
    public var decayMask: [Bool] { roles.map(\.decays) }
}

public final class Parameters: ParameterSet, @unchecked Sendable {
    public let config: MixtralConfig
    public let names: [String]
    public let shapes: [[Int]]
    public let offsets: [Int]
    public let count: Int
    public let values: FloatBuffer
    public let grads: FloatBuffer
    public let roles: [ParameterRole]
    let index: [String: Int]

    /// The role of a Mixtral tensor (the model's own table, not the optimizer's business).
    static func mixtralRole(_ name: String) -> ParameterRole {
        if name == MixtralNames.embed { return .embedding }
        return MixtralNames.isNorm(name) ? .norm : .matrix
    }

    public init(config: MixtralConfig) {
        self.config = config
        let spec = expectedTensors(config)
        names = spec.map(\.name)
        roles = spec.map { Parameters.mixtralRole($0.name) }
        shapes = spec.map(\.shape)
        (offsets, count, values, grads) = parameterStorage(spec.map(\.shape))
        var idx: [String: Int] = [:]
        for (i, n) in names.enumerated() { idx[n] = i }
        index = idx
    }

    /// Copies a model's weights (any stored dtype) into f32 parameters.
    public convenience init(model: LanguageModel) throws {
        try self.init(config: model.modelConfig())
        for (name, weight) in model.decoder.weights.named(tied: config.tieWordEmbeddings) {
            guard let i = index[name] else { continue }
            weight.copyRows(0, weight.rows, to: values.pointer + offsets[i])
        }
    }

    public func value(_ name: String) -> UnsafeMutablePointer<Float> { values.pointer + offsets[index[name]!] }
    public func grad(_ name: String) -> UnsafeMutablePointer<Float> { grads.pointer + offsets[index[name]!] }

    /// A decoder reading these parameters in place (for evaluation and generation).
    public func decoder() throws -> Decoder {
        let d = config.dims
        let weights = try DecoderWeights(dims: d,
            tensor: { name, r, c in Weight(.f32(UnsafePointer(self.value(name))), rows: r, cols: c, owner: self) },
            f32: { name, r, c in Weight(.f32(UnsafePointer(self.value(name))), rows: r, cols: c, owner: self) })
        return Decoder(dims: d, weights: weights)
    }
}

// Parameters: every trainable tensor of the decoder in one flat f32 buffer, in the HF tensor
// order of expectedTensors(config), with a gradient buffer of the same layout. Optimizers and
// the future gradient all-reduce work on the flat buffers; the model reads tensors by offset.

public final class Parameters: @unchecked Sendable {
    public let config: ModelConfig
    public let names: [String]
    public let shapes: [[Int]]
    public let offsets: [Int]
    public let count: Int
    public let values: FloatBuffer
    public let grads: FloatBuffer
    let index: [String: Int]

    public init(config: ModelConfig) {
        self.config = config
        let spec = expectedTensors(config)
        names = spec.map(\.name)
        shapes = spec.map(\.shape)
        var offs: [Int] = []
        var total = 0
        for s in spec {
            offs.append(total)
            total += s.shape.reduce(1, *)
        }
        offsets = offs
        count = total
        values = FloatBuffer(count: total)
        grads = FloatBuffer(count: total)
        var idx: [String: Int] = [:]
        for (i, n) in names.enumerated() { idx[n] = i }
        index = idx
    }

    /// Copies a model's weights (any stored dtype) into f32 parameters.
    public convenience init(model: LanguageModel) throws {
        try self.init(config: model.modelConfig())
        let w = model.decoder.weights
        func put(_ name: String, _ weight: Weight) {
            guard let i = index[name] else { return }
            weight.copyRows(0, weight.rows, to: values.pointer + offsets[i])
        }
        put("model.embed_tokens.weight", w.embed)
        put("model.norm.weight", w.finalNorm)
        if !config.tieWordEmbeddings { put("lm_head.weight", w.lmHead) }
        for (l, lw) in w.layers.enumerated() {
            let p = "model.layers.\(l)."
            put(p + "input_layernorm.weight", lw.attnNorm)
            put(p + "self_attn.q_proj.weight", lw.q)
            put(p + "self_attn.k_proj.weight", lw.k)
            put(p + "self_attn.v_proj.weight", lw.v)
            put(p + "self_attn.o_proj.weight", lw.o)
            put(p + "post_attention_layernorm.weight", lw.ffnNorm)
            put(p + "block_sparse_moe.gate.weight", lw.router)
            for (e, ex) in lw.experts.enumerated() {
                let ep = p + "block_sparse_moe.experts.\(e)."
                put(ep + "w1.weight", ex.w1)
                put(ep + "w2.weight", ex.w2)
                put(ep + "w3.weight", ex.w3)
            }
        }
    }

    public func value(_ name: String) -> UnsafeMutablePointer<Float> { values.pointer + offsets[index[name]!] }
    public func grad(_ name: String) -> UnsafeMutablePointer<Float> { grads.pointer + offsets[index[name]!] }

    public func zeroGrads() { grads.pointer.update(repeating: 0, count: count) }

    /// A decoder reading these parameters in place (for evaluation and generation).
    public func decoder() throws -> Decoder {
        let d = config.dims
        let weights = try DecoderWeights(dims: d,
            tensor: { name, r, c in Weight(.f32(UnsafePointer(self.value(name))), rows: r, cols: c, owner: self) },
            f32: { name, r, c in Weight(.f32(UnsafePointer(self.value(name))), rows: r, cols: c, owner: self) })
        return Decoder(dims: d, weights: weights)
    }
}

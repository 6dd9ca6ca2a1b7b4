// MixtralNames: the Hugging Face Mixtral checkpoint's tensor names, in one place. What a
// checkpoint must hold (expectedTensors), what the decoder reads (DecoderWeights), what a save
// writes (DecoderWeights.named), what training's flat parameters hold and decay (Parameters,
// LayerTensors) all take their names from here; GGUF import maps llama.cpp's names onto them.

public enum MixtralNames {
    public static let embed = "model.embed_tokens.weight"
    public static let finalNorm = "model.norm.weight"
    public static let lmHead = "lm_head.weight"

    /// Layer l's tensor names, with E experts.
    public static func layer(_ l: Int, experts E: Int) -> MixtralLayerNames { MixtralLayerNames(layer: l, experts: E) }

    /// Whether name is one of the RMSNorm weights (the final norm or a layer's two).
    public static func isNorm(_ name: String) -> Bool {
        name == finalNorm || name.hasSuffix(".input_layernorm.weight") || name.hasSuffix(".post_attention_layernorm.weight")
    }

    /// The suffix of every layer's router (the MoE gate), which hmst keeps in f32.
    public static let routerSuffix = "block_sparse_moe.gate.weight"
}

/// One decoder layer's tensor names.
public struct MixtralLayerNames: Sendable {
    public let attnNorm, q, k, v, o, ffnNorm, router: String
    /// per expert: gate (w1), down (w2) and up (w3) projections
    public let w1, w2, w3: [String]

    init(layer l: Int, experts E: Int) {
        let p = "model.layers.\(l)."
        attnNorm = p + "input_layernorm.weight"
        q = p + "self_attn.q_proj.weight"
        k = p + "self_attn.k_proj.weight"
        v = p + "self_attn.v_proj.weight"
        o = p + "self_attn.o_proj.weight"
        ffnNorm = p + "post_attention_layernorm.weight"
        router = p + MixtralNames.routerSuffix
        w1 = (0..<E).map { p + "block_sparse_moe.experts.\($0).w1.weight" }
        w2 = (0..<E).map { p + "block_sparse_moe.experts.\($0).w2.weight" }
        w3 = (0..<E).map { p + "block_sparse_moe.experts.\($0).w3.weight" }
    }
}

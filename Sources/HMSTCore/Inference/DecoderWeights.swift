// DecoderWeights: every tensor of a Mixtral-style decoder, by role, as the forward pass reads
// them. Built from a name -> Weight lookup over HF tensor names, so checkpoints from hmst and
// from transformers load the same way. Norm and router weights are small and always held as
// f32; projections and experts stay in their stored dtype (f32, bf16 or int8), usually in the map.

public struct ExpertWeights: Sendable {
    public let w1: Weight  // [F, C] gate projection
    public let w2: Weight  // [C, F] down projection
    public let w3: Weight  // [F, C] up projection
}

public struct LayerWeights: Sendable {
    public let attnNorm: Weight      // [1, C] f32
    public let q: Weight             // [H*Dh, C]
    public let k: Weight             // [KV*Dh, C]
    public let v: Weight             // [KV*Dh, C]
    public let o: Weight             // [C, H*Dh]
    public let ffnNorm: Weight       // [1, C] f32
    public let router: Weight        // [E, C] f32
    public let experts: [ExpertWeights]
}

public struct DecoderWeights: Sendable {
    public let embed: Weight         // [V, C]
    public let layers: [LayerWeights]
    public let finalNorm: Weight     // [1, C] f32
    public let lmHead: Weight        // [V, C] (the embedding when tied)
    let tied: Bool

    /// `tensor(name, rows, cols)` returns the named tensor checked against that shape.
    /// `f32(name, rows, cols)` returns it converted to f32 (owned) if stored otherwise.
    public init(dims d: DecoderDims,
                tensor: (String, Int, Int) throws -> Weight,
                f32: (String, Int, Int) throws -> Weight) throws {
        embed = try tensor("model.embed_tokens.weight", d.V, d.C)
        var layers: [LayerWeights] = []
        layers.reserveCapacity(d.L)
        for l in 0..<d.L {
            let p = "model.layers.\(l)."
            var experts: [ExpertWeights] = []
            for e in 0..<d.E {
                let ep = p + "block_sparse_moe.experts.\(e)."
                experts.append(ExpertWeights(w1: try tensor(ep + "w1.weight", d.F, d.C),
                                             w2: try tensor(ep + "w2.weight", d.C, d.F),
                                             w3: try tensor(ep + "w3.weight", d.F, d.C)))
            }
            layers.append(LayerWeights(
                attnNorm: try f32(p + "input_layernorm.weight", 1, d.C),
                q: try tensor(p + "self_attn.q_proj.weight", d.qDim, d.C),
                k: try tensor(p + "self_attn.k_proj.weight", d.kvDim, d.C),
                v: try tensor(p + "self_attn.v_proj.weight", d.kvDim, d.C),
                o: try tensor(p + "self_attn.o_proj.weight", d.C, d.qDim),
                ffnNorm: try f32(p + "post_attention_layernorm.weight", 1, d.C),
                router: try f32(p + "block_sparse_moe.gate.weight", d.E, d.C),
                experts: experts))
        }
        self.layers = layers
        finalNorm = try f32("model.norm.weight", 1, d.C)
        lmHead = d.tiedEmbeddings ? embed : try tensor("lm_head.weight", d.V, d.C)
        tied = d.tiedEmbeddings
    }

    init(embed: Weight, layers: [LayerWeights], finalNorm: Weight, lmHead: Weight, tied: Bool) {
        self.embed = embed
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
        self.tied = tied
    }

    /// Every projection matrix (embedding, attention, experts, head), each once.
    public var matrices: [Weight] {
        var out = [embed]
        for l in layers {
            out += [l.q, l.k, l.v, l.o]
            for e in l.experts { out += [e.w1, e.w2, e.w3] }
        }
        if !tied { out.append(lmHead) }
        return out
    }

    /// The largest projection, for sizing the bf16 widening scratch.
    var largestMatrix: Int {
        var m = max(embed.count, lmHead.count)
        for l in layers {
            m = max(m, l.q.count, l.k.count, l.v.count, l.o.count)
            for e in l.experts { m = max(m, e.w1.count, e.w2.count, e.w3.count) }
        }
        return m
    }

    var hasBF16: Bool { matrices.contains { $0.isBF16 } }

    /// Prefill widens bf16 and int8 matrices into f32 scratch.
    var needsWidening: Bool { matrices.contains { $0.typeName != "f32" } }

    /// "f32", "bf16", "int8", or "mixed (…)" listing the types in use.
    public var typeDescription: String {
        var seen: [String] = []
        for w in matrices where !seen.contains(w.typeName) { seen.append(w.typeName) }
        return seen.count == 1 ? seen[0] : "mixed (" + seen.joined(separator: ", ") + ")"
    }
}

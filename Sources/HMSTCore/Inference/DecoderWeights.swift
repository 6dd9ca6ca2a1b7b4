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
        embed = try tensor(MixtralNames.embed, d.V, d.C)
        var layers: [LayerWeights] = []
        layers.reserveCapacity(d.L)
        for l in 0..<d.L {
            let n = MixtralNames.layer(l, experts: d.E)
            var experts: [ExpertWeights] = []
            for e in 0..<d.E {
                experts.append(ExpertWeights(w1: try tensor(n.w1[e], d.F, d.C),
                                             w2: try tensor(n.w2[e], d.C, d.F),
                                             w3: try tensor(n.w3[e], d.F, d.C)))
            }
            layers.append(LayerWeights(
                attnNorm: try f32(n.attnNorm, 1, d.C),
                q: try tensor(n.q, d.qDim, d.C),
                k: try tensor(n.k, d.kvDim, d.C),
                v: try tensor(n.v, d.kvDim, d.C),
                o: try tensor(n.o, d.C, d.qDim),
                ffnNorm: try f32(n.ffnNorm, 1, d.C),
                router: try f32(n.router, d.E, d.C),
                experts: experts))
        }
        self.layers = layers
        finalNorm = try f32(MixtralNames.finalNorm, 1, d.C)
        lmHead = d.tiedEmbeddings ? embed : try tensor(MixtralNames.lmHead, d.V, d.C)
        tied = d.tiedEmbeddings
    }

    /// Every tensor with its checkpoint name (the LM head only when untied): what a save writes.
    func named(tied: Bool) -> [(name: String, weight: Weight)] {
        var out: [(name: String, weight: Weight)] = [(MixtralNames.embed, embed), (MixtralNames.finalNorm, finalNorm)]
        if !tied { out.append((MixtralNames.lmHead, lmHead)) }
        for (l, lw) in layers.enumerated() {
            let n = MixtralNames.layer(l, experts: lw.experts.count)
            out += [(n.attnNorm, lw.attnNorm), (n.q, lw.q), (n.k, lw.k), (n.v, lw.v), (n.o, lw.o),
                    (n.ffnNorm, lw.ffnNorm), (n.router, lw.router)]
            for (e, ex) in lw.experts.enumerated() { out += [(n.w1[e], ex.w1), (n.w2[e], ex.w2), (n.w3[e], ex.w3)] }
        }
        return out
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

// DecoderDims: the shape facts the forward pass needs, derived once from a model config.
// Letters as in STYLE.md: C width, H heads, KV kv-heads, Dh head dim, F expert FFN width,
// E experts, K experts per token, V vocab, L layers.

public struct DecoderDims: Sendable, Equatable {
    public var C: Int
    public var H: Int
    public var KV: Int
    public var Dh: Int
    public var F: Int
    public var E: Int
    public var K: Int
    public var V: Int
    public var L: Int
    public var eps: Float
    public var ropeTheta: Double
    public var maxPositions: Int
    public var tiedEmbeddings: Bool

    public init(C: Int, H: Int, KV: Int, Dh: Int, F: Int, E: Int, K: Int, V: Int, L: Int, eps: Float,
                ropeTheta: Double, maxPositions: Int, tiedEmbeddings: Bool) {
        self.C = C; self.H = H; self.KV = KV; self.Dh = Dh; self.F = F; self.E = E; self.K = K
        self.V = V; self.L = L; self.eps = eps; self.ropeTheta = ropeTheta
        self.maxPositions = maxPositions; self.tiedEmbeddings = tiedEmbeddings
    }

    /// Total parameters (a tied head counted once).
    public var parameterCount: Int {
        let perLayer = C * qDim * 2 + C * kvDim * 2 + 2 * C + E * C + E * 3 * C * F
        return V * C * (tiedEmbeddings ? 1 : 2) + L * perLayer + C
    }

    /// Active parameters as Mixtral counts them (12.9B for 8x7B): all but the E - K experts a
    /// token does not use in each layer; embeddings and head count in full.
    public var activeParameterCount: Int { parameterCount - L * (E - K) * 3 * C * F }

    var qDim: Int { H * Dh }
    var kvDim: Int { KV * Dh }
    var groupSize: Int { H / KV }
}

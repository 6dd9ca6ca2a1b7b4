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

    var qDim: Int { H * Dh }
    var kvDim: Int { KV * Dh }
    var groupSize: Int { H / KV }
}

// ModelSignature: which model a memory's keys were computed with. A memory directory's keys
// (episodic SSM states, semantic vectors) are the hidden states of the model that built it;
// another model's queries land in another space, and its search ranks by the wrong geometry
// while still returning confident-looking entries. The signature holds:
//   - the configuration that shapes hidden states (sizes, norm epsilon, RoPE base), exactly;
//   - the tokenizer (a hash of every token's bytes and of a probe text's encoding), exactly;
//   - a small fixed sample of the weights, read as f32 whatever their storage: 32-value chunks
//     of the embedding, final norm, LM head and, in the first, middle and last layer, the
//     attention, router and two expert matrices ("key" tensors), and 8 values of every tensor
//     of every layer ("coverage"), each tensor's sample compared on its own.
// Two models match when those are equal and every compared sample differs by at most
// `tolerance` (relative L2: a key chunk, a whole 32-value block, against its own norm; a coverage
// sample against the larger of its own norm and its block's RMS, kept with it, since one large
// value the sample skips sets an int8 block's scale and so the sampled values' rounding). A
// converted copy of the same weights stays well inside it (MemoryModelTests, a random model, the
// largest of the tensors' differences: int8 0.7%, bf16 0.2%, f16 0.03%; int8 of weights with a
// value 40x its block's largest in every sampled block 1.6%, 48% against the sample's own norm),
// while every weight moved by 3e-3 (a few optimizer steps) gives 20%, another initialisation
// 170%, and one layer's k projection taken from another initialisation 143%. Stored in the
// tiers' manifests (ModelSignature.json). A LanguageModel's weights do not change once it is
// made (training saves new ones), so each model computes it once.

public struct ModelSignature: Sendable, Equatable {
    /// Key samples, tensor after tensor: [Σ counts].
    public let values: [Float]
    /// Values per key tensor, in order.
    public let counts: [Int]
    /// Each key tensor's element count (rows × cols), in order.
    public let sizes: [Int]
    /// Coverage samples, tensor after tensor of every layer: [Σ groups], 8 of each.
    public let coverage: [Float]
    /// Coverage values per tensor.
    public let groups: [Int]
    /// The RMS of the whole 32-value block each tensor's coverage values come from, one per
    /// group (empty in a record written before it: then compared against the values themselves).
    public let coverageScale: [Float]
    /// The tokenizer's hash ("none" without one).
    public let tokenizer: String
    /// The configuration that shapes hidden states, as "V=..,C=..,...".
    public let config: String
    /// Largest relative L2 difference of one compared sample between two matching models.
    public static let tolerance = 0.05

    static let chunk = 32
    static let coverageStride = 4   // every 4th value of a 32-value chunk: 8 per tensor

    init(values: [Float], counts: [Int], sizes: [Int], coverage: [Float] = [], groups: [Int] = [], coverageScale: [Float] = [],
         tokenizer: String = "none", config: String = "") {
        self.values = values
        self.counts = counts
        self.sizes = sizes
        self.coverage = coverage
        self.groups = groups
        self.coverageScale = coverageScale
        self.tokenizer = tokenizer
        self.config = config
    }

    /// The model's signature, computed once per model (reads a few pages of every tensor and,
    /// the first time, decodes every token).
    public init(model: LanguageModel) {
        if let cached = model.signatureCache.get() { self = cached; return }
        let s = ModelSignature(computing: model)
        model.signatureCache.set(s)
        self = s
    }

    private init(computing model: LanguageModel) {
        let w = model.decoder.weights
        // the LM head is the embedding when tied: sampled either way, so a tied checkpoint and a
        // converted copy that stores the head apart (a GGUF's output.weight) sample alike
        var key: [(Weight, Int)] = [(w.embed, 4), (w.finalNorm, 1), (w.lmHead, 2)]
        let L = w.layers.count
        for l in Array(Set([0, L / 2, L - 1])).sorted() where l >= 0 && l < L {
            let layer = w.layers[l]
            key += [(layer.attnNorm, 1), (layer.q, 1), (layer.o, 1), (layer.router, 1)]
            if let first = layer.experts.first, let last = layer.experts.last { key += [(first.w1, 1), (last.w2, 1)] }
        }
        var values: [Float] = []
        var counts: [Int] = []
        var sizes: [Int] = []
        for (t, chunks) in key {
            sizes.append(t.rows * t.cols)
            var got = 0
            for j in 0..<chunks {
                // the middle of the j-th of `chunks` equal parts
                let part = ModelSignature.chunk(of: t, at: (2 * j + 1, 2 * chunks))
                values += part
                got += part.count
            }
            counts.append(got)
        }
        var coverage: [Float] = []
        var groups: [Int] = []
        var coverageScale: [Float] = []
        for layer in w.layers {
            let tensors = [layer.attnNorm, layer.q, layer.k, layer.v, layer.o, layer.ffnNorm, layer.router]
                + layer.experts.flatMap { [$0.w1, $0.w2, $0.w3] }
            for t in tensors {
                // a third of the way in (the key chunks sit at the middles), every 4th value;
                // compared per tensor (a layer's norms, all near 1, would drown its matrices)
                let part = ModelSignature.chunk(of: t, at: (1, 3))
                let picked = stride(from: 0, to: part.count, by: ModelSignature.coverageStride).map { part[$0] }
                coverage += picked
                groups.append(picked.count)
                // the block's RMS, which bounds an int8 copy's error (its scale is the block's
                // largest value / 127) where an unsampled value is large beside the sampled ones
                let sq = part.reduce(0.0) { $0 + Double($1) * Double($1) }
                coverageScale.append(Float((sq / Double(max(1, part.count))).squareRoot()))
            }
        }
        let d = model.dims
        // f32 values as a GGUF stores them, so an import of the same model prints alike
        let config = "V=\(d.V),C=\(d.C),L=\(d.L),H=\(d.H),KV=\(d.KV),Dh=\(d.Dh),F=\(d.F),E=\(d.E),K=\(d.K),eps=\(d.eps),rope=\(Float(d.ropeTheta))"
        self.init(values: values, counts: counts, sizes: sizes, coverage: coverage, groups: groups, coverageScale: coverageScale,
                  tokenizer: ModelSignature.hash(of: model.tokenizer), config: config)
    }

    /// 32 values (all of a smaller tensor) of t as f32, starting on a 32-value block boundary
    /// at `fraction` (num, den) of the tensor (whole Q8_0 blocks, as copyFlat reads them).
    static func chunk(of t: Weight, at fraction: (Int, Int)) -> [Float] {
        let n = t.rows * t.cols
        let len = min(chunk, n)
        let blocks = n / chunk
        let offset = blocks > 0 ? min(blocks - 1, blocks * fraction.0 / fraction.1) * chunk : 0
        var part = [Float](repeating: 0, count: len)
        part.withUnsafeMutableBufferPointer { SafeTensorsWriter.copyFlat(t, from: offset, count: len, to: $0.baseAddress!) }
        return part
    }

    /// Every token's bytes (length-prefixed) and a probe text's ids, hashed: two tokenizers that
    /// turn text into the same ids hash alike.
    public static func hash(of tokenizer: TextTokenizer?) -> String {
        guard let tokenizer else { return "none" }
        var bytes: [UInt8] = []
        for id in 0..<tokenizer.vocabSize {
            let b = (try? tokenizer.decode([Int32(id)])) ?? [0xFF, 0xFE]
            withUnsafeBytes(of: UInt32(b.count).littleEndian) { bytes += $0 }
            bytes += b
        }
        let probe = "The quick brown fox, 1234567890: Ça va? 東京 — naïve façade.\n\tindented  spaces"
        for id in tokenizer.encode(bytes: Array(probe.utf8)) { withUnsafeBytes(of: id.littleEndian) { bytes += $0 } }
        return bytes.withUnsafeBytes { FileChecksum.hex(FileChecksum.of($0)) }
    }

    /// Why keys made with `self`'s model do not fit `other`'s, or nil when they do.
    public func mismatch(with other: ModelSignature) -> String? {
        if config != other.config {
            return "the model that built it has another configuration (\(config); this model \(other.config))"
        }
        if tokenizer != other.tokenizer { return "the model that built it has another tokenizer" }
        guard let worst = distance(to: other) else {
            return "its record samples the weights differently from this model's (a record of another hmst version, or edited)"
        }
        guard !(worst <= ModelSignature.tolerance) else { return nil }
        let by = !worst.isFinite ? "everything" : worst < 1e4 ? "\(Int((worst * 100).rounded()))%" : "more than 1000000%"
        return "the weights that built it differ from this model's by \(by) at the sampled places "
            + "(a converted copy of the same weights differs by under \(Int(ModelSignature.tolerance * 100))%)"
    }

    /// The largest relative L2 difference of one tensor's key or coverage sample
    /// (inf when a sampled weight is not finite), or nil when the samples are laid out otherwise.
    /// A key sample is a whole 32-value block, compared with its own norm; a coverage sample (8
    /// values of a block) is compared with the RMS of its whole block where the record has it
    /// (the record's, else the other side's), so that one large unsampled value, which sets an
    /// int8 block's scale and so the sampled values' rounding, does not make a converted copy
    /// look like another model.
    public func distance(to other: ModelSignature) -> Double? {
        guard counts == other.counts, sizes == other.sizes, groups == other.groups,
              values.count == other.values.count, coverage.count == other.coverage.count else { return nil }
        let scale = coverageScale.count == groups.count ? coverageScale
            : other.coverageScale.count == groups.count ? other.coverageScale : nil
        guard let a = ModelSignature.worst(values, other.values, counts),
              let b = ModelSignature.worst(coverage, other.coverage, groups, scale: scale) else { return .infinity }
        return max(a, b)
    }

    /// The largest relative L2 difference of x and y over consecutive groups of the given
    /// sizes, relative to x's values or, given `scale`, to each group's RMS scale; nil when a
    /// value (or a scale) is not finite.
    static func worst(_ x: [Float], _ y: [Float], _ sizes: [Int], scale: [Float]? = nil) -> Double? {
        var start = 0
        var worst = 0.0
        for (g, c) in sizes.enumerated() {
            var dd = 0.0, aa = 0.0
            for i in start..<(start + c) {
                let a = Double(x[i]), d = a - Double(y[i])
                dd += d * d
                aa += a * a
            }
            start += c
            if let scale {
                let s = Double(scale[g])
                guard s.isFinite else { return nil }
                aa = max(aa, s * s * Double(c))   // the larger of the values' norm and the block's RMS over as many values
            }
            guard dd.isFinite, aa.isFinite else { return nil }   // a non-finite weight on either side: no match
            worst = max(worst, aa > 0 ? (dd / aa).squareRoot() : (dd > 0 ? .infinity : 0))
        }
        return worst
    }

    // ---- manifest form ---------------------------------------------------------------------

    public var json: JSONValue {
        func counts(_ a: [Int]) -> JSONValue { .array(a.map { .number(Double($0)) }) }
        return .object([("values", .string(ModelSignature.hex(values))), ("chunks", counts(self.counts)), ("sizes", counts(sizes)),
                        ("coverage", .string(ModelSignature.hex(coverage))), ("groups", counts(groups)),
                        ("coverage_scale", .string(ModelSignature.hex(coverageScale))),
                        ("tokenizer", .string(tokenizer)), ("config", .string(config))])
    }

    /// A tier manifest's "model": nil when absent, null, or written by a build of this session
    /// before the record covered the configuration (no "config"; such a memory is not checked,
    /// as one saved before any record); BAD_FORMAT for a malformed one.
    static func read(manifestField j: JSONValue?) throws -> ModelSignature? {
        guard let j, !j.isNull else { return nil }
        if case .object = j, j["config"] == nil { return nil }
        return try ModelSignature(json: j)
    }

    /// Reads the manifest form; BAD_FORMAT (without the file's name: the caller adds it) for a malformed one.
    public init(json: JSONValue) throws {
        guard case .array(let cs)? = json["chunks"], case .array(let ss)? = json["sizes"], case .array(let gs)? = json["groups"],
              let hex = json["values"]?.string, let coverageHex = json["coverage"]?.string,
              let tokenizer = json["tokenizer"]?.string, let config = json["config"]?.string else {
            throw HMSTError.badFormat("\"model\" needs \"values\" and \"coverage\" (hex strings), \"chunks\", \"sizes\" and \"groups\" (counts), "
                                      + "\"tokenizer\" and \"config\" (strings)")
        }
        func readCounts(_ a: [JSONValue], _ key: String, max: Int) throws -> [Int] {
            try a.map { c in
                guard let n = c.int, n >= 0, n <= max else { throw HMSTError.badFormat("\"model\".\"\(key)\" holds \(c), not a count") }
                return n
            }
        }
        let counts = try readCounts(cs, "chunks", max: 1 << 20)
        let sizes = try readCounts(ss, "sizes", max: 1 << 62)
        let groups = try readCounts(gs, "groups", max: 1 << 20)
        guard sizes.count == counts.count else {
            throw HMSTError.badFormat("\"model\" has \(counts.count) \"chunks\" but \(sizes.count) \"sizes\"")
        }
        let values = try ModelSignature.floats(hex: hex, count: counts.reduce(0, +), key: "values")
        let coverage = try ModelSignature.floats(hex: coverageHex, count: groups.reduce(0, +), key: "coverage")
        // absent in records written before it (compared as then)
        var scale: [Float] = []
        if let j = json["coverage_scale"], !j.isNull {
            guard let hex = j.string else { throw HMSTError.badFormat("\"model\".\"coverage_scale\" is not a hex string") }
            scale = try ModelSignature.floats(hex: hex, count: groups.count, key: "coverage_scale")
        }
        self.init(values: values, counts: counts, sizes: sizes, coverage: coverage, groups: groups, coverageScale: scale,
                  tokenizer: tokenizer, config: config)
    }

    static func hex(_ values: [Float]) -> String {
        let digits = Array("0123456789abcdef")
        var hex = ""
        hex.reserveCapacity(values.count * 8)
        for v in values {
            let u = v.bitPattern
            for byte in 0..<4 {
                let b = Int((u >> (8 * UInt32(byte))) & 0xFF)
                hex.append(digits[b >> 4])
                hex.append(digits[b & 15])
            }
        }
        return hex
    }

    static func floats(hex: String, count: Int, key: String) throws -> [Float] {
        let bytes = Array(hex.utf8)
        guard bytes.count == count * 8 else {
            throw HMSTError.badFormat("\"model\".\"\(key)\" holds \(bytes.count) hex digits, its counts need \(count * 8)")
        }
        func nibble(_ c: UInt8) -> UInt32? {
            switch c {
            case 48...57: return UInt32(c - 48)
            case 97...102: return UInt32(c - 87)
            default: return nil
            }
        }
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var u: UInt32 = 0
            for byte in 0..<4 {
                guard let hi = nibble(bytes[i * 8 + byte * 2]), let lo = nibble(bytes[i * 8 + byte * 2 + 1]) else {
                    throw HMSTError.badFormat("\"model\".\"\(key)\" holds a character that is not a lower-case hex digit")
                }
                u |= (hi << 4 | lo) << (8 * UInt32(byte))
            }
            values[i] = Float(bitPattern: u)
        }
        return values
    }
}

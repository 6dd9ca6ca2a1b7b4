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
// `tolerance` (relative L2): a converted copy of the same weights (bf16, f16, int8 Q8_0, the
// row-quad layout) stays well inside it (MemoryModelTests, a random model, the largest of the
// tensors' differences: int8 1.1%, bf16 0.3%, f16 0.03%), while every weight moved by 3e-3 (a
// few optimizer steps) gives 32%, another initialisation 170%, and one layer's k projection
// taken from another initialisation 155%. Stored in the tiers' manifests (ModelSignature.json). A LanguageModel's weights do
// not change once it is made (training saves new ones), so each model computes it once.

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
    /// The tokenizer's hash ("none" without one).
    public let tokenizer: String
    /// The configuration that shapes hidden states, as "V=..,C=..,...".
    public let config: String
    /// Largest relative L2 difference of one compared sample between two matching models.
    public static let tolerance = 0.05

    static let chunk = 32
    static let coverageStride = 4   // every 4th value of a 32-value chunk: 8 per tensor

    init(values: [Float], counts: [Int], sizes: [Int], coverage: [Float] = [], groups: [Int] = [],
         tokenizer: String = "none", config: String = "") {
        self.values = values
        self.counts = counts
        self.sizes = sizes
        self.coverage = coverage
        self.groups = groups
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
            }
        }
        let d = model.dims
        // f32 values as a GGUF stores them, so an import of the same model prints alike
        let config = "V=\(d.V),C=\(d.C),L=\(d.L),H=\(d.H),KV=\(d.KV),Dh=\(d.Dh),F=\(d.F),E=\(d.E),K=\(d.K),eps=\(d.eps),rope=\(Float(d.ropeTheta))"
        self.init(values: values, counts: counts, sizes: sizes, coverage: coverage, groups: groups,
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
    static func hash(of tokenizer: TextTokenizer?) -> String {
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
    public func distance(to other: ModelSignature) -> Double? {
        guard counts == other.counts, sizes == other.sizes, groups == other.groups,
              values.count == other.values.count, coverage.count == other.coverage.count else { return nil }
        guard let a = ModelSignature.worst(values, other.values, counts),
              let b = ModelSignature.worst(coverage, other.coverage, groups) else { return .infinity }
        return max(a, b)
    }

    /// The largest relative L2 difference of x and y over consecutive groups of the given
    /// sizes; nil when a value is not finite.
    static func worst(_ x: [Float], _ y: [Float], _ sizes: [Int]) -> Double? {
        var start = 0
        var worst = 0.0
        for c in sizes {
            var dd = 0.0, aa = 0.0
            for i in start..<(start + c) {
                let a = Double(x[i]), d = a - Double(y[i])
                dd += d * d
                aa += a * a
            }
            start += c
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
        self.init(values: values, counts: counts, sizes: sizes, coverage: coverage, groups: groups, tokenizer: tokenizer, config: config)
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

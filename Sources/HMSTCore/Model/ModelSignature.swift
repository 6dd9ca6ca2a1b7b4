// ModelSignature: which weights a memory's keys were computed with. A memory directory's keys
// (episodic SSM states, semantic vectors) are the hidden states of the model that built it;
// another model's queries land in another space, and its search ranks by the wrong geometry
// while still returning confident-looking entries. The signature is a small fixed sample of the
// model's weights (32-value chunks, at fixed places, of the embedding, the final norm, the LM
// head and, in the first, middle and last layer, the attention, router and two expert matrices),
// read as f32 whatever their storage. Two models match when every sampled tensor differs by at
// most `tolerance` (relative L2): a converted copy of the same weights (bf16, f16, int8 Q8_0,
// the row-quad layout) stays well inside it (measured: under 1%), a retrained or another model is far outside.
// Stored in the tiers' manifests as {"values": hex of little-endian f32, "chunks": [per tensor]}.

public struct ModelSignature: Sendable, Equatable {
    /// Sampled values, tensor after tensor: [Σ chunks[t] * 32] (fewer for a tensor under 32 wide).
    public let values: [Float]
    /// Values per sampled tensor, in order.
    public let counts: [Int]
    /// Each sampled tensor's element count (rows × cols), in order: the model's shape.
    public let sizes: [Int]
    /// Largest relative L2 difference of one tensor's sample between two matching models.
    public static let tolerance = 0.05

    static let chunk = 32

    init(values: [Float], counts: [Int], sizes: [Int]) {
        self.values = values
        self.counts = counts
        self.sizes = sizes
    }

    /// The sample of the model's weights (reads a few pages of each sampled tensor).
    public init(model: LanguageModel) {
        let w = model.decoder.weights
        var tensors: [(Weight, Int)] = [(w.embed, 4), (w.finalNorm, 1)]
        if w.tied == false { tensors.append((w.lmHead, 2)) }
        let L = w.layers.count
        for l in Array(Set([0, L / 2, L - 1])).sorted() where l >= 0 && l < L {
            let layer = w.layers[l]
            tensors += [(layer.attnNorm, 1), (layer.q, 1), (layer.o, 1), (layer.router, 1)]
            if let first = layer.experts.first, let last = layer.experts.last { tensors += [(first.w1, 1), (last.w2, 1)] }
        }
        var values: [Float] = []
        var counts: [Int] = []
        var sizes: [Int] = []
        for (t, chunks) in tensors {
            let n = t.rows * t.cols
            sizes.append(n)
            let len = min(ModelSignature.chunk, n)
            let blocks = n / ModelSignature.chunk
            var got = 0
            for j in 0..<chunks {
                // the middle of the j-th of `chunks` equal parts, on a 32-value block boundary
                let offset = blocks > 0 ? (blocks * (2 * j + 1) / (2 * chunks)) * ModelSignature.chunk : 0
                guard offset + len <= n else { continue }
                var part = [Float](repeating: 0, count: len)
                part.withUnsafeMutableBufferPointer { SafeTensorsWriter.copyFlat(t, from: offset, count: len, to: $0.baseAddress!) }
                values += part
                got += len
            }
            counts.append(got)
        }
        self.init(values: values, counts: counts, sizes: sizes)
    }

    /// Why keys made with `self`'s model do not fit `other`'s, or nil when they do.
    public func mismatch(with other: ModelSignature) -> String? {
        guard let worst = distance(to: other) else {
            return "the model that built it has another shape (sampled tensors of \(sizes) values, this model's \(other.sizes))"
        }
        guard !(worst <= ModelSignature.tolerance) else { return nil }
        let by = !worst.isFinite ? "everything" : worst < 1e4 ? "\(Int((worst * 100).rounded()))%" : "more than 1000000%"
        return "the weights that built it differ from this model's by \(by) at the sampled places "
            + "(a converted copy of the same weights differs by under \(Int(ModelSignature.tolerance * 100))%)"
    }

    /// The largest relative L2 difference of one sampled tensor (inf when a sampled weight is
    /// not finite), or nil when the samples have other shapes.
    public func distance(to other: ModelSignature) -> Double? {
        guard counts == other.counts, sizes == other.sizes else { return nil }
        var start = 0
        var worst = 0.0
        for c in counts {
            var dd = 0.0, aa = 0.0
            for i in start..<(start + c) {
                let a = Double(values[i]), d = a - Double(other.values[i])
                dd += d * d
                aa += a * a
            }
            start += c
            guard dd.isFinite, aa.isFinite else { return .infinity }   // a non-finite weight on either side: no match
            worst = max(worst, aa > 0 ? (dd / aa).squareRoot() : (dd > 0 ? .infinity : 0))
        }
        return worst
    }

    // ---- manifest form ---------------------------------------------------------------------

    public var json: JSONValue {
        var hex = ""
        hex.reserveCapacity(values.count * 8)
        let digits = Array("0123456789abcdef")
        for v in values {
            let u = v.bitPattern
            for byte in 0..<4 {
                let b = Int((u >> (8 * UInt32(byte))) & 0xFF)
                hex.append(digits[b >> 4])
                hex.append(digits[b & 15])
            }
        }
        return .object([("values", .string(hex)), ("chunks", .array(counts.map { .number(Double($0)) })),
                        ("sizes", .array(sizes.map { .number(Double($0)) }))])
    }

    /// Reads the manifest form; BAD_FORMAT (without the file's name: the caller adds it) for a malformed one.
    public init(json: JSONValue) throws {
        guard case .array(let cs)? = json["chunks"], case .array(let ss)? = json["sizes"], let hex = json["values"]?.string else {
            throw HMSTError.badFormat("\"model\" needs \"values\" (a hex string), \"chunks\" and \"sizes\" (counts)")
        }
        func readCounts(_ a: [JSONValue], _ key: String, max: Int) throws -> [Int] {
            try a.map { c in
                guard let n = c.int, n >= 0, n <= max else { throw HMSTError.badFormat("\"model\".\"\(key)\" holds \(c), not a count") }
                return n
            }
        }
        let counts = try readCounts(cs, "chunks", max: 1 << 20)
        let sizes = try readCounts(ss, "sizes", max: 1 << 62)
        guard sizes.count == counts.count else {
            throw HMSTError.badFormat("\"model\" has \(counts.count) \"chunks\" but \(sizes.count) \"sizes\"")
        }
        let total = counts.reduce(0, +)
        let bytes = Array(hex.utf8)
        guard bytes.count == total * 8 else {
            throw HMSTError.badFormat("\"model\".\"values\" holds \(bytes.count) hex digits, its chunks need \(total * 8)")
        }
        func nibble(_ c: UInt8) -> UInt32? {
            switch c {
            case 48...57: return UInt32(c - 48)
            case 97...102: return UInt32(c - 87)
            default: return nil
            }
        }
        var values = [Float](repeating: 0, count: total)
        for i in 0..<total {
            var u: UInt32 = 0
            for byte in 0..<4 {
                guard let hi = nibble(bytes[i * 8 + byte * 2]), let lo = nibble(bytes[i * 8 + byte * 2 + 1]) else {
                    throw HMSTError.badFormat("\"model\".\"values\" holds a character that is not a lower-case hex digit")
                }
                u |= (hi << 4 | lo) << (8 * UInt32(byte))
            }
            values[i] = Float(bitPattern: u)
        }
        self.init(values: values, counts: counts, sizes: sizes)
    }
}

// GGUFModel: a llama.cpp GGUF file of the "llama" architecture (Llama-style dense models, and
// Mixtral, which llama.cpp also files as "llama" with llama.expert_count) as an hmst model.
//
// Metadata -> MixtralConfig: llama.embedding_length (C), block_count (L), feed_forward_length (F),
// attention.head_count (H), attention.head_count_kv (KV, default H), attention.key_length or
// rope.dimension_count (Dh, default C/H), attention.layer_norm_rms_epsilon, rope.freq_base
// (default 10000), context_length, expert_count / expert_used_count (absent: dense, run as one
// expert with a zero router), vocabulary from token_embd's rows.
//
// Tensors -> HF names: token_embd -> embed_tokens, output -> lm_head (absent: tied),
// output_norm -> norm, blk.N.attn_{norm,q,k,v,output}, ffn_norm, ffn_gate_inp (router), experts
// from ffn_{gate,down,up}_exps (3-D, one slice per expert) or ffn_{gate,down,up}.E, or the dense
// ffn_{gate,down,up} as expert 0. F32, BF16 and F16 data are used in place;
// Q8_0 blocks (f16 scale + 32 int8) are repacked into hmst's int8 layout (Quant/Q8Tensor.swift).
//
// llama.cpp's converter permutes the rows of q and k within each head from HF's rotate-half
// order to interleaved pairs (row 2i + j of a head holds HF row j·Dh/2 + i); this undoes it.
//
// Tokenizer: tokenizer.ggml.model "gpt2" (byte-level BPE: tokens, merges, token_type) becomes
// hmst's Tokenizer; control and user-defined tokens are added tokens. Other tokenizer models
// load without a tokenizer and with a warning.
import CKernels

extension LanguageModel {
    static func loadGGUF(path: String, options: ModelLoadOptions) throws -> LanguageModel {
        let t0 = Clock.nowMs()
        let map = try MappedFile(path: path)
        let file = try withExtendedLifetime(map) {
            try GGUFFile(file: UnsafeRawBufferPointer(start: map.base, count: map.count), source: path)
        }
        var report = LoadReport()
        report.path = path
        if options.placement.strategy != .disabled {
            report.warnings.append("\(path): NUMA placement is not applied to GGUF files (plain mmap)")
        }
        let g = GGUFImport(path: path, file: file, map: map, options: options)
        let (config, weights) = try g.build()
        var tokenizer: TextTokenizer? = nil
        if options.loadTokenizer {
            do {
                tokenizer = try g.tokenizer()
            } catch let e as HMSTError where e.status == .unsupported {
                report.warnings.append(e.message)
            }
            if tokenizer != nil, let pre = file.metadata["tokenizer.ggml.pre"]?.string, !["default", "gpt-2", "gpt2"].contains(pre) {
                report.warnings.append("\(path): tokenizer.ggml.pre is \"\(pre)\"; hmst splits text with GPT-2's pattern, so token ids may differ from llama.cpp's on some text")
            }
            if let tv = tokenizer?.vocabSize, tv > config.vocabSize {
                throw HMSTError.badFormat("\(path): the tokenizer has \(tv) tokens but token_embd has \(config.vocabSize) rows")
            }
        }
        var json = config.json()
        if case var .object(o) = json {
            o.append(("hmst", .object([("source", .string("gguf")), ("gguf_path", .string(path))])))
            json = .object(o)
        }
        let finalWeights = options.weightType == .asStored ? weights : try weights.converted(to: options.weightType)
        report.loadMs = Clock.nowMs() - t0
        let model = LanguageModel(decoder: Decoder(dims: config.dims, weights: finalWeights), tokenizer: tokenizer, config: json,
                                  report: report, storage: [map])
        // chat metadata is not the model: what is malformed in it is a warning, and left out
        if let t = file.metadata["tokenizer.chat_template"] {
            if let s = t.string { model.ggufChatTemplate = s }
            else { model.report.warnings.append("\(path): tokenizer.chat_template is not a string; ignored") }
        }
        for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] where file.metadata[key] != nil {
            if let id = try? g.int(key) { model.ggufEndOfTurnIds.append(Int32(truncatingIfNeeded: id)) }
            else { model.report.warnings.append("\(path): \(key) is not an integer; ignored") }
        }
        return model
    }
}

struct GGUFImport {
    let path: String
    let file: GGUFFile
    let map: MappedFile
    let options: ModelLoadOptions

    func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(path): \(m)") }

    func meta(_ key: String) -> GGUFValue? { file.metadata[key] }

    func int(_ key: String, default d: Int? = nil) throws -> Int {
        guard let v = meta(key) else {
            if let d { return d }
            throw bad("metadata \(key) is missing")
        }
        guard let i = v.int else { throw bad("metadata \(key) is not an integer") }
        return i
    }

    func double(_ key: String, default d: Double) throws -> Double {
        guard let v = meta(key) else { return d }
        guard let x = v.double, x.isFinite else { throw bad("metadata \(key) is not a finite number") }
        return x
    }

    func build() throws -> (MixtralConfig, DecoderWeights) {
        guard let arch = meta("general.architecture")?.string else { throw bad("metadata general.architecture is missing") }
        guard arch == "llama" || arch == "mixtral" else {
            throw HMSTError.unsupported("\(path): architecture \"\(arch)\" is not supported (hmst imports \"llama\", dense or with experts)")
        }
        let a = arch + "."
        if let s = meta(a + "rope.scaling.type")?.string, s != "none" {
            throw HMSTError.unsupported("\(path): RoPE scaling \"\(s)\" is not supported")
        }
        if file.tensor("rope_freqs.weight") != nil {
            throw HMSTError.unsupported("\(path): per-dimension RoPE frequencies (rope_freqs.weight, Llama 3.1 scaling) are not supported")
        }
        guard let embed = file.tensor("token_embd.weight"), embed.dims.count == 2 else {
            throw bad("tensor token_embd.weight is missing or not a matrix")
        }
        let C = try int(a + "embedding_length"), H = try int(a + "attention.head_count")
        guard C > 0, H > 0 else { throw bad("embedding_length \(C) and head_count \(H) must be positive") }
        let E = try int(a + "expert_count", default: 0)
        let dense = E == 0
        let Dh = try int(a + "attention.key_length", default: try int(a + "rope.dimension_count", default: C / H))
        let config = try MixtralConfig(
            vocabSize: embed.dims[1], hiddenSize: C, intermediateSize: try int(a + "feed_forward_length"),
            numHiddenLayers: try int(a + "block_count"), numAttentionHeads: H,
            numKeyValueHeads: try int(a + "attention.head_count_kv", default: H), headDim: Dh,
            maxPositionEmbeddings: try int(a + "context_length", default: 2048),
            rmsNormEps: try double(a + "attention.layer_norm_rms_epsilon", default: 1e-5),
            ropeTheta: try double(a + "rope.freq_base", default: 10000),
            numLocalExperts: dense ? 1 : E, numExpertsPerTok: dense ? 1 : try int(a + "expert_used_count", default: 2),
            tieWordEmbeddings: file.tensor("output.weight") == nil,
            bosTokenId: try meta("tokenizer.ggml.bos_token_id").map { _ in try int("tokenizer.ggml.bos_token_id") },
            eosTokenId: try meta("tokenizer.ggml.eos_token_id").map { _ in try int("tokenizer.ggml.eos_token_id") })
        let d = config.dims
        if let rd = meta(a + "rope.dimension_count")?.int, rd != Dh {
            throw HMSTError.unsupported("\(path): partial rotary embeddings (rope.dimension_count \(rd) < head dim \(Dh)) are not supported")
        }

        // every tensor must be used exactly once
        var used = Set<String>()
        func info(_ name: String) throws -> GGUFTensorInfo {
            guard let t = file.tensor(name) else { throw bad("tensor \(name) is missing") }
            used.insert(name)
            return t
        }
        func matrix(_ name: String, _ rows: Int, _ cols: Int, slice: Int? = nil, slices: Int = 1) throws -> Weight {
            let t = try info(name)
            let want = slice == nil ? [cols, rows] : [cols, rows, slices]
            guard t.dims == want || (slice == nil && rows == 1 && t.dims == [cols]) else {
                throw bad("tensor \(name) has dims \(t.dims) but the metadata implies \(want)")
            }
            return try weight(t, rows: rows, cols: cols, slice: slice ?? 0)
        }
        func permuted(_ w: Weight, heads: Int) throws -> Weight { try GGUFImport.unpermuteRows(w, heads: heads, Dh: d.Dh) }

        let zeroRouter = FloatBuffer(count: d.C)
        let weights = try DecoderWeights(dims: d, tensor: { name, rows, cols in
            try self.tensorFor(hf: name, rows: rows, cols: cols, dims: d, dense: dense, matrix: matrix, permuted: permuted)
        }, f32: { name, rows, cols in
            if dense && name.hasSuffix(MixtralNames.routerSuffix) {
                return Weight(.f32(UnsafePointer(zeroRouter.pointer)), rows: 1, cols: d.C, owner: zeroRouter)
            }
            let w = try self.tensorFor(hf: name, rows: rows, cols: cols, dims: d, dense: dense, matrix: matrix, permuted: permuted)
            return w.typeName == "f32" ? w : try convertWeight(w, toBF16: false)
        })
        let extra = file.tensors.map(\.name).filter { !used.contains($0) }
        guard extra.isEmpty else {
            throw HMSTError.unsupported("\(path): \(extra.count) tensor(s) hmst's llama/Mixtral layout does not use: \(extra.prefix(5).joined(separator: ", "))")
        }
        return (config, weights)
    }

    /// The GGUF tensor behind an HF tensor name.
    func tensorFor(hf name: String, rows: Int, cols: Int, dims d: DecoderDims, dense: Bool,
                   matrix: (String, Int, Int, Int?, Int) throws -> Weight, permuted: (Weight, Int) throws -> Weight) throws -> Weight {
        switch name {
        case MixtralNames.embed: return try matrix("token_embd.weight", rows, cols, nil, 1)
        case MixtralNames.lmHead: return try matrix("output.weight", rows, cols, nil, 1)
        case MixtralNames.finalNorm: return try matrix("output_norm.weight", rows, cols, nil, 1)
        default: break
        }
        let parts = name.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]) else {
            throw bad("no GGUF tensor for \(name)")
        }
        let b = "blk.\(l)."
        let rest = parts[3...].joined(separator: ".")
        switch rest {
        case "input_layernorm.weight": return try matrix(b + "attn_norm.weight", rows, cols, nil, 1)
        case "post_attention_layernorm.weight": return try matrix(b + "ffn_norm.weight", rows, cols, nil, 1)
        case "self_attn.q_proj.weight": return try permuted(try matrix(b + "attn_q.weight", rows, cols, nil, 1), d.H)
        case "self_attn.k_proj.weight": return try permuted(try matrix(b + "attn_k.weight", rows, cols, nil, 1), d.KV)
        case "self_attn.v_proj.weight": return try matrix(b + "attn_v.weight", rows, cols, nil, 1)
        case "self_attn.o_proj.weight": return try matrix(b + "attn_output.weight", rows, cols, nil, 1)
        case "block_sparse_moe.gate.weight": return try matrix(b + "ffn_gate_inp.weight", rows, cols, nil, 1)
        default: break
        }
        // block_sparse_moe.experts.E.wN.weight
        guard parts.count == 8, parts[3] == "block_sparse_moe", parts[4] == "experts", let e = Int(parts[5]) else {
            throw bad("no GGUF tensor for \(name)")
        }
        let role = ["w1": "ffn_gate", "w2": "ffn_down", "w3": "ffn_up"][String(parts[6])] ?? ""
        guard !role.isEmpty else { throw bad("no GGUF tensor for \(name)") }
        if dense { return try matrix(b + role + ".weight", rows, cols, nil, 1) }
        if file.tensor(b + role + "_exps.weight") != nil {
            return try matrix(b + role + "_exps.weight", rows, cols, e, d.E)
        }
        return try matrix(b + role + ".\(e).weight", rows, cols, nil, 1)
    }

    /// Slice `slice` ([rows, cols]) of tensor t as a Weight: in place for F32, BF16 and F16 (copied
    /// when misaligned), repacked for Q8_0.
    func weight(_ t: GGUFTensorInfo, rows: Int, cols: Int, slice: Int) throws -> Weight {
        guard let base = map.base else { throw bad("tensor \(t.name) has no data") }
        let blk = t.type.block
        let sliceBytes = rows * cols / blk.n * blk.bytes
        let p = base + file.dataOffset + t.begin + slice * sliceBytes
        let n = rows * cols
        let label = slice == 0 && t.dims.count < 3 ? t.name : "\(t.name)[\(slice)]"
        switch t.type {
        case .f32:
            if options.checkTensors { try TensorCheck.requireFinite(name: label, dtype: .f32, data: p, count: n, cols: cols) }
            if Int(bitPattern: p) % 4 == 0 { return Weight(.f32(p.assumingMemoryBound(to: Float.self)), rows: rows, cols: cols, owner: map) }
            let f = try FloatBuffer(count: n, zeroed: false, for: "an aligned copy of \(label)")
            UnsafeMutableRawPointer(f.pointer).copyMemory(from: p, byteCount: n * 4)
            return Weight(.f32(UnsafePointer(f.pointer)), rows: rows, cols: cols, owner: f)
        case .bf16, .f16:
            if options.checkTensors { try TensorCheck.requireFinite(name: label, dtype: t.type == .bf16 ? .bf16 : .f16, data: p, count: n, cols: cols) }
            func stored(_ q: UnsafePointer<UInt16>) -> WeightStorage { t.type == .bf16 ? .bf16(q) : .f16(q) }
            if Int(bitPattern: p) % 2 == 0 {
                return Weight(stored(p.assumingMemoryBound(to: UInt16.self)), rows: rows, cols: cols, owner: map)
            }
            let tmp = try AlignedBuffer<UInt16>(count: n, zeroed: false, for: "an aligned copy of \(label)")
            UnsafeMutableRawPointer(tmp.pointer).copyMemory(from: p, byteCount: n * 2)
            return Weight(stored(UnsafePointer(tmp.pointer)), rows: rows, cols: cols, owner: tmp)
        case .q8_0:
            // blocks of (f16 scale, 32 int8) -> values [rows, cols] + f32 scales [rows, cols / 32]
            let q = Q8Tensor(rows: rows, cols: cols)
            let nb = n / 32
            var half = [UInt16](repeating: 0, count: nb)
            for b in 0..<nb {
                let bp = p + b * 34
                half[b] = bp.loadUnaligned(as: UInt16.self)
                (q.values + b * 32).withMemoryRebound(to: UInt8.self, capacity: 32) {
                    UnsafeMutableRawPointer($0).copyMemory(from: bp + 2, byteCount: 32)
                }
            }
            hk_f16_to_f32(q.scales, half, nb)
            try TensorCheck.requireFinite(name: label + " (Q8_0 scales)", dtype: .f32, data: UnsafeRawPointer(q.scales), count: nb, cols: cols / 32)
            let m128 = hk_find_i8_value(q.values, n, -128)
            if m128 >= 0 && m128 < n {
                throw bad("tensor \(label) holds -128 at index \(m128); hmst's int8 weights are in [-127, 127]")
            }
            return q.weight
        default:
            throw HMSTError.unsupported("\(path): tensor \(t.name) is \(t.type.name); hmst imports F32, F16, BF16 and Q8_0 tensors (re-quantize with llama-quantize --type q8_0 or convert to f16)")
        }
    }

    /// Undoes llama.cpp's q/k row permutation: within each head of Dh rows, GGUF row 2i + j
    /// holds HF row j·Dh/2 + i.
    static func unpermuteRows(_ w: Weight, heads: Int, Dh: Int) throws -> Weight {
        let half = Dh / 2
        func src(_ r: Int) -> Int {
            let h = r / Dh, k = r % Dh
            let j = k / half, i = k % half
            return h * Dh + 2 * i + j
        }
        let cols = w.cols
        switch w.storage {
        case let .f32(p):
            let out = try FloatBuffer(count: w.count, zeroed: false, for: "a \(w.rows) x \(w.cols) weight with its rows reordered")
            for r in 0..<w.rows { (out.pointer + r * cols).update(from: p + src(r) * cols, count: cols) }
            return Weight(.f32(UnsafePointer(out.pointer)), rows: w.rows, cols: cols, owner: out)
        case let .bf16(p), let .f16(p):
            let out = try AlignedBuffer<UInt16>(count: w.count, zeroed: false, for: "a \(w.rows) x \(w.cols) weight with its rows reordered")
            for r in 0..<w.rows { (out.pointer + r * cols).update(from: p + src(r) * cols, count: cols) }
            let q = UnsafePointer(out.pointer)
            return Weight(w.isBF16 ? .bf16(q) : .f16(q), rows: w.rows, cols: cols, owner: out)
        case .q8Rows4:
            return try unpermuteRows(Q8Tensor.rowMajor(w), heads: heads, Dh: Dh)
        case let .q8(q, s):
            let out = Q8Tensor(rows: w.rows, cols: cols)
            let nb = cols / 32
            for r in 0..<w.rows {
                (out.values + r * cols).update(from: q + src(r) * cols, count: cols)
                (out.scales + r * nb).update(from: s + src(r) * nb, count: nb)
            }
            return out.weight
        }
    }

    /// tokenizer.ggml.* as hmst's byte-level BPE Tokenizer (via the tokenizer.json reader).
    func tokenizer() throws -> TextTokenizer? {
        guard let model = meta("tokenizer.ggml.model")?.string else { return nil }
        guard model == "gpt2" else {
            throw HMSTError.unsupported("\(path): tokenizer model \"\(model)\" is not supported (byte-level BPE \"gpt2\" is); loaded without a tokenizer")
        }
        guard let tokens = meta("tokenizer.ggml.tokens")?.array else { throw bad("tokenizer.ggml.tokens is missing") }
        let merges = meta("tokenizer.ggml.merges")?.array ?? []
        let types = meta("tokenizer.ggml.token_type")?.array
        if let types, types.count != tokens.count {
            throw bad("tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
        }
        var vocab: [(String, JSONValue)] = []
        var added: [JSONValue] = []
        vocab.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            guard let s = t.string else { throw bad("tokenizer.ggml.tokens[\(i)] is not a string") }
            vocab.append((s, .number(Double(i))))
            let type = types?[i].int ?? 1
            if type == 3 || type == 4 {  // control, user-defined
                added.append(.object([("id", .number(Double(i))), ("content", .string(s)), ("single_word", .bool(false)),
                                      ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)),
                                      ("special", .bool(type == 3))]))
            }
        }
        var mergeList: [JSONValue] = []
        mergeList.reserveCapacity(merges.count)
        for (i, m) in merges.enumerated() {
            guard let s = m.string else { throw bad("tokenizer.ggml.merges[\(i)] is not a string") }
            mergeList.append(.string(s))
        }
        let byteLevel = JSONValue.object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)),
                                          ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
        let json = JSONValue.object([
            ("added_tokens", .array(added)), ("normalizer", .null), ("pre_tokenizer", byteLevel), ("decoder", byteLevel),
            ("model", .object([("type", .string("BPE")), ("vocab", .object(vocab)), ("merges", .array(mergeList))])),
        ])
        return try Tokenizer(parsed: json, source: path + " (tokenizer.ggml.*)")
    }
}

// TokenizerJSON: reading and writing tokenizer.json exactly as HF tokenizers does for a
// ByteLevel BPE: model {type BPE, vocab, merges}, ByteLevel pre-tokenizer and decoder,
// added_tokens. Every way a file can be wrong gets its own message.

extension Tokenizer {
    public convenience init(jsonPath: String) throws {
        try self.init(json: try FileIO.readAll(jsonPath), source: jsonPath)
    }

    /// The tokenizer.json a path names: the path itself, or the tokenizer.json inside it when it
    /// is a directory (a checkpoint's or `hmst tokenizer train`'s output).
    public static func jsonFile(_ fileOrDirectory: String) -> String {
        FileIO.isDirectory(fileOrDirectory) ? fileOrDirectory + "/tokenizer.json" : fileOrDirectory
    }

    public convenience init(json bytes: [UInt8], source: String = "tokenizer.json") throws {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes: bytes) } catch let e as HMSTError {
            throw HMSTError.badFormat("\(source): not valid JSON (\(e.message))")
        }
        try self.init(parsed: root, source: source)
    }

    /// A tokenizer.json's tree, parsed or built in memory: GGUF's tokenizer.ggml.* (GGUFModel),
    /// whose token list may hold a control token's string twice, which a JSON file's object
    /// could not (the parser refuses repeated keys).
    convenience init(parsed root: JSONValue, source: String) throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(source): \(m)") }
        guard root.object != nil else { throw bad("not a JSON object") }
        guard let model = root["model"], model.object != nil else { throw bad("no \"model\" object") }
        let type = model["type"]?.string ?? (model["merges"] != nil ? "BPE" : "")
        guard type == "BPE" else {
            throw bad("model type \"\(type.isEmpty ? "missing" : type)\" is not supported; hmst reads byte-level BPE tokenizers")
        }
        if let n = root["normalizer"], !n.isNull {
            throw HMSTError.unsupported("\(source): normalizer \(n["type"]?.string ?? "?") is not supported (byte-level BPE uses none)")
        }
        // pre-tokenizer: ByteLevel, possibly inside a Sequence
        var addPrefixSpace = false
        func byteLevel(_ p: JSONValue) throws {
            guard p["type"]?.string == "ByteLevel" else {
                throw HMSTError.unsupported("\(source): pre_tokenizer \(p["type"]?.string ?? "?") is not supported (ByteLevel only)")
            }
            if p["use_regex"]?.bool == false {
                throw HMSTError.unsupported("\(source): a ByteLevel pre_tokenizer without the GPT-2 regex is not supported")
            }
            addPrefixSpace = p["add_prefix_space"]?.bool ?? false
        }
        guard let pre = root["pre_tokenizer"], !pre.isNull else { throw bad("no pre_tokenizer (byte-level BPE needs ByteLevel)") }
        if pre["type"]?.string == "Sequence" {
            let list = pre["pretokenizers"]?.array ?? []
            guard list.count == 1 else {
                throw HMSTError.unsupported("\(source): a Sequence of \(list.count) pre-tokenizers is not supported (only [ByteLevel])")
            }
            try byteLevel(list[0])
        } else {
            try byteLevel(pre)
        }
        if let d = root["decoder"], !d.isNull, d["type"]?.string != "ByteLevel" {
            throw HMSTError.unsupported("\(source): decoder \(d["type"]?.string ?? "?") is not supported (ByteLevel only)")
        }
        if model["byte_fallback"]?.bool == true { throw HMSTError.unsupported("\(source): byte_fallback BPE is not supported") }
        if let p = model["continuing_subword_prefix"]?.string, !p.isEmpty {
            throw HMSTError.unsupported("\(source): continuing_subword_prefix is not supported")
        }
        if let p = model["end_of_word_suffix"]?.string, !p.isEmpty { throw HMSTError.unsupported("\(source): end_of_word_suffix is not supported") }

        // vocab
        guard let vocab = model["vocab"]?.object else { throw bad("model has no \"vocab\" object") }
        guard !vocab.isEmpty else { throw bad("the vocabulary is empty") }
        guard vocab.count <= 1 << 22 else { throw bad("vocabulary of \(vocab.count) entries is too large") }
        var added: [AddedToken] = []
        var addedById: [Int32: String] = [:]
        if let list = root["added_tokens"]?.array {
            for (i, t) in list.enumerated() {
                guard let id = t["id"]?.int, let content = t["content"]?.string else {
                    throw bad("added_tokens[\(i)] needs an integer \"id\" and a string \"content\"")
                }
                guard id >= 0, id < 1 << 22 else { throw bad("added token \"\(content)\" has id \(id) out of range") }
                guard !content.isEmpty else { throw bad("added_tokens[\(i)] has empty content") }
                if let other = addedById[Int32(id)] { throw bad("duplicate id \(id) in added_tokens (\"\(other)\" and \"\(content)\")") }
                addedById[Int32(id)] = content
                added.append(AddedToken(id: Int32(id), content: content, special: t["special"]?.bool ?? false,
                                        singleWord: t["single_word"]?.bool ?? false, lstrip: t["lstrip"]?.bool ?? false,
                                        rstrip: t["rstrip"]?.bool ?? false, normalized: t["normalized"]?.bool ?? false))
            }
        }
        // the largest id anywhere, so a vocabulary that skips an id is reported as not dense
        let maxId = max(vocab.count - 1, vocab.compactMap { $0.1.int }.max() ?? 0, added.map { Int($0.id) }.max() ?? 0)
        guard maxId < vocab.count + added.count else {
            throw bad("ids are not dense: the largest id is \(maxId) but there are \(vocab.count) vocabulary and \(added.count) added tokens")
        }
        var pieces = [[UInt8]?](repeating: nil, count: maxId + 1)
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(vocab.count)
        var seen: [Int32: String] = [:]
        for (piece, v) in vocab {
            guard let id = v.int else { throw bad("vocab entry \"\(piece)\" has a non-integer id \(v.serialized)") }
            guard id >= 0, id <= maxId else { throw bad("vocab entry \"\(piece)\" has id \(id) out of range") }
            if let other = seen[Int32(id)] { throw bad("duplicate id \(id) in the vocabulary (\"\(other)\" and \"\(piece)\")") }
            seen[Int32(id)] = piece
            if let content = addedById[Int32(id)] {
                guard content == piece else { throw bad("id \(id) is \"\(piece)\" in the vocabulary but added token \"\(content)\"") }
                pieces[id] = Array(content.utf8)
                continue
            }
            guard let bytes = ByteLevel.decode(piece) else {
                throw bad("vocab entry \"\(piece)\" has characters outside the byte-level alphabet")
            }
            if ids[bytes] != nil { throw bad("vocab entry \"\(piece)\" appears twice") }
            pieces[id] = bytes
            ids[bytes] = Int32(id)
        }
        for t in added where pieces[Int(t.id)] == nil { pieces[Int(t.id)] = Array(t.content.utf8) }
        if let hole = pieces.firstIndex(where: { $0 == nil }) {
            throw bad("no token has id \(hole): ids must run from 0 without gaps")
        }
        try self.init(finish: pieces.map { $0 ?? [] }, ids: ids, model: model, added: added, addPrefixSpace: addPrefixSpace,
                      source: source)
    }

    private convenience init(finish pieces: [[UInt8]], ids: [[UInt8]: Int32], model: JSONValue, added: [AddedToken],
                             addPrefixSpace: Bool, source: String) throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(source): \(m)") }
        for b in 0..<256 where ids[[UInt8(b)]] == nil {
            throw bad("the vocabulary lacks the byte-level symbol for byte 0x\(String(b, radix: 16)) (\"\(ByteLevel.encode([UInt8(b)]))\"); byte-level BPE needs all 256")
        }
        guard let mergesJ = model["merges"]?.array else { throw bad("model has no \"merges\" list") }
        var merges: [(Int32, Int32)] = []
        merges.reserveCapacity(mergesJ.count)
        for (i, m) in mergesJ.enumerated() {
            let a: String, b: String
            if let s = m.string {
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw bad("merge #\(i) \"\(s)\" is not two tokens separated by one space") }
                a = String(parts[0]); b = String(parts[1])
            } else if let pair = m.array, pair.count == 2, let x = pair[0].string, let y = pair[1].string {
                a = x; b = y
            } else {
                throw bad("merge #\(i) is neither \"a b\" nor [\"a\", \"b\"]")
            }
            guard let ab = ByteLevel.decode(a), let ia = ids[ab] else { throw bad("merge #\(i) uses \"\(a)\", which is not in the vocabulary") }
            guard let bb = ByteLevel.decode(b), let ib = ids[bb] else { throw bad("merge #\(i) uses \"\(b)\", which is not in the vocabulary") }
            merges.append((ia, ib))
        }
        let bpe: BPEModel
        do { bpe = try BPEModel(pieces: pieces, ids: ids, mergeList: merges, ignoreMerges: model["ignore_merges"]?.bool ?? false) }
        catch let e as HMSTError where e.status == .badFormat { throw bad(e.message) }
        self.init(model: bpe, addedTokens: added.sorted { $0.id < $1.id }, addPrefixSpace: addPrefixSpace)
    }

    /// tokenizer.json in the layout current HF tokenizers writes for a ByteLevel BPE.
    public var json: String {
        let byteLevel: (Bool) -> JSONValue = { trim in
            .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(self.addPrefixSpace)),
                     ("trim_offsets", .bool(trim)), ("use_regex", .bool(true))])
        }
        let addedJ = JSONValue.array(addedTokens.map { t in
            .object([("id", .number(Double(t.id))), ("content", .string(t.content)), ("single_word", .bool(t.singleWord)),
                     ("lstrip", .bool(t.lstrip)), ("rstrip", .bool(t.rstrip)), ("normalized", .bool(t.normalized)),
                     ("special", .bool(t.special))])
        })
        let addedIdSet = Set(addedTokens.map(\.id))
        var vocab: [(String, JSONValue)] = []
        vocab.reserveCapacity(model.pieces.count)
        for (id, p) in model.pieces.enumerated() {
            let piece = addedIdSet.contains(Int32(id)) ? String(decoding: p, as: UTF8.self) : ByteLevel.encode(p)
            vocab.append((piece, .number(Double(id))))
        }
        let merges = JSONValue.array(model.mergeList.map { a, b in
            .array([.string(ByteLevel.encode(model.pieces[Int(a)])), .string(ByteLevel.encode(model.pieces[Int(b)]))])
        })
        let modelJ = JSONValue.object([
            ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null), ("continuing_subword_prefix", .null),
            ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)),
            ("ignore_merges", .bool(model.ignoreMerges)), ("vocab", .object(vocab)), ("merges", merges),
        ])
        let root = JSONValue.object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", addedJ),
            ("normalizer", .null), ("pre_tokenizer", byteLevel(true)), ("post_processor", byteLevel(false)),
            ("decoder", byteLevel(true)), ("model", modelJ),
        ])
        return root.serialized
    }

    /// Writes tokenizer.json atomically.
    public func save(path: String) throws { try FileIO.writeAtomically(path, text: json) }
}

// Exports: standalone tokenizers. Documented in include/hmst.h.
import CHMST
import HMSTCore

final class TokenizerBox {
    let tokenizer: Tokenizer
    init(_ t: Tokenizer) { tokenizer = t }
}

func resolveTokenizer(_ h: OpaquePointer?) throws -> Tokenizer {
    try HandleRegistry.shared.resolve(h, as: TokenizerBox.self, "tokenizer").tokenizer
}

/// Shared by hmst_tokenize and hmst_tokenizer_encode.
func encodeInto(_ tok: TextTokenizer, _ text: UnsafePointer<CChar>?, _ textLen: Int, _ out: UnsafeMutablePointer<Int32>?,
                _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) throws {
    let nOut = try required(nOut, "n_out")
    let textLen = try sizeArgument(textLen, "text_len", in: 0 ... 1 << 40), cap = try outputCapacity(out, cap, "out")
    if textLen > 0 && text == nil { throw HMSTError.invalidArgument("text is NULL but text_len is \(textLen)") }
    let bytes = textLen == 0 ? [] : Array(UnsafeRawBufferPointer(start: text, count: textLen))
    let ids = tok.encode(bytes: bytes)
    nOut.pointee = ids.count
    if ids.isEmpty { return }
    guard ids.count <= cap, let out else { throw HMSTError(.bufferTooSmall, "\(ids.count) tokens do not fit cap \(cap)") }
    ids.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: ids.count) }
}

/// Shared by hmst_detokenize and hmst_tokenizer_decode.
func decodeInto(_ tok: TextTokenizer, _ tokens: UnsafePointer<Int32>?, _ n: Int, _ out: UnsafeMutablePointer<CChar>?,
                _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) throws {
    let nOut = try required(nOut, "n_out")
    let n = try sizeArgument(n, "n_tokens", in: 0 ... 1 << 32), cap = try outputCapacity(out, cap, "out")
    if n > 0 && tokens == nil { throw HMSTError.invalidArgument("tokens is NULL but n_tokens is \(n)") }
    let ids = n == 0 ? [] : Array(UnsafeBufferPointer(start: tokens, count: n))
    let bytes = try tok.decode(ids)
    nOut.pointee = bytes.count
    if bytes.isEmpty { return }
    guard bytes.count <= cap, let out else { throw HMSTError(.bufferTooSmall, "\(bytes.count) bytes do not fit cap \(cap)") }
    bytes.withUnsafeBytes { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
}

@_cdecl("hmst_tokenizer_load")
public func hmst_tokenizer_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let p = Tokenizer.jsonFile(try cString(path, "path"))
        let out = try required(out, "out_tokenizer")
        out.pointee = HandleRegistry.shared.register(TokenizerBox(try Tokenizer(jsonPath: p)))
    }
}

@_cdecl("hmst_tokenizer_train_default_params")
public func hmst_tokenizer_train_default_params() -> hmst_tokenizer_train_params {
    let d = BPETrainingOptions()
    var p = hmst_tokenizer_train_params()
    p.struct_size = UInt32(MemoryLayout<hmst_tokenizer_train_params>.size)
    p.vocab_size = Int32(d.vocabSize)
    p.min_frequency = Int32(d.minFrequency)
    p.special_tokens = nil
    p.n_special_tokens = 0
    p.progress = nil
    p.progress_user_data = nil
    return p
}

@_cdecl("hmst_tokenizer_train")
public func hmst_tokenizer_train(_ files: UnsafePointer<UnsafePointer<CChar>?>?, _ nFiles: Int,
                                 _ params: UnsafePointer<hmst_tokenizer_train_params>?,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out_tokenizer")
        let nFiles = try sizeArgument(nFiles, "n_files", in: 1 ... 1 << 20)
        let files = try required(files, "files")
        let paths = try (0..<nFiles).map { try cString(files[$0], "files[\($0)]") }
        let p = try readParams(params, defaults: hmst_tokenizer_train_default_params(), name: "params")
        var o = BPETrainingOptions()
        o.vocabSize = Int(p.vocab_size)
        o.minFrequency = Int(p.min_frequency)
        let nSpecial = try sizeArgument(p.n_special_tokens, "params->n_special_tokens", in: 0 ... 4096)
        if nSpecial > 0 {
            let list = try required(p.special_tokens, "params->special_tokens")
            o.specialTokens = try (0..<nSpecial).map { try cString(list[$0], "special_tokens[\($0)]") }
        }
        var progress: ((String, Int, Int) -> Bool)? = nil
        if let cb = p.progress {
            let ud = p.progress_user_data
            // words pass is the first tenth, merges the rest
            progress = { phase, done, total in
                let f = total > 0 ? Double(done) / Double(total) : 1
                return cb(Float(phase == "words" ? 0.1 * f : 0.1 + 0.9 * f), ud)
            }
        }
        out.pointee = HandleRegistry.shared.register(TokenizerBox(try BPETrainer.train(files: paths, options: o, progress: progress)))
    }
}

@_cdecl("hmst_tokenizer_save")
public func hmst_tokenizer_save(_ tok: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    hmstCall {
        let t = try resolveTokenizer(tok)
        try t.save(path: try cString(path, "path"))
    }
}

@_cdecl("hmst_tokenizer_free")
public func hmst_tokenizer_free(_ tok: OpaquePointer?) {
    HandleRegistry.shared.release(tok, as: TokenizerBox.self)
}

@_cdecl("hmst_tokenizer_encode")
public func hmst_tokenizer_encode(_ tok: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLen: Int,
                                  _ out: UnsafeMutablePointer<Int32>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall { try encodeInto(try resolveTokenizer(tok), text, textLen, out, cap, nOut) }
}

@_cdecl("hmst_tokenizer_decode")
public func hmst_tokenizer_decode(_ tok: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int,
                                  _ out: UnsafeMutablePointer<CChar>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall { try decodeInto(try resolveTokenizer(tok), tokens, n, out, cap, nOut) }
}

@_cdecl("hmst_tokenizer_vocab_size")
public func hmst_tokenizer_vocab_size(_ tok: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let t = try resolveTokenizer(tok)
        try required(out, "out_size").pointee = Int32(t.vocabSize)
    }
}

@_cdecl("hmst_tokenizer_id_to_piece")
public func hmst_tokenizer_id_to_piece(_ tok: OpaquePointer?, _ id: Int32, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                       _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let t = try resolveTokenizer(tok)
        guard let piece = t.piece(for: id) else {
            throw HMSTError.invalidArgument("token id \(id) is outside the vocabulary 0 ..< \(t.vocabSize)")
        }
        try writeString(piece, buf, cap, nOut)
    }
}

@_cdecl("hmst_tokenizer_piece_to_id")
public func hmst_tokenizer_piece_to_id(_ tok: OpaquePointer?, _ piece: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let t = try resolveTokenizer(tok)
        let s = try cString(piece, "piece")
        let out = try required(out, "out_id")
        guard let id = t.id(for: s) else { throw HMSTError.notFound("\"\(s)\" is not a piece of this tokenizer") }
        out.pointee = id
    }
}

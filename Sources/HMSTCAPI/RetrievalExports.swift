// Exports: dense, lexical and hybrid retrieval over both memories (HMSTCore/Retrieval),
// documented in include/hmst.h ("retrieval"). Each hit carries the score and rank of each part.
import CHMST
import HMSTCore

@_cdecl("hmst_retrieval_default_params")
public func hmst_retrieval_default_params() -> hmst_retrieval_params {
    let d = RetrievalOptions()
    var p = hmst_retrieval_params()
    p.struct_size = UInt32(MemoryLayout<hmst_retrieval_params>.size)
    p.mode = Int32(HMST_RETRIEVAL_HYBRID.rawValue)
    p.k = Int32(d.k)
    p.n_candidates = Int32(d.nCandidates)
    p.rrf_k = d.rrfK
    p.dense_weight = d.denseWeight
    p.lexical_weight = d.lexicalWeight
    p.bm25_k1 = d.k1
    p.bm25_b = d.b
    p.nprobe = 0
    p.min_coverage = d.minCoverage
    return p
}

/// An enum hmst_retrieval_mode value from a host's params field.
func retrievalMode(_ raw: Int32, _ field: String) throws -> RetrievalMode {
    switch UInt32(bitPattern: raw) {
    case HMST_RETRIEVAL_HYBRID.rawValue: return .hybrid
    case HMST_RETRIEVAL_DENSE.rawValue: return .dense
    case HMST_RETRIEVAL_LEXICAL.rawValue: return .lexical
    default: throw HMSTError.invalidArgument("\(field) = \(raw) is not an enum hmst_retrieval_mode (0 hybrid, 1 dense, 2 lexical)")
    }
}

/// The enum hmst_retrieval_mode value of a mode.
func retrievalModeValue(_ m: RetrievalMode) -> Int32 {
    switch m {
    case .hybrid: return Int32(HMST_RETRIEVAL_HYBRID.rawValue)
    case .dense: return Int32(HMST_RETRIEVAL_DENSE.rawValue)
    case .lexical: return Int32(HMST_RETRIEVAL_LEXICAL.rawValue)
    }
}

/// The host's params as RetrievalOptions (validated later by the memory).
func retrievalOptions(_ params: UnsafePointer<hmst_retrieval_params>?) throws -> RetrievalOptions {
    let p = try readParams(params, defaults: hmst_retrieval_default_params(), name: "params")
    var o = RetrievalOptions()
    o.mode = try retrievalMode(p.mode, "params->mode")
    o.k = Int(p.k)
    o.nCandidates = Int(p.n_candidates)
    o.rrfK = p.rrf_k
    o.denseWeight = p.dense_weight
    o.lexicalWeight = p.lexical_weight
    o.k1 = p.bm25_k1
    o.b = p.bm25_b
    guard p.nprobe >= 0 else { throw HMSTError.invalidArgument("params->nprobe = \(p.nprobe) must be >= 0") }
    o.nprobe = p.nprobe == 0 ? nil : Int(p.nprobe)
    guard p.min_coverage >= 0, p.min_coverage <= 1 else {
        throw HMSTError.invalidArgument("params->min_coverage = \(p.min_coverage) must be in [0, 1]")
    }
    o.minCoverage = p.min_coverage
    return o
}

/// Writes hits to out[cap] under the buffer rule: *n_out = count; BUFFER_TOO_SMALL if cap < count.
func writeRetrievalHits(_ hits: [RetrievalHit], _ out: UnsafeMutablePointer<hmst_retrieval_hit>?, _ cap: Int,
                        _ nOut: UnsafeMutablePointer<Int>?) throws {
    let nOut = try required(nOut, "n_out"), cap = try outputCapacity(out, cap, "out")
    nOut.pointee = hits.count
    guard cap >= hits.count else {
        throw HMSTError(.bufferTooSmall, "out has room for \(cap) hits: \(hits.count) needed")
    }
    guard let out else { return }
    for (i, h) in hits.enumerated() {
        out[i] = hmst_retrieval_hit(id: h.id, score: h.score, dense_score: h.dense?.score ?? .nan,
                                    lexical_score: h.lexical?.score ?? .nan, dense_rank: Int32(clamping: h.dense?.rank ?? 0),
                                    lexical_rank: Int32(clamping: h.lexical?.rank ?? 0))
    }
}

/// Checks a host's text argument: NULL allowed (nil), invalid UTF-8 rejected.
func optionalText(_ p: UnsafePointer<CChar>?, _ name: String) throws -> String? {
    guard let p else { return nil }
    guard let s = String(validatingCString: p) else { throw HMSTError.invalidArgument("\(name) is not valid UTF-8") }
    return s
}

@_cdecl("hmst_semantic_retrieve")
public func hmst_semantic_retrieve(_ m: OpaquePointer?, _ model: OpaquePointer?, _ text: UnsafePointer<CChar>?,
                                   _ query: UnsafePointer<Float>?, _ nQuery: Int, _ params: UnsafePointer<hmst_retrieval_params>?,
                                   _ out: UnsafeMutablePointer<hmst_retrieval_hit>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let mem = try resolveSemantic(m)
        let o = try retrievalOptions(params)
        let t = try optionalText(text, "text")
        var q: [Float]? = nil
        if let query {
            guard nQuery == mem.config.dim else {
                throw HMSTError.invalidArgument("n_query = \(UInt(bitPattern: nQuery)), but this memory's vectors have \(mem.config.dim) values")
            }
            q = Array(UnsafeBufferPointer(start: query, count: nQuery))
        } else if o.mode != .lexical {
            guard model != nil else {
                throw HMSTError.invalidArgument("\(o.mode.rawValue) mode needs a query vector or a model to embed the text")
            }
            guard let t else { throw HMSTError.invalidArgument("text must not be NULL when the query is embedded from it") }
            q = try mem.queryEmbedding(of: t, model: try resolveModel(model))
        }
        try writeRetrievalHits(try mem.retrieve(text: t, query: q, options: o), out, cap, nOut)
    }
}

@_cdecl("hmst_episodic_retrieve")
public func hmst_episodic_retrieve(_ m: OpaquePointer?, _ model: OpaquePointer?, _ text: UnsafePointer<CChar>?,
                                   _ params: UnsafePointer<hmst_retrieval_params>?, _ out: UnsafeMutablePointer<hmst_retrieval_hit>?,
                                   _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let mem = try resolveEpisodic(m)
        let o = try retrievalOptions(params)
        guard let t = try optionalText(text, "text") else { throw HMSTError.invalidArgument("text must not be NULL") }
        let lm = o.mode == .lexical ? nil : try resolveModel(model)
        try writeRetrievalHits(try mem.retrieve(text: t, model: lm, options: o), out, cap, nOut)
    }
}

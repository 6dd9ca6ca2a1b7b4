// Exports: the HMST engine (hmst_engine_*). Documented in include/hmst.h.
import CHMST
import HMSTCore

func resolveEngine(_ h: OpaquePointer?) throws -> Engine {
    try HandleRegistry.shared.resolve(h, as: Engine.self, "engine")
}

/// The owner field of a host's query params, or nil when its struct predates the field
/// (struct_size short of covering it: a caller built against an older hmst.h).
func engineQueryOwner(_ raw: UnsafePointer<hmst_engine_query_params>?, _ p: hmst_engine_query_params) throws -> String? {
    guard let raw, let at = MemoryLayout<hmst_engine_query_params>.offset(of: \.owner) else { return nil }
    let hostSize = Int(UnsafeRawPointer(raw).load(as: UInt32.self))
    guard hostSize >= at + MemoryLayout<UnsafePointer<CChar>?>.size else { return nil }
    guard let o = p.owner else { return nil }
    let s = String(cString: o)
    guard s.utf8.count <= 4096 else { throw HMSTError.invalidArgument("params->owner is \(s.utf8.count) bytes; at most 4096") }
    return s
}

@_cdecl("hmst_engine_default_params")
public func hmst_engine_default_params() -> hmst_engine_params {
    let o = EngineOptions()
    var p = hmst_engine_params()
    p.struct_size = UInt32(MemoryLayout<hmst_engine_params>.size)
    p.k = Int32(o.k)
    p.exit_layer = 0
    p.selected_experts = Int32(o.selectedExperts)
    p.confidence_threshold = o.confidenceThreshold
    p.retry_with_memory = o.retryWithMemory
    p.n_ctx = 0
    p.n_threads = 0
    p.episodic_retrieval = retrievalModeValue(o.episodicMode)
    return p
}

@_cdecl("hmst_engine_query_default_params")
public func hmst_engine_query_default_params() -> hmst_engine_query_params {
    let q = EngineQuery("")
    var p = hmst_engine_query_params()
    p.struct_size = UInt32(MemoryLayout<hmst_engine_query_params>.size)
    p.policy = nil
    p.max_tokens = Int32(q.maxTokens)
    p.temperature = q.temperature
    p.seed = q.seed
    p.owner = nil
    return p
}

@_cdecl("hmst_engine_create")
public func hmst_engine_create(_ model: OpaquePointer?, _ semantic: OpaquePointer?, _ episodic: OpaquePointer?,
                               _ params: UnsafePointer<hmst_engine_params>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out_engine")
        let lm = try resolveModel(model)
        let s = try semantic.map { try resolveSemantic($0) }
        let e = try episodic.map { try resolveEpisodic($0, "episodic") }
        let p = try readParams(params, defaults: hmst_engine_default_params(), name: "params")
        var o = EngineOptions()
        o.k = Int(p.k)
        guard p.exit_layer >= 0 else { throw HMSTError.invalidArgument("params->exit_layer \(p.exit_layer) must be >= 0 (0 = default)") }
        o.exitLayer = p.exit_layer == 0 ? nil : Int(p.exit_layer)
        o.selectedExperts = Int(p.selected_experts)
        guard p.confidence_threshold.isFinite else { throw HMSTError.invalidArgument("params->confidence_threshold is not finite") }
        o.confidenceThreshold = p.confidence_threshold
        o.retryWithMemory = p.retry_with_memory
        o.nCtx = Int(p.n_ctx)
        o.nThreads = Int(p.n_threads)
        o.episodicMode = try retrievalMode(p.episodic_retrieval, "params->episodic_retrieval")
        let engine = try Engine(model: lm, semantic: s, episodic: e, options: o)
        out.pointee = HandleRegistry.shared.register(engine)
    }
}

@_cdecl("hmst_engine_free")
public func hmst_engine_free(_ engine: OpaquePointer?) {
    HandleRegistry.shared.release(engine, as: Engine.self)
}

@_cdecl("hmst_engine_info")
public func hmst_engine_info(_ engine: OpaquePointer?, _ hasController: UnsafeMutablePointer<Bool>?,
                             _ hasCritic: UnsafeMutablePointer<Bool>?, _ exitLayer: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let e = try resolveEngine(engine)
        hasController?.pointee = e.controller != nil
        hasCritic?.pointee = e.verifier != nil
        exitLayer?.pointee = Int32(e.exitLayer)
    }
}

@_cdecl("hmst_engine_ask")
public func hmst_engine_ask(_ engine: OpaquePointer?, _ query: UnsafePointer<CChar>?,
                            _ params: UnsafePointer<hmst_engine_query_params>?,
                            _ out: UnsafeMutablePointer<hmst_engine_result>?) -> Int32 {
    hmstCall {
        let e = try resolveEngine(engine)
        let text = try cString(query, "query")
        let p = try readParams(params, defaults: hmst_engine_query_default_params(), name: "params")
        if let out {
            let host = Int(UnsafeRawPointer(out).load(as: UInt32.self))
            guard host >= 8 else { throw HMSTError.invalidArgument("out_result->struct_size is \(host); set it to sizeof(struct hmst_engine_result)") }
        }
        var q = EngineQuery(text)
        q.policy = try EnginePolicy.parse(p.policy.map { String(cString: $0) } ?? "auto")
        q.maxTokens = Int(p.max_tokens)
        q.temperature = p.temperature
        q.seed = p.seed
        q.owner = try engineQueryOwner(params, p)
        let onToken: ((Int32, [UInt8], Float) -> Bool)? = p.on_token.map { cb in
            let ud = p.user_data
            return { id, piece, lp in piece.withUnsafeBufferPointer { b in cb(id, b.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, b.count, lp, ud) } }
        }
        let r = try e.ask(q, onToken: onToken)
        var c = hmst_engine_result()
        copyString(r.answer, into: &c.answer)
        copyString(r.modelAnswer, into: &c.model_answer)
        c.abstained = r.abstained
        c.retried = r.retried
        c.confidence = r.confidence
        c.confidence_calibrated = r.confidenceCalibrated
        let b = r.decisions.bits, y = r.probabilities.yes
        c.decisions = (b[0], b[1], b[2], b[3], b[4])
        c.probabilities = (y[0], y[1], y[2], y[3], y[4])
        c.n_citations = Int32(r.citations.count)
        c.n_tokens = Int32(r.tokens.count)
        c.prompt_tokens = Int32(clamping: r.cost.promptTokens)
        c.generated_tokens = Int32(clamping: r.cost.generatedTokens)
        c.matmul_flops = r.cost.matmulFLOPs
        c.vectors_scanned = Int64(r.cost.vectorsScanned)
        c.ssm_tokens_encoded = Int64(r.cost.ssmTokensEncoded)
        c.critic_calls = Int32(r.cost.criticCalls)
        let t = r.times.values
        c.stage_ms = (t[0], t[1], t[2], t[3], t[4], t[5])
        c.struct_size = UInt32(MemoryLayout<hmst_engine_result>.size)
        if let out { try writeInfo(c, to: out, minimum: 8, name: "out_result") }
        if let cb = p.on_result {
            let json = EngineReport.json(r)
            json.withCString { cb(&c, $0, json.utf8.count, p.user_data) }
        }
    }
}

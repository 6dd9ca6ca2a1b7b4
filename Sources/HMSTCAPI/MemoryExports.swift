// Exports: semantic and episodic memory, model embeddings and consolidation. Documented in
// include/hmst.h. The memories are their own handles (they lock internally).
import CHMST
import HMSTCore

func resolveSemantic(_ h: OpaquePointer?) throws -> SemanticMemory {
    try HandleRegistry.shared.resolve(h, as: SemanticMemory.self, "memory")
}

func resolveEpisodic(_ h: OpaquePointer?, _ name: String = "memory") throws -> EpisodicMemory {
    try HandleRegistry.shared.resolve(h, as: EpisodicMemory.self, name)
}

/// n vectors of dim floats from a C array, checked for count.
func floats(_ p: UnsafePointer<Float>?, count n: Int, _ name: String) throws -> [Float] {
    let p = try required(p, name)
    return Array(UnsafeBufferPointer(start: p, count: n))
}

func positiveCount(_ n: Int64, _ name: String) throws -> Int {
    guard n > 0, n <= 1 << 31 else { throw HMSTError.invalidArgument("\(name) = \(n) must be in 1...2^31") }
    return Int(n)
}

/// Writes hits into out[k] (id -1, score NaN past the end); returns how many are valid.
func writeHits(_ hits: [(Int64, Float)], k: Int, _ out: UnsafeMutablePointer<hmst_memory_hit>) -> Int {
    for i in 0..<k {
        out[i] = i < hits.count ? hmst_memory_hit(id: hits[i].0, score: hits[i].1) : hmst_memory_hit(id: -1, score: .nan)
    }
    return min(k, hits.count)
}

func checkK(_ k: Int32) throws -> Int {
    guard k >= 1, k <= 1 << 20 else { throw HMSTError.invalidArgument("k = \(k) must be in 1...1048576") }
    return Int(k)
}

@_cdecl("hmst_model_embed")
public func hmst_model_embed(_ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Float>?,
                             _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let m = try resolveModel(model)
        let nOut = try required(nOut, "n_out"), cap = try outputCapacity(out, cap, "out")
        let t = try cString(text, "text")
        nOut.pointee = m.dims.C
        guard cap >= m.dims.C, let out else {
            throw HMSTError(.bufferTooSmall, "out has room for \(cap) floats: \(m.dims.C) needed")
        }
        let e = try m.embed(text: t)
        out.update(from: e, count: e.count)
    }
}

// ---- semantic -------------------------------------------------------------------------------

@_cdecl("hmst_semantic_default_params")
public func hmst_semantic_default_params() -> hmst_semantic_params {
    var p = hmst_semantic_params()
    p.struct_size = UInt32(MemoryLayout<hmst_semantic_params>.size)
    p.dim = 0
    p.index_description = nil
    p.metric = Int32(HMST_METRIC_COSINE.rawValue)
    p.nprobe = Int32(SemanticMemoryConfig.defaultNprobe)
    return p
}

@_cdecl("hmst_semantic_create")
public func hmst_semantic_create(_ params: UnsafePointer<hmst_semantic_params>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        let p = try readParams(try required(params, "params"), defaults: hmst_semantic_default_params(), name: "params")
        let metric: SemanticMetric
        switch UInt32(bitPattern: p.metric) {
        case HMST_METRIC_COSINE.rawValue: metric = .cosine
        case HMST_METRIC_INNER_PRODUCT.rawValue: metric = .innerProduct
        case HMST_METRIC_L2.rawValue: metric = .l2
        default: throw HMSTError.invalidArgument("params->metric = \(p.metric) is not an enum hmst_metric value")
        }
        let description = p.index_description.map { String(cString: $0) } ?? SemanticMemoryConfig.defaultDescription
        let m = try SemanticMemory(config: SemanticMemoryConfig(dim: Int(p.dim), description: description, metric: metric, nprobe: Int(p.nprobe)))
        out.pointee = HandleRegistry.shared.register(m)
    }
}

@_cdecl("hmst_semantic_load")
public func hmst_semantic_load(_ dir: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        out.pointee = HandleRegistry.shared.register(try SemanticMemory.load(directory: try cString(dir, "dir")))
    }
}

@_cdecl("hmst_semantic_save")
public func hmst_semantic_save(_ m: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> Int32 {
    hmstCall { try resolveSemantic(m).save(directory: try cString(dir, "dir")) }
}

@_cdecl("hmst_semantic_reencode")
public func hmst_semantic_reencode(_ m: OpaquePointer?, _ model: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        let mem = try resolveSemantic(m)
        out.pointee = HandleRegistry.shared.register(try mem.reencoded(for: try resolveModel(model)))
    }
}

@_cdecl("hmst_semantic_free")
public func hmst_semantic_free(_ m: OpaquePointer?) {
    HandleRegistry.shared.release(m, as: SemanticMemory.self)
}

@_cdecl("hmst_semantic_add")
public func hmst_semantic_add(_ m: OpaquePointer?, _ vectors: UnsafePointer<Float>?, _ n: Int64, _ ids: UnsafePointer<Int64>?,
                              _ texts: UnsafePointer<UnsafePointer<CChar>?>?, _ source: UnsafePointer<CChar>?,
                              _ outIds: UnsafeMutablePointer<Int64>?) -> Int32 {
    hmstCall {
        let mem = try resolveSemantic(m)
        let count = try positiveCount(n, "n")
        let dim = mem.config.dim
        guard count <= Int.max / dim else { throw HMSTError.invalidArgument("n = \(n) vectors is too many") }
        let x = try floats(vectors, count: count * dim, "vectors")
        let src = source.map { String(cString: $0) } ?? ""
        let now = MemoryMetadata.now()
        let meta = (0..<count).map { i in MemoryMetadata(text: texts?[i].map { String(cString: $0) } ?? "", source: src, timestamp: now) }
        let given = ids.map { Array(UnsafeBufferPointer(start: $0, count: count)) }
        let assigned = try mem.add(vectors: x, metadata: meta, ids: given)
        if let outIds { outIds.update(from: assigned, count: assigned.count) }
    }
}

@_cdecl("hmst_semantic_add_text")
public func hmst_semantic_add_text(_ m: OpaquePointer?, _ model: OpaquePointer?, _ text: UnsafePointer<CChar>?,
                                   _ source: UnsafePointer<CChar>?, _ outId: UnsafeMutablePointer<Int64>?) -> Int32 {
    hmstCall {
        let id = try resolveSemantic(m).add(text: try cString(text, "text"), model: try resolveModel(model),
                                            source: source.map { String(cString: $0) } ?? "")
        outId?.pointee = id
    }
}

@_cdecl("hmst_semantic_search")
public func hmst_semantic_search(_ m: OpaquePointer?, _ queries: UnsafePointer<Float>?, _ n: Int64, _ k: Int32, _ nprobe: Int32,
                                 _ out: UnsafeMutablePointer<hmst_memory_hit>?) -> Int32 {
    hmstCall {
        let mem = try resolveSemantic(m)
        let count = try positiveCount(n, "n"), kk = try checkK(k)
        let out = try required(out, "out")
        guard nprobe >= 0 else { throw HMSTError.invalidArgument("nprobe = \(nprobe) must be >= 0") }
        let q = try floats(queries, count: count * mem.config.dim, "queries")
        let r = try mem.searchArrays(queries: q, k: kk, nprobe: nprobe == 0 ? nil : Int(nprobe))
        r.ids.withUnsafeBufferPointer { ids in
            r.scores.withUnsafeBufferPointer { scores in
                for i in 0..<ids.count { out[i] = hmst_memory_hit(id: ids[i], score: scores[i]) }
            }
        }
    }
}

@_cdecl("hmst_semantic_search_text")
public func hmst_semantic_search_text(_ m: OpaquePointer?, _ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ k: Int32,
                                      _ nprobe: Int32, _ out: UnsafeMutablePointer<hmst_memory_hit>?,
                                      _ nOut: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let mem = try resolveSemantic(m)
        let lm = try resolveModel(model)
        let kk = try checkK(k)
        let out = try required(out, "out")
        guard nprobe >= 0 else { throw HMSTError.invalidArgument("nprobe = \(nprobe) must be >= 0") }
        let hits = try mem.search(text: try cString(text, "text"), model: lm, k: kk, nprobe: nprobe == 0 ? nil : Int(nprobe))
        let valid = writeHits(hits.map { ($0.id, $0.score) }, k: kk, out)
        nOut?.pointee = Int32(valid)
    }
}

@_cdecl("hmst_semantic_remove")
public func hmst_semantic_remove(_ m: OpaquePointer?, _ ids: UnsafePointer<Int64>?, _ n: Int64, _ nRemoved: UnsafeMutablePointer<Int64>?) -> Int32 {
    hmstCall {
        let mem = try resolveSemantic(m)
        let count = try positiveCount(n, "n")
        let list = Array(UnsafeBufferPointer(start: try required(ids, "ids"), count: count))
        // (not `nRemoved?.pointee = ...remove(...)`: with n_removed NULL that would skip the removal)
        let removed = try mem.remove(ids: list).removed
        nRemoved?.pointee = Int64(removed)
    }
}

@_cdecl("hmst_semantic_get_text")
public func hmst_semantic_get_text(_ m: OpaquePointer?, _ id: Int64, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                   _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall { try writeString(try resolveSemantic(m).metadata(id: id).text, buf, cap, nOut) }
}

@_cdecl("hmst_semantic_set_background_training")
public func hmst_semantic_set_background_training(_ m: OpaquePointer?, _ enabled: Bool) -> Int32 {
    hmstCall { try resolveSemantic(m).trainInBackground = enabled }
}

@_cdecl("hmst_semantic_wait_training")
public func hmst_semantic_wait_training(_ m: OpaquePointer?) -> Int32 {
    hmstCall { try resolveSemantic(m).waitForTraining() }
}

@_cdecl("hmst_semantic_stats_json")
public func hmst_semantic_stats_json(_ m: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                     _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let mem = try resolveSemantic(m)
        let s = mem.stats()
        let w = JSONWriter()
        w.object {
            w.field("kind", "semantic"); w.field("count", s.count); w.field("dim", s.dim); w.field("description", s.description)
            w.field("metric", s.metric.rawValue); w.field("phase", s.phase.rawValue); w.field("train_threshold", s.trainThreshold)
            w.field("nlist", s.nlist); w.field("nprobe", s.nprobe); w.field("index_bytes", s.indexBytes)
            w.field("tombstones", s.tombstones); w.field("next_id", String(s.nextId)); w.field("model_recorded", mem.recordsModel)
            if let ms = s.lastTrainingMs { w.field("last_training_ms", ms) }
            if let e = s.lastTrainingError { w.field("last_training_error", e) }
        }
        try writeString(w.output, buf, cap, nOut)
    }
}

// ---- episodic -------------------------------------------------------------------------------

@_cdecl("hmst_episodic_default_params")
public func hmst_episodic_default_params() -> hmst_episodic_params {
    let d = EpisodicMemoryConfig()
    var p = hmst_episodic_params()
    p.struct_size = UInt32(MemoryLayout<hmst_episodic_params>.size)
    p.max_entries = Int32(d.maxEntries)
    p.state_size = Int32(d.stateSize)
    p.max_tokens = Int32(d.maxTokens)
    p.seed = d.seed
    return p
}

@_cdecl("hmst_episodic_create")
public func hmst_episodic_create(_ model: OpaquePointer?, _ params: UnsafePointer<hmst_episodic_params>?,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        let lm = try resolveModel(model)
        let p = try readParams(params, defaults: hmst_episodic_default_params(), name: "params")
        var c = EpisodicMemoryConfig()
        c.maxEntries = Int(p.max_entries); c.stateSize = Int(p.state_size); c.maxTokens = Int(p.max_tokens); c.seed = p.seed
        out.pointee = HandleRegistry.shared.register(try EpisodicMemory(model: lm, config: c))
    }
}

@_cdecl("hmst_episodic_load")
public func hmst_episodic_load(_ dir: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        out.pointee = HandleRegistry.shared.register(try EpisodicMemory.load(directory: try cString(dir, "dir")))
    }
}

@_cdecl("hmst_episodic_save")
public func hmst_episodic_save(_ m: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> Int32 {
    hmstCall { try resolveEpisodic(m).save(directory: try cString(dir, "dir")) }
}

@_cdecl("hmst_episodic_reencode")
public func hmst_episodic_reencode(_ m: OpaquePointer?, _ model: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        let mem = try resolveEpisodic(m)
        out.pointee = HandleRegistry.shared.register(try mem.reencoded(for: try resolveModel(model)))
    }
}

@_cdecl("hmst_episodic_free")
public func hmst_episodic_free(_ m: OpaquePointer?) {
    HandleRegistry.shared.release(m, as: EpisodicMemory.self)
}

@_cdecl("hmst_episodic_add_text")
public func hmst_episodic_add_text(_ m: OpaquePointer?, _ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ importance: Float,
                                   _ outId: UnsafeMutablePointer<Int64>?) -> Int32 {
    hmstCall {
        let id = try resolveEpisodic(m).add(text: try cString(text, "text"), model: try resolveModel(model), importance: Double(importance))
        outId?.pointee = id
    }
}

@_cdecl("hmst_episodic_add_key")
public func hmst_episodic_add_key(_ m: OpaquePointer?, _ key: UnsafePointer<Float>?, _ nKey: Int, _ text: UnsafePointer<CChar>?,
                                  _ importance: Float, _ outId: UnsafeMutablePointer<Int64>?) -> Int32 {
    hmstCall {
        let mem = try resolveEpisodic(m)
        guard nKey == mem.keyDim else { throw HMSTError.invalidArgument("n_key = \(UInt(bitPattern: nKey)), but this memory's keys have \(mem.keyDim) values") }
        let id = try mem.add(key: try floats(key, count: nKey, "key"), text: text.map { String(cString: $0) } ?? "", importance: Double(importance))
        outId?.pointee = id
    }
}

@_cdecl("hmst_episodic_search_text")
public func hmst_episodic_search_text(_ m: OpaquePointer?, _ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ k: Int32,
                                      _ out: UnsafeMutablePointer<hmst_memory_hit>?, _ nOut: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let mem = try resolveEpisodic(m)
        let kk = try checkK(k)
        let out = try required(out, "out")
        let hits = try mem.search(text: try cString(text, "text"), model: try resolveModel(model), k: kk)
        let valid = writeHits(hits.map { ($0.id, $0.score) }, k: kk, out)
        nOut?.pointee = Int32(valid)
    }
}

@_cdecl("hmst_episodic_search_key")
public func hmst_episodic_search_key(_ m: OpaquePointer?, _ key: UnsafePointer<Float>?, _ nKey: Int, _ k: Int32,
                                     _ out: UnsafeMutablePointer<hmst_memory_hit>?, _ nOut: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let mem = try resolveEpisodic(m)
        let kk = try checkK(k)
        let out = try required(out, "out")
        guard nKey == mem.keyDim else { throw HMSTError.invalidArgument("n_key = \(UInt(bitPattern: nKey)), but this memory's keys have \(mem.keyDim) values") }
        let hits = try mem.search(key: try floats(key, count: nKey, "key"), k: kk)
        let valid = writeHits(hits.map { ($0.id, $0.score) }, k: kk, out)
        nOut?.pointee = Int32(valid)
    }
}

@_cdecl("hmst_episodic_remove")
public func hmst_episodic_remove(_ m: OpaquePointer?, _ ids: UnsafePointer<Int64>?, _ n: Int64, _ nRemoved: UnsafeMutablePointer<Int64>?) -> Int32 {
    hmstCall {
        let mem = try resolveEpisodic(m)
        let count = try positiveCount(n, "n")
        let removed = mem.remove(ids: Array(UnsafeBufferPointer(start: try required(ids, "ids"), count: count)))
        nRemoved?.pointee = Int64(removed)
    }
}

@_cdecl("hmst_episodic_get_text")
public func hmst_episodic_get_text(_ m: OpaquePointer?, _ id: Int64, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                   _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall { try writeString(try resolveEpisodic(m).entry(id: id).text, buf, cap, nOut) }
}

@_cdecl("hmst_episodic_stats_json")
public func hmst_episodic_stats_json(_ m: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                     _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        let mem = try resolveEpisodic(m)
        let entries = mem.allEntries()
        let w = JSONWriter()
        w.object {
            w.field("kind", "episodic"); w.field("count", entries.count); w.field("max_entries", mem.config.maxEntries)
            w.field("state_size", mem.config.stateSize); w.field("input_size", mem.inputSize); w.field("model_recorded", mem.recordsModel)
            w.field("entries", JSONValue.array(entries.map { e in
                .object([("id", .string(String(e.id))), ("access_count", .number(Double(e.accessCount))), ("surprise", .number(e.surprise)),
                         ("importance", .number(e.importance)), ("timestamp", .number(e.timestamp)), ("tokens", .number(Double(e.tokens.count)))])
            }))
        }
        try writeString(w.output, buf, cap, nOut)
    }
}

// ---- consolidation --------------------------------------------------------------------------

@_cdecl("hmst_consolidate_default_params")
public func hmst_consolidate_default_params() -> hmst_consolidate_params {
    let d = ConsolidationOptions()
    var p = hmst_consolidate_params()
    p.struct_size = UInt32(MemoryLayout<hmst_consolidate_params>.size)
    p.threshold = d.threshold
    p.max_per_run = Int32(d.maxPerRun)
    p.remove_from_episodic = d.removeFromEpisodic
    p.half_life_seconds = d.halfLifeSeconds
    return p
}

func consolidationOptions(_ params: UnsafePointer<hmst_consolidate_params>?) throws -> ConsolidationOptions {
    let p = try readParams(params, defaults: hmst_consolidate_default_params(), name: "params")
    var o = ConsolidationOptions()
    o.threshold = p.threshold
    o.maxPerRun = Int(p.max_per_run)
    o.removeFromEpisodic = p.remove_from_episodic
    o.halfLifeSeconds = p.half_life_seconds
    try o.validate()
    return o
}

@_cdecl("hmst_consolidate")
public func hmst_consolidate(_ e: OpaquePointer?, _ s: OpaquePointer?, _ model: OpaquePointer?,
                             _ params: UnsafePointer<hmst_consolidate_params>?, _ nMoved: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let r = try Consolidator.run(episodic: try resolveEpisodic(e, "episodic"), semantic: try HandleRegistry.shared.resolve(s, as: SemanticMemory.self, "semantic"),
                                     model: try resolveModel(model), options: try consolidationOptions(params))
        nMoved?.pointee = Int32(r.moved.count)
    }
}

@_cdecl("hmst_consolidator_start")
public func hmst_consolidator_start(_ e: OpaquePointer?, _ s: OpaquePointer?, _ model: OpaquePointer?,
                                    _ params: UnsafePointer<hmst_consolidate_params>?, _ interval: Double,
                                    _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    hmstCall {
        let out = try required(out, "out")
        let episodic = try resolveEpisodic(e, "episodic")
        let semantic = try HandleRegistry.shared.resolve(s, as: SemanticMemory.self, "semantic")
        let lm = try resolveModel(model)
        let bg = try BackgroundConsolidator(episodic: episodic, semantic: semantic, model: lm, options: try consolidationOptions(params),
                                            interval: interval)
        try bg.start()
        out.pointee = HandleRegistry.shared.register(bg)
    }
}

@_cdecl("hmst_consolidator_stop")
public func hmst_consolidator_stop(_ c: OpaquePointer?, _ nPasses: UnsafeMutablePointer<Int32>?, _ nMoved: UnsafeMutablePointer<Int32>?) {
    guard let bg = try? HandleRegistry.shared.resolve(c, as: BackgroundConsolidator.self, "consolidator") else { return }
    bg.stop()
    let st = bg.status
    nPasses?.pointee = Int32(clamping: st.passes)
    nMoved?.pointee = Int32(clamping: st.moved)
    HandleRegistry.shared.release(c, as: BackgroundConsolidator.self)
}

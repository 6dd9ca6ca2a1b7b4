// Exports: evaluation (hmst_eval_*). One call runs HMSTCore's EvalRun; everything a host
// passes is checked here before use. Documented in include/hmst.h.
import CHMST
import HMSTCore

@_cdecl("hmst_eval_default_params")
public func hmst_eval_default_params() -> hmst_eval_params {
    let d = EvalOptions()
    var p = hmst_eval_params()
    p.struct_size = UInt32(MemoryLayout<hmst_eval_params>.size)
    p.conditions = UInt32(HMST_EVAL_CONDITION_OFF.rawValue)
    p.k = Int32(d.k)
    p.limit = 0
    p.seed = d.seed
    p.bootstrap_resamples = Int32(d.resamples)
    p.n_ctx = 0
    p.retrieval_mode = Int32(HMST_RETRIEVAL_HYBRID.rawValue)
    let r = RetrievalOptions()
    p.dense_weight = r.denseWeight
    p.lexical_weight = r.lexicalWeight
    p.min_coverage = r.minCoverage
    return p
}

func evalRequest(_ params: UnsafePointer<hmst_eval_params>?) throws -> EvalRunRequest {
    let p = try readParams(try required(params, "params"), defaults: hmst_eval_default_params(), name: "params")
    var r = EvalRunRequest()
    let nTasks = try sizeArgument(p.n_tasks, "params->n_tasks", in: 1 ... 4096)
    let paths = try required(p.task_paths, "params->task_paths")
    for i in 0..<nTasks { r.taskPaths.append(try cString(paths[i], "params->task_paths[\(i)]")) }
    if let m = p.memory_dir { r.memoryDirectory = String(cString: m) }
    let all: [(UInt32, MemoryCondition)] = [(UInt32(HMST_EVAL_CONDITION_OFF.rawValue), .off), (UInt32(HMST_EVAL_CONDITION_ON.rawValue), .on),
                                            (UInt32(HMST_EVAL_CONDITION_ORACLE.rawValue), .oracle),
                                            (UInt32(HMST_EVAL_CONDITION_DELETED.rawValue), .deleted)]
    let known = all.reduce(UInt32(0)) { $0 | $1.0 }
    guard p.conditions != 0, p.conditions & ~known == 0 else {
        throw HMSTError.invalidArgument("params->conditions \(p.conditions) must be a non-empty OR of HMST_EVAL_CONDITION_* values")
    }
    r.options.conditions = all.filter { p.conditions & $0.0 != 0 }.map(\.1)
    r.options.k = Int(p.k)
    guard p.limit >= 0 else { throw HMSTError.invalidArgument("params->limit \(p.limit) must be >= 0 (0 = all items)") }
    r.limit = Int(p.limit)
    r.options.seed = p.seed
    r.options.resamples = Int(p.bootstrap_resamples)
    r.options.nCtx = Int(p.n_ctx)
    if let s = p.report_path { r.reportPath = String(cString: s) }
    if let s = p.items_path { r.itemsPath = String(cString: s) }
    r.retrieval.mode = try retrievalMode(p.retrieval_mode, "params->retrieval_mode")
    for (w, name) in [(p.dense_weight, "dense_weight"), (p.lexical_weight, "lexical_weight")] where !(w.isFinite && w >= 0) {
        throw HMSTError.invalidArgument("params->\(name) = \(w) must be finite and >= 0")
    }
    r.retrieval.denseWeight = p.dense_weight
    r.retrieval.lexicalWeight = p.lexical_weight
    guard p.min_coverage >= 0, p.min_coverage <= 1 else {
        throw HMSTError.invalidArgument("params->min_coverage = \(p.min_coverage) must be in [0, 1]")
    }
    r.retrieval.minCoverage = p.min_coverage
    return r
}

@_cdecl("hmst_eval_run")
public func hmst_eval_run(_ model: OpaquePointer?, _ params: UnsafePointer<hmst_eval_params>?,
                          _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int, _ nOut: UnsafeMutablePointer<Int>?) -> Int32 {
    hmstCall {
        _ = try required(nOut, "n_out")
        let cap = try outputCapacity(buf, cap, "buf")
        let lm = try resolveModel(model)
        let report = try EvalRun.run(model: lm, try evalRequest(params))
        try writeString(report.json(), buf, cap, nOut)
    }
}

// EvalRun: the whole of `hmst eval`, hmst_eval_run and hmst.evaluate in one call, so the front
// ends only parse arguments: load the tasks, open the memory directory (never modified), build
// the retriever, run, and write the report and the per-item JSONL atomically when asked.

public struct EvalRunRequest: Sendable {
    public var taskPaths: [String] = []
    /// memory directory for the on and deleted conditions; nil = none
    public var memoryDirectory: String?
    public var options = EvalOptions()
    /// how on and deleted retrieve: hybrid (default), dense or lexical, from which tier
    public var retrieval = RetrievalOptions()
    public var tier: MemoryTier = .both
    /// first items of each task; 0 = all
    public var limit = 0
    /// where to write the JSON report and the per-item JSONL; nil = not written
    public var reportPath: String?
    public var itemsPath: String?
    /// score generate_until answers with the critic stored in this checkpoint directory
    /// (an error when it has none); nil = no critic
    public var criticCheckpoint: String?

    public init() {}
}

public enum EvalRun {
    public static func run(model: LanguageModel, _ req: EvalRunRequest) throws -> EvalReport {
        guard !req.taskPaths.isEmpty else { throw HMSTError.invalidArgument("no task files given") }
        var options = req.options
        if req.itemsPath != nil { options.keepItems = true }
        try options.validate()
        if let dir = req.criticCheckpoint {
            let loaded: Critic?
            do { loaded = try Critic.load(checkpoint: dir, model: model) } catch let e as CriticForAnotherModel {
                throw HMSTError.invalidArgument(e.message)
            }
            guard let critic = loaded else {
                throw HMSTError.notFound("\(dir) has no critic (critic/config.json): train one with hmst train-critic")
            }
            options.critic = critic
        }
        let tasks = try req.taskPaths.map { try EvalTask.load(path: $0, limit: req.limit) }
        try FileIO.refuseOverwriting(inputs: req.taskPaths + tasks.map(\.dataPath), outputs: [req.reportPath, req.itemsPath].compactMap { $0 })
        var retriever: Retriever?
        if let dir = req.memoryDirectory, options.conditions.contains(where: \.retrieves) {
            let store = try MemoryStore(directory: dir, readOnly: true)
            // a tier the memory lacks would retrieve nothing: "on" would silently equal "off"
            let missing = [store.episodic == nil ? MemoryTier.episodic : nil, store.semantic == nil ? .semantic : nil].compactMap { $0 }
            if missing.contains(req.tier) { throw HMSTError.invalidArgument("--tier \(req.tier.rawValue): \(dir) has no \(req.tier.rawValue) memory") }
            if missing.count == 2 { throw HMSTError.invalidArgument("\(dir) has neither an episodic nor a semantic memory") }
            if options.episodicInjection != .text, req.tier != .semantic {
                // the stored keys must come from the mixer the projection was trained with
                guard let ep = store.episodic else {
                    throw HMSTError.invalidArgument("--episodic-injection \(options.episodicInjection.rawValue): \(dir) has no episodic memory")
                }
                _ = try ep.checkSoftTokens(of: model, store.episodicDirectory)
                // and from this model's hidden states, even when lexical retrieval never encodes a query
                try ep.checkModel(model)
            }
            retriever = try MemoryStoreRetriever(store: store, model: model, tier: req.tier, options: req.retrieval)
        }
        var report = try Evaluator(model: model, retriever: retriever, options: options).run(tasks, memoryDirectory: req.memoryDirectory)
        if retriever != nil { report.retrieval = (req.retrieval, req.tier) }
        if let p = req.reportPath { try FileIO.writeAtomically(p, text: report.json()) }
        if let p = req.itemsPath { try FileIO.writeAtomically(p, text: report.itemsJSONL()) }
        return report
    }
}

// CriticTrainRun: the whole of `hmst train-critic` in one call, so front ends only parse
// arguments: build the pool (or read a saved one), save it when asked (before fitting, so a
// pool that cannot train a critic is still kept for inspection), fit, write the critic into the
// checkpoint directory and the JSON report.

public struct CriticTrainRequest: Sendable {
    public var pool = CriticPoolRequest()
    /// read the pool from this JSONL instead of answering the questions
    public var poolInput: String?
    /// write the pool built to this JSONL
    public var poolOutput: String?
    public var options = CriticTrainingOptions()
    /// checkpoint directory the critic is written into (its critic/ folder); nil = not written
    public var outputCheckpoint: String?
    public var reportPath: String?

    public init() {}
}

public enum CriticTrainRun {
    public static func run(model: LanguageModel, _ req: CriticTrainRequest,
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> (Critic, CriticTrainingReport) {
        try req.options.validate()
        if let out = req.outputCheckpoint, !FileIO.exists(out + "/config.json") {
            throw HMSTError.invalidArgument("\(out) is not a checkpoint directory (no config.json): the critic belongs beside its model; copy the checkpoint there first")
        }
        let rows: [CriticPoolRow]
        if let path = req.poolInput {
            rows = try CriticPool.read(path: path)
        } else {
            rows = try CriticPool.build(model: model, req.pool, progress: progress)
        }
        if let p = req.poolOutput { try FileIO.writeAtomically(p, text: CriticPool.jsonl(rows)) }
        let (critic, report) = try CriticTraining.fit(model: model, rows: rows, settings: req.pool.settings, options: req.options)
        if let out = req.outputCheckpoint { try critic.save(checkpoint: out) }
        if let p = req.reportPath { try FileIO.writeAtomically(p, text: report.json().serialized + "\n") }
        return (critic, report)
    }
}

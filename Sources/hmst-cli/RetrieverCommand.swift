// hmst train-retriever CKPT --pairs FILE: learns the retrieval projection (DPR-style query and
// document maps over the frozen model's pooled features, in-batch and BM25 hard negatives) and
// stores it in the checkpoint as
// retriever.safetensors + retriever.json; every later load of CKPT embeds through it.
import ArgumentParser
import Foundation
import HMSTCore

struct TrainRetrieverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-retriever",
        abstract: "Train the query/document projection for dense retrieval on (question, fact) pairs; saved into the checkpoint.")
    @Argument(help: "The checkpoint directory (the base model stays frozen).") var checkpoint: String
    @Option(help: "JSON lines of {\"question\": ..., \"fact\": ...}.") var pairs: String
    @Option(help: "Adam steps.") var steps = 800
    @Option(help: "Projection size D (default: the hidden size; min(64, hidden size) with --pooling hidden). D equal to the features' size starts from the identity.") var dim: Int?
    @Option(help: "What the projection reads: hidden+tokens (mean final hidden state and mean input token embedding, 2C) or hidden (the mean final hidden state, C).")
    var pooling = "hidden+tokens"
    @Option(name: .customLong("hard-negatives"), help: "BM25 hard negatives per question (training facts other than its own).") var hardNegatives = 1
    @Option(name: .customLong("batch-size"), help: "Pairs per step (in-batch negatives).") var batchSize = 64
    @Option(name: .customLong("learning-rate"), help: "Adam learning rate.") var learningRate: Float = 1e-3
    @Option(help: "InfoNCE temperature.") var temperature: Float = 0.05
    @Option(help: "Seed of batch order (and of a random initial map when --dim differs).") var seed: UInt64 = 0
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let model = try LanguageModel.load(path: checkpoint)
            let list = try RetrieverTrainer.readPairs(path: pairs)
            var o = RetrieverTrainingOptions()
            o.steps = steps
            o.dim = dim
            o.batchSize = batchSize
            o.learningRate = learningRate
            o.temperature = temperature
            o.seed = seed
            o.pooling = try RetrieverPooling.named(pooling)
            o.hardNegatives = hardNegatives
            if model.retriever != nil { printError("replacing the retriever already in \(checkpoint)") }
            let t0 = Clock.nowMs()
            let p = try RetrieverTrainer.train(model: model, pairs: list, options: o) { step, loss in
                if step == 1 || step % 50 == 0 || step == o.steps { printError(String(format: "step %4d  loss %.4f", step, loss)) }
            }
            try p.save(checkpoint: checkpoint)
            printError(String(format: "trained on %ld pairs in %.1f s -> %@/%@ (%@, pooling %@, D %ld)", list.count, (Clock.nowMs() - t0) / 1000,
                              checkpoint, RetrieverProjection.weightsName, p.embedderName, p.pooling.rawValue, p.D))
        }
    }
}

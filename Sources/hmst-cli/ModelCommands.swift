// hmst init / hmst info: make a random checkpoint; describe a checkpoint or the presets.
import ArgumentParser
import Foundation
import HMSTCore

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Write a randomly initialised (untrained) checkpoint of a preset size.")

    @Option(help: "Preset: micro, tiny, small, base, large.")
    var size = "micro"

    @Option(help: "Vocabulary size (default: the preset's).")
    var vocab: Int?

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "Stored dtype: f32, bf16, f16 or int8.")
    var dtype = "f32"

    @Option(help: "A tokenizer.json (or its directory) to ship with the model; the vocabulary then defaults to its size.")
    var tokenizer: String?

    @Argument(help: "Output checkpoint directory.")
    var output: String

    @Flag(help: "Replace a checkpoint already in OUTPUT (its retriever, heads, critic and controller are removed first).")
    var force = false

    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let stored: [String: SafeTensorDType] = ["f32": .f32, "bf16": .bf16, "f16": .f16, "int8": .i8]
            guard let st = stored[dtype] else { throw HMSTError.invalidArgument("--dtype must be f32, bf16, f16 or int8") }
            try CheckpointParts.refuseExisting(output, replace: force)
            let tok = try tokenizer.map(loadTokenizer)
            var config = try MixtralConfig.preset(size, vocabSize: vocab ?? tok?.vocabSize)
            if let tok {
                guard tok.vocabSize <= config.vocabSize else {
                    throw HMSTError.invalidArgument("the tokenizer has \(tok.vocabSize) tokens but --vocab is \(config.vocabSize)")
                }
                config.eosTokenId = tok.eosId.map(Int.init)
            }
            let model = try LanguageModel.random(config: config, seed: seed, bf16: dtype == "bf16", tokenizer: tok)
            try CheckpointParts.replacing(output, keepTokenizer: tok != nil) { try model.save(directory: $0, dtype: st) }
            print("wrote \(output): UNTRAINED \(size) model (random weights, seed \(seed)), "
                  + "\(formatCount(config.parameterCount)) parameters (\(formatCount(config.activeParameterCount)) active per token), \(dtype)")
        }
    }
}

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Describe a checkpoint (config, parameter counts, tensors) or the presets.")

    @Argument(help: "Checkpoint directory (omit with --presets).")
    var checkpoint: String?

    @Flag(help: "List the preset sizes with their parameter counts.")
    var presets = false

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var loadFlags: LoadFlags

    func run() throws {
        try runReportingErrors {
            if presets || checkpoint == nil {
                let widths = [7, 7, 7, 9, 6, 8, 4, 7, 9, 9]
                func row(_ cells: [String]) -> String {
                    zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " ")
                }
                print(row(["preset", "hidden", "layers", "heads/kv", "ffn", "experts", "top", "vocab", "params", "active"]))
                for name in MixtralConfig.presetNames {
                    let c = try MixtralConfig.preset(name)
                    print(row([name, "\(c.hiddenSize)", "\(c.numHiddenLayers)", "\(c.numAttentionHeads)/\(c.numKeyValueHeads)",
                               "\(c.intermediateSize)", "\(c.numLocalExperts)", "\(c.numExpertsPerTok)", "\(c.vocabSize)",
                               formatCount(c.parameterCount), formatCount(c.activeParameterCount)]))
                }
                return
            }
            guard let checkpoint else { return }
            let model = try LanguageModel.load(path: checkpoint, options: try loadFlags.options())
            if json { print(ModelInfo.json(model)); return }
            let c = try model.modelConfig()
            print("checkpoint: \(checkpoint)\(model.report.untrained ? "  (UNTRAINED: random weights)" : "")")
            print("config:     hidden \(c.hiddenSize), layers \(c.numHiddenLayers), heads \(c.numAttentionHeads)/\(c.numKeyValueHeads) (head dim \(c.headDim)), "
                  + "ffn \(c.intermediateSize), experts \(c.numLocalExperts) top-\(c.numExpertsPerTok), vocab \(c.vocabSize), "
                  + "context \(c.maxPositionEmbeddings), rope theta \(c.ropeTheta), tied \(c.tieWordEmbeddings)")
            print("parameters: \(formatCount(model.parameterCount)) total, \(formatCount(model.activeParameterCount)) active per token")
            print("weights:    \(model.weightsType), loaded in \(String(format: "%.1f", model.report.loadMs)) ms")
            print("tokenizer:  \(model.tokenizer.map { "\($0.vocabSize) tokens" } ?? "none")")
            guard FileIO.isDirectory(checkpoint) else { return }  // a .gguf file: no safetensors listing
            let map = try MappedFile(path: checkpoint + "/model.safetensors")
            let header = try SafeTensorsHeader(map: map)
            print("tensors (\(header.tensors.count)):")
            for t in header.tensors.sorted(by: { $0.begin < $1.begin }) {
                print("  \(t.name)  \(t.dtype.rawValue) \(t.shape)")
            }
        }
    }
}

func formatCount(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2fB", d / 1e9) }
    if d >= 1e6 { return String(format: "%.1fM", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1fK", d / 1e3) }
    return "\(n)"
}

// hmst quantize: rewrite a checkpoint (or a llama.cpp .gguf file) with its matrices in another
// storage type, int8 Q8_0 blocks above all. Also the load flags shared by commands that load
// a model (--check-tensors, --weights).
import ArgumentParser
import HMSTCore

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a checkpoint with int8 (Q8_0 blocks), bf16 or f32 weights.",
        discussion: """
            int8: each matrix whose width is a multiple of 32 becomes I8 values plus an F32 scale per \
            block of 32 (tensor X.weight_scale); norms and routers stay F32. int8-rows4: the same blocks, \
            the matrices decode reads stored in the row-quad order of hmst's int8 GEMV (config.json's \
            quantization "layout": "rows4"), so loading maps them without the copy hmst otherwise makes \
            at load on AVX-512 VNNI CPUs; other readers must reorder them (Python: hmst.unpack_rows4). \
            INPUT may be a checkpoint directory or a llama.cpp .gguf file.
            """)

    @Argument(help: "Input checkpoint directory or .gguf file.")
    var input: String

    @Argument(help: "Output checkpoint directory.")
    var output: String

    @Option(help: "Stored dtype: int8, int8-rows4, bf16, f16 or f32.")
    var dtype = "int8"

    @Flag(name: .customLong("check-tensors"), help: "Scan every input tensor for NaN/Inf first.")
    var checkTensors = false

    @Flag(help: "Replace a checkpoint already in OUTPUT (its retriever, heads, critic and controller are removed first).")
    var force = false

    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let st: SafeTensorDType
            var layout = Q8Layout.rows
            var o = ModelLoadOptions()
            o.checkTensors = checkTensors
            switch dtype {
            case "int8": st = .i8; o.weightType = .int8
            case "int8-rows4": st = .i8; o.weightType = .int8; layout = .rows4
            case "bf16": st = .bf16; o.weightType = .bf16
            case "f16": st = .f16; o.weightType = .f16
            case "f32": st = .f32; o.weightType = .f32
            default: throw HMSTError.invalidArgument("--dtype must be int8, int8-rows4, bf16, f16 or f32, not \(dtype)")
            }
            // writing over the input would replace the checkpoint being converted
            if let a = FileIO.resolvedPath(input), a == FileIO.resolvedPath(output) {
                throw HMSTError.invalidArgument("the output \(output) is the input; write the converted checkpoint elsewhere")
            }
            // nor may a file of the output lead into the input (a link in OUTPUT to INPUT's weights or shards)
            if FileIO.isDirectory(input) {
                try CheckpointParts.refuseWritingInto(input, from: output)
            } else {
                try FileIO.refuseOverwriting(inputs: [input], outputs: ["config.json", "model.safetensors", "tokenizer.json"].map { output + "/" + $0 })
            }
            try CheckpointParts.refuseExisting(output, replace: force)
            let model = try LanguageModel.load(path: input, options: o)
            // the retriever, heads and controller come along unchanged (they are f32 and small); a
            // critic only while it fits these weights (it is calibrated on their hidden states)
            let skipped = model.criticProblem != nil ? [Critic.directoryName] : []
            var parts: [String] = []
            try CheckpointParts.replacing(output, keepTokenizer: model.tokenizer != nil) { dir in
                try model.save(directory: dir, dtype: st, int8Layout: layout)
                if FileIO.isDirectory(input) { parts = try CheckpointParts.copy(from: input, to: dir, skipping: Set(skipped)) }
            }
            if let why = model.criticProblem, FileIO.isDirectory(input + "/" + Critic.directoryName) {
                printError("warning: critic/ not copied: \(why)")
            }
            if st == .i8, !model.weightsType.contains("int8") {
                printError("warning: no matrix of this model is a multiple of 32 wide, the Q8_0 block; every weight stays f32")
            }
            let bytes = (try? FileIO.fileSize(output + "/model.safetensors")) ?? 0
            print("wrote \(output): \(model.weightsType) weights, model.safetensors \(formatCount(bytes))B"
                  + (parts.isEmpty ? "" : "; copied \(parts.joined(separator: ", "))"))
        }
    }
}

/// Options of commands that load a model.
struct LoadFlags: ParsableArguments {
    @Flag(name: .customLong("check-tensors"), help: "Scan every weight for NaN/Inf at load (reads every page).")
    var checkTensors = false

    @Option(help: "How to hold the matrices: as-stored, f32, bf16, f16 or int8 (quantized at load).")
    var weights = "as-stored"

    func options() throws -> ModelLoadOptions {
        var o = ModelLoadOptions()
        o.checkTensors = checkTensors
        switch weights {
        case "as-stored": o.weightType = .asStored
        case "f32": o.weightType = .f32
        case "bf16": o.weightType = .bf16
        case "f16": o.weightType = .f16
        case "int8": o.weightType = .int8
        default: throw HMSTError.invalidArgument("--weights must be as-stored, f32, bf16, f16 or int8, not \(weights)")
        }
        return o
    }
}

// hmst preprocess / hmst split: text to token shards, and a deterministic train/val split.
import ArgumentParser
import Foundation
import HMSTCore

struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Tokenize text files into binary token shards (the seed's preprocess_data).",
        discussion: "Without --tokenizer-path a tokenizer is trained on the input and saved to OUTPUT/tokenizer/tokenizer.json.")

    @Option(name: .long, parsing: .upToNextOption, help: "Input text files.") var input: [String]
    @Option(help: "Output directory for shards and metadata.json.") var output: String
    @Option(name: .customLong("tokenizer-path"), help: "tokenizer.json, or a directory holding one.") var tokenizerPath: String?
    @Option(name: .customLong("vocab-size"), help: "Vocabulary size when a tokenizer is trained.") var vocabSize = 8192
    @Option(name: .customLong("doc-separator"), help: "blankline (default), line, file, or a marker line such as %.")
    var docSeparator = "blankline"
    @Option(name: .customLong("shard-tokens"), help: "Tokens per shard.") var shardTokens = 1 << 26
    @Flag(name: .customLong("no-progress"), help: "No progress bar.") var noProgress = false
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            let tokenizer: Tokenizer
            let tokPath: String
            if let tokenizerPath {
                tokenizer = try loadTokenizer(tokenizerPath)
                tokPath = Paths.absolute(Tokenizer.jsonFile(tokenizerPath))
            } else {
                var o = BPETrainingOptions()
                o.vocabSize = vocabSize
                let bar = ProgressBar(enabled: !noProgress)
                tokenizer = try BPETrainer.train(files: input, options: o) { p, d, t in bar.update(p, d, t); return true }
                bar.finish()
                try FileIO.makeDirectories(output + "/tokenizer")
                tokPath = "tokenizer/tokenizer.json"
                try tokenizer.save(path: output + "/" + tokPath)
                printError("trained a \(tokenizer.vocabSize)-token tokenizer -> \(output)/\(tokPath)")
            }
            var o = PreprocessOptions()
            o.separator = DocumentSeparator(parsing: docSeparator)
            o.shardTokens = shardTokens
            let bar = ProgressBar(enabled: !noProgress)
            let s = try Preprocessor.run(inputs: input, output: output, encoder: tokenizer, tokenizerPath: tokPath, options: o) {
                bar.update("tokens", $0, $1)
                return true
            }
            bar.finish()
            print(String(format: "%d documents, %d bytes -> %d tokens in %d shard(s) (%.2f bytes/token) in %.2f s -> %@",
                         s.documents, s.bytes, s.tokens, s.shards, Double(s.bytes) / Double(max(1, s.tokens)), s.seconds, output))
        }
    }
}

struct SplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split", abstract: "Split a token dataset into train_split/ and val/ at document boundaries.")

    @Argument(help: "A directory written by `hmst preprocess`.") var directory: String
    @Option(name: .customLong("val-fraction"), help: "Fraction of documents for validation.") var valFraction = 0.1
    @Option(help: "Seed for the document shuffle.") var seed: UInt64 = 0
    @Option(name: .customLong("output-dir"), help: "Where train_split/ and val/ go (default: beside DIRECTORY).")
    var outputDir: String?

    func run() throws {
        try runReportingErrors {
            let ds = try TokenDataset(directory: directory)
            let parent = outputDir ?? Paths.parent(directory)
            let r = try DatasetSplit.split(dataset: ds, valFraction: valFraction, seed: seed,
                                           trainDirectory: parent + "/train_split", valDirectory: parent + "/val")
            print("train_split: \(r.trainDocuments) documents, \(r.trainTokens) tokens -> \(r.trainDirectory)")
            print("val:         \(r.valDocuments) documents, \(r.valTokens) tokens -> \(r.valDirectory)")
        }
    }
}

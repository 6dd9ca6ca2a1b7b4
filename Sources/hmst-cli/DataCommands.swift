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
            // every option checked before a tokenizer is trained (minutes) or anything written
            var o = PreprocessOptions()
            o.separator = try DocumentSeparator(parsing: docSeparator)
            guard shardTokens >= 1 else { throw HMSTError.invalidArgument("--shard-tokens \(shardTokens) must be >= 1") }
            o.shardTokens = shardTokens
            for path in input {
                guard !FileIO.isDirectory(path) else { throw HMSTError.invalidArgument("--input \(path) is a directory; give text files") }
                _ = try FileIO.fileSize(path)
            }
            try FileIO.refuseOverwriting(inputs: input, outputs: [output, output + "/metadata.json", output + "/tokenizer/tokenizer.json"])
            let tokenizer: Tokenizer
            let tokPath: String
            var trained: Tokenizer? = nil
            if let tokenizerPath {
                tokenizer = try loadTokenizer(tokenizerPath)
                tokPath = Paths.absolute(Tokenizer.jsonFile(tokenizerPath))
            } else {
                var to = BPETrainingOptions()
                to.vocabSize = vocabSize
                let bar = ProgressBar(enabled: !noProgress)
                tokenizer = try BPETrainer.train(files: input, options: to) { p, d, t in bar.update(p, d, t); return true }
                bar.finish()
                tokPath = "tokenizer/tokenizer.json"
                trained = tokenizer
            }
            let bar = ProgressBar(enabled: !noProgress)
            // a trained tokenizer is written with the shards, before metadata.json: a run that
            // fails or is stopped earlier leaves an earlier dataset's tokenizer as it was
            let s = try Preprocessor.run(inputs: input, output: output, encoder: tokenizer, tokenizerPath: tokPath, options: o,
                                         beforeMetadata: {
                guard let trained else { return }
                try FileIO.makeDirectories(output + "/tokenizer")
                try trained.save(path: output + "/" + tokPath)
                printError("trained a \(trained.vocabSize)-token tokenizer -> \(output)/\(tokPath)")
            }) {
                bar.update("tokens", $0, $1)
                return true
            }
            bar.finish()
            if s.documents == 0 {
                printError("hmst: warning: the input holds no documents (only whitespace): \(output) is an empty dataset")
            } else if case let .marker(m) = o.separator, s.documents <= input.count {
                printError("hmst: warning: the marker line \"\(m)\" never ended a document (\(s.documents) document(s) from \(input.count) file(s)); "
                           + "separators are blankline, line, file or a marker line")
            }
            print(String(format: "%ld documents, %ld bytes -> %ld tokens in %ld shard(s) (%.2f bytes/token) in %.2f s -> %@",
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

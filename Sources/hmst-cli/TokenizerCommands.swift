// hmst tokenizer train|encode|decode: byte-level BPE tokenizers in HF tokenizer.json format.
import ArgumentParser
import Foundation
import HMSTCore

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "Train, apply and inspect byte-level BPE tokenizers (HF tokenizer.json).",
        subcommands: [Train.self, Encode.self, Decode.self])

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Train a tokenizer on text files.")
        @Argument(help: "Text files.") var files: [String]
        @Option(name: .customLong("vocab-size"), help: "Vocabulary size, special tokens included.") var vocabSize = 8192
        @Option(name: .customLong("min-frequency"), help: "Minimum pair count for a merge.") var minFrequency = 2
        @Option(name: .customLong("special-token"), help: "Special token (repeatable; default <|endoftext|> and <|pad|>).")
        var specialTokens: [String] = []
        @Option(help: "Output: a tokenizer.json path, or a directory to write tokenizer.json into.") var output: String
        @Flag(name: .customLong("no-progress"), help: "No progress bar.") var noProgress = false
        @OptionGroup var threadOptions: ThreadOptions

        func run() throws {
            try runReportingErrors {
                try threadOptions.apply()
                let path = FileIO.isDirectory(output) || output.hasSuffix("/") ? output + "/tokenizer.json" : output
                try FileIO.refuseOverwriting(inputs: files, outputs: [path])
                var o = BPETrainingOptions()
                o.vocabSize = vocabSize
                o.minFrequency = minFrequency
                if !specialTokens.isEmpty { o.specialTokens = specialTokens }
                let bar = ProgressBar(enabled: !noProgress)
                let t0 = Clock.nowMs()
                let tok = try BPETrainer.train(files: files, options: o) { phase, done, total in
                    bar.update(phase, done, total)
                    return true
                }
                bar.finish()
                if path.hasSuffix("/tokenizer.json") { try FileIO.makeDirectories(Paths.parent(path)) }
                try tok.save(path: path)
                printError(String(format: "trained %ld tokens in %.2f s -> %@", tok.vocabSize, (Clock.nowMs() - t0) / 1000, path))
            }
        }
    }

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the token ids of text (argument, or stdin).")
        @Option(help: "tokenizer.json, or a directory holding one.") var tokenizer: String
        @Argument(help: "Text (default: read stdin).") var text: String?
        @Flag(help: "Print pieces next to ids.") var pieces = false

        func run() throws {
            try runReportingErrors {
                let tok = try loadTokenizer(tokenizer)
                let bytes: [UInt8] = text.map { Array($0.utf8) } ?? Array(FileHandle.standardInput.readDataToEndOfFile())
                let ids = tok.encode(bytes: bytes)
                if pieces {
                    for id in ids { print("\(id)\t\(tok.piece(for: id) ?? "?")") }
                } else {
                    print(ids.map(String.init).joined(separator: " "))
                }
            }
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the text of token ids.")
        @Option(help: "tokenizer.json, or a directory holding one.") var tokenizer: String
        @Argument(help: "Token ids.") var ids: [Int32]

        func run() throws {
            try runReportingErrors {
                let tok = try loadTokenizer(tokenizer)
                StandardStream.output.write(try tok.decode(ids))
                print("")
            }
        }
    }
}

func loadTokenizer(_ path: String) throws -> Tokenizer {
    try Tokenizer(jsonPath: Tokenizer.jsonFile(path))
}

/// A one-line progress bar on stderr (only when stderr is a terminal or forced).
final class ProgressBar {
    let enabled: Bool
    var lastDraw = 0.0
    let start = Clock.nowMs()

    init(enabled: Bool) { self.enabled = enabled && isatty(2) != 0 }

    func update(_ label: String, _ done: Int, _ total: Int) {
        guard enabled else { return }
        let now = Clock.nowMs()
        guard now - lastDraw > 100 || done >= total else { return }
        lastDraw = now
        let frac = total > 0 ? min(1, Double(done) / Double(total)) : 0
        let width = 30
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let elapsed = (now - start) / 1000
        let eta = frac > 0 ? elapsed / frac - elapsed : 0
        StandardStream.error.write(String(format: "\r%-8@ [%@] %5.1f%%  %.0fs elapsed, ETA %.0fs ", label, bar, frac * 100, elapsed, eta))
    }

    func finish() {
        if enabled { StandardStream.error.write("\n") }
    }
}

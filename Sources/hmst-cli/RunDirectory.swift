// The output directory of `hmst train` and `hmst train-memory`: a fresh run does not write into
// an earlier run's directory (its final/ was replaced and its metrics.jsonl appended to, two
// runs' steps interleaved) unless told to start over; a resume continues the run it names.
import ArgumentParser
import HMSTCore

struct RunDirectoryOptions: ParsableArguments {
    @Flag(help: "Start over in an output directory that holds an earlier run (its metrics, final/, best_model/ and checkpoints are removed first).")
    var force = false

    /// What every training run leaves in its output directory.
    static let runFiles = ["metrics.jsonl", "loss.svg"]
    static let runDirectories = ["final", "best_model"]

    static func isCheckpointDirectory(_ name: String) -> Bool { name.hasPrefix("checkpoint-epoch-") }

    /// A directory `hmst train` writes besides, from text input or --val-split (the token data,
    /// its split, a trained tokenizer), with the file that marks it as hmst's: only such a
    /// directory counts as an earlier run's (and --force removes nothing else by that name).
    struct Written {
        let name: String, marker: String
        static let data = Written(name: "data", marker: "metadata.json")
        static let valData = Written(name: "val-data", marker: "metadata.json")
        static let split = Written(name: "split", marker: "train_split/metadata.json")
        static let tokenizer = Written(name: "tokenizer", marker: "tokenizer.json")
    }

    /// What of an earlier run `dir` holds (empty: none).
    static func earlierRun(in dir: String, writes: [Written]) -> [String] {
        runFiles.filter { FileIO.exists(dir + "/" + $0) }
            + runDirectories.filter { FileIO.isDirectory(dir + "/" + $0) }
            + writes.filter { FileIO.isRegularFile(dir + "/" + $0.name + "/" + $0.marker) }.map(\.name)
            + FileIO.listDirectory(dir).filter(isCheckpointDirectory).sorted()
    }

    /// Refuses (INVALID_ARGUMENT) a fresh run into a directory holding an earlier one, unless
    /// --force, which removes that run's files first. A resume writes on into its run.
    /// writes: the directories this run writes into dir besides the run's files.
    /// inputs: the run's own inputs (data, tokenizer, config), which --force never removes
    /// (by their resolved path, and as spelled, for an input reached through a link).
    func prepare(_ dir: String, resuming: Bool, writes: [Written] = [], inputs: [String] = []) throws {
        guard !resuming else { return }
        let found = RunDirectoryOptions.earlierRun(in: dir, writes: writes)
        guard !found.isEmpty else { return }
        guard force else {
            throw HMSTError.invalidArgument("\(dir) holds an earlier run (\(found.joined(separator: ", "))): choose another output directory, "
                                            + "resume that run with --resume \(dir)/final, or pass --force to start over there")
        }
        let cwd = FileIO.resolvedPath(".") ?? ""
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : cwd + "/" + p }
        let inputPaths = inputs.compactMap(FileIO.resolvedPath) + inputs.map(absolute)
        for name in found {
            let spots = [FileIO.resolvedPath(dir + "/" + name), absolute(dir + "/" + name)].compactMap { $0 }
            for s in spots {
                if let input = inputPaths.first(where: { FileIO.isSameOrBelow($0, s) }) {
                    throw HMSTError.invalidArgument("--force would remove \(dir)/\(name), which holds this run's input \(input): move it out first")
                }
            }
        }
        for name in found { try FileIO.removeTree(dir + "/" + name) }
    }
}

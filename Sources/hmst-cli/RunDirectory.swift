// The output directory of `hmst train` and `hmst train-memory`: a fresh run does not write into
// an earlier run's directory (its final/ was replaced and its metrics.jsonl appended to, two
// runs' steps interleaved) unless told to start over; a resume continues the run it names.
import ArgumentParser
import Glibc
import HMSTCore

struct RunDirectoryOptions: ParsableArguments {
    @Flag(help: "Start over in an output directory that holds an earlier run (its metrics, final/, best_model/ and checkpoints are removed first).")
    var force = false

    /// What a training run leaves in its output directory.
    static let runFiles = ["metrics.jsonl", "loss.svg"]
    static let runDirectories = ["final", "best_model"]

    static func isCheckpointDirectory(_ name: String) -> Bool { name.hasPrefix("checkpoint-epoch-") }

    /// What `hmst train` writes beside them from text input (the token data, its split, a
    /// trained tokenizer): counted only for such a run, so that a pre-tokenized input kept
    /// there is never taken for an earlier run's (nor removed by --force).
    static let textRunDirectories = ["data", "val-data", "split", "tokenizer"]

    /// What of an earlier run `dir` holds (empty: none).
    static func earlierRun(in dir: String, fromText: Bool) -> [String] {
        runFiles.filter { FileIO.exists(dir + "/" + $0) }
            + (runDirectories + (fromText ? textRunDirectories : [])).filter { FileIO.isDirectory(dir + "/" + $0) }
            + FileIO.listDirectory(dir).filter(isCheckpointDirectory).sorted()
    }

    /// Refuses (INVALID_ARGUMENT) a fresh run into a directory holding an earlier one, unless
    /// --force, which removes that run's files first. A resume writes on into its run.
    /// fromText: the run writes its token data into dir (hmst train given text files).
    /// inputs: the run's own inputs (data, tokenizer, config), which --force never removes.
    func prepare(_ dir: String, resuming: Bool, fromText: Bool = false, inputs: [String] = []) throws {
        guard !resuming else { return }
        let found = RunDirectoryOptions.earlierRun(in: dir, fromText: fromText)
        guard !found.isEmpty else { return }
        guard force else {
            throw HMSTError.invalidArgument("\(dir) holds an earlier run (\(found.joined(separator: ", "))): choose another output directory, "
                                            + "resume that run with --resume \(dir)/final, or pass --force to start over there")
        }
        let resolvedInputs = inputs.compactMap(RunDirectoryOptions.resolved)
        for name in found {
            guard let r = RunDirectoryOptions.resolved(dir + "/" + name) else { continue }
            if let input = resolvedInputs.first(where: { $0 == r || $0.hasPrefix(r + "/") }) {
                throw HMSTError.invalidArgument("--force would remove \(dir)/\(name), which holds this run's input \(input): move it out first")
            }
        }
        for name in found { try FileIO.removeTree(dir + "/" + name) }
    }

    static func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}

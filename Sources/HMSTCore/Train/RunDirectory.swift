// RunDirectory: the output directory of a training run (`hmst train`, `hmst train-memory`,
// hmst_trainer_create, hmst_memory_trainer_create). A fresh run does not write into an earlier
// run's directory (its final/ was replaced and its metrics.jsonl appended to, two runs' steps
// interleaved) unless told to start over; a resume continues the run it names. The front ends
// keep only the name of their switch (the CLI's --force, the C params' force).

public enum RunDirectory {
    /// What every training run leaves in its output directory.
    static let runFiles = ["metrics.jsonl", "loss.svg"]
    static let runDirectories = ["final", "best_model"]

    static func isCheckpointDirectory(_ name: String) -> Bool { name.hasPrefix("checkpoint-epoch-") }

    /// A directory `hmst train` writes besides, from text input or --val-split (the token data,
    /// its split, a trained tokenizer), with the file that marks it as hmst's: only such a
    /// directory counts as an earlier run's (and starting over removes nothing else by that name).
    public struct Written: Sendable {
        let name: String, marker: String
        public static let data = Written(name: "data", marker: "metadata.json")
        public static let valData = Written(name: "val-data", marker: "metadata.json")
        public static let split = Written(name: "split", marker: "train_split/metadata.json")
        public static let tokenizer = Written(name: "tokenizer", marker: "tokenizer.json")
    }

    /// What of an earlier run `dir` holds (empty: none).
    public static func earlierRun(in dir: String, writes: [Written] = []) -> [String] {
        runFiles.filter { FileIO.exists(dir + "/" + $0) }
            + runDirectories.filter { FileIO.isDirectory(dir + "/" + $0) }
            + writes.filter { FileIO.isRegularFile(dir + "/" + $0.name + "/" + $0.marker) }.map(\.name)
            + FileIO.listDirectory(dir).filter(isCheckpointDirectory).sorted()
    }

    /// How a front end spells the switch that starts over and the way to resume, for the error.
    public struct Spelling: Sendable {
        let force: String, setForce: String, resume: String
        public init(force: String, setForce: String, resume: String) { self.force = force; self.setForce = setForce; self.resume = resume }
        public static let cli = Spelling(force: "--force", setForce: "pass --force", resume: "--resume")
        public static let params = Spelling(force: "params->force", setForce: "set force (params->force; Python force=True)", resume: "resume_from =")
    }

    /// Refuses (INVALID_ARGUMENT) a fresh run into a directory holding an earlier one, unless
    /// `force`, which removes that run's files first. A resume writes on into its run.
    /// writes: the directories this run writes into dir besides the run's files.
    /// inputs: the run's own inputs (data, tokenizer, config, checkpoint), which starting over
    /// never removes (by their resolved path, and as spelled, for an input reached through a link).
    public static func prepare(_ dir: String, resuming: Bool, force: Bool, spelling: Spelling,
                               writes: [Written] = [], inputs: [String] = []) throws {
        guard !resuming else { return }
        let found = earlierRun(in: dir, writes: writes)
        guard !found.isEmpty else { return }
        guard force else {
            throw HMSTError.invalidArgument("\(dir) holds an earlier run (\(found.joined(separator: ", "))): choose another output directory, "
                                            + "resume that run with \(spelling.resume) \(dir)/final, or \(spelling.setForce) to start over there")
        }
        let cwd = FileIO.resolvedPath(".") ?? ""
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : cwd + "/" + p }
        let inputPaths = inputs.compactMap(FileIO.resolvedPath) + inputs.map(absolute)
        for name in found {
            let spots = [FileIO.resolvedPath(dir + "/" + name), absolute(dir + "/" + name)].compactMap { $0 }
            for s in spots {
                if let input = inputPaths.first(where: { FileIO.isSameOrBelow($0, s) }) {
                    throw HMSTError.invalidArgument("\(spelling.force) would remove \(dir)/\(name), which holds this run's input \(input): move it out first")
                }
            }
        }
        for name in found { try FileIO.removeTree(dir + "/" + name) }
    }
}

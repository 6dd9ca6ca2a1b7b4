// The CLI's switch over a training run's output directory (core's RunDirectory): `hmst train`
// and `hmst train-memory` refuse an earlier run's directory unless --force.
import ArgumentParser
import HMSTCore

struct RunDirectoryOptions: ParsableArguments {
    @Flag(help: "Start over in an output directory that holds an earlier run (its metrics, final/, best_model/ and checkpoints are removed first).")
    var force = false

    /// RunDirectory.prepare with this command's --force.
    func prepare(_ dir: String, resuming: Bool, writes: [RunDirectory.Written] = [], inputs: [String] = []) throws {
        try RunDirectory.prepare(dir, resuming: resuming, force: force, spelling: .cli, writes: writes, inputs: inputs)
    }
}

// The `hmst` command-line tool: argument parsing and printing only; every action is a
// HMSTCore call. Subcommands live one per file.
import ArgumentParser
import Foundation
import HMSTCore

@main
struct HMSTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hmst",
        abstract: "Hierarchical Memory-State Transformer runtime: offline tools.",
        version: Version.string,
        subcommands: [SystemInfoCommand.self, InfoCommand.self, InitCommand.self, GenerateCommand.self,
                      TokenizerCommand.self, PreprocessCommand.self, SplitCommand.self, TrainCommand.self, MemoryCommand.self,
                      FactsCommand.self, EvalCommand.self, TrainRetrieverCommand.self, TrainMemoryCommand.self,
                      TrainCriticCommand.self, ServeCommand.self, PlacementReportCommand.self,
                      QuantizeCommand.self, AskCommand.self, RLTrainCommand.self, TrainExitHeadCommand.self,
                      AbstentionCommand.self])
}

/// Options every subcommand that computes accepts.
struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Threads for every pool (0 = all CPUs; default: HMST_NUM_THREADS or all CPUs).")
    var threads: Int?

    func apply() throws {
        if let threads { try Threads.set(threads) }
    }
}

/// Turns HMSTError into a clean message and exit code instead of a Swift error dump.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as HMSTError {
        printError("hmst: \(e.status.name.lowercased().replacingOccurrences(of: "_", with: " ")): \(e.message)")
        throw ExitCode(2)
    }
}

func printError(_ s: String) {
    StandardStream.error.write(s + "\n")
}

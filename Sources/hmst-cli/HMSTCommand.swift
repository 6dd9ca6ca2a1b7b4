// The `hmst` command-line tool: argument parsing and printing only; every action is a
// HMSTCore call. Subcommands live one per file.
import ArgumentParser
import Foundation
import HMSTCore

@main
enum HMSTMain {
    static func main() {
        HMSTCommand.main(attachingNegativeNumbers(Array(CommandLine.arguments.dropFirst())))
    }

    /// `--temperature -1` as `--temperature=-1` (and `-k -1` as `-k=-1`): the argument parser
    /// takes a word that starts with "-" for an option, so a negative value read as a missing
    /// one ("Missing value for '--temperature'") instead of reaching the range check that names
    /// the problem. Only a negative number (or -inf, -nan) right after a long option without
    /// "=" or a one-letter option (every one-letter option of hmst takes a value; -h, help,
    /// takes none and is left alone), and nothing after "--".
    static func attachingNegativeNumbers(_ args: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--" { return out + args[i...] }
            let long = a.hasPrefix("--") && a.count > 2 && !a.contains("=")
            let short = a.count == 2 && a.hasPrefix("-") && a != "-h" && a.last?.isLetter == true
            if long || short, i + 1 < args.count, isNegativeNumber(args[i + 1]) {
                out.append(a + "=" + args[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }

    static func isNegativeNumber(_ s: String) -> Bool {
        guard s.hasPrefix("-"), s.count > 1 else { return false }
        let rest = s.dropFirst().lowercased()
        return Double(rest) != nil || rest == "inf" || rest == "infinity" || rest == "nan"
    }
}

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
                      AbstentionCommand.self, GrammarCommand.self, ChatTemplateCommand.self])
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

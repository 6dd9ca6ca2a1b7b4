// hmst memory reencode --dir DIR --model CKPT: re-encodes the episodic tier's keys with the
// checkpoint's SSM (its trained episodic mixer when it has one, episodic_soft_tokens.*), so a
// memory built before Stage 2 trained that mixer can be read as soft tokens
// (`hmst eval --episodic-injection state`). Texts, ids, times and owners are kept.
import ArgumentParser
import HMSTCore

extension MemoryCommand {
    struct Reencode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-encode the episodic tier's keys with the model's (trained) episodic SSM.")
        @OptionGroup var at: Location
        @Option(help: "Checkpoint whose encoder and episodic SSM the keys come from.") var model: String

        func run() throws {
            try runReportingErrors {
                let m = try LanguageModel.load(path: model)
                let store = try at.open(mustExist: true)
                let n = try store.reencodeEpisodic(for: m)
                try store.save(tier: .episodic)
                print("re-encoded \(n) episodic entr\(n == 1 ? "y" : "ies") with "
                      + (m.episodicSoftTokens != nil ? "the checkpoint's trained episodic SSM" : "the seeded SSM (the checkpoint has no trained one)"))
            }
        }
    }
}

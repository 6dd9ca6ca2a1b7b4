// hmst memory reencode --dir DIR --model CKPT [--tier episodic|semantic|both]: re-encodes a
// memory's keys with the checkpoint, keeping texts, ids, times and owners. A memory records the
// model its keys came from (ModelSignature) and refuses another model, so this is how a memory
// built before training (Stage 2, a retriever, another checkpoint) serves the new model. The
// episodic tier is encoded by the checkpoint's SSM (its trained episodic mixer when it has one,
// episodic_soft_tokens.*, so `hmst eval --episodic-injection state` can read it as soft
// tokens); the semantic tier's vectors are embedded again (its retriever's projection when it
// has one) into a fresh index of the same description.
import ArgumentParser
import HMSTCore

extension MemoryCommand {
    struct Reencode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-encode a memory's keys with a model (after training, or for another checkpoint).")
        @OptionGroup var at: Location
        @Option(help: "Checkpoint whose hidden states (and episodic SSM, retriever) the keys come from.") var model: String
        @Option(help: "episodic, semantic, or both (each tier the directory holds).") var tier = "both"

        func run() throws {
            try runReportingErrors {
                guard let which = MemoryTier(rawValue: tier) else {
                    throw HMSTError.invalidArgument("--tier must be episodic, semantic or both, not \(tier)")
                }
                let m = try LanguageModel.load(path: model)
                let store = try at.open(mustExist: true)
                let doEpisodic = which != .semantic && (which == .episodic || store.episodic != nil)
                let doSemantic = which != .episodic && (which == .semantic || store.semantic != nil)
                guard doEpisodic || doSemantic else { throw HMSTError.notFound("\(at.dir) holds no memory tier to re-encode") }
                // both tiers are re-encoded before either is saved: an encoding failure leaves the directory as
                // it was (a failed save of the second tier leaves the first re-encoded: run the command again)
                let episodic = doEpisodic ? try store.reencodeEpisodic(for: m) : 0
                let semantic = doSemantic ? try store.reencodeSemantic(for: m) : 0
                if doSemantic { try store.save(tier: .semantic) }
                if doEpisodic { try store.save(tier: .episodic) }
                if doEpisodic {
                    print("re-encoded \(episodic) episodic entr\(episodic == 1 ? "y" : "ies") with "
                          + (m.episodicSoftTokens != nil ? "the checkpoint's trained episodic SSM" : "the seeded SSM (the checkpoint has no trained one)"))
                }
                if doSemantic {
                    print("re-embedded \(semantic) semantic entr\(semantic == 1 ? "y" : "ies") with the \(m.embedderName) embedder")
                }
            }
        }
    }
}

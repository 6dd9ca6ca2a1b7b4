// hmst abstention CKPT --facts DIR --memory DIR --output DIR: confident wrong answers through the
// engine with the gold memory present and deleted, with and without the critic (HMSTCore's
// EngineAbstention). One JSON line per condition on stdout; a table and progress on stderr.
import ArgumentParser
import Foundation
import HMSTCore

struct AbstentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abstention",
        abstract: "Confident wrong answers through the engine, gold memory present and deleted, critic on and off.",
        discussion: """
        Asks the fact benchmark's questions whose gold memory entries are in --memory (by default only of entities in
        the critic's test split, so the critic never saw them) through Engine.ask, under: the memory as given, and a
        copy with those gold entries removed (OUTPUT/memory-deleted; the questions in OUTPUT/questions.jsonl); each with the checkpoint's critic (verify, retry
        with both memories, abstain below --confidence-threshold) and without a verifier (confidence = the answer's
        geometric-mean token probability; only the model's own "unknown" abstains); each for every --policies entry.
        Prints one JSON line per condition: accuracy, abstention rate, answered-wrong rate, confident-wrong rate
        (answered, wrong, confidence >= threshold), citations, confidence, latency per stage. Also writes
        OUTPUT/abstention.jsonl.
        """)

    @Argument(help: "Checkpoint directory (critic/ and controller/ are used when present).") var checkpoint: String
    @Option(help: "Fact set directory (`hmst facts generate`).") var facts: String
    @Option(help: "Memory directory holding the questions' gold facts (episodic/ and/or semantic/); only read.") var memory: String
    @Option(help: "Output directory (memory-deleted/, abstention.jsonl).") var output: String
    @Option(help: "Fact benchmark tasks, comma-separated: heldout (memory-only facts), known.") var tasks = "heldout"
    @Option(help: "Which entities: critic-test (the critic's test split: never fitted or calibrated on) or all.") var entities = "critic-test"
    @Option(name: .customLong("critic-split-seed"), help: "The split seed train-critic used (its default 0).") var criticSplitSeed: UInt64 = 0
    @Option(help: "Policies, comma-separated: full, controller (the checkpoint's), or decisions joined by +. Default: full, and controller when the checkpoint has one.")
    var policies: String?
    @Option(help: "At most this many questions (an even stride over those selected; 0 = all).") var limit = 0
    @Option(name: .customLong("max-tokens"), help: "Longest answer in tokens.") var maxTokens = 16
    @Flag(name: .customLong("no-critic-off"), help: "Skip the runs without the critic.") var noCriticOff = false
    @Flag(name: .customLong("dry-run"), help: "Select the questions, write OUTPUT/questions.jsonl, ask nothing.") var dryRun = false
    @OptionGroup var engine: EngineOptionGroup
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        try runReportingErrors {
            try threadOptions.apply()
            var o = EngineAbstentionOptions()
            o.tasks = tasks.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard ["critic-test", "all"].contains(entities) else {
                throw HMSTError.invalidArgument("--entities \(entities): critic-test or all")
            }
            o.criticTestOnly = entities == "critic-test"
            o.criticSplit.splitSeed = criticSplitSeed
            guard limit >= 0 else { throw HMSTError.invalidArgument("--limit \(limit) must be >= 0") }
            o.limit = limit
            guard maxTokens >= 1, maxTokens <= 4096 else { throw HMSTError.invalidArgument("--max-tokens \(maxTokens) must be in 1...4096") }
            o.maxTokens = maxTokens
            let model = try LanguageModel.load(path: checkpoint)
            guard let critic = model.critic else {
                throw HMSTError.invalidArgument(model.criticProblem ?? "\(checkpoint) has no critic (critic/): `hmst train-critic` first; the measurement compares the engine with and without it")
            }
            var named: [(name: String, policy: EnginePolicy)] = []
            let policyList = (policies ?? (model.controller != nil ? "full,controller" : "full"))
                .split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            if let empty = policyList.firstIndex(where: \.isEmpty) {
                throw HMSTError.invalidArgument("--policies \"\(policies ?? "")\": entry \(empty + 1) is empty (a comma-separated list of policies)")
            }
            for p in policyList {
                let parsed = try EnginePolicy.parse(p)
                if case .automatic = parsed { throw HMSTError.invalidArgument("--policies: auto is ambiguous here; name full or controller") }
                if case .controller = parsed, model.controller == nil {
                    throw HMSTError.invalidArgument("--policies controller: " + (model.controllerProblem ?? "\(checkpoint) has no trained controller (hmst rl-train)"))
                }
                named.append((p, parsed))
            }
            // the memory is only read: the output (questions, the deleted copy) must be elsewhere
            if FileIO.lies(output, within: memory) || (!FileIO.exists(output) && FileIO.lies(Paths.parent(output), within: memory)) {
                throw HMSTError.invalidArgument("--output \(output) is or lies inside --memory \(memory), which is only read: choose another output")
            }
            let deletedDir = output + "/memory-deleted"
            if !dryRun { try EngineAbstention.checkCopy(from: memory, to: deletedDir) }
            let present = try MemoryStore(directory: memory, readOnly: true)
            // a memory another model built is refused before anything is written (the engine would, per condition)
            if let e = present.episodic, e.count > 0 { try e.checkModel(model) }
            if let s = present.semantic, s.count > 0 { try s.checkModel(model) }
            let sel = try EngineAbstention.select(factsDirectory: facts, memory: present, options: o)
            guard !sel.questions.isEmpty else {
                throw HMSTError.invalidArgument("no question to ask: of \(sel.items) items, \(sel.otherSplit) are of entities outside the critic's test split and \(sel.notInMemory) have gold facts \(memory) does not hold (--entities all, or a memory holding the facts)")
            }
            printError("questions: \(sel.questions.count) of \(sel.items) items (\(sel.entities) entities; \(sel.otherSplit) outside the critic's test split, \(sel.notInMemory) not in memory)")
            try FileIO.makeDirectories(output)
            let listed = sel.questions.map { q in
                JSONValue.object([("task", .string(q.task)), ("id", .string(q.id)), ("entity", .string(q.entity)),
                                  ("question", .string(q.text)), ("target", .string(q.target))]).serialized
            }
            try FileIO.writeAtomically(output + "/questions.jsonl", text: listed.joined(separator: "\n") + "\n")
            if dryRun { return }
            let gold = Set(sel.questions.flatMap { $0.gold + $0.linked })
            let removed = try EngineAbstention.deletedCopy(from: memory, to: deletedDir, texts: gold)
            printError("gold deleted: \(removed.semantic) semantic and \(removed.episodic) episodic entries removed from a copy (\(deletedDir))")
            let deleted = try MemoryStore(directory: deletedDir, readOnly: true)
            var lines: [String] = []
            var tallies: [AbstentionTally] = []
            for (name, store) in [("present", present), ("deleted", deleted)] {
                for withCritic in noCriticOff ? [true] : [true, false] {
                    for p in named {
                        let t0 = Date()
                        let t = try EngineAbstention.measure(model: model, questions: sel.questions, store: store, memory: name,
                                                             verifier: withCritic ? critic : nil, controller: model.controller, policy: p,
                                                             engineOptions: engine.options(), maxTokens: o.maxTokens) { i, n in
                            if i % 100 == 0 || i == n {
                                printError("  \(name), critic \(withCritic ? "on" : "off"), \(p.name): \(i)/\(n) (\(Int(Date().timeIntervalSince(t0))) s)")
                            }
                        }
                        guard case var .object(fields) = t.json() else { continue }
                        fields.insert(("bench", .string("engine_abstention")), at: 0)
                        fields += [("tasks", .string(o.tasks.joined(separator: ","))), ("entities", .string(entities)),
                                   ("entity_count", .number(Double(sel.entities))),
                                   ("gold_entries_deleted", .number(Double(removed.semantic + removed.episodic))),
                                   ("seconds", .number((Date().timeIntervalSince(t0) * 10).rounded() / 10))]
                        let line = JSONValue.object(fields).serialized
                        print(line)
                        fflush(stdout)
                        lines.append(line)
                        tallies.append(t)
                    }
                }
            }
            try FileIO.writeAtomically(output + "/abstention.jsonl", text: lines.joined(separator: "\n") + "\n")
            func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
            printError(pad("memory", 9) + pad("critic", 7) + pad("policy", 13) + "    n    acc   abst  wrong cwrong  cites   conf   ms/q")
            for t in tallies {
                printError(pad(t.memory, 9) + pad(t.critic ? "on" : "off", 7) + pad(t.policy, 13)
                           + String(format: "%5d %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f %6.1f", t.n, t.accuracy, t.abstentionRate, t.answeredWrongRate,
                                    t.confidentWrongRate, t.citationRate, t.meanConfidence, t.stageMs.total / Double(max(t.n, 1))))
            }
        }
    }
}

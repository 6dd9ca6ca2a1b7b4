// hmst memory add|search|remove|stats|consolidate: a memory directory holding an episodic
// memory (DIR/episodic) and a semantic memory (DIR/semantic), both made on first use for the
// given model. Every change is saved atomically before the command returns.
import ArgumentParser
import Foundation
import HMSTCore

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory", abstract: "Episodic and semantic memory in a directory: add, search, remove, stats, consolidate.",
        subcommands: [Add.self, Search.self, Remove.self, Stats.self, Consolidate.self, Reencode.self])

    enum Tier: String, ExpressibleByArgument, CaseIterable {
        case episodic, semantic, both
        var core: MemoryTier { MemoryTier(rawValue: rawValue) ?? .both }
    }
    enum Mode: String, ExpressibleByArgument, CaseIterable { case hybrid, dense, lexical }

    struct Location: ParsableArguments {
        @Option(help: "The memory directory (episodic/ and semantic/ inside).") var dir: String
        /// The directory's tiers (MemoryStore owns the layout); mustExist for commands that only read.
        func open(mustExist: Bool = false, readOnly: Bool = false) throws -> MemoryStore {
            try MemoryStore(directory: dir, mustExist: mustExist, readOnly: readOnly)
        }
    }

    struct ModelOptions: ParsableArguments {
        @Option(help: "Checkpoint whose encoder the memories use (with a tokenizer).") var model: String
        @Option(name: .customLong("state-size"), help: "SSM state size of a new episodic memory.") var stateSize = 256
        @Option(name: .customLong("max-entries"), help: "Capacity of a new episodic memory.") var maxEntries = 1000
        @Option(help: "FAISS index of a new semantic memory.") var index = SemanticMemoryConfig.defaultDescription

        @Flag(name: .customLong("check-tensors"), help: "Scan every weight for NaN/Inf at load.") var checkTensors = false

        func load() throws -> LanguageModel {
            var o = ModelLoadOptions()
            o.checkTensors = checkTensors
            return try LanguageModel.load(path: model, options: o)
        }

        func episodic(_ store: MemoryStore, _ m: LanguageModel) throws -> EpisodicMemory {
            var c = EpisodicMemoryConfig()
            c.stateSize = stateSize
            c.maxEntries = maxEntries
            return try store.episodic(creatingFor: m, config: c)
        }

        func semantic(_ store: MemoryStore, _ m: LanguageModel) throws -> SemanticMemory {
            try store.semantic(creatingFor: m, description: index)
        }
    }

    /// One line per hit: tier, id, score, then each part's score and rank ("-" where it missed).
    static func printRetrieval(_ tier: String, _ hits: [RetrievalHit], json: Bool) {
        for h in hits {
            if json {
                let w = JSONWriter()
                w.object {
                    w.field("tier", tier); w.field("id", String(h.id)); w.field("score", Double(h.score))
                    if let d = h.dense { w.field("dense_score", Double(d.score)); w.field("dense_rank", d.rank) }
                    if let l = h.lexical { w.field("lexical_score", Double(l.score)); w.field("lexical_rank", l.rank) }
                    if let c = h.coverage { w.field("coverage", Double(c)) }
                    w.field("text", h.text)
                }
                print(w.output)
            } else {
                func part(_ p: RetrievalPart?) -> String { p.map { String(format: "%.4f#%ld", $0.score, $0.rank) } ?? "-" }
                let cov = h.coverage.map { String(format: "  coverage %.2f", $0) } ?? ""
                print(String(format: "%@ %6lld  %.4f  dense %@  lexical %@%@  %@", tier, h.id, h.score, part(h.dense), part(h.lexical),
                             cov, h.text.replacingOccurrences(of: "\n", with: " ")))
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add texts (arguments, or --file: one per line).")
        @OptionGroup var at: Location
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: "episodic (default) or semantic.") var tier: Tier = .episodic
        @Option(help: "Importance in [0, 1] of episodic entries.") var importance = 0.5
        @Option(help: "Source label of semantic entries.") var source = "cli"
        @Option(help: "A file of texts, one per line.") var file: String?
        @Argument(help: "Texts.") var texts: [String] = []

        func run() throws {
            try runReportingErrors {
                var all = texts
                if let file { all += try FileIO.readText(file).lines().map(String.init).filter { !$0.isEmpty } }
                guard !all.isEmpty else { throw HMSTError.invalidArgument("nothing to add: give texts or --file") }
                guard tier != .both else { throw HMSTError.invalidArgument("add goes to one tier: episodic or semantic") }
                let m = try modelOptions.load()
                let store = try at.open()
                if tier == .episodic {
                    let mem = try modelOptions.episodic(store, m)
                    for t in all { print(try mem.add(text: t, model: m, importance: importance)) }
                } else {
                    let mem = try modelOptions.semantic(store, m)
                    let vectors = try mem.embeddings(of: all, model: m)
                    let ids = try mem.add(vectors: vectors, metadata: all.map { MemoryMetadata(text: $0, source: source) }, embeddedBy: m)
                    for id in ids { print(id) }
                }
                try store.save(tier: tier.core)
            }
        }
    }

    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Find the entries nearest a query text.")
        @OptionGroup var at: Location
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: "episodic, semantic or both (default).") var tier: Tier = .both
        @Option(name: .short, help: "Results per tier.") var k = 5
        @Option(help: "IVF lists to probe (0 = the memory's default).") var nprobe = 0
        @Option(help: "hybrid (default: vectors and BM25 fused by reciprocal rank), dense or lexical (BM25; no model needed).")
        var mode: Mode = .hybrid
        @Option(name: .customLong("min-coverage"),
                help: "Drop hits holding less than this share of the query's idf-weighted terms (0 keeps all).")
        var minCoverage: Float = 0
        @Flag(help: "One JSON object per result.") var json = false
        @Argument(help: "The query.") var query: String

        func run() throws {
            try runReportingErrors {
                guard nprobe >= 0 else { throw HMSTError.invalidArgument("--nprobe \(nprobe) must be >= 0 (0: the memory's default)") }
                var o = RetrievalOptions(mode: RetrievalMode(rawValue: mode.rawValue) ?? .hybrid, k: k)
                o.nprobe = nprobe > 0 ? nprobe : nil
                o.minCoverage = minCoverage
                try o.validate()   // before the model loads, and whatever the memory holds
                let store = try at.open(mustExist: true)
                let m = mode == .lexical ? nil : try modelOptions.load()
                // per tier, episodic first: -k counts results per tier
                if tier.core != .semantic, let mem = store.episodic {
                    MemoryCommand.printRetrieval("episodic", try mem.retrieve(text: query, model: m, options: o), json: json)
                }
                if tier.core != .episodic, let mem = store.semantic {
                    MemoryCommand.printRetrieval("semantic", try mem.retrieve(text: query, model: m, options: o), json: json)
                }
                try store.save(tier: .episodic)  // access counts feed consolidation
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove entries by id.")
        @OptionGroup var at: Location
        @Option(help: "episodic or semantic.") var tier: Tier
        @Argument(help: "Ids.") var ids: [Int64]

        func run() throws {
            try runReportingErrors {
                guard tier != .both else { throw HMSTError.invalidArgument("remove works on one tier: episodic or semantic") }
                let store = try at.open(mustExist: true)
                let r = try store.remove(ids: ids, tier: tier.core)
                try store.save(tier: tier.core)
                printError("removed \(r.removed) of \(ids.count)")
                if !r.unknownIds.isEmpty {
                    throw HMSTError.notFound("unknown ids in the \(tier.rawValue) memory: \(r.unknownIds.map(String.init).joined(separator: ", "))")
                }
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts and settings of both memories.")
        @OptionGroup var at: Location
        @Option(help: "Also say whether each tier fits this checkpoint (the weights that encoded its entries, or a converted copy of them) and how far the sampled weights differ.")
        var model: String?

        func run() throws {
            try runReportingErrors {
                let m = try model.map { try LanguageModel.load(path: $0) }
                let store = try at.open(mustExist: true, readOnly: true)
                if let mem = store.episodic {
                    let e = mem.allEntries()
                    print("episodic: \(e.count)/\(mem.config.maxEntries) entries, state size \(mem.config.stateSize), input \(mem.inputSize), "
                          + "accesses \(e.reduce(0) { $0 + $1.accessCount })"
                          + (mem.recordsModel || e.isEmpty ? "" : "; its model is not recorded (saved before hmst recorded it): not checked, re-encode to record it"))
                    if let m { print("episodic: " + Stats.fit(empty: e.isEmpty, recorded: mem.recordedModel, model: m) { try mem.checkModel(m) }) }
                } else { print("episodic: none") }
                if let sem = store.semantic {
                    let s = sem.stats()
                    print("semantic: \(s.count) entries, dim \(s.dim), \(s.description) (\(s.metric.rawValue)), phase \(s.phase.rawValue), "
                          + "nprobe \(s.nprobe), index \(s.indexBytes) bytes"
                          + (sem.recordsModel || s.count == 0 ? "" : "; its model is not recorded (saved before hmst recorded it, or bare vectors): not checked"))
                    if let m { print("semantic: " + Stats.fit(empty: s.count == 0, recorded: sem.recordedModel, model: m) { try sem.checkModel(m) }) }
                } else { print("semantic: none") }
            }
        }

        /// One line on whether a tier fits the model: the tier's own check decides, the
        /// distance is said beside it.
        static func fit(empty: Bool, recorded: ModelSignature?, model: LanguageModel, check: () throws -> Void) -> String {
            let distance = recorded.flatMap { $0.distance(to: ModelSignature(model: model)) }
            let by = distance.map { d in d.isFinite ? String(format: "; the sampled weights differ by %.2f%% at most (%.0f%% allowed)", d * 100, ModelSignature.tolerance * 100)
                                                    : "; a sampled weight is not finite" } ?? ""
            do {
                try check()
                if empty { return "fits the model (empty: it takes the model that fills it)" }
                if recorded == nil { return "not checked (its model is not recorded)" }
                return "fits the model" + by
            } catch {
                return "does not fit the model: \(error)"
            }
        }
    }

    struct Consolidate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move important episodic entries into semantic memory.")
        @OptionGroup var at: Location
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: "Minimum importance score in [0, 1].") var threshold = 0.5
        @Option(name: .customLong("max-per-run"), help: "Most entries moved.") var maxPerRun = 256
        @Flag(name: .customLong("keep"), help: "Keep the entries in episodic memory too.") var keep = false

        func run() throws {
            try runReportingErrors {
                let m = try modelOptions.load()
                let store = try at.open(mustExist: true)
                guard let ep = store.episodic else { throw HMSTError.notFound("\(at.dir) has no episodic memory") }
                let sem = try modelOptions.semantic(store, m)
                var o = ConsolidationOptions()
                o.threshold = threshold
                o.maxPerRun = maxPerRun
                o.removeFromEpisodic = !keep
                let r = try Consolidator.run(episodic: ep, semantic: sem, model: m, options: o)
                try store.save()   // semantic first: a crash between saves duplicates, never loses
                for mv in r.moved { print(String(format: "episodic %lld -> semantic %lld (score %.3f)", mv.episodic, mv.semantic, mv.score)) }
                printError("consolidated \(r.moved.count) of \(r.scanned) entries")
            }
        }
    }
}

// hmst memory add|search|remove|stats|consolidate: a memory directory holding an episodic
// memory (DIR/episodic) and a semantic memory (DIR/semantic), both made on first use for the
// given model. Every change is saved atomically before the command returns.
import ArgumentParser
import Foundation
import HMSTCore

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory", abstract: "Episodic and semantic memory in a directory: add, search, remove, stats, consolidate.",
        subcommands: [Add.self, Search.self, Remove.self, Stats.self, Consolidate.self])

    enum Tier: String, ExpressibleByArgument, CaseIterable { case episodic, semantic, both }

    struct Location: ParsableArguments {
        @Option(help: "The memory directory (episodic/ and semantic/ inside).") var dir: String
        var episodicDir: String { dir + "/episodic" }
        var semanticDir: String { dir + "/semantic" }
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

        func episodic(_ at: Location, _ m: LanguageModel) throws -> EpisodicMemory {
            if FileIO.exists(at.episodicDir + "/" + "episodic.json") { return try EpisodicMemory.load(directory: at.episodicDir) }
            var c = EpisodicMemoryConfig()
            c.stateSize = stateSize
            c.maxEntries = maxEntries
            return try EpisodicMemory(model: m, config: c)
        }

        func semantic(_ at: Location, _ m: LanguageModel) throws -> SemanticMemory {
            if FileIO.exists(at.semanticDir + "/memory.json") { return try SemanticMemory.load(directory: at.semanticDir) }
            return try SemanticMemory(config: SemanticMemoryConfig(dim: m.dims.C, description: index))
        }
    }

    static func printHits(_ tier: String, _ hits: [(Int64, Float, String)], json: Bool) {
        for (id, score, text) in hits {
            if json {
                let w = JSONWriter()
                w.object { w.field("tier", tier); w.field("id", String(id)); w.field("score", Double(score)); w.field("text", text) }
                print(w.output)
            } else {
                print(String(format: "%@ %6lld  %.4f  %@", tier, id, score, text.replacingOccurrences(of: "\n", with: " ")))
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
                if let file { all += try FileIO.readText(file).split(separator: "\n").map(String.init).filter { !$0.isEmpty } }
                guard !all.isEmpty else { throw HMSTError.invalidArgument("nothing to add: give texts or --file") }
                guard tier != .both else { throw HMSTError.invalidArgument("add goes to one tier: episodic or semantic") }
                let m = try modelOptions.load()
                if tier == .episodic {
                    let mem = try modelOptions.episodic(at, m)
                    for t in all { print(try mem.add(text: t, model: m, importance: importance)) }
                    try mem.save(directory: at.episodicDir)
                } else {
                    let mem = try modelOptions.semantic(at, m)
                    var vectors: [Float] = []
                    for t in all { vectors += try mem.embedding(of: t, model: m) }
                    let ids = try mem.add(vectors: vectors, metadata: all.map { MemoryMetadata(text: $0, source: source) })
                    for id in ids { print(id) }
                    try mem.save(directory: at.semanticDir)
                }
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
        @Flag(help: "One JSON object per result.") var json = false
        @Argument(help: "The query.") var query: String

        func run() throws {
            try runReportingErrors {
                let m = try modelOptions.load()
                if tier != .semantic, FileIO.exists(at.episodicDir + "/episodic.json") {
                    let mem = try EpisodicMemory.load(directory: at.episodicDir)
                    let hits = try mem.search(text: query, model: m, k: k)
                    MemoryCommand.printHits("episodic", try hits.map { ($0.id, $0.score, try mem.entry(id: $0.id).text) }, json: json)
                    try mem.save(directory: at.episodicDir)  // access counts feed consolidation
                }
                if tier != .episodic, FileIO.exists(at.semanticDir + "/memory.json") {
                    let mem = try SemanticMemory.load(directory: at.semanticDir)
                    guard mem.count > 0 else { return }   // an emptied memory has nothing to report
                    let hits = try mem.search(text: query, model: m, k: k, nprobe: nprobe > 0 ? nprobe : nil)
                    MemoryCommand.printHits("semantic", hits.map { ($0.id, $0.score, $0.metadata.text) }, json: json)
                }
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
                switch tier {
                case .episodic:
                    let mem = try EpisodicMemory.load(directory: at.episodicDir)
                    let n = mem.remove(ids: ids)
                    try mem.save(directory: at.episodicDir)
                    printError("removed \(n) of \(ids.count)")
                    if n < ids.count { throw HMSTError.notFound("\(ids.count - n) of the ids are not in the episodic memory") }
                case .semantic:
                    let mem = try SemanticMemory.load(directory: at.semanticDir)
                    let r = try mem.remove(ids: ids)
                    try mem.save(directory: at.semanticDir)
                    printError("removed \(r.removed) of \(ids.count)")
                    if !r.unknownIds.isEmpty { throw HMSTError.notFound("unknown ids: \(r.unknownIds.map(String.init).joined(separator: ", "))") }
                case .both: throw HMSTError.invalidArgument("remove works on one tier: episodic or semantic")
                }
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts and settings of both memories.")
        @OptionGroup var at: Location

        func run() throws {
            try runReportingErrors {
                guard FileIO.isDirectory(at.dir) else { throw HMSTError.notFound("\(at.dir): no such memory directory") }
                if FileIO.exists(at.episodicDir + "/episodic.json") {
                    let mem = try EpisodicMemory.load(directory: at.episodicDir)
                    let e = mem.allEntries()
                    print("episodic: \(e.count)/\(mem.config.maxEntries) entries, state size \(mem.config.stateSize), input \(mem.inputSize), "
                          + "accesses \(e.reduce(0) { $0 + $1.accessCount })")
                } else { print("episodic: none") }
                if FileIO.exists(at.semanticDir + "/memory.json") {
                    let s = try SemanticMemory.load(directory: at.semanticDir).stats()
                    print("semantic: \(s.count) entries, dim \(s.dim), \(s.description) (\(s.metric.rawValue)), phase \(s.phase.rawValue), "
                          + "nprobe \(s.nprobe), index \(s.indexBytes) bytes")
                } else { print("semantic: none") }
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
                let ep = try EpisodicMemory.load(directory: at.episodicDir)
                let sem = try modelOptions.semantic(at, m)
                var o = ConsolidationOptions()
                o.threshold = threshold
                o.maxPerRun = maxPerRun
                o.removeFromEpisodic = !keep
                let r = try Consolidator.run(episodic: ep, semantic: sem, model: m, options: o)
                try sem.save(directory: at.semanticDir)   // semantic first: a crash between saves duplicates, never loses
                try ep.save(directory: at.episodicDir)
                for mv in r.moved { print(String(format: "episodic %lld -> semantic %lld (score %.3f)", mv.episodic, mv.semantic, mv.score)) }
                printError("consolidated \(r.moved.count) of \(r.scanned) entries")
            }
        }
    }
}

// hmst facts generate: the fact benchmark (issue 11 section 2) as files, for Stage 2 training
// and the evaluation harness. Every decision is FactBenchmark's; this only parses and prints.
import ArgumentParser
import Foundation
import HMSTCore

struct FactsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facts", abstract: "The fact benchmark: real (miscfiles) and invented facts, splits, tasks.",
        subcommands: [Generate.self, Reading.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Write facts, Stage 2 training items, evaluation memory and harness tasks to a directory.",
            discussion: """
                Deterministic: the same options give byte-identical files. Real facts come from Debian's \
                miscfiles countries table (/usr/share/misc/countries.gz) when installed; without it the \
                benchmark is synthetic only, and the command says so. Nothing is downloaded.
                """)

        @Option(help: "Output directory (created if needed).") var output: String
        @Option(help: "Seed of every random choice.") var seed: UInt64 = 1
        @Option(help: "Invented entities to ask about (each has every synthetic relation).") var entities = 200
        @Option(help: "Distractor fact sentences in the evaluation memory.") var distractors = 10_000
        @Option(help: "The miscfiles countries table (gzip or plain); default: the installed one, if any.")
        var countries: String?
        @Flag(name: .customLong("no-real"), help: "Synthetic facts only.") var noReal = false
        @Option(name: .customLong("known-fraction"), help: "Fraction of entities in train_known.") var knownFraction = 0.4
        @Option(name: .customLong("memory-only-fraction"), help: "Fraction of entities in train_memory_only (the rest is heldout).")
        var memoryOnlyFraction = 0.3

        func validate() throws {
            if noReal && countries != nil { throw ValidationError("--no-real and --countries exclude each other") }
        }

        func run() throws {
            try runReportingErrors {
                var c = FactBenchmarkConfig()
                c.seed = seed
                c.entities = entities
                c.distractors = distractors
                c.knownFraction = knownFraction
                c.memoryOnlyFraction = memoryOnlyFraction
                c.realFacts = noReal ? .none : countries.map { .file($0) } ?? .installed
                let startMs = Clock.nowMs()
                let set = try FactBenchmark.generate(c)
                try set.write(to: output)
                if let note = set.real.note, !noReal { printError("hmst facts: \(note)") }
                for s in FactSplit.allCases {
                    let name = s.rawValue.padding(toLength: 18, withPad: " ", startingAt: 0)
                    print("\(name) \(set.entities(in: s).count) entities, \(set.facts(in: s).count) facts")
                }
                print("real facts: " + (set.real.path.map { "\(set.real.entities) countries from \($0)" } ?? "none"))
                print(String(format: "%ld train items, %ld heldout + %ld known eval items, %ld memory lines in %.2f s -> %@",
                             set.trainItems.count, set.heldoutItems.count, set.knownItems.count, set.memoryTexts.count,
                             (Clock.nowMs() - startMs) / 1000, output))
            }
        }
    }

    struct Reading: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reading",
            abstract: "Write a reading corpus: documents of facts about invented lands, then questions answered from them.",
            discussion: """
                Pre-training text that teaches a small model to copy an answer from a fact earlier in its                 context, in the plain layout of `hmst eval` for a model without memory markers ("Fact: ..."                 lines, then "Question: ..." / "Answer: ..."). Documents are separated by lines holding "%",                 so `hmst train --doc-separator %` reads it beside the fortune files. Only the benchmark's                 training question templates are used, and --exclude keeps every entity and value of a fact                 set (`hmst facts generate`'s facts.jsonl) out. Deterministic for a seed.
                """)

        @Option(help: "The corpus file to write.") var output: String
        @Option(help: "Documents to write.") var documents = 7_000
        @Option(help: "Seed of every random choice.") var seed: UInt64 = 101
        @Option(help: "Invented lands to draw facts from (8 facts each).") var entities = 20_000
        @Option(name: .customLong("copy-documents"), help: "Also this many copy documents (\"List: words\" then \"Again: words\"), shuffled in.")
        var copyDocuments = 0
        @Option(help: "A fact set directory (or its facts.jsonl) whose entities and values must not appear; repeatable.")
        var exclude: [String] = []

        func run() throws {
            try runReportingErrors {
                var c = ReadingCorpusConfig()
                c.seed = seed
                c.documents = documents
                c.entities = entities
                c.copyDocuments = copyDocuments
                let excludeFiles = exclude.map { $0.hasSuffix(".jsonl") ? $0 : $0 + "/facts.jsonl" }
                try FileIO.refuseOverwriting(inputs: excludeFiles, outputs: [output])
                for file in excludeFiles {
                    for f in try FactsCorpus.readFacts(file) { c.excluded += [f.entity, f.value] }
                }
                let startMs = Clock.nowMs()
                let docs = try ReadingCorpus.documents(c)
                let text = docs.joined(separator: ReadingCorpus.separator) + "\n"
                try FileIO.writeAtomically(output, text: text)
                print(String(format: "%ld reading documents (%ld bytes, %ld names excluded) in %.2f s -> %@",
                             docs.count, text.utf8.count, c.excluded.count, (Clock.nowMs() - startMs) / 1000, output))
            }
        }
    }
}

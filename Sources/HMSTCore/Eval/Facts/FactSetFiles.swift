// FactSetFiles: lays a FactSet out as files, each written atomically, every JSON line through
// JSONWriter (keys in a fixed order, so one seed gives byte-identical files):
//
//     DIR/facts.jsonl            every fact: id, entity, relation, value, text, split, source
//     DIR/train.jsonl            Stage 2 items (train splits, training templates only)
//     DIR/memory.txt             heldout + train + distractor texts, one a line, seeded order
//     DIR/memory_heldout.txt     the heldout texts only (episodic-only experiments)
//     DIR/tasks/facts_{heldout,known}_{gen,ll,mc}.json + facts_{heldout,known}_items.jsonl
//     DIR/manifest.json          seed, version, counts per split, relations, real-facts source
//
// The task files follow the evaluation harness's format (Eval/): {name, output_type, data, until,
// max_gen_tokens}, data being an items file relative to the task file.

extension FactSet {
    /// The harness stops a generation at the answer's end marker or a newline.
    public static let stopSequences = [MemoryPrompt.answerEnd, "\n"]
    public static let maxGenTokens = 16

    /// Writes every file under `directory` (created if needed); returns the paths written.
    @discardableResult
    public func write(to directory: String) throws -> [String] {
        try FileIO.makeDirectories(directory + "/tasks")
        var written = [String]()
        func put(_ name: String, _ text: String) throws {
            let path = directory + "/" + name
            try FileIO.writeAtomically(path, text: text)
            written.append(path)
        }
        try put("facts.jsonl", lines(facts.map(FactSet.json)))
        try put("train.jsonl", lines(trainItems.map(FactSet.json)))
        try put("memory.txt", lines(memoryTexts))
        try put("memory_heldout.txt", lines(heldoutMemoryTexts))
        for (part, items) in [("heldout", heldoutItems), ("known", knownItems)] {
            let data = "facts_\(part)_items.jsonl"
            try put("tasks/" + data, lines(items.map(FactSet.json)))
            for (suffix, outputType) in [("gen", "generate_until"), ("ll", "loglikelihood"), ("mc", "multiple_choice")] {
                let w = JSONWriter()
                w.object {
                    w.field("name", "facts_\(part)_\(suffix)")
                    w.field("output_type", outputType)
                    w.field("data", data)
                    w.field("until", FactSet.stopSequences)
                    w.field("max_gen_tokens", FactSet.maxGenTokens)
                }
                try put("tasks/facts_\(part)_\(suffix).json", w.output + "\n")
            }
        }
        try put("manifest.json", manifestJSON() + "\n")
        return written
    }

    func lines(_ xs: [String]) -> String {
        var s = ""
        s.reserveCapacity(xs.reduce(0) { $0 + $1.utf8.count + 1 })
        for x in xs {
            s += x
            s += "\n"
        }
        return s
    }

    static func json(_ f: Fact) -> String {
        let w = JSONWriter()
        w.object {
            w.field("id", f.id)
            w.field("entity", f.entity)
            w.field("relation", f.relation)
            w.field("value", f.value)
            w.field("text", f.text)
            w.field("split", f.split.rawValue)
            w.field("source", f.source.rawValue)
        }
        return w.output
    }

    static func json(_ t: FactTrainItem) -> String {
        let w = JSONWriter()
        w.object {
            w.field("id", t.id)
            w.field("fact_id", t.factID)
            w.field("split", t.split.rawValue)
            w.field("relation", t.relation)
            w.field("template", t.template)
            w.field("question", t.question)
            w.field("answer", t.answer)
            w.field("memory", [t.memory])
        }
        return w.output
    }

    static func json(_ e: FactEvalItem) -> String {
        let w = JSONWriter()
        w.object {
            w.field("id", e.id)
            w.field("prompt", e.prompt)
            w.field("target", e.target)
            w.field("choices", e.choices)
            w.field("gold", e.gold)
            w.field("memory", e.memory)
            if !e.linkedMemory.isEmpty { w.field("linked_memory", e.linkedMemory) }
            w.field("fact_id", e.factID)
            w.field("entity", e.entity)
            w.field("relation", e.relation)
            w.field("template", e.template)
            w.field("heldout_template", e.heldoutTemplate)
        }
        return w.output
    }

    func manifestJSON() -> String {
        let w = JSONWriter()
        w.object {
            w.field("generator", "hmst facts generate")
            w.field("version", FactBenchmark.version)
            w.field("seed", Int(clamping: config.seed))
            w.field("config", object: {
                w.field("entities", config.entities)
                w.field("distractors", config.distractors)
                w.field("known_fraction", config.knownFraction)
                w.field("memory_only_fraction", config.memoryOnlyFraction)
                w.field("choices", config.choices)
            })
            w.field("real_facts", object: {
                w.field("source", real.path == nil ? "none" : FactSource.miscfiles.rawValue)
                if let p = real.path { w.field("path", p) }
                w.field("countries", real.countries)
                w.field("entities", real.entities)
                if let n = real.note { w.field("note", n) }
            })
            w.field("unknown_answer", FactBenchmark.unknownAnswer)
            w.field("splits", object: {
                for s in FactSplit.allCases {
                    let fs = facts(in: s)
                    w.field(s.rawValue, object: {
                        w.field("entities", entities(in: s).count)
                        w.field("facts", fs.count)
                        w.field("miscfiles_facts", fs.filter { $0.source == .miscfiles }.count)
                    })
                }
            })
            w.field("files", object: {
                w.field("facts", facts.count)
                w.field("train_items", trainItems.count)
                w.field("heldout_items", heldoutItems.count)
                w.field("known_items", knownItems.count)
                w.field("memory_lines", memoryTexts.count)
                w.field("memory_heldout_lines", heldoutMemoryTexts.count)
            })
            w.field("relations", .array(relations.map { r in
                .object([("id", .string(r.id)), ("sentence", .string(r.sentence)),
                         ("templates", .array(r.templates.map { t in
                             .object([("id", .string(t.id)), ("pattern", .string(t.pattern)), ("heldout", .bool(t.heldOut))])
                         }))])
            }))
        }
        return w.output
    }
}

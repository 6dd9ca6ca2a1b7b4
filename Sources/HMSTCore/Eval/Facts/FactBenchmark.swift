// FactBenchmark: the seeded, deterministic generator of the fact benchmark (issue 11 section 2).
// Real facts come from Debian miscfiles' countries table (CountriesTable), invented ones from
// SyllableNames; entities are split into train_known / train_memory_only / heldout, and a pool
// of distractor facts fills the semantic memory at evaluation time. Nothing is downloaded.
// Files are written by FactSetFiles.swift; relations and templates live in FactRelation.swift.

public struct FactBenchmarkConfig: Sendable, Equatable {
    /// Where the real facts come from.
    public enum RealFacts: Sendable, Equatable {
        /// The miscfiles table at the first of `installedTablePaths` that exists; without one,
        /// synthetic facts only (FactSet.real.note says so).
        case installed
        /// This table; missing or malformed is an error.
        case file(String)
        /// Synthetic facts only.
        case none
    }

    public var seed: UInt64 = 1
    /// Invented entities to ask about (each with every synthetic relation), split like the real ones.
    public var entities = 200
    /// Distractor fact sentences in the evaluation memory (>= 10,000 for the benchmark proper).
    public var distractors = 10_000
    public var realFacts = RealFacts.installed
    /// Where `.installed` looks: Debian's miscfiles paths.
    public var installedTablePaths = CountriesTable.defaultPaths
    /// Fractions of entities (real and invented, each) for train_known and train_memory_only;
    /// the rest is heldout.
    public var knownFraction = 0.4
    public var memoryOnlyFraction = 0.3
    /// Choices of a multiple-choice item: the gold value and alternatives of the same relation.
    public var choices = 4

    public init() {}

    func validate() throws {
        guard seed <= UInt64(Int.max) else { throw HMSTError.invalidArgument("seed must be at most \(Int.max), got \(seed)") }
        guard (0...1_000_000).contains(entities) else { throw HMSTError.invalidArgument("entities must be 0...1000000, got \(entities)") }
        guard (0...10_000_000).contains(distractors) else {
            throw HMSTError.invalidArgument("distractors must be 0...10000000, got \(distractors)")
        }
        guard knownFraction >= 0, memoryOnlyFraction >= 0, knownFraction + memoryOnlyFraction <= 1 else {
            throw HMSTError.invalidArgument("knownFraction \(knownFraction) and memoryOnlyFraction \(memoryOnlyFraction) must be >= 0 and sum to <= 1")
        }
        guard (2...26).contains(choices) else { throw HMSTError.invalidArgument("choices must be 2...26, got \(choices)") }
        if case let .file(p) = realFacts, p.isEmpty { throw HMSTError.invalidArgument("empty path for the countries table") }
    }
}

public enum FactBenchmark {
    /// Bumped whenever the same config would produce different files.
    public static let version = 1
    /// The training target of a train_memory_only question asked without its fact in memory.
    public static let unknownAnswer = "unknown"

    static let colours = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "grey", "crimson",
                          "teal", "amber", "violet", "indigo", "scarlet", "ochre", "silver", "gold", "turquoise", "maroon"]
    static let animals = ["lynx", "heron", "otter", "ibex", "falcon", "badger", "stag", "crane", "wolf", "bear",
                          "eagle", "boar", "fox", "owl", "swan", "hare", "bison", "jackal", "raven", "salmon",
                          "tortoise", "panther", "pelican", "moose"]

    // One random stream per purpose, so e.g. the distractor count never changes the entities.
    enum Stream: UInt64 { case names = 1, splits, distractors, choices, memoryOrder, itemOrder }

    public static func generate(_ config: FactBenchmarkConfig) throws -> FactSet {
        try config.validate()

        // Real countries.
        var countries = [CountryRecord]()
        var real = RealFactsReport(path: nil, countries: 0, entities: 0, note: "synthetic facts only (asked for no real facts)")
        switch config.realFacts {
        case .none:
            break
        case .installed:
            if let p = config.installedTablePaths.first(where: { FileIO.exists($0) }) {
                countries = try CountriesTable.load(path: p)
                real = RealFactsReport(path: p, countries: countries.count, entities: 0, note: nil)
            } else {
                real = RealFactsReport(path: nil, countries: 0, entities: 0,
                                       note: "no miscfiles countries table at \(config.installedTablePaths.joined(separator: " or ")) "
                                           + "(apt-get install miscfiles); synthetic facts only")
            }
        case let .file(p):
            guard FileIO.exists(p) else { throw HMSTError.notFound("countries table \(p) does not exist (Debian: apt-get install miscfiles)") }
            countries = try CountriesTable.load(path: p)
            real = RealFactsReport(path: p, countries: countries.count, entities: 0, note: nil)
        }

        // Invented names avoid every real country and capital.
        var taken = [String]()
        for c in countries {
            taken.append(c.name)
            if !c.capital.isEmpty { taken.append(c.capital) }
        }
        taken += colours + animals
        var names = SyllableNames(random: FactRandom(seed: config.seed, stream: Stream.names.rawValue), taken: taken)

        // Entities with their facts (split assigned below), real first.
        var entities = [(name: String, source: FactSource, facts: [(FactRelation, String)])]()
        for c in countries {
            var fs = [(FactRelation, String)]()
            if !c.capital.isEmpty { fs.append((.capital, c.capital)) }
            if !c.alpha2.isEmpty { fs.append((.isoAlpha2, c.alpha2)) }
            if !c.alpha3.isEmpty { fs.append((.isoAlpha3, c.alpha3)) }
            if !fs.isEmpty { entities.append((c.name, .miscfiles, fs)) }
        }
        let nReal = entities.count
        real = RealFactsReport(path: real.path, countries: real.countries, entities: nReal, note: real.note)
        for _ in 0..<config.entities {
            entities.append(try inventEntity(&names))
        }

        // Splits by entity: real and invented entities are each shuffled and cut by the fractions.
        var splitRandom = FactRandom(seed: config.seed, stream: Stream.splits.rawValue)
        var splitOf = [FactSplit](repeating: .heldout, count: entities.count)
        for range in [0..<nReal, nReal..<entities.count] {
            var order = Array(range)
            splitRandom.shuffle(&order)
            let nKnown = Int((Double(order.count) * config.knownFraction).rounded())
            let nMemory = min(order.count - nKnown, Int((Double(order.count) * config.memoryOnlyFraction).rounded()))
            for (rank, e) in order.enumerated() {
                splitOf[e] = rank < nKnown ? .trainKnown : rank < nKnown + nMemory ? .trainMemoryOnly : .heldout
            }
        }

        var facts = [Fact]()
        facts.reserveCapacity(entities.count * 8 + config.distractors)
        func add(_ entity: String, _ relation: FactRelation, _ value: String, _ split: FactSplit, _ source: FactSource) {
            facts.append(Fact(id: "fact\(facts.count)", entity: entity, relation: relation.id, value: value,
                              text: relation.text(entity: entity, value: value), split: split, source: source))
        }
        for (i, e) in entities.enumerated() {
            for (r, v) in e.facts { add(e.name, r, v, splitOf[i], e.source) }
        }

        // Distractors: whole invented entities, the last one cut short to the exact count.
        names.random = FactRandom(seed: config.seed, stream: Stream.distractors.rawValue)
        var nDistractors = 0
        while nDistractors < config.distractors {
            let e = try inventEntity(&names)
            for (r, v) in e.facts where nDistractors < config.distractors {
                add(e.name, r, v, .distractor, .synthetic)
                nDistractors += 1
            }
        }

        // Multiple-choice alternatives come from the values each relation has across all facts of
        // the same source: a real country's capital competes with real capitals only, so an
        // invented name never gives the answer away.
        func poolKey(_ f: Fact) -> String { f.relation + "/" + f.source.rawValue }
        var valuesByRelation = [String: [String]]()
        var seenValue = Set<String>()
        for f in facts where seenValue.insert(poolKey(f) + "\u{0}" + f.value).inserted {
            valuesByRelation[poolKey(f), default: []].append(f.value)
        }
        var choiceRandom = FactRandom(seed: config.seed, stream: Stream.choices.rawValue)
        names.random = FactRandom(seed: config.seed, stream: Stream.choices.rawValue &+ 100)

        var trainItems = [FactTrainItem]()
        var heldoutItems = [FactEvalItem](), knownItems = [FactEvalItem]()
        let byEntity = Dictionary(grouping: facts, by: \.entity)
        for f in facts {
            guard let relation = FactRelation.named(f.relation) else { continue }
            let linked = (byEntity[f.entity] ?? []).filter { relation.givenAwayBy.contains($0.relation) }.map(\.text)
            switch f.split {
            case .trainKnown, .trainMemoryOnly:
                for t in relation.trainingTemplates {
                    trainItems.append(FactTrainItem(id: "train\(trainItems.count)", factID: f.id, split: f.split, relation: f.relation,
                                                    template: t.id, question: t.question(entity: f.entity), answer: f.value, memory: f.text))
                }
                if f.split == .trainKnown {
                    for t in relation.templates {
                        let (choices, gold) = try multipleChoice(f, relation, valuesByRelation[poolKey(f)] ?? [], config.choices, &choiceRandom, &names)
                        knownItems.append(evalItem(f, t, choices, gold, id: "known\(knownItems.count)", linked: linked))
                    }
                }
            case .heldout:
                for t in relation.templates {
                    let (choices, gold) = try multipleChoice(f, relation, valuesByRelation[poolKey(f)] ?? [], config.choices, &choiceRandom, &names)
                    heldoutItems.append(evalItem(f, t, choices, gold, id: "heldout\(heldoutItems.count)", linked: linked))
                }
            case .distractor:
                break
            }
        }
        // A seeded order, so the first N items of a file are a fair sample of entities and templates.
        var itemRandom = FactRandom(seed: config.seed, stream: Stream.itemOrder.rawValue)
        itemRandom.shuffle(&heldoutItems)
        itemRandom.shuffle(&knownItems)

        var memoryTexts = facts.map(\.text)
        var memoryRandom = FactRandom(seed: config.seed, stream: Stream.memoryOrder.rawValue)
        memoryRandom.shuffle(&memoryTexts)

        return FactSet(config: config, relations: FactRelation.all, facts: facts, trainItems: trainItems,
                       heldoutItems: heldoutItems, knownItems: knownItems, memoryTexts: memoryTexts, real: real)
    }

    /// A fresh land with a value for every synthetic relation.
    static func inventEntity(_ names: inout SyllableNames) throws -> (name: String, source: FactSource, facts: [(FactRelation, String)]) {
        let land = try names.land()
        var fs = [(FactRelation, String)]()
        for r in FactRelation.synthetic { fs.append((r, try inventValue(r, &names))) }
        return (land, .synthetic, fs)
    }

    static func inventValue(_ r: FactRelation, _ names: inout SyllableNames) throws -> String {
        switch r.id {
        case FactRelation.capital.id: return try names.city()
        case FactRelation.foundingYear.id: return String(900 + names.random.below(1000))
        case FactRelation.founder.id: return try names.person()
        case FactRelation.colour.id: return names.random.pick(colours)
        case FactRelation.river.id: return try names.river()
        case FactRelation.animal.id: return names.random.pick(animals)
        case FactRelation.mountain.id: return try names.mountain()
        case FactRelation.language.id: return try names.language()
        case FactRelation.isoAlpha2.id, FactRelation.isoAlpha3.id:
            let n = r.id == FactRelation.isoAlpha2.id ? 2 : 3
            return String((0..<n).map { _ in Character(Unicode.Scalar(UInt8(65 + names.random.below(26)))) })
        default: throw HMSTError(.internal, "no value generator for relation \(r.id)")
        }
    }

    /// The gold value and `n - 1` other values of the same relation, in a seeded order; when the
    /// relation has too few values (tiny configs) fresh ones are invented.
    static func multipleChoice(_ f: Fact, _ r: FactRelation, _ pool: [String], _ n: Int,
                               _ random: inout FactRandom, _ names: inout SyllableNames) throws -> (choices: [String], gold: Int) {
        var picked = [f.value]
        if pool.count - 1 >= (n - 1) * 4 {
            // Large pool: rejection sampling touches a handful of entries.
            while picked.count < n {
                let v = pool[random.below(pool.count)]
                if !picked.contains(v) { picked.append(v) }
            }
        } else {
            var others = pool.filter { $0 != f.value }
            random.shuffle(&others)
            picked += others.prefix(n - 1)
            var tries = 0
            while picked.count < n {
                let v = try inventValue(r, &names)
                if !picked.contains(v) { picked.append(v) }
                tries += 1
                if tries > 10_000 { throw HMSTError(.internal, "cannot find \(n) distinct values for relation \(r.id)") }
            }
        }
        random.shuffle(&picked)
        let gold = picked.firstIndex(of: f.value) ?? 0
        return (picked.map { " " + $0 }, gold)
    }

    static func evalItem(_ f: Fact, _ t: QuestionTemplate, _ choices: [String], _ gold: Int, id: String, linked: [String]) -> FactEvalItem {
        FactEvalItem(id: id, factID: f.id, entity: f.entity, relation: f.relation, template: t.id, heldoutTemplate: t.heldOut,
                     prompt: t.question(entity: f.entity), target: " " + f.value, choices: choices, gold: gold, memory: [f.text],
                     linkedMemory: linked)
    }
}

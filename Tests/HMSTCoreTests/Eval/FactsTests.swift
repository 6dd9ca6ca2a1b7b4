import XCTest
@testable import HMSTCore

/// The fact benchmark generator (Eval/Facts): determinism, splits, templates, the countries table.
final class FactsTests: XCTestCase {
    var dir = ""

    // A small table in miscfiles' format, with the quirks of the real one: a comment, a capital
    // with a parenthesis, a country without a capital, one without codes or capital.
    static let table = """
        # UN Code number: 2 letter ISO abbrev : 3 letter ISO abbrev : name : capital
        004:AF:AFG:Afghanistan:Kabul
        204:BJ:BEN:Benin:Porto-Novo (official capital), Cotonou (seat of government)
        010:AQ:ATA:Antarctica:
        830:::Channel Islands:
        840:US:USA:United States of America:Washington, DC
        246:FI:FIN:Finland:Helsinki
        250:FR:FRA:France:Paris
        276:DE:DEU:Germany:Berlin
        380:IT:ITA:Italy:Rome
        724:ES:ESP:Spain:Madrid

        """

    override func setUp() {
        dir = "/tmp/hmst-facts-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try? FileIO.makeDirectories(dir)
    }

    override func tearDown() { removeTree(dir) }

    func smallConfig(seed: UInt64 = 7) throws -> FactBenchmarkConfig {
        let table = dir + "/countries"
        if !FileIO.exists(table) { try FileIO.writeAtomically(table, text: FactsTests.table) }
        var c = FactBenchmarkConfig()
        c.seed = seed
        c.entities = 30
        c.distractors = 203
        c.realFacts = .file(table)
        return c
    }

    func files(under d: String) throws -> [(String, [UInt8])] {
        let names = ["facts.jsonl", "train.jsonl", "memory.txt", "memory_heldout.txt", "manifest.json"]
            + ["heldout", "known"].flatMap { p in ["items.jsonl", "gen.json", "ll.json", "mc.json"].map { "tasks/facts_\(p)_\($0)" } }
        return try names.map { ($0, try FileIO.readAll(d + "/" + $0)) }
    }

    // MARK: determinism

    func testSameSeedGivesByteIdenticalFilesAndOtherSeedsDiffer() throws {
        let c = try smallConfig()
        try FactBenchmark.generate(c).write(to: dir + "/a")
        try FactBenchmark.generate(c).write(to: dir + "/b")
        var other = c
        other.seed = 8
        try FactBenchmark.generate(other).write(to: dir + "/c")
        let a = try files(under: dir + "/a"), b = try files(under: dir + "/b"), o = try files(under: dir + "/c")
        for ((name, x), (_, y)) in zip(a, b) { XCTAssertEqual(x, y, "\(name) differs between two runs with one seed") }
        for name in ["facts.jsonl", "train.jsonl", "memory.txt", "tasks/facts_heldout_items.jsonl"] {
            XCTAssertNotEqual(a.first { $0.0 == name }?.1, o.first { $0.0 == name }?.1, "\(name) is the same for seeds 7 and 8")
        }
        // No temp file is left behind by the atomic writes.
        XCTAssertFalse(FileIO.exists(dir + "/a/facts.jsonl.tmp.\(getpid())"))
    }

    /// A golden over every file of one small synthetic-only run: catches output that depends on
    /// the process (Set/Dictionary order is randomised per process) or changes unannounced. When
    /// the generator changes on purpose, bump FactBenchmark.version and update these values.
    func testGoldenOutputForSeed1() throws {
        var c = FactBenchmarkConfig()
        c.entities = 5
        c.distractors = 20
        c.realFacts = .none
        let set = try FactBenchmark.generate(c)
        XCTAssertEqual(set.facts.count, 5 * 8 + 20)
        try set.write(to: dir + "/g")
        var sums = [String]()
        for (name, bytes) in try files(under: dir + "/g") {
            sums.append("\(name) \(String(bytes.withUnsafeBytes { FileChecksum.of($0) }, radix: 16))")
        }
        XCTAssertEqual(set.facts[0].text, FactsTests.goldenFirstText)
        XCTAssertEqual(sums, FactsTests.goldenSums, "record: \(sums)")
    }

    static let goldenFirstText = "The capital of Stylum is Gryzane."
    static let goldenSums = [
        "facts.jsonl ddcc192f3cbde621", "train.jsonl 8fc19d135e02254e", "memory.txt 2239e78da2fd9228",
        "memory_heldout.txt 884269102479db7b", "manifest.json a16dda7fe1afb4c",
        "tasks/facts_heldout_items.jsonl 1f4bd2853365809f", "tasks/facts_heldout_gen.json ddc6ab10e998c599",
        "tasks/facts_heldout_ll.json 433a6db22743f720", "tasks/facts_heldout_mc.json 80e55454f1307e44",
        "tasks/facts_known_items.jsonl a37b2f93fc2388b4", "tasks/facts_known_gen.json 38dc4700f8919eda",
        "tasks/facts_known_ll.json e103b0979323336b", "tasks/facts_known_mc.json 70f9916165d45d94"]

    // MARK: splits

    func testSplitsAreDisjointByEntityAndCountsAdd() throws {
        let c = try smallConfig()
        let set = try FactBenchmark.generate(c)
        var splitOf = [String: FactSplit]()
        for f in set.facts {
            if let s = splitOf[f.entity] { XCTAssertEqual(s, f.split, "\(f.entity) is in two splits") }
            splitOf[f.entity] = f.split
        }
        let bySplit = FactSplit.allCases.map { Set(set.entities(in: $0)) }
        for i in 0..<bySplit.count { for j in (i + 1)..<bySplit.count { XCTAssertTrue(bySplit[i].isDisjoint(with: bySplit[j])) } }

        // 8 real entities with facts (Channel Islands has none), 30 invented: 40/30/30 of each.
        XCTAssertEqual(set.real.countries, 10)
        XCTAssertEqual(set.real.entities, 9)
        let realEntities = FactSplit.allCases.map { s in Set(set.facts(in: s).filter { $0.source == .miscfiles }.map(\.entity)).count }
        XCTAssertEqual(realEntities, [4, 3, 2, 0])      // round(9*0.4)=4, round(9*0.3)=3, rest 2
        let synthEntities = FactSplit.allCases.map { s in Set(set.facts(in: s).filter { $0.source == .synthetic }.map(\.entity)).count }
        XCTAssertEqual(Array(synthEntities.prefix(3)), [12, 9, 9])
        XCTAssertEqual(set.facts(in: .distractor).count, 203)
        XCTAssertTrue(set.facts(in: .distractor).allSatisfy { $0.source == .synthetic })

        // Memory: every fact text exactly once (heldout + train + distractors); heldout file alone.
        XCTAssertEqual(set.memoryTexts.sorted(), set.facts.map(\.text).sorted())
        XCTAssertEqual(Set(set.memoryTexts).count, set.memoryTexts.count)
        XCTAssertNotEqual(set.memoryTexts, set.facts.map(\.text), "memory.txt is not shuffled")
        XCTAssertEqual(set.heldoutMemoryTexts, set.facts(in: .heldout).map(\.text))

        // Training items only from the train splits, evaluation items only from theirs.
        XCTAssertTrue(set.trainItems.allSatisfy { $0.split == .trainKnown || $0.split == .trainMemoryOnly })
        let factByID = Dictionary(uniqueKeysWithValues: set.facts.map { ($0.id, $0) })
        XCTAssertTrue(set.trainItems.allSatisfy { factByID[$0.factID]?.split == $0.split })
        XCTAssertTrue(set.heldoutItems.allSatisfy { factByID[$0.factID]?.split == .heldout })
        XCTAssertTrue(set.knownItems.allSatisfy { factByID[$0.factID]?.split == .trainKnown })
        let heldoutEntities = Set(set.entities(in: .heldout))
        XCTAssertTrue(set.trainItems.allSatisfy { !heldoutEntities.contains(factByID[$0.factID]?.entity ?? "") })
        // Every train fact with every training template; every heldout fact with every template.
        XCTAssertEqual(set.trainItems.count, (set.facts(in: .trainKnown) + set.facts(in: .trainMemoryOnly)).count * 3)
        XCTAssertEqual(set.heldoutItems.count, set.facts(in: .heldout).count * 4)
        XCTAssertEqual(set.knownItems.count, set.facts(in: .trainKnown).count * 4)
    }

    func testDistractorCountIsExactAndDefaultIsAtLeast10k() throws {
        XCTAssertGreaterThanOrEqual(FactBenchmarkConfig().distractors, 10_000)
        var c = FactBenchmarkConfig()
        c.realFacts = .none
        c.entities = 0
        for n in [0, 1, 8, 9, 10_000] {
            c.distractors = n
            let set = try FactBenchmark.generate(c)
            XCTAssertEqual(set.facts.count, n)
            XCTAssertEqual(set.facts(in: .distractor).count, n)
            XCTAssertEqual(set.memoryTexts.count, n)
            XCTAssertEqual(set.entities(in: .distractor).count, (n + 7) / 8)
        }
    }

    func testDistractorCountDoesNotChangeTheAskedEntities() throws {
        var c = try smallConfig()
        let a = try FactBenchmark.generate(c)
        c.distractors = 1000
        let b = try FactBenchmark.generate(c)
        XCTAssertEqual(a.facts.filter { $0.split != .distractor }, b.facts.filter { $0.split != .distractor })
        XCTAssertEqual(a.trainItems, b.trainItems)
    }

    // MARK: templates and items

    func testHeldOutTemplatesNeverReachTraining() throws {
        for r in FactRelation.all {
            XCTAssertGreaterThanOrEqual(r.templates.count, 3, r.id)
            XCTAssertGreaterThanOrEqual(r.templates.filter(\.heldOut).count, 1, r.id)
            XCTAssertGreaterThanOrEqual(r.trainingTemplates.count, 2, r.id)
            XCTAssertEqual(Set(r.templates.map(\.pattern)).count, r.templates.count, r.id)
        }
        let set = try FactBenchmark.generate(try smallConfig())
        let heldOutIDs = Set(FactRelation.all.flatMap(\.templates).filter(\.heldOut).map(\.id))
        XCTAssertFalse(set.trainItems.contains { heldOutIDs.contains($0.template) })
        // Nor their wording: no training question equals a held-out question of any entity.
        let heldOutQuestions = Set(set.facts.flatMap { f in
            (FactRelation.named(f.relation)?.templates ?? []).filter(\.heldOut).map { $0.question(entity: f.entity) }
        })
        XCTAssertFalse(set.trainItems.contains { heldOutQuestions.contains($0.question) })

        // The files agree: train.jsonl has no held-out template id, the eval items mark them.
        try set.write(to: dir + "/t")
        let train = try FileIO.readText(dir + "/t/train.jsonl").split(separator: "\n")
        XCTAssertEqual(train.count, set.trainItems.count)
        for line in train {
            let v = try JSONValue.parse(String(line))
            XCTAssertFalse(heldOutIDs.contains(v["template"]?.string ?? "?"))
        }
        let items = try FileIO.readText(dir + "/t/tasks/facts_heldout_items.jsonl").split(separator: "\n")
        let marked = try items.map { try JSONValue.parse(String($0)) }.filter { $0["heldout_template"]?.bool == true }
        XCTAssertEqual(marked.count, set.facts(in: .heldout).count)   // one held-out template per relation
        XCTAssertTrue(marked.allSatisfy { heldOutIDs.contains($0["template"]?.string ?? "") })
    }

    func testQuestionsNameTheirEntityAndAnswersAreTheValue() throws {
        let set = try FactBenchmark.generate(try smallConfig())
        let factByID = Dictionary(uniqueKeysWithValues: set.facts.map { ($0.id, $0) })
        for t in set.trainItems {
            let f = try XCTUnwrap(factByID[t.factID])
            XCTAssertTrue(t.question.contains(f.entity), t.question)
            XCTAssertEqual(t.answer, f.value)
            XCTAssertEqual(t.memory, f.text)
            XCTAssertEqual(t.relation, f.relation)
        }
        var valuesOf = [String: Set<String>]()
        for f in set.facts { valuesOf[f.relation + "/" + f.source.rawValue, default: []].insert(f.value) }
        var linkedItems = 0
        for e in set.heldoutItems + set.knownItems {
            let f = try XCTUnwrap(factByID[e.factID])
            XCTAssertTrue(e.prompt.contains(f.entity), e.prompt)
            XCTAssertEqual(e.entity, f.entity)
            XCTAssertEqual(e.target, " " + f.value)
            XCTAssertEqual(e.memory, [f.text])
            // linked memory: the same country's other ISO code, nothing for the other relations
            let other = ["iso_alpha2": "iso_alpha3", "iso_alpha3": "iso_alpha2"][f.relation]
            let want = set.facts.filter { $0.entity == f.entity && $0.relation == other }.map(\.text)
            XCTAssertEqual(e.linkedMemory, want, e.prompt)
            if other != nil { linkedItems += 1 }
            XCTAssertEqual(e.choices.count, 4)
            XCTAssertEqual(Set(e.choices).count, 4, "\(e.choices)")
            XCTAssertEqual(e.choices[e.gold], e.target)
            XCTAssertTrue(e.choices.allSatisfy { $0.hasPrefix(" ") })
            // Alternatives are values of the same relation from the same source (real or invented).
            let pool = valuesOf[f.relation + "/" + f.source.rawValue] ?? []
            XCTAssertTrue(e.choices.allSatisfy { pool.contains(String($0.dropFirst())) }, "\(e.choices)")
        }
        XCTAssertGreaterThan(linkedItems, 0)
        // Golds are spread over positions, not always first.
        XCTAssertEqual(Set(set.heldoutItems.map(\.gold)), [0, 1, 2, 3])
        // Every fact's text states its value, answers are 1-3 words.
        for f in set.facts {
            XCTAssertTrue(f.text.contains(f.entity) && f.text.contains(f.value), f.text)
            XCTAssertTrue((1...3).contains(f.value.split(separator: " ").count), f.value)
        }
    }

    /// One entity and no distractors: each relation has one value, so alternatives are invented.
    func testTinyConfigsStillHaveDistinctChoices() throws {
        var c = FactBenchmarkConfig()
        c.realFacts = .none
        c.entities = 1
        c.distractors = 0
        c.knownFraction = 0
        c.memoryOnlyFraction = 0
        let set = try FactBenchmark.generate(c)
        XCTAssertEqual(set.heldoutItems.count, 8 * 4)
        XCTAssertTrue(set.trainItems.isEmpty && set.knownItems.isEmpty)
        for e in set.heldoutItems {
            XCTAssertEqual(Set(e.choices).count, 4, "\(e.choices)")
            XCTAssertEqual(e.choices[e.gold], e.target)
        }
    }

    func testTemplateAndSentenceFilling() {
        XCTAssertEqual(FactRelation.capital.text(entity: "Velmora", value: "Tarsk"), "The capital of Velmora is Tarsk.")
        XCTAssertEqual(FactRelation.capital.templates[3].question(entity: "Velmora"), "Velmora's capital is which city?")
        XCTAssertEqual(FactRelation.fill("{x} {e}{v}{", entity: "E", value: "V"), "{x} EV{")
    }

    func testInventedNamesAreUniqueAndNotReal() throws {
        var c = try smallConfig()
        c.distractors = 4000
        let set = try FactBenchmark.generate(c)
        let real = try CountriesTable.parse(text: FactsTests.table, name: "t")
        let realNames = Set(real.map { $0.name.lowercased() } + real.map { $0.capital.lowercased() })
        let synth = set.facts.filter { $0.source == .synthetic }
        let entities = set.entities(in: .heldout) + set.entities(in: .trainKnown) + set.entities(in: .trainMemoryOnly)
            + set.entities(in: .distractor)
        XCTAssertEqual(Set(entities.map { $0.lowercased() }).count, entities.count)
        // Names (entities and named values) are never reused, so a question has one right memory.
        let named: Set<String> = ["capital", "founder", "river", "mountain", "language"]
        let allNames = synth.filter { named.contains($0.relation) }.map { $0.value.lowercased() } + Set(synth.map(\.entity)).map { $0.lowercased() }
        XCTAssertEqual(Set(allNames).count, allNames.count)
        XCTAssertTrue(allNames.allSatisfy { !realNames.contains($0) })
        XCTAssertTrue(synth.allSatisfy { $0.entity.first?.isUppercase == true && $0.entity.allSatisfy(\.isLetter) })
    }

    // MARK: the countries table

    func testCountriesTableParsesTheMiscfilesFormat() throws {
        let rows = try CountriesTable.parse(text: FactsTests.table, name: "t")
        XCTAssertEqual(rows.count, 10)
        XCTAssertEqual(rows[0], CountryRecord(unCode: "004", alpha2: "AF", alpha3: "AFG", name: "Afghanistan", capital: "Kabul", line: 2))
        XCTAssertEqual(rows[1].capital, "Porto-Novo")
        XCTAssertEqual(rows[2].capital, "")
        XCTAssertEqual(rows[3], CountryRecord(unCode: "830", alpha2: "", alpha3: "", name: "Channel Islands", capital: "", line: 5))
        XCTAssertEqual(rows[4].capital, "Washington, DC")

        let set = try FactBenchmark.generate(try smallConfig())
        let real = set.facts.filter { $0.source == .miscfiles }
        XCTAssertEqual(real.count, 9 * 3 - 1)   // Antarctica has codes but no capital
        XCTAssertTrue(real.contains { $0.text == "The capital of Benin is Porto-Novo." })
        XCTAssertTrue(real.contains { $0.text == "The three-letter ISO code of Afghanistan is AFG." })
        XCTAssertFalse(real.contains { $0.entity == "Channel Islands" })
    }

    func testGzipTableIsRead() throws {
        // gzip (mtime 0) of "# comment\n004:AF:AFG:Afghanistan:Kabul\n", made with Python's gzip module.
        let gz: [UInt8] = [31, 139, 8, 0, 0, 0, 0, 0, 2, 255, 83, 86, 72, 206, 207, 205, 77, 205, 43, 225, 50, 48, 48, 177, 114,
                           116, 3, 34, 119, 43, 199, 180, 244, 140, 196, 188, 204, 226, 146, 196, 60, 43, 239, 196, 164, 210,
                           28, 46, 0, 162, 153, 9, 22, 39, 0, 0, 0]
        XCTAssertEqual(String(decoding: try Gzip.decompress(gz), as: UTF8.self), "# comment\n004:AF:AFG:Afghanistan:Kabul\n")
        // Two members read as one stream, like gzip -dc.
        XCTAssertEqual(try Gzip.decompress(gz + gz).count, 2 * 39)
        try FileIO.writeAtomically(dir + "/c.gz", gz)
        XCTAssertEqual(try CountriesTable.load(path: dir + "/c.gz").map(\.capital), ["Kabul"])

        for (bad, what) in [(Array(gz.prefix(30)), "truncated"), (gz.prefix(20) + [0xFF, 0xFF] + gz.dropFirst(22), "corrupt"),
                            (gz + [1, 2, 3], "garbage")] {
            XCTAssertThrowsError(try Gzip.decompress(Array(bad), name: "x.gz"), what) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .badFormat, "\(what): \(e)")
                XCTAssertTrue((e as? HMSTError)?.message.hasPrefix("x.gz") ?? false)
            }
        }
        XCTAssertThrowsError(try Gzip.decompress([1, 2, 3]))
        // a stream that inflates past the limit stops there (a small file can hold gigabytes)
        XCTAssertThrowsError(try Gzip.decompress(gz + gz, name: "x.gz", limit: 50)) { e in
            XCTAssertTrue("\(e)".contains("inflates to more than"), "\(e)")
        }
        // Windows line ends are lines; a long bad line is quoted in part
        XCTAssertEqual(try CountriesTable.parse(text: "# c\r\n004:AF:AFG:Afghanistan:Kabul\r\n", name: "t").map(\.capital), ["Kabul"])
        XCTAssertThrowsError(try CountriesTable.parse(text: String(repeating: "x", count: 100_000), name: "t")) { e in
            XCTAssertLessThan("\(e)".utf8.count, 1000)
        }
    }

    func testMalformedTablesNameTheProblem() throws {
        let cases: [(String, String)] = [
            ("004:AF:AFG:Afghanistan\n", "t:1: expected 5 colon-separated fields"),
            ("# c\n004:AF:AFG:Afghanistan:Kabul:extra\n", "t:2: expected 5 colon-separated fields"),
            ("004:af:AFG:Afghanistan:Kabul\n", "t:1: ISO alpha-2 code \"af\""),
            ("004:AF:AF:Afghanistan:Kabul\n", "t:1: ISO alpha-3 code \"AF\""),
            ("4x:AF:AFG:Afghanistan:Kabul\n", "t:1: UN code \"4x\""),
            ("004:AF:AFG::Kabul\n", "t:1: empty country name"),
            ("004:AF:AFG:Afghanistan:Kabul\n008:AL:ALB:afghanistan:Tirana\n", "t:2: country \"afghanistan\" appears twice"),
            ("# only a comment\n\n", "t: no countries"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try CountriesTable.parse(text: text, name: "t")) { e in
                XCTAssertEqual((e as? HMSTError)?.status, .badFormat)
                XCTAssertTrue((e as? HMSTError)?.message.hasPrefix(message) ?? false, "\(e) should start with \(message)")
            }
        }
        XCTAssertThrowsError(try CountriesTable.parse(bytes: [0x30, 0xFF, 0x0A], name: "t")) { e in
            XCTAssertTrue((e as? HMSTError)?.message.contains("UTF-8") ?? false)
        }
        // Through the generator: a malformed table is an error, never silently skipped.
        try FileIO.writeAtomically(dir + "/bad", text: "004:AF:AFG:Afghanistan\n")
        var c = FactBenchmarkConfig()
        c.realFacts = .file(dir + "/bad")
        XCTAssertThrowsError(try FactBenchmark.generate(c)) { e in XCTAssertEqual((e as? HMSTError)?.status, .badFormat) }
    }

    func testMissingTableIsAnErrorOnlyWhenNamed() throws {
        var c = FactBenchmarkConfig()
        c.distractors = 10
        c.realFacts = .file(dir + "/absent")
        XCTAssertThrowsError(try FactBenchmark.generate(c)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .notFound)
            XCTAssertTrue((e as? HMSTError)?.message.contains("miscfiles") ?? false)
        }
        // Not installed: synthetic facts only, and the note says why.
        c.realFacts = .installed
        c.installedTablePaths = [dir + "/absent.gz", dir + "/absent"]
        let set = try FactBenchmark.generate(c)
        XCTAssertNil(set.real.path)
        XCTAssertTrue(set.real.note?.contains("apt-get install miscfiles") ?? false, "\(String(describing: set.real.note))")
        XCTAssertTrue(set.real.note?.contains(dir + "/absent.gz") ?? false)
        XCTAssertFalse(set.facts.contains { $0.source == .miscfiles })
        XCTAssertEqual(set.entities(in: .heldout).count + set.entities(in: .trainKnown).count + set.entities(in: .trainMemoryOnly).count, 200)
        try set.write(to: dir + "/m")
        let manifest = try JSONValue.parse(try FileIO.readText(dir + "/m/manifest.json"))
        XCTAssertEqual(manifest["real_facts"]?["source"]?.string, "none")
        XCTAssertEqual(manifest["real_facts"]?["note"]?.string, set.real.note)
        XCTAssertEqual(manifest["seed"]?.int, 1)
        XCTAssertEqual(manifest["splits"]?["distractor"]?["facts"]?.int, 10)
        XCTAssertEqual(manifest["version"]?.int, FactBenchmark.version)
        // An installed table that is found is used.
        try FileIO.writeAtomically(dir + "/present", text: FactsTests.table)
        c.installedTablePaths = [dir + "/absent", dir + "/present"]
        XCTAssertEqual(try FactBenchmark.generate(c).real.path, dir + "/present")
    }

    func testBadConfigsAreRejected() {
        var cs = [FactBenchmarkConfig]()
        var c = FactBenchmarkConfig(); c.entities = -1; cs.append(c)
        c = FactBenchmarkConfig(); c.distractors = -5; cs.append(c)
        c = FactBenchmarkConfig(); c.knownFraction = 0.8; c.memoryOnlyFraction = 0.3; cs.append(c)
        c = FactBenchmarkConfig(); c.choices = 1; cs.append(c)
        c = FactBenchmarkConfig(); c.seed = UInt64.max; cs.append(c)
        for c in cs {
            XCTAssertThrowsError(try FactBenchmark.generate(c)) { e in XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument) }
        }
    }

    /// The installed miscfiles table (tools/setup-deps.sh installs it): the real file parses.
    func testInstalledMiscfilesTable() throws {
        guard let path = CountriesTable.findDefault() else { throw XCTSkip("miscfiles is not installed") }
        let rows = try CountriesTable.load(path: path)
        XCTAssertGreaterThan(rows.count, 200)
        XCTAssertEqual(rows.first { $0.name == "Afghanistan" }?.capital, "Kabul")
        XCTAssertEqual(rows.first { $0.name == "France" }?.alpha3, "FRA")
        XCTAssertEqual(rows.first { $0.name == "Benin" }?.capital, "Porto-Novo")

        let t0 = Clock.nowMs()
        let set = try FactBenchmark.generate(FactBenchmarkConfig())   // the defaults, timed without writing
        let ms = Clock.nowMs() - t0
        print("facts generate (defaults): \(set.facts.count) facts in \(Int(ms)) ms")
        XCTAssertEqual(set.real.path, path)
        XCTAssertGreaterThanOrEqual(set.facts(in: .distractor).count, 10_000)
    }

    // MARK: the reading corpus

    func testReadingCorpusIsDeterministicAnswerableAndExcludesNames() throws {
        var bench = FactBenchmarkConfig()
        bench.realFacts = .none
        bench.entities = 30
        bench.distractors = 100
        let set = try FactBenchmark.generate(bench)
        var c = ReadingCorpusConfig()
        c.documents = 400
        c.entities = 500
        c.excluded = set.facts.flatMap { [$0.entity, $0.value] }
        let a = try ReadingCorpus.documents(c), b = try ReadingCorpus.documents(c)
        XCTAssertEqual(a, b, "same config, same documents")
        XCTAssertEqual(a.count, 400)
        c.seed += 1
        XCTAssertNotEqual(try ReadingCorpus.documents(c), a)

        let benchEntities = Set(set.facts.map(\.entity))
        let heldOutQuestions = FactRelation.synthetic.flatMap { r in r.templates.filter(\.heldOut).map { $0.pattern } }
        var questions = 0
        for doc in a {
            let lines = doc.split(separator: "\n").map(String.init)
            let facts = lines.filter { $0.hasPrefix("Fact: ") }
            let answers = lines.filter { $0.hasPrefix("Answer: ") }.map { String($0.dropFirst("Answer: ".count)) }
            XCTAssertTrue((3...8).contains(facts.count), doc)
            XCTAssertTrue((1...4).contains(answers.count), doc)
            XCTAssertEqual(lines.filter { $0.hasPrefix("Question: ") }.count, answers.count)
            for ans in answers { XCTAssertTrue(facts.contains { $0.contains(ans) }, "the answer \(ans) is stated in the document") }
            let words = Set(doc.split(whereSeparator: { !$0.isLetter }).map(String.init))
            XCTAssertTrue(words.isDisjoint(with: benchEntities), "no benchmark entity in \(doc)")
            for q in lines where q.hasPrefix("Question: ") {
                questions += 1
                let asked = q.dropFirst("Question: ".count)
                for pattern in heldOutQuestions {
                    let parts = pattern.components(separatedBy: "{e}")
                    XCTAssertFalse(asked.hasPrefix(parts[0]) && asked.hasSuffix(parts[1]), "held-out template \(pattern) used: \(q)")
                }
            }
        }
        XCTAssertGreaterThan(questions, 400)
        // the layout is the harness's plain prompt followed by the answer
        let first = a[0].components(separatedBy: "\nAnswer: ")[0] + "\nAnswer:"
        XCTAssertTrue(first.hasSuffix("\nAnswer:") && first.contains("\nQuestion: "))

        // copy documents: shuffled in, the repeat equal to the list, reading documents unchanged
        c.seed -= 1
        c.copyDocuments = 100
        let mixed = try ReadingCorpus.documents(c)
        XCTAssertEqual(mixed.count, 500)
        let copies = mixed.filter { $0.hasPrefix("List: ") }
        XCTAssertEqual(copies.count, 100)
        XCTAssertEqual(Set(mixed.filter { !$0.hasPrefix("List: ") }), Set(a))
        XCTAssertFalse(mixed.prefix(400).allSatisfy { !$0.hasPrefix("List: ") }, "copies are shuffled in, not appended")
        for d in copies {
            let parts = d.components(separatedBy: "\nAgain: ")
            XCTAssertEqual(parts.count, 2)
            XCTAssertEqual(String(parts[0].dropFirst("List: ".count)), parts[1])
            XCTAssertTrue((6...14).contains(parts[1].split(separator: " ").count))
        }

        var bad = ReadingCorpusConfig()
        bad.documents = 0
        XCTAssertThrowsError(try ReadingCorpus.documents(bad))
        bad = ReadingCorpusConfig()
        bad.questionsPerDocument = 1...9
        XCTAssertThrowsError(try ReadingCorpus.documents(bad))
    }
}

// MemoryStore: a memory directory as one object: DIR/episodic (EpisodicMemory) and DIR/semantic
// (SemanticMemory), each opened if present and made on first use for a model. It owns the
// directory layout (the CLI, the C API, evaluation and the engine use it rather than the paths),
// searches either tier or both by text (merged by score), removes and saves. Scoring inside a
// tier stays with the tier; ranking across tiers is by the raw cosine score of each.

public enum MemoryTier: String, Sendable, CaseIterable {
    case episodic, semantic, both
}

/// One retrieved entry, from either tier.
public struct MemoryStoreHit: Sendable, Equatable {
    public var tier: MemoryTier     // .episodic or .semantic
    public var id: Int64
    public var score: Float         // cosine similarity of the tier's keys
    public var text: String
    public var owner: String        // "" = no owner
    public init(tier: MemoryTier, id: Int64, score: Float, text: String, owner: String = "") {
        self.tier = tier
        self.id = id
        self.score = score
        self.text = text
        self.owner = owner
    }
}

public final class MemoryStore: @unchecked Sendable {
    public let directory: String
    public var episodicDirectory: String { directory + "/episodic" }
    public var semanticDirectory: String { directory + "/semantic" }
    /// The tiers present on disk when opened, or made since; nil until then.
    public private(set) var episodic: EpisodicMemory?
    public private(set) var semantic: SemanticMemory?
    /// Held from open (or the save that made the directory) until the store is released.
    private var lock: MemoryDirectoryLock?
    /// Opened to read only: never saves.
    public let readOnly: Bool

    /// Opens the directory's tiers that exist. With mustExist, a missing directory is NOT_FOUND;
    /// otherwise the store starts empty and `save` creates it. readOnly: the store never saves
    /// (save is INVALID_ARGUMENT) and shares the directory with other readers.
    public init(directory: String, mustExist: Bool = false, readOnly: Bool = false) throws {
        guard !directory.isEmpty else { throw HMSTError.invalidArgument("memory directory: empty path") }
        if (mustExist || readOnly), !FileIO.isDirectory(directory) { throw HMSTError.notFound("\(directory): no such memory directory") }
        self.directory = directory
        self.readOnly = readOnly
        // one writer at a time, from before the tiers are read (MemoryDirectoryLock); a
        // directory made later is locked by the save that makes it
        if FileIO.isDirectory(directory) { lock = try MemoryDirectoryLock.acquire(directory, exclusive: !readOnly) }
        if try MemoryStore.hasTier(directory + "/episodic", manifest: EpisodicMemory.manifestName) {
            episodic = try EpisodicMemory.load(directory: directory + "/episodic")
        }
        if try MemoryStore.hasTier(directory + "/semantic", manifest: SemanticMemory.manifestName) {
            semantic = try SemanticMemory.load(directory: directory + "/semantic")
        }
    }

    /// Whether a tier directory holds a tier (its manifest). One that holds files but no
    /// manifest (lost, renamed, a symlink loop) is an error: read as empty, the next save would
    /// delete the entries its files hold. Temp files of a killed save do not count.
    static func hasTier(_ tierDirectory: String, manifest: String) throws -> Bool {
        if FileIO.exists(tierDirectory + "/" + manifest) { return true }
        let files = FileIO.listDirectory(tierDirectory).filter { !$0.contains(".tmp.") }
        guard files.isEmpty else {
            throw HMSTError.badFormat("\(tierDirectory) holds \(files.count) file(s) (\(files.sorted().prefix(3).joined(separator: ", "))) "
                                      + "but no readable \(manifest): restore it, or move the directory away to start this tier anew")
        }
        return false
    }

    /// The episodic tier, made for the model with config if the directory has none yet.
    public func episodic(creatingFor model: LanguageModel, config: EpisodicMemoryConfig = EpisodicMemoryConfig()) throws -> EpisodicMemory {
        if let episodic { return episodic }
        let m = try EpisodicMemory(model: model, config: config)
        episodic = m
        return m
    }

    /// Re-encodes every episodic entry's key with the model's SSM (its trained episodic mixer
    /// when it has one: EpisodicMemory.reencoded), in memory; save() writes it. Returns the count.
    @discardableResult
    public func reencodeEpisodic(for model: LanguageModel) throws -> Int {
        guard let old = episodic else { throw HMSTError.notFound("\(directory) has no episodic memory") }
        let m = try old.reencoded(for: model)
        episodic = m
        return m.count
    }

    /// Re-embeds every semantic entry's vector with the model (SemanticMemory.reencoded), in
    /// memory; save() writes it. Returns the count.
    @discardableResult
    public func reencodeSemantic(for model: LanguageModel) throws -> Int {
        guard let old = semantic else { throw HMSTError.notFound("\(directory) has no semantic memory") }
        let m = try old.reencoded(for: model)
        semantic = m
        return m.count
    }

    /// The semantic tier, made with the model's hidden size and the FAISS description if absent.
    public func semantic(creatingFor model: LanguageModel,
                         description: String = SemanticMemoryConfig.defaultDescription) throws -> SemanticMemory {
        if let semantic { return semantic }
        let m = try SemanticMemory(config: SemanticMemoryConfig(dim: model.embeddingDim, description: description))
        semantic = m
        return m
    }

    /// Entries in the tiers present.
    public var count: Int { (episodic?.count ?? 0) + (semantic?.count ?? 0) }

    /// Every entry's text with its tier and id (episodic first, then semantic by id).
    public func allEntries() throws -> [MemoryStoreHit] {
        var out: [MemoryStoreHit] = []
        if let episodic { out += episodic.allEntries().map { MemoryStoreHit(tier: .episodic, id: $0.id, score: 0, text: $0.text) } }
        if let semantic {
            for id in semantic.ids() { out.append(MemoryStoreHit(tier: .semantic, id: id, score: 0, text: try semantic.metadata(id: id).text)) }
        }
        return out
    }

    /// The k entries nearest the text in the tier (both: k from each tier, merged by score, the
    /// best k kept). Tiers absent or empty contribute nothing. Episodic hits raise access counts
    /// in memory; nothing is saved.
    public func search(text: String, model: LanguageModel, tier: MemoryTier = .both, k: Int,
                       nprobe: Int? = nil) throws -> [MemoryStoreHit] {
        guard k > 0 else { throw HMSTError.invalidArgument("memory search: k = \(k) must be >= 1") }
        var hits: [MemoryStoreHit] = []
        if tier != .semantic, let episodic, episodic.count > 0 {
            for h in try episodic.search(text: text, model: model, k: k) {
                guard let e = try? episodic.entry(id: h.id) else { continue }   // removed meanwhile
                hits.append(MemoryStoreHit(tier: .episodic, id: h.id, score: h.score, text: e.text))
            }
        }
        if tier != .episodic, let semantic, semantic.count > 0 {
            for h in try semantic.search(text: text, model: model, k: k, nprobe: nprobe) {
                hits.append(MemoryStoreHit(tier: .semantic, id: h.id, score: h.score, text: h.metadata.text))
            }
        }
        guard tier == .both else { return hits }
        // stable: equal scores keep episodic before semantic
        let ranked = hits.enumerated().sorted { a, b in a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset }
        return ranked.prefix(k).map(\.element)
    }

    /// Removes ids from one tier; returns how many were present and the unknown ids.
    public func remove(ids: [Int64], tier: MemoryTier) throws -> MemoryRemoval {
        switch tier {
        case .episodic:
            guard let episodic else { throw HMSTError.notFound("\(directory) has no episodic memory") }
            let present = Set(episodic.allEntries().map(\.id))
            var seen = Set<Int64>()
            let unknown = ids.filter { !present.contains($0) && seen.insert($0).inserted }
            let n = episodic.remove(ids: ids)
            return MemoryRemoval(removed: n, unknownIds: unknown)
        case .semantic:
            guard let semantic else { throw HMSTError.notFound("\(directory) has no semantic memory") }
            return try semantic.remove(ids: ids)
        case .both: throw HMSTError.invalidArgument("remove works on one tier: episodic or semantic")
        }
    }

    /// Saves the tiers present, each atomically: semantic first, so a crash between the two
    /// duplicates a consolidated entry rather than losing it.
    public func save() throws {
        try save(tier: .both)
        }

    /// Saves one tier only (search updates episodic access counts without touching semantic).
    /// A tier the store does not hold is skipped; nothing held, nothing written.
    public func save(tier: MemoryTier) throws {
        guard !readOnly else { throw HMSTError.invalidArgument("the memory \(directory) was opened read-only") }
        if tier != .episodic, let semantic {
            try makeDirectory()
            try semantic.save(directory: semanticDirectory)
        }
        if tier != .semantic, let episodic {
            try makeDirectory()
            try episodic.save(directory: episodicDirectory)
        }
    }

    /// Makes the directory of a store opened before it existed, and locks it; a tier another
    /// process saved there meanwhile is an error (this save would replace it).
    private func makeDirectory() throws {
        guard lock == nil else { return }
        try FileIO.makeDirectories(directory)
        lock = try MemoryDirectoryLock.acquire(directory)
        let made = [episodic != nil && FileIO.exists(episodicDirectory + "/" + EpisodicMemory.manifestName) ? "episodic" : nil,
                    semantic != nil && FileIO.exists(semanticDirectory + "/" + SemanticMemory.manifestName) ? "semantic" : nil].compactMap { $0 }
        if let tier = made.first {
            throw HMSTError.io("another process made the memory \(directory)'s \(tier) tier since this one opened it; open it again")
        }
    }
}

// Owners in a MemoryStore: every entry may carry an owner (a user or session id, "" = none);
// adding with an owner, searching only one owner's entries, removing all of an owner's entries
// and counting them. The server scopes every memory route by owner through these; the tiers
// keep the owner with the entry (MemoryMetadata.owner, EpisodicEntry.owner).

extension MemoryStore {
    /// Embeds and adds text to one tier (episodic or semantic) for owner; the tier must exist
    /// (made with episodic(creatingFor:) / semantic(creatingFor:)). Returns the new id. Not saved.
    public func add(text: String, model: LanguageModel, tier: MemoryTier, owner: String, source: String = "",
                    importance: Double = 0.5) throws -> Int64 {
        switch tier {
        case .episodic:
            guard let episodic else { throw HMSTError.notFound("\(directory) has no episodic memory") }
            return try episodic.add(text: text, model: model, importance: importance, owner: owner)
        case .semantic:
            guard let semantic else { throw HMSTError.notFound("\(directory) has no semantic memory") }
            return try semantic.add(text: text, model: model, source: source, owner: owner)
        case .both: throw HMSTError.invalidArgument("add works on one tier: episodic or semantic")
        }
    }

    /// The k entries of `owner` nearest the text, as search(text:model:tier:k:nprobe:) over that
    /// owner's entries only. The semantic tier's index holds every owner, so it is searched with
    /// a growing k until k of the owner's entries are found or the whole tier was ranked: exact,
    /// and cheap while the owner's entries are a fair share of the tier.
    public func search(text: String, model: LanguageModel, tier: MemoryTier = .both, k: Int, owner: String,
                       nprobe: Int? = nil) throws -> [MemoryStoreHit] {
        guard k > 0 else { throw HMSTError.invalidArgument("memory search: k = \(k) must be >= 1") }
        var hits: [MemoryStoreHit] = []
        if tier != .semantic, let episodic, episodic.count > 0 {
            // an entry removed by another request between the search and the read is skipped:
            // the tiers lock each call, not the pair
            for h in try episodic.search(text: text, model: model, k: k, owner: owner) {
                guard let e = try? episodic.entry(id: h.id) else { continue }
                hits.append(MemoryStoreHit(tier: .episodic, id: h.id, score: h.score, text: e.text, owner: owner))
            }
        }
        if tier != .episodic, let semantic, semantic.count > 0 {
            let q = try semantic.queryEmbedding(of: text, model: model)
            // counts read again below may have fallen meanwhile (another owner's removals): k >= 1
            var kk = max(1, min(semantic.count, max(4 * k, 32)))
            while true {
                let found = try semantic.search(query: q, k: kk, nprobe: nprobe).filter { $0.metadata.owner == owner }
                if found.count >= k || kk >= semantic.count {
                    for h in found.prefix(k) {
                        hits.append(MemoryStoreHit(tier: .semantic, id: h.id, score: h.score, text: h.metadata.text, owner: owner))
                    }
                    break
                }
                kk = max(1, min(semantic.count, kk * 4))
            }
        }
        guard tier == .both else { return hits }
        let ranked = hits.enumerated().sorted { a, b in a.element.score != b.element.score ? a.element.score > b.element.score : a.offset < b.offset }
        return ranked.prefix(k).map(\.element)
    }

    /// The ids of owner's entries in one tier, ascending.
    public func ids(owner: String, tier: MemoryTier) throws -> [Int64] {
        switch tier {
        case .episodic:
            return (episodic?.allEntries() ?? []).filter { $0.owner == owner }.map(\.id).sorted()
        case .semantic:
            guard let semantic else { return [] }
            // ids removed between the listing and their metadata read (another request) are skipped
            return semantic.ids().filter { (try? semantic.metadata(id: $0))?.owner == owner }
        case .both: throw HMSTError.invalidArgument("ids work on one tier: episodic or semantic")
        }
    }

    /// Removes every entry of owner from the tier (both: from each tier present); returns how
    /// many went. Not saved.
    public func removeAll(owner: String, tier: MemoryTier) throws -> Int {
        var removed = 0
        for t in tier == .both ? [MemoryTier.episodic, .semantic] : [tier] {
            if t == .episodic && episodic == nil || t == .semantic && semantic == nil { continue }
            let ids = try ids(owner: owner, tier: t)
            if !ids.isEmpty { removed += try remove(ids: ids, tier: t).removed }
        }
        return removed
    }

    /// The owner of one entry, NOT_FOUND for an unknown id.
    public func owner(id: Int64, tier: MemoryTier) throws -> String {
        switch tier {
        case .episodic:
            guard let episodic else { throw HMSTError.notFound("no episodic entry with id \(id)") }
            return try episodic.entry(id: id).owner
        case .semantic:
            guard let semantic else { throw HMSTError.notFound("no semantic entry with id \(id)") }
            return try semantic.metadata(id: id).owner
        case .both: throw HMSTError.invalidArgument("an id belongs to one tier: episodic or semantic")
        }
    }
}

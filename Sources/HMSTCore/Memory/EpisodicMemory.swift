// EpisodicMemory: a bounded buffer of recent interactions, each compressed by a Mamba
// selective SSM into a fixed-size state vector. The text is encoded by the base model (final
// hidden states [T, C]); the mixer (C -> Di = 2C, state N) scans them from a zero state; the
// key is the final SSM state pooled over channels ([N], MambaState.pooled()), L2-normalised.
// Retrieval is cosine similarity in that N-dimensional space over all entries (M ≤ maxEntries
// keys: one GEMV). When full, the entry with the lowest retention score (importance, then age)
// is evicted. Every method is thread-safe: one lock, held for in-memory work only (the model
// and SSM encoding run outside it). A BM25 index over the entries' texts follows every add,
// eviction and removal (Retrieval/EpisodicRetrieval.swift searches it beside the keys).
// A memory made for a model whose soft tokens read the whole state (EpisodicSoftTokens,
// state_readout) also keeps each entry's state features [F] beside its key, so a retrieved entry
// can be injected as soft tokens without its text being encoded again; it records which soft
// tokens made them (their weights' hash) and refuses another's. Its mixer then reads what those
// soft tokens' mixer reads (EpisodicSoftTokens.mixerInput: hidden states plus embeddings), for
// keys and features alike.
import CBLAS

public struct EpisodicMemoryConfig: Sendable, Equatable {
    public var maxEntries = 1000
    /// N: the SSM state size, the key dimension (256 in the seed's presets)
    public var stateSize = 256
    /// tokens kept per entry (the most recent); texts longer than the model's context are
    /// encoded in windows of the context, the SSM carrying its state across them
    public var maxTokens = 8192
    /// seed of the SSM's initial weights
    public var seed: UInt64 = 0
    public init() {}

    func validate() throws {
        guard maxEntries >= 1, maxEntries <= 10_000_000 else { throw HMSTError.invalidArgument("max_entries \(maxEntries) must be in 1...10000000") }
        guard stateSize >= 1, stateSize <= 4096 else { throw HMSTError.invalidArgument("state_size \(stateSize) must be in 1...4096") }
        guard maxTokens >= 1 else { throw HMSTError.invalidArgument("max_tokens must be >= 1") }
    }
}

public struct EpisodicEntry: Sendable, Equatable {
    public var id: Int64
    public var text: String
    public var tokens: [Int32]
    public var timestamp: Double
    public var accessCount: Int
    /// base-model surprise on the text: mean next-token loss in nats
    public var surprise: Double
    /// caller-set importance in [0, 1] (default 0.5), one term of the retention score
    public var importance: Double
    /// who the entry belongs to (a user or session id); "" = no owner
    public var owner: String = ""
}

public struct EpisodicHit: Sendable, Equatable {
    public var id: Int64
    public var score: Float    // cosine similarity
}

public final class EpisodicMemory: @unchecked Sendable {
    public let config: EpisodicMemoryConfig
    /// C: the width of the hidden states the mixer reads (the base model's hidden size)
    public let inputSize: Int
    let mixerConfig: MambaConfig
    let mixer: MambaMixer
    let weights: MambaMixerWeights
    let lock = Locked(())
    var entries: [EpisodicEntry] = []     // [M]
    var keys: [Float] = []                // [M, N] unit rows, same order as entries
    var nextId: Int64 = 1
    var lexical = BM25Index()             // the entries' texts, by id
    /// [M, featureSize] state features for the soft tokens of hash featureSource, same order as
    /// entries; a NaN row: an entry added from a precomputed key, which has none. Empty when
    /// featureSize is 0 (the memory keeps keys only).
    var features: [Float] = []
    var featureSize = 0
    var featureSource = ""
    /// the soft tokens last checked against featureSource (their hash is not recomputed per add)
    private var checkedSoft: ObjectIdentifier?
    /// The model whose hidden states the keys were encoded from (ModelSignature), set when the
    /// memory is made for a model and whenever a text is added while it is empty; nil for a
    /// memory saved before signatures were recorded, which is not checked.
    var builtBy: ModelSignature?
    /// Whether the memory records the model its keys came from (false: saved before that
    /// record, not checked). Thread-safe.
    public var recordsModel: Bool { lock.withLock { _ in builtBy != nil } }
    /// The recorded model (nil: none recorded). Thread-safe.
    public var recordedModel: ModelSignature? { lock.withLock { _ in builtBy } }

    public init(inputSize: Int, config: EpisodicMemoryConfig = EpisodicMemoryConfig(), weights: MambaMixerWeights? = nil) throws {
        try config.validate()
        guard inputSize >= 1 else { throw HMSTError.invalidArgument("input size \(inputSize) must be >= 1") }
        self.config = config
        self.inputSize = inputSize
        mixerConfig = try MambaConfig.episodicMemory(hiddenSize: inputSize, stateSize: config.stateSize)
        if let weights {
            guard weights.config == mixerConfig else { throw HMSTError.invalidArgument("SSM weights do not match hidden \(inputSize), state \(config.stateSize)") }
            self.weights = weights
        } else {
            self.weights = MambaMixerWeights.random(config: mixerConfig, seed: config.seed)
        }
        mixer = MambaMixer(weights: self.weights)
    }

    /// A memory for the model: its SSM is the model's trained episodic mixer when the checkpoint
    /// has one (episodic_soft_tokens.*, so the keys are what its soft-token projection reads),
    /// else the seeded random mixer of config.seed.
    public convenience init(model: LanguageModel, config: EpisodicMemoryConfig = EpisodicMemoryConfig()) throws {
        if let soft = model.episodicSoftTokens {
            guard config.stateSize == soft.N else {
                throw HMSTError.invalidArgument("the model's trained episodic SSM has state size \(soft.N), not the \(config.stateSize) asked for")
            }
            try self.init(inputSize: model.dims.C, config: config, weights: soft.mixerWeightsCopy())
            if soft.input == .stateReadout {
                featureSize = soft.featureCount
                featureSource = soft.valuesHash
                checkedSoft = ObjectIdentifier(soft)
            }
        } else {
            try self.init(inputSize: model.dims.C, config: config)
        }
        builtBy = ModelSignature(model: model)
    }

    /// Checks that this memory's keys can be read by the model's soft-token projection: the
    /// model has trained episodic soft tokens and this memory was encoded with their mixer.
    /// `what` names the memory in the error (its directory).
    public func checkSoftTokens(of model: LanguageModel, _ what: String) throws -> EpisodicSoftTokens {
        guard let soft = model.episodicSoftTokens else {
            throw HMSTError.invalidArgument("the checkpoint has no trained episodic soft tokens (\(EpisodicSoftTokens.configName)): "
                                            + "train them with `hmst train-memory --episodic-soft-tokens K`, or inject the entries as text")
        }
        guard soft.hasMixer(weights) else {
            throw HMSTError.invalidArgument("\(what) was encoded with other SSM weights than the checkpoint's trained episodic mixer, "
                                            + "so its keys mean nothing to the soft-token projection: re-encode it for this checkpoint "
                                            + "(`hmst memory reencode --dir DIR --model CHECKPOINT`) or rebuild it")
        }
        if soft.input == .stateReadout {
            guard featureSize > 0 else {
                throw HMSTError.invalidArgument("\(what) keeps keys only, no state features for the checkpoint's episodic soft tokens "
                                                + "(they read the whole SSM state): re-encode it (`hmst memory reencode --dir DIR --model CHECKPOINT`)")
            }
            _ = try featureSoftTokens(model)   // the features are these soft tokens'
        }
        return soft
    }

    /// What the checked soft tokens read of entry id: its stored state features (state_readout)
    /// or its key (pooled_unit_key). Call checkSoftTokens first.
    public func softFeatures(id: Int64, for soft: EpisodicSoftTokens) throws -> [Float] {
        guard soft.input == .stateReadout else { return try key(id: id) }
        return try lock.withLock { _ in
            guard let i = entries.firstIndex(where: { $0.id == id }) else { throw HMSTError.notFound("no episodic entry with id \(id)") }
            guard featureSize == soft.featureCount else {
                throw HMSTError.invalidArgument("this episodic memory keeps no state features for these soft tokens")
            }
            let f = Array(features[(i * featureSize)..<((i + 1) * featureSize)])
            guard f.allSatisfy(\.isFinite) else {
                throw HMSTError.invalidArgument("episodic entry \(id) has no stored state (it was added from a precomputed key): "
                                                + "re-encode the memory (`hmst memory reencode`) to inject it as soft tokens")
            }
            return f
        }
    }

    /// The same entries (ids, texts, times, importance, owners) with keys re-encoded by the
    /// model's SSM (the trained episodic mixer when it has one): what a memory built for the
    /// model from these texts would hold. Surprise and tokens are recomputed too.
    public func reencoded(for model: LanguageModel) throws -> EpisodicMemory {
        var c = config
        if let soft = model.episodicSoftTokens { c.stateSize = soft.N }
        let m = try EpisodicMemory(model: model, config: c)
        let (old, next) = lock.withLock { _ in (entries, nextId) }
        let bare = old.filter { $0.text.isEmpty }.map(\.id)
        guard bare.isEmpty else {
            throw HMSTError.invalidArgument("\(bare.count) episodic entr\(bare.count == 1 ? "y has" : "ies have") no text to encode again (added as bare keys; "
                                            + "ids \(bare.prefix(8).map(String.init).joined(separator: ", "))\(bare.count > 8 ? ", ..." : "")): remove them first")
        }
        var newEntries: [EpisodicEntry] = [], newKeys: [Float] = [], newFeatures: [Float] = []
        for e in old {
            let (key, tokens, surprise, features) = try m.encode(text: e.text, model: model)
            var n = e
            n.tokens = tokens
            n.surprise = surprise
            newEntries.append(n)
            newKeys += try EpisodicMemory.unit(key, "episodic key")
            newFeatures += features ?? []
        }
        try m.lock.withLock { _ in
            m.entries = newEntries
            m.keys = newKeys
            m.features = newFeatures
            m.nextId = next
            for e in newEntries { try m.lexical.insert(id: e.id, terms: LexicalTokenizer.terms(e.text)) }
        }
        return m
    }

    /// The stored key [N] of entry id (unit length).
    public func key(id: Int64) throws -> [Float] {
        try lock.withLock { _ in
            guard let i = entries.firstIndex(where: { $0.id == id }) else { throw HMSTError.notFound("no episodic entry with id \(id)") }
            let N = config.stateSize
            return Array(keys[(i * N)..<((i + 1) * N)])
        }
    }

    public var count: Int { lock.withLock { _ in entries.count } }
    public var keyDim: Int { config.stateSize }

    /// The key of hidden states [T, C]: the SSM's final state, pooled over channels, unit length.
    public func key(hidden: [Float]) throws -> [Float] {
        var state = MambaState(config: mixerConfig)
        try scan(hidden, state: &state)
        return try EpisodicMemory.unit(state.pooled(), "SSM state")
    }

    /// Runs the SSM over hidden states [T, C] from `state`, leaving the final state there.
    func scan(_ hidden: [Float], state: inout MambaState) throws {
        guard !hidden.isEmpty, hidden.count % inputSize == 0 else {
            throw HMSTError.invalidArgument("hidden states of \(hidden.count) values are not rows of \(inputSize)")
        }
        try VectorChecks.requireFinite(hidden, dim: inputSize, "episodic key: hidden states")
        _ = try mixer.forward(hidden, state: &state)
    }

    /// Tokenizes text (keeping the last maxTokens tokens) and encodes it window by window of the
    /// model's context: the key is the SSM state after all windows, the surprise the mean
    /// next-token loss over them; the state features when this memory keeps them.
    func encode(text: String, model: LanguageModel) throws -> (key: [Float], tokens: [Int32], surprise: Double, features: [Float]?) {
        let tokens = try model.tokens(text: text, limit: config.maxTokens)
        let soft = try featureSoftTokens(model)
        var state = MambaState(config: mixerConfig)
        var nll = 0.0, predicted = 0
        try model.encodeWindows(tokens: tokens) { enc in
            try scan(try soft?.mixerInput(hidden: enc.hidden, tokens: enc.tokens, embedding: model.decoder.weights.embed) ?? enc.hidden,
                     state: &state)
            nll += enc.surprise * Double(enc.T - 1)
            predicted += enc.T - 1
        }
        return (try EpisodicMemory.unit(state.pooled(), "SSM state"), tokens, predicted > 0 ? nll / Double(predicted) : 0,
                try soft?.features(of: state))
    }

    /// The model's soft tokens when this memory keeps state features for them (their mixer
    /// reads what they read, and the features are theirs), nil when it keeps keys only; refuses
    /// soft tokens other than the ones the memory's features are for.
    private func featureSoftTokens(_ model: LanguageModel) throws -> EpisodicSoftTokens? {
        guard featureSize > 0 else { return nil }
        guard let soft = model.episodicSoftTokens, soft.input == .stateReadout, soft.featureCount == featureSize else {
            throw HMSTError.invalidArgument("this episodic memory keeps state features for trained soft tokens the model does not have: "
                                            + "use the checkpoint it was built for, or re-encode it (`hmst memory reencode`)")
        }
        let same = lock.withLock { _ in checkedSoft == ObjectIdentifier(soft) }
        if !same {
            guard soft.valuesHash == featureSource, soft.hasMixer(weights) else {
                throw HMSTError.invalidArgument("this episodic memory's state features were made by other episodic soft tokens than the "
                                                + "model's: re-encode it for this checkpoint (`hmst memory reencode`)")
            }
            lock.withLock { _ in checkedSoft = ObjectIdentifier(soft) }
        }
        return soft
    }

    static func unit(_ v: [Float], _ what: String) throws -> [Float] {
        var ss = 0.0
        for x in v { ss += Double(x) * Double(x) }
        guard ss.isFinite else { throw HMSTError.invalidArgument("\(what) is not finite") }
        guard ss > 0 else { return v }
        let s = Float(1 / ss.squareRoot())
        return v.map { $0 * s }
    }

    /// Encodes text with the model and stores it; returns its id.
    @discardableResult
    public func add(text: String, model: LanguageModel, importance: Double = 0.5, timestamp: Double = Clock.wallSeconds(),
                    owner: String = "") throws -> Int64 {
        try checkModel(model)
        let (key, tokens, surprise, features) = try encode(text: text, model: model)
        return try insert(key: key, text: text, tokens: tokens, surprise: surprise, importance: importance, timestamp: timestamp,
                          owner: owner, features: features, encodedBy: ModelSignature(model: model))
    }

    /// Stores a precomputed key ([N], normalised here); with features ([featureSize]) when this
    /// memory keeps them (without, the entry has none: it is given to the model as text only).
    @discardableResult
    public func add(key: [Float], text: String, tokens: [Int32] = [], surprise: Double = 0, importance: Double = 0.5,
                    timestamp: Double = Clock.wallSeconds(), owner: String = "", features: [Float]? = nil) throws -> Int64 {
        try insert(key: key, text: text, tokens: tokens, surprise: surprise, importance: importance, timestamp: timestamp,
                   owner: owner, features: features, encodedBy: nil)
    }

    /// add(key:...), with the model the key was encoded by checked and recorded in the same
    /// critical section as the insert: an empty memory takes it, a filled one must match it
    /// (two first adds by different models cannot both land).
    private func insert(key: [Float], text: String, tokens: [Int32], surprise: Double, importance: Double,
                        timestamp: Double, owner: String, features: [Float]?, encodedBy: ModelSignature?) throws -> Int64 {
        if let features {
            guard featureSize > 0, features.count == featureSize, features.allSatisfy(\.isFinite) else {
                throw HMSTError.invalidArgument("episodic state features of \(features.count) values: this memory keeps \(featureSize)")
            }
        }
        guard key.count == config.stateSize else {
            throw HMSTError.invalidArgument("episodic key has \(key.count) values; this memory's keys have \(config.stateSize)")
        }
        guard surprise.isFinite, importance.isFinite, timestamp.isFinite else {
            throw HMSTError.invalidArgument("surprise, importance and timestamp must be finite")
        }
        let k = try EpisodicMemory.unit(key, "episodic key")
        let terms = LexicalTokenizer.terms(text)
        return try lock.withLock { _ in
            if let encodedBy {
                if entries.isEmpty {
                    builtBy = encodedBy
                } else if let built = builtBy, let why = built.mismatch(with: encodedBy) {
                    throw HMSTError.invalidArgument("this episodic memory's keys were encoded by another model: \(why)")
                }
            }
            if entries.count >= config.maxEntries { evictOne() }
            let id = nextId
            try lexical.insert(id: id, terms: terms)
            nextId += 1
            entries.append(EpisodicEntry(id: id, text: text, tokens: tokens, timestamp: timestamp, accessCount: 0,
                                         surprise: surprise, importance: min(1, max(0, importance)), owner: owner))
            keys += k
            if featureSize > 0 { self.features += features ?? [Float](repeating: .nan, count: featureSize) }
            return id
        }
    }

    /// INVALID_ARGUMENT unless the model can read and add to this memory: its hidden size, and
    /// its weights those the keys were encoded with (ModelSignature; a converted copy of them
    /// passes, another or a retrained model does not). An empty memory takes any model of its
    /// hidden size, and records the one whose text fills it.
    public func checkModel(_ model: LanguageModel) throws {
        guard model.dims.C == inputSize else {
            throw HMSTError.invalidArgument("the model's hidden size \(model.dims.C) is not this memory's \(inputSize): " + EpisodicMemory.reencodeHint)
        }
        if let built = lock.withLock({ _ in entries.isEmpty ? nil : builtBy }), let why = built.mismatch(with: ModelSignature(model: model)) {
            throw HMSTError.invalidArgument("this episodic memory's keys were encoded by another model: \(why); " + EpisodicMemory.reencodeHint)
        }
    }

    static let reencodeHint = "re-encode it for this model (`hmst memory reencode --dir DIR --model CHECKPOINT`; C hmst_episodic_reencode, "
        + "Python EpisodicMemory.reencoded), or use the model that built it"

    /// Drops the entry with the lowest importance (the oldest among equals). Lock held.
    private func evictOne() {
        guard let victim = entries.indices.min(by: {
            (entries[$0].importance, entries[$0].timestamp) < (entries[$1].importance, entries[$1].timestamp)
        }) else { return }
        removeAt(victim)
    }

    private func removeAt(_ i: Int) {
        let N = config.stateSize
        lexical.remove(id: entries[i].id, terms: LexicalTokenizer.terms(entries[i].text))
        entries.remove(at: i)
        keys.removeSubrange((i * N)..<((i + 1) * N))
        if featureSize > 0 { features.removeSubrange((i * featureSize)..<((i + 1) * featureSize)) }
    }

    /// The k entries most similar to the text (encoded like an entry); their access counts grow.
    /// With owner, only that owner's entries are candidates.
    public func search(text: String, model: LanguageModel, k: Int, owner: String? = nil) throws -> [EpisodicHit] {
        try checkModel(model)
        return try search(key: try encode(text: text, model: model).key, k: k, owner: owner)
    }

    /// The k entries whose keys have the highest cosine similarity to `key` ([N]).
    public func search(key: [Float], k: Int, owner: String? = nil) throws -> [EpisodicHit] {
        guard k >= 1 else { throw HMSTError.invalidArgument("k = \(k) must be >= 1") }
        guard key.count == config.stateSize else {
            throw HMSTError.invalidArgument("query has \(key.count) values; this memory's keys have \(config.stateSize)")
        }
        let q = try EpisodicMemory.unit(key, "query")
        return lock.withLock { _ -> [EpisodicHit] in
            let top = denseTopLocked(q, k: k, owner: owner)
            for h in top { entries[h.index].accessCount += 1 }
            return top.map { EpisodicHit(id: $0.id, score: $0.score) }
        }
    }

    /// The k entries most similar to the unit query q [N], best first (ties: smaller id).
    /// Lock held by the caller; access counts untouched. With owner, only that owner's entries.
    func denseTopLocked(_ q: [Float], k: Int, owner: String? = nil) -> [(index: Int, id: Int64, score: Float)] {
        let M = entries.count, N = config.stateSize
        guard M > 0 else { return [] }
        // scores[M] = keys[M, N] · q[N]
        var scores = [Float](repeating: 0, count: M)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(M), Int32(N), 1, keys, Int32(N), q, 1, 0, &scores, 1)
        let candidates = owner.map { o in entries.indices.filter { entries[$0].owner == o } } ?? Array(scores.indices)
        let top = candidates.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : entries[$0].id < entries[$1].id }.prefix(k)
        return top.map { (index: $0, id: entries[$0].id, score: scores[$0]) }
    }

    public func entry(id: Int64) throws -> EpisodicEntry {
        try lock.withLock { _ in
            guard let e = entries.first(where: { $0.id == id }) else { throw HMSTError.notFound("no episodic entry with id \(id)") }
            return e
        }
    }

    public func allEntries() -> [EpisodicEntry] { lock.withLock { _ in entries } }

    /// Removes the ids present; returns how many were.
    @discardableResult
    public func remove(ids: [Int64]) -> Int {
        let drop = Set(ids)
        return lock.withLock { _ in
            var removed = 0
            for i in stride(from: entries.count - 1, through: 0, by: -1) where drop.contains(entries[i].id) {
                removeAt(i)
                removed += 1
            }
            return removed
        }
    }

    /// Sets an entry's importance (clamped to [0, 1]).
    public func setImportance(id: Int64, _ importance: Double) throws {
        guard importance.isFinite else { throw HMSTError.invalidArgument("importance must be finite") }
        try lock.withLock { _ in
            guard let i = entries.firstIndex(where: { $0.id == id }) else { throw HMSTError.notFound("no episodic entry with id \(id)") }
            entries[i].importance = min(1, max(0, importance))
        }
    }
}

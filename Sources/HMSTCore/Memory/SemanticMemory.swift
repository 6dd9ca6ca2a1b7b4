// SemanticMemory: a vector memory over FAISS with stable 64-bit ids and per-entry metadata.
// It owns the locking and the lazy training of IVF-style indexes: until the configured index
// has enough vectors to train (39 per centroid), an exact flat index serves searches; the
// add that crosses that count trains the real index on a snapshot outside the write lock,
// then swaps it in under a short write lock. Saving and loading live in
// SemanticMemoryStore.swift, input checks in VectorChecks.swift, FAISS calls in FaissIndex.
// Beside the vectors, a BM25 index over the entries' texts (Retrieval/BM25Index.swift) follows
// every add and remove under the same lock; it is rebuilt from the texts on load, and
// Retrieval/SemanticRetrieval.swift searches both parts (dense, lexical, hybrid).
//
// Threads: any number of searches (and stats, metadata, save) run concurrently with each
// other; add, remove and the training swap take the lock exclusively. A search never sees a
// half-applied add, remove or swap. The lock prefers writers (ReadWriteLock).

/// One search result. score: similarity for inner product and cosine (higher is closer),
/// squared L2 distance for l2 (lower is closer).
public struct SemanticHit: Sendable, Equatable {
    public let id: Int64
    public let score: Float
    public let metadata: MemoryMetadata
}

/// What remove(ids:) found: how many ids were present (and are now gone) and which were not.
public struct MemoryRemoval: Sendable, Equatable {
    public let removed: Int
    public let unknownIds: [Int64]
}

public enum SemanticMemoryPhase: String, Sendable {
    case exact = "exact"         // configured index untrained; an exact flat index serves
    case training = "training"   // as exact, while a snapshot trains the configured index
    case ready = "ready"         // the configured index serves (always, for HNSW/Flat)
}

public struct SemanticMemoryStats: Sendable, Equatable {
    public let count: Int              // live entries
    public let dim: Int
    public let description: String
    public let metric: SemanticMetric
    public let phase: SemanticMemoryPhase
    public let isTrained: Bool         // phase == .ready
    public let trainThreshold: Int     // entries that trigger training; 0 for no lazy phase
    public let nlist: Int              // IVF lists, 0 for non-IVF
    public let nprobe: Int             // default per query
    public let indexBytes: Int         // serialized size of the serving index (its memory, roughly)
    public let tombstones: Int         // removed ids still in an index that cannot delete (HNSW)
    public let nextId: Int64           // next auto-assigned id
    public let lastTrainingMs: Double? // snapshot train + migrate + swap
    public let lastTrainingError: String?
}

public final class SemanticMemory: @unchecked Sendable {
    public let config: SemanticMemoryConfig
    /// IVF lists of the configured index (0 if not IVF) and the entries that trigger training
    /// (0 when it needs none). Fixed at creation.
    public let nlist: Int
    public let trainThreshold: Int

    let lock = ReadWriteLock()

    // ---- guarded by lock ------------------------------------------------------------------
    var index: FaissIndex                // serves searches: exact flat while lazy, then configured
    var indexInfo: FaissIndex.Info
    var lazy: Bool                       // index is the exact stand-in
    var entries: [Int64: MemoryMetadata] // live ids -> metadata; the ids source of truth
    var tombstones: Set<Int64>           // removed but still inside an index that cannot delete
    var nextId: Int64                    // greater than every id ever used
    var training: TrainingLog?           // non-nil while a snapshot trains
    var nextTrainingAttempt = 0          // after a failed training: retry once count doubles
    var lastTrainingMs: Double?
    var lastTrainingError: String?
    var lexical = BM25Index()            // the live entries' texts, by id
    var embedderName: String?            // the embedder that built the text vectors (SemanticMemoryText)
    var builtBy: ModelSignature?         // the model that embedded them, recorded with embedderName

    /// Changes made while a snapshot trains, replayed into the trained index at the swap.
    struct TrainingLog {
        var tailIds: [Int64] = []   // added after the snapshot          [t]
        var tailX: [Float] = []     // their (normalised) vectors         [t, dim]
        var removed: [Int64] = []   // snapshot ids removed meanwhile
    }

    /// A new, empty memory. Throws INVALID_ARGUMENT for a bad config or a description FAISS
    /// rejects. Trainable descriptions ("IVF1024,Flat", "IVF4096,PQ32") start in the exact
    /// phase; the others ("Flat", "HNSW32") serve from the configured index at once.
    public init(config: SemanticMemoryConfig) throws {
        try config.validate()
        let target = try FaissIndex(dim: config.dim, description: config.description, metric: config.metric.faissMetric)
        let info = try target.info()
        self.config = config
        nlist = info.nlist
        if target.isTrained {
            trainThreshold = 0
            index = target
            indexInfo = info
            lazy = false
        } else {
            trainThreshold = max(1, info.minTrainCount)
            index = try FaissIndex(dim: config.dim, description: "Flat", metric: config.metric.faissMetric)
            indexInfo = try index.info()
            lazy = true
        }
        entries = [:]
        tombstones = []
        nextId = 0
    }

    public convenience init(dim: Int, description: String = SemanticMemoryConfig.defaultDescription,
                            metric: SemanticMetric = .cosine, nprobe: Int = SemanticMemoryConfig.defaultNprobe) throws {
        try self.init(config: SemanticMemoryConfig(dim: dim, description: description, metric: metric, nprobe: nprobe))
    }

    /// For load: a memory around an index read from disk (already validated by the caller).
    init(config: SemanticMemoryConfig, index: FaissIndex, lazy: Bool, entries: [Int64: MemoryMetadata],
         tombstones: Set<Int64>, nextId: Int64) throws {
        let target = try FaissIndex(dim: config.dim, description: config.description, metric: config.metric.faissMetric)
        let targetInfo = try target.info()
        self.config = config
        nlist = targetInfo.nlist
        trainThreshold = target.isTrained ? 0 : max(1, targetInfo.minTrainCount)
        self.index = index
        indexInfo = try index.info()
        self.lazy = lazy
        self.entries = entries
        self.tombstones = tombstones
        self.nextId = nextId
        for id in entries.keys.sorted() {
            try lexical.insert(id: id, terms: LexicalTokenizer.terms(entries[id]?.text ?? ""))
        }
    }

    // ---- add ----------------------------------------------------------------------------------

    /// vectors: [n, dim], metadata: [n], ids: [n] or nil to assign them (monotonically from
    /// nextId). Returns the ids. Every id must be new (>= 0, not in the memory, not removed from
    /// an index that cannot delete); one bad entry rejects the whole batch. If this add brings
    /// the exact phase to trainThreshold, the configured index is trained before returning
    /// (searches go on meanwhile); a training failure does not fail the add (the exact index
    /// keeps serving; see stats().lastTrainingError). embeddedBy: the model whose embeddings the
    /// vectors are, recorded (or checked against the record) in the same critical section as
    /// the insert, so two first adds by different models cannot both land. Thread-safe: takes
    /// the write lock.
    @discardableResult
    public func add(vectors: [Float], metadata: [MemoryMetadata], ids: [Int64]? = nil, embeddedBy model: LanguageModel? = nil) throws -> [Int64] {
        let (x, n) = try VectorChecks.prepare(vectors, dim: config.dim, metric: config.metric, "add")
        guard metadata.count == n else {
            throw HMSTError.invalidArgument("add: \(n) vectors but \(metadata.count) metadata entries")
        }
        if let ids {
            guard ids.count == n else { throw HMSTError.invalidArgument("add: \(n) vectors but \(ids.count) ids") }
            if let bad = ids.first(where: { $0 < 0 }) {
                throw HMSTError.invalidArgument("add: id \(bad) is negative (ids are 0...Int64.max; -1 means no result in FAISS)")
            }
        }
        for (i, m) in metadata.enumerated() { try m.validate("add: metadata \(i)") }
        let terms = metadata.map { LexicalTokenizer.terms($0.text) }   // outside the lock
        let embedder = model.map { ($0.embedderName, ModelSignature(model: $0)) }
        let (assigned, due): ([Int64], Bool) = try lock.withWriteLock {
            let newIds = try checkedIds(ids, n: n)
            if let (name, signature) = embedder { try recordLocked(name, signature) }
            try index.add(x, ids: newIds)
            for (i, id) in newIds.enumerated() {
                entries[id] = metadata[i]
                try lexical.insert(id: id, terms: terms[i])
            }
            if let top = newIds.max(), top >= nextId { nextId = top == .max ? .max : top + 1 }
            if training != nil {
                training?.tailIds += newIds
                training?.tailX += x
            }
            return (newIds, lazy && training == nil && entries.count >= max(trainThreshold, nextTrainingAttempt))
        }
        if due { trainIfDue() }
        return assigned
    }

    /// Caller ids checked against the memory and each other, or fresh ones. Under the write lock.
    private func checkedIds(_ ids: [Int64]?, n: Int) throws -> [Int64] {
        guard let ids else {
            guard nextId <= Int64.max - Int64(n) else { throw HMSTError.invalidArgument("add: the 64-bit id space is exhausted") }
            return (0..<Int64(n)).map { nextId + $0 }
        }
        var seen = Set<Int64>(minimumCapacity: n)
        for id in ids {
            guard seen.insert(id).inserted else { throw HMSTError.invalidArgument("add: id \(id) appears twice in the batch") }
            guard entries[id] == nil else { throw HMSTError.invalidArgument("add: id \(id) already exists (duplicate id)") }
            guard !tombstones.contains(id) else {
                throw HMSTError.invalidArgument("add: id \(id) was removed from a \(config.description) index, which cannot delete vectors, so the id cannot be reused")
            }
        }
        return ids
    }

    // ---- remove -------------------------------------------------------------------------------

    /// Removes the given ids (no rebuild: FAISS remove_ids on IVF and flat indexes). Indexes
    /// that cannot delete (HNSW) keep the vectors and filter them out of every search through
    /// a tombstone set, saved with the memory; their ids cannot be reused. Returns how many ids
    /// were present and which were unknown (duplicates in `ids` count once). Thread-safe:
    /// takes the write lock.
    public func remove(ids: [Int64]) throws -> MemoryRemoval {
        try lock.withWriteLock {
            var present: [Int64] = [], unknown: [Int64] = []
            var seen = Set<Int64>(minimumCapacity: ids.count)
            for id in ids where seen.insert(id).inserted {
                if entries[id] != nil { present.append(id) } else { unknown.append(id) }
            }
            guard !present.isEmpty else { return MemoryRemoval(removed: 0, unknownIds: unknown) }
            var removedFromIndex = present.count
            if indexInfo.supportsRemove {
                removedFromIndex = try index.remove(ids: present)
            } else {
                tombstones.formUnion(present)
            }
            for id in present {
                lexical.remove(id: id, terms: LexicalTokenizer.terms(entries[id]?.text ?? ""))
                entries[id] = nil
            }
            if training != nil { logRemovalDuringTraining(present) }
            guard removedFromIndex == present.count else {
                throw HMSTError(.internal, "remove: the index held \(removedFromIndex) of \(present.count) ids the memory knew")
            }
            return MemoryRemoval(removed: present.count, unknownIds: unknown)
        }
    }

    /// Under the write lock: a removed id is either in the tail (dropped from it) or in the
    /// snapshot (to be removed from the trained index at the swap).
    private func logRemovalDuringTraining(_ ids: [Int64]) {
        guard var log = training else { return }
        let dim = config.dim
        for id in ids {
            if let at = log.tailIds.firstIndex(of: id) {
                log.tailIds.remove(at: at)
                log.tailX.removeSubrange((at * dim)..<((at + 1) * dim))
            } else {
                log.removed.append(id)
            }
        }
        training = log
    }

    // ---- search -------------------------------------------------------------------------------

    /// queries: [n, dim] -> n lists of at most k hits, best first. nprobe (IVF lists to visit,
    /// clamped to nlist) defaults to config.nprobe and is ignored by non-IVF indexes and in the
    /// exact phase. Fewer than k hits come back when the memory is smaller or the probed lists
    /// hold fewer. Throws INVALID_ARGUMENT (shape, NaN/Inf, k <= 0, nprobe <= 0) or NOT_FOUND
    /// for an empty memory. Thread-safe: takes the read lock, so searches run concurrently.
    public func search(queries: [Float], k: Int, nprobe: Int? = nil) throws -> [[SemanticHit]] {
        guard k > 0, k <= 1 << 20 else { throw HMSTError.invalidArgument("search: k = \(k) must be in 1...1048576") }
        if let nprobe, nprobe < 1 { throw HMSTError.invalidArgument("search: nprobe \(nprobe) must be >= 1") }
        let (q, n) = try VectorChecks.prepare(queries, dim: config.dim, metric: config.metric, "search")
        return try lock.withReadLock {
            guard !entries.isEmpty else { throw HMSTError.notFound("search: the memory is empty") }
            return try searchLocked(q, n: n, k: k, nprobe: nprobe)
        }
    }

    /// The search itself, for callers holding the lock (read or write). q: [n, dim], prepared.
    func searchLocked(_ q: [Float], n: Int, k: Int, nprobe: Int?) throws -> [[SemanticHit]] {
        let live = entries.count
        guard live > 0 else { return Array(repeating: [], count: n) }
        // over-fetch by the tombstones so k live hits survive the filter
        let kk = min(k, live) + tombstones.count
        let probe = (lazy || nlist == 0) ? 0 : min(nprobe ?? config.nprobe, nlist)
        let r = try index.search(q, k: kk, nprobe: probe)
        var out: [[SemanticHit]] = []
        out.reserveCapacity(n)
        for row in 0..<n {
            var hits: [SemanticHit] = []
            hits.reserveCapacity(min(k, live))
            for j in 0..<kk where hits.count < k {
                let id = r.ids[row * kk + j]
                if id < 0 || tombstones.contains(id) { continue }
                guard let m = entries[id] else {
                    throw HMSTError(.internal, "search: the index returned id \(id), which the memory does not hold")
                }
                hits.append(SemanticHit(id: id, score: r.distances[row * kk + j], metadata: m))
            }
            out.append(hits)
        }
        return out
    }

    /// query: [dim] -> at most k hits, best first. As search(queries:k:nprobe:).
    public func search(query: [Float], k: Int, nprobe: Int? = nil) throws -> [SemanticHit] {
        guard query.count == config.dim else {
            throw HMSTError.invalidArgument("search: query has \(query.count) values, the memory's dimension is \(config.dim)")
        }
        return try search(queries: query, k: k, nprobe: nprobe)[0]
    }

    // ---- lookups ------------------------------------------------------------------------------

    /// The embedder ("pooled", "projected-<hash>") that built this memory's text vectors; nil
    /// while unknown (no text embedded for it yet, or vectors added directly). Thread-safe.
    public var embedder: String? { lock.withReadLock { embedderName } }

    /// Whether the memory records the model its vectors came from (false: empty of text so far,
    /// or saved before that record, not checked). Thread-safe.
    public var recordsModel: Bool { lock.withReadLock { builtBy != nil } }
    /// The recorded model (nil: none recorded). Thread-safe.
    public var recordedModel: ModelSignature? { lock.withReadLock { builtBy } }

    /// Sets the embedder, and the model that embeds with it, when none is recorded yet; the
    /// model also while the memory is empty (it takes the model that fills it). Throws when
    /// another model filled it meanwhile (checkModel ran before the embedding). Thread-safe.
    func recordEmbedder(_ name: String, model: LanguageModel) throws {
        let signature = ModelSignature(model: model)
        try lock.withWriteLock { try recordLocked(name, signature) }
    }

    /// recordEmbedder's work. Write lock held.
    private func recordLocked(_ name: String, _ signature: ModelSignature) throws {
        if embedderName == nil || entries.isEmpty {
            embedderName = name
            builtBy = signature
        } else if let built = embedderName, built != name {
            throw HMSTError.invalidArgument("this semantic memory's vectors were built by the \(built) embedder, not \(name)")
        } else if let built = builtBy, let why = built.mismatch(with: signature) {
            throw HMSTError.invalidArgument("this semantic memory's vectors were embedded by another model: \(why)")
        }
    }

    /// Live entries. Thread-safe (read lock).
    public var count: Int { lock.withReadLock { entries.count } }

    /// Throws NOT_FOUND for an id the memory does not hold. Thread-safe (read lock).
    public func metadata(id: Int64) throws -> MemoryMetadata {
        try lock.withReadLock {
            guard let m = entries[id] else { throw HMSTError.notFound("unknown id \(id)") }
            return m
        }
    }

    public func contains(id: Int64) -> Bool { lock.withReadLock { entries[id] != nil } }

    /// Every live id, ascending. Thread-safe (read lock).
    public func ids() -> [Int64] { lock.withReadLock { entries.keys.sorted() } }

    /// Thread-safe (read lock). indexBytes walks the index through a counting writer: cheap,
    /// but proportional to the number of IVF lists or HNSW levels, not free.
    public func stats() -> SemanticMemoryStats {
        lock.withReadLock {
            SemanticMemoryStats(
                count: entries.count, dim: config.dim, description: config.description, metric: config.metric,
                phase: !lazy ? .ready : (training != nil ? .training : .exact), isTrained: !lazy,
                trainThreshold: trainThreshold, nlist: nlist, nprobe: config.nprobe,
                indexBytes: ((try? index.serializedBytes()) ?? 0) + (training?.tailX.count ?? 0) * 4,
                tombstones: tombstones.count, nextId: nextId, lastTrainingMs: lastTrainingMs,
                lastTrainingError: lastTrainingError)
        }
    }

    // ---- lazy training ------------------------------------------------------------------------

    /// Trains the configured index now on every entry, even below trainThreshold (FAISS needs
    /// at least nlist vectors, and warns on stderr below 39 per centroid). No-op when already
    /// trained or when another thread is training. Throws what training threw; the memory
    /// then stays in the exact phase, complete. Thread-safe.
    public func train() throws {
        guard let snapshot = try beginTraining(force: true) else { return }
        try finishTraining(snapshot)
    }

    /// When true, the add that reaches the training threshold only takes the snapshot; a
    /// detached thread trains, migrates and swaps while adds and searches go on (the exact
    /// index serves meanwhile). Off by default: a short-lived process would exit before the
    /// swap. Not saved with the memory. Thread-safe.
    public var trainInBackground: Bool {
        get { backgroundTraining.get() }
        set { backgroundTraining.set(newValue) }
    }
    private let backgroundTraining = Locked(false)

    /// Blocks until no training is in progress (polls every millisecond). Thread-safe.
    public func waitForTraining() {
        while lock.withReadLock({ training != nil }) { usleep(1000) }
    }

    /// After an add: trains when the exact phase has reached its threshold, here or on a
    /// background thread. Errors are kept in lastTrainingError, not thrown: the add itself
    /// succeeded.
    private func trainIfDue() {
        guard let snapshot = try? beginTraining(force: false) else { return }
        guard trainInBackground else {
            try? finishTraining(snapshot)
            return
        }
        final class Job {
            let memory: SemanticMemory
            let snapshot: (x: [Float], ids: [Int64])
            init(_ m: SemanticMemory, _ s: (x: [Float], ids: [Int64])) { memory = m; snapshot = s }
        }
        let ctx = Unmanaged.passRetained(Job(self, snapshot)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            try? job.memory.finishTraining(job.snapshot)
            return nil
        }, ctx)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            // no thread: train here rather than leave the log open
            let job = Unmanaged<Job>.fromOpaque(ctx).takeRetainedValue()
            try? finishTraining(job.snapshot)
        }
    }

    /// Under the write lock: decides, copies the exact index (a memcpy) and opens the log.
    private func beginTraining(force: Bool) throws -> (x: [Float], ids: [Int64])? {
        try lock.withWriteLock {
            guard lazy, training == nil else { return nil }
            if force {
                guard !entries.isEmpty else { throw HMSTError.notFound("train: the memory is empty") }
            } else {
                guard entries.count >= max(trainThreshold, nextTrainingAttempt) else { return nil }
            }
            let snapshot = try index.exportFlat()
            training = TrainingLog()
            return snapshot
        }
    }

    /// Trains and fills a fresh configured index outside the lock, then replays the log and
    /// swaps under the write lock. On failure the exact index, which saw every change, serves on.
    private func finishTraining(_ snapshot: (x: [Float], ids: [Int64])) throws {
        let t0 = Clock.nowMs()
        do {
            let target = try FaissIndex(dim: config.dim, description: config.description, metric: config.metric.faissMetric)
            try target.skipPolysemousTraining()  // search never uses it; it costs seconds per sub-quantizer
            try target.train(snapshot.x)
            try target.add(snapshot.x, ids: snapshot.ids)
            try lock.withWriteLock {
                guard let log = training else { throw HMSTError(.internal, "train: the training log vanished") }
                if !log.removed.isEmpty {
                    let n = try target.remove(ids: log.removed)
                    guard n == log.removed.count else {
                        throw HMSTError(.internal, "train: replay removed \(n) of \(log.removed.count) ids")
                    }
                }
                if !log.tailIds.isEmpty { try target.add(log.tailX, ids: log.tailIds) }
                guard target.count == entries.count else {
                    throw HMSTError(.internal, "train: trained index holds \(target.count) vectors, the memory \(entries.count)")
                }
                index = target
                indexInfo = try target.info()
                lazy = false
                training = nil
                lastTrainingMs = Clock.nowMs() - t0
                lastTrainingError = nil
            }
        } catch {
            lock.withWriteLock {
                training = nil
                lastTrainingError = "\(error)"
                nextTrainingAttempt = 2 * entries.count
            }
            throw error
        }
    }
}

// Consolidation: moves what matters from episodic to semantic memory. Each episodic entry gets
// an importance score in [0, 1], a weighted sum of
//   access    log(1 + accesses) / log(1 + most accesses of any entry)
//   recency   2^(−age / halfLife)
//   surprise  s / (s + surpriseScale), s = the base model's mean next-token loss on the entry
//   caller    the importance set on the entry (default 0.5)
// Entries scoring at least `threshold` (best first, at most maxPerRun) are embedded with the
// base model (pooled final hidden states, the semantic memory's vector space), added to the
// semantic memory with their text and provenance, and removed from the episodic buffer. The
// model work happens outside both memories' locks: searches go on throughout.

public struct ConsolidationOptions: Sendable, Equatable {
    public var threshold = 0.5
    public var maxPerRun = 256
    public var removeFromEpisodic = true
    public var accessWeight = 0.3
    public var recencyWeight = 0.2
    public var surpriseWeight = 0.3
    public var callerWeight = 0.2
    public var halfLifeSeconds = 3600.0
    /// surprise (nats) that scores 0.5
    public var surpriseScale = 3.0
    public init() {}

    public func validate() throws {
        let w = [accessWeight, recencyWeight, surpriseWeight, callerWeight]
        guard w.allSatisfy({ $0.isFinite && $0 >= 0 }), w.reduce(0, +) > 0 else {
            throw HMSTError.invalidArgument("consolidation weights must be finite, >= 0 and not all 0")
        }
        guard threshold.isFinite else { throw HMSTError.invalidArgument("consolidation threshold \(threshold) must be finite") }
        guard maxPerRun >= 1 else { throw HMSTError.invalidArgument("consolidation max_per_run \(maxPerRun) must be >= 1") }
        guard halfLifeSeconds > 0 else { throw HMSTError.invalidArgument("consolidation half_life_seconds \(halfLifeSeconds) must be > 0") }
        guard surpriseScale > 0 else { throw HMSTError.invalidArgument("consolidation surprise scale \(surpriseScale) must be > 0") }
    }
}

public struct ConsolidationReport: Sendable, Equatable {
    public var scanned = 0
    /// (episodic id, semantic id, score) of each entry moved
    public var moved: [(episodic: Int64, semantic: Int64, score: Double)] = []

    public static func == (a: Self, b: Self) -> Bool {
        a.scanned == b.scanned && a.moved.elementsEqual(b.moved) { $0.episodic == $1.episodic && $0.semantic == $1.semantic && $0.score == $1.score }
    }
}

public enum Consolidator {
    /// Importance scores of entries at time `now` (seconds since the epoch).
    public static func scores(_ entries: [EpisodicEntry], now: Double, options o: ConsolidationOptions) -> [Double] {
        let maxAccess = entries.map(\.accessCount).max() ?? 0
        let total = o.accessWeight + o.recencyWeight + o.surpriseWeight + o.callerWeight
        return entries.map { e in
            let access = maxAccess > 0 ? log1p(Double(e.accessCount)) / log1p(Double(maxAccess)) : 0
            let recency = exp2(-max(0, now - e.timestamp) / o.halfLifeSeconds)
            let surprise = max(0, e.surprise) / (max(0, e.surprise) + o.surpriseScale)
            return (o.accessWeight * access + o.recencyWeight * recency + o.surpriseWeight * surprise + o.callerWeight * e.importance) / total
        }
    }

    /// Throws unless the model fits both memories (episodic input size, semantic dimension).
    public static func check(episodic: EpisodicMemory, semantic: SemanticMemory, model: LanguageModel) throws {
        try episodic.checkModel(model)
        try semantic.checkModel(model)
    }

    /// One consolidation pass. The semantic memory's dimension must be the model's embedding size
    /// (hidden size, or the retrieval projection's); entries move as document embeddings.
    public static func run(episodic: EpisodicMemory, semantic: SemanticMemory, model: LanguageModel,
                           options: ConsolidationOptions = ConsolidationOptions(), now: Double = Clock.wallSeconds()) throws -> ConsolidationReport {
        try options.validate()
        try check(episodic: episodic, semantic: semantic, model: model)
        let entries = episodic.allEntries()
        let s = scores(entries, now: now, options: options)
        let chosen = entries.indices.filter { s[$0] >= options.threshold }.sorted { s[$0] > s[$1] }.prefix(options.maxPerRun)
        var report = ConsolidationReport(scanned: entries.count)
        guard !chosen.isEmpty else { return report }
        var vectors: [Float] = []
        var metadata: [MemoryMetadata] = []
        for i in chosen {
            let e = entries[i]
            let embedding: [Float]
            do {
                embedding = e.tokens.isEmpty ? try model.documentEmbedding(text: e.text) : try model.documentEmbedding(tokens: e.tokens)
            } catch let error as HMSTError {
                throw HMSTError(error.status, "episodic entry \(e.id): \(error.message)")   // tokens of another model's vocabulary
            }
            vectors += embedding
            let w = JSONWriter()
            w.object {
                w.field("episodic_id", String(e.id)); w.field("score", s[i]); w.field("access_count", e.accessCount)
                w.field("surprise", e.surprise); w.field("importance", e.importance)
            }
            metadata.append(MemoryMetadata(text: e.text, source: "episodic:\(e.id)", timestamp: e.timestamp, json: w.output, owner: e.owner))
        }
        let ids = try semantic.add(vectors: vectors, metadata: metadata, embeddedBy: model)
        for (n, i) in chosen.enumerated() { report.moved.append((entries[i].id, ids[n], s[i])) }
        if options.removeFromEpisodic { episodic.remove(ids: chosen.map { entries[$0].id }) }
        return report
    }
}

/// Runs Consolidator.run every `interval` seconds on its own thread until stop(), which wakes
/// it and waits for it to finish (a pass in progress completes first). Errors of a pass are
/// kept in lastError; the loop goes on.
public final class BackgroundConsolidator: @unchecked Sendable {
    public let interval: Double
    /// The longest interval (about 31 years): the wait's deadline is whole seconds in an Int.
    public static let maxInterval = 1e9
    let episodic: EpisodicMemory
    let semantic: SemanticMemory
    let model: LanguageModel
    let options: ConsolidationOptions
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var thread: pthread_t?
    private var stopping = false
    private var passes = 0
    private var moved = 0
    private var lastErrorText: String?

    public init(episodic: EpisodicMemory, semantic: SemanticMemory, model: LanguageModel, options: ConsolidationOptions = ConsolidationOptions(),
                interval: Double) throws {
        guard interval.isFinite, interval > 0, interval <= BackgroundConsolidator.maxInterval else {
            throw HMSTError.invalidArgument("consolidation interval \(interval) must be a finite number of seconds in (0, 1e9]")
        }
        try options.validate()
        try Consolidator.check(episodic: episodic, semantic: semantic, model: model)
        self.episodic = episodic
        self.semantic = semantic
        self.model = model
        self.options = options
        self.interval = interval
        pthread_mutex_init(&mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        stop()
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    /// (passes run, entries moved, last error)
    public var status: (passes: Int, moved: Int, lastError: String?) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return (passes, moved, lastErrorText)
    }

    public func start() throws {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard thread == nil else { throw HMSTError.invalidArgument("the consolidator is already running") }
        stopping = false
        var t = pthread_t()
        let ctx = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&t, nil, { raw in
            let me = Unmanaged<BackgroundConsolidator>.fromOpaque(raw!).takeRetainedValue()
            me.loop()
            return nil
        }, ctx)
        guard rc == 0 else {
            Unmanaged<BackgroundConsolidator>.fromOpaque(ctx).release()
            throw HMSTError(.internal, "cannot start the consolidation thread (error \(rc))")
        }
        thread = t
    }

    /// Idempotent; returns once the thread has exited.
    public func stop() {
        pthread_mutex_lock(&mutex)
        let t = thread
        thread = nil
        stopping = true
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        if let t { pthread_join(t, nil) }
    }

    private func loop() {
        while true {
            pthread_mutex_lock(&mutex)
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let whole = Int(interval), frac = interval - Double(whole)
            deadline.tv_sec += whole
            deadline.tv_nsec += Int(frac * 1e9)
            if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
            while !stopping && pthread_cond_timedwait(&cond, &mutex, &deadline) != ETIMEDOUT {}
            let quit = stopping
            pthread_mutex_unlock(&mutex)
            if quit { return }
            var n = 0
            var err: String?
            do { n = try Consolidator.run(episodic: episodic, semantic: semantic, model: model, options: options).moved.count } catch {
                err = "\(error)"
            }
            pthread_mutex_lock(&mutex)
            passes += 1
            moved += n
            if let err { lastErrorText = err }
            pthread_mutex_unlock(&mutex)
        }
    }
}

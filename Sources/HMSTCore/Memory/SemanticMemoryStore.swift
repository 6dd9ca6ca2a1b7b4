// SemanticMemoryStore: saving a SemanticMemory to a directory and loading it back.
//   memory.json              the manifest, written last: format, version, config, counts, and the
//                            name, size and checksum of each data file below
//   index-<gen>.faiss        faiss::write_index of the serving index (the exact flat index while
//                            the memory is in its exact phase)
//   metadata-<gen>.jsonl     one line per entry (MemoryMetadata.swift)
// The manifest's optional "embedder" names what built the text vectors, and "model" the
// ModelSignature of the model that embedded them (SemanticMemoryText; absent before session 37).
// Every file goes to a temp name, is fsynced and renamed; the data files carry a fresh
// generation in their names, so the manifest's rename is the single commit point: a kill at
// any moment leaves the old manifest with the old files or the new one with the new files.
// Files no manifest names any more are deleted after the commit. One process saves a given
// directory at a time.
import CFAISSShim

extension SemanticMemory {
    static let manifestName = "memory.json"
    static let formatName = "hmst-semantic-memory"
    static let formatVersion = 1

    /// Writes the memory to `directory` (created if missing), replacing what was there
    /// atomically. Thread-safe: holds the read lock, so searches go on and writers wait.
    public func save(directory: String) throws {
        try FileIO.makeDirectories(directory)
        let gen = MemoryFiles.newGeneration()
        let indexName = "index-\(gen).faiss", metadataName = "metadata-\(gen).jsonl"
        try lock.withReadLock {
            let indexPath = directory + "/" + indexName
            let tmp = "\(indexPath).tmp.\(getpid())"
            defer { unlink(tmp) }  // a no-op after the rename
            try index.write(path: tmp)
            let indexFile = try FileChecksum.of(path: tmp)
            try MemoryFiles.fsyncAndRename(tmp, indexPath)

            let lines = MemoryMetadataLines.encode(entries)
            try FileIO.writeAtomically(directory + "/" + metadataName, lines)

            let w = JSONWriter()
            w.object {
                w.field("format", SemanticMemory.formatName)
                w.field("version", SemanticMemory.formatVersion)
                w.field("dim", config.dim)
                w.field("description", config.description)
                w.field("metric", config.metric.rawValue)
                w.field("nprobe", config.nprobe)
                w.field("phase", lazy ? "exact" : "ready")
                w.field("count", entries.count)
                w.field("next_id", String(nextId))
                w.field("tombstones", tombstones.sorted().map { String($0) })
                w.field("faiss_version", String(cString: hmstfs_version()))
                if let e = embedderName { w.field("embedder", e) }
                if let builtBy { w.field("model", builtBy.json) }
                MemoryFiles.describe(w, "index", file: indexName, indexFile)
                MemoryFiles.describe(w, "metadata", file: metadataName, (lines.count, FileChecksum.of(lines)))
            }
            try FileIO.writeAtomically(directory + "/" + SemanticMemory.manifestName, text: w.output + "\n")
        }
        MemoryFiles.removeStale(directory, keep: [indexName, metadataName], manifest: SemanticMemory.manifestName) { name in
            (name.hasPrefix("index-") && name.contains(".faiss")) || (name.hasPrefix("metadata-") && name.contains(".jsonl"))
        }
    }

    /// Reads a directory written by save(directory:). Throws NOT_FOUND for a missing directory,
    /// manifest or data file; BAD_FORMAT for a corrupt or inconsistent one (checksum, sizes,
    /// counts, dimension, FAISS parse errors); UNSUPPORTED for a newer format version.
    public static func load(directory: String) throws -> SemanticMemory {
        let (m, manifestPath) = try MemoryFiles.readManifest(directory: directory, name: manifestName, format: formatName,
                                                             version: formatVersion, kind: "a semantic memory")
        func bad(_ why: String) -> HMSTError { HMSTError.badFormat("\(manifestPath): \(why)") }
        guard let dim = m["dim"]?.int, let description = m["description"]?.string,
              let metricName = m["metric"]?.string, let nprobe = m["nprobe"]?.int,
              let phase = m["phase"]?.string, let count = m["count"]?.int, count >= 0,
              let nextIdText = m["next_id"]?.string, let nextId = Int64(nextIdText), nextId >= 0,
              let tombstoneList = m["tombstones"]?.array else {
            throw bad("missing or mistyped dim, description, metric, nprobe, phase, count, next_id or tombstones")
        }
        guard let metric = SemanticMetric(rawValue: metricName) else { throw bad("unknown metric \"\(metricName)\"") }
        guard phase == "exact" || phase == "ready" else { throw bad("unknown phase \"\(phase)\"") }
        var tombstones = Set<Int64>()
        for t in tombstoneList {
            guard let s = t.string, let id = Int64(s), id >= 0 else { throw bad("tombstones must be decimal id strings") }
            tombstones.insert(id)
        }
        let config = SemanticMemoryConfig(dim: dim, description: description, metric: metric, nprobe: nprobe)
        do { try config.validate() } catch let e as HMSTError { throw bad(e.message) }

        let indexPath = try MemoryFiles.checkedFile(m["index"], directory: directory, manifest: manifestPath)
        let metadataPath = try MemoryFiles.checkedFile(m["metadata"], directory: directory, manifest: manifestPath)
        let index = try FaissIndex.read(path: indexPath)
        guard index.dim == dim else { throw HMSTError.badFormat("\(indexPath): dimension \(index.dim), manifest says \(dim)") }
        let info = try index.info()
        guard index.isTrained, phase == "ready" || info.isFlat else {
            throw HMSTError.badFormat("\(indexPath): an untrained or non-exact index for phase \"\(phase)\"")
        }
        guard index.count == count + tombstones.count else {
            throw HMSTError.badFormat("\(indexPath): \(index.count) vectors, manifest says \(count) entries + \(tombstones.count) tombstones")
        }
        let entries = try MemoryMetadataLines.decode(try FileIO.readAll(metadataPath, regularOnly: true), source: metadataPath)
        guard entries.count == count else {
            throw HMSTError.badFormat("\(metadataPath): \(entries.count) entries, manifest says \(count)")
        }
        if let top = entries.keys.max(), top >= nextId, top != .max { throw bad("next_id \(nextId) is not above id \(top)") }
        if let clash = tombstones.first(where: { entries[$0] != nil }) { throw bad("id \(clash) is both live and a tombstone") }
        let memory: SemanticMemory
        do {
            memory = try SemanticMemory(config: config, index: index, lazy: phase == "exact", entries: entries,
                                        tombstones: tombstones, nextId: nextId)
        } catch let e as HMSTError where e.status == .invalidArgument {
            throw bad(e.message)   // the description FAISS cannot build
        }
        if let e = m["embedder"] {
            guard let name = e.string, !name.isEmpty else { throw bad("\"embedder\" must be a non-empty string") }
            memory.embedderName = name
        }
        do { memory.builtBy = try ModelSignature.read(manifestField: m["model"]) } catch let e as HMSTError { throw bad(e.message) }
        return memory
    }
}

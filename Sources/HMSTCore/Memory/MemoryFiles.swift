// MemoryFiles: how a memory directory is committed. Data files carry a fresh generation in
// their names and are written temp + fsync + rename; the manifest (written last, the same way)
// names them with their sizes and checksums, so its rename is the single commit point: a kill
// at any moment leaves the old manifest with the old files or the new one with the new files.
// After a commit, files of older generations are deleted. Used by the semantic and episodic
// memories.

enum MemoryFiles {
    /// The path of a data file the manifest names, after checking its size and checksum.
    static func checkedFile(_ entry: JSONValue?, directory: String, manifest: String) throws -> String {
        guard let entry, let name = entry["file"]?.string, let bytes = entry["bytes"]?.int,
              let sumText = entry["checksum"]?.string, let sum = UInt64(sumText, radix: 16) else {
            throw HMSTError.badFormat("\(manifest): a data file entry lacks file, bytes or checksum")
        }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw HMSTError.badFormat("\(manifest): data file name \"\(name)\" is not a plain file name")
        }
        let path = directory + "/" + name
        guard FileIO.exists(path) else { throw HMSTError.notFound("\(path): missing (named by \(manifest))") }
        let actual = try FileChecksum.of(path: path)
        guard actual.bytes == bytes else {
            throw HMSTError.badFormat("\(path): \(actual.bytes) bytes, manifest says \(bytes) (truncated or replaced)")
        }
        guard actual.checksum == sum else { throw HMSTError.badFormat("\(path): checksum mismatch (corrupt file)") }
        return path
    }

    private static let generationCounter = Locked<UInt64>(0)

    /// Unique per save: wall-clock nanoseconds, pid and a process-wide counter.
    static func newGeneration() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let ns = UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
        let n = generationCounter.withLock { c -> UInt64 in c += 1; return c }
        return "\(String(ns, radix: 16))-\(getpid())-\(n)"
    }

    /// fsync a file FAISS wrote, rename it into place and fsync the directory.
    static func fsyncAndRename(_ tmp: String, _ path: String) throws {
        let fd = open(tmp, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HMSTError.io("cannot open \(tmp): \(FileIO.errnoMessage())") }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced else { throw HMSTError.io("fsync of \(tmp) failed: \(FileIO.errnoMessage())") }
        guard rename(tmp, path) == 0 else { throw HMSTError.io("cannot rename \(tmp) to \(path): \(FileIO.errnoMessage())") }
        FileIO.syncDirectory(of: path)
    }

    /// Best effort, after a commit: data files `ours` claims that the manifest no longer names
    /// (keep), and temp files of saves that died. Other files in the directory are left alone.
    static func removeStale(_ directory: String, keep: Set<String>, manifest: String, ours: (String) -> Bool) {
        for name in FileIO.listDirectory(directory) where !keep.contains(name) {
            if ours(name) || name.hasPrefix(manifest + ".tmp.") { unlink(directory + "/" + name) }
        }
    }

    /// Writes bytes atomically to directory/name; returns the manifest entry describing them.
    static func writeData(_ directory: String, _ name: String, _ bytes: [UInt8]) throws -> (bytes: Int, checksum: UInt64) {
        try FileIO.writeAtomically(directory + "/" + name, bytes)
        return (bytes.count, FileChecksum.of(bytes))
    }

    /// The manifest entry of a data file: {"file", "bytes", "checksum"}.
    static func describe(_ w: JSONWriter, _ key: String, file: String, _ info: (bytes: Int, checksum: UInt64)) {
        w.field(key, object: {
            w.field("file", file)
            w.field("bytes", info.bytes)
            w.field("checksum", FileChecksum.hex(info.checksum))
        })
    }

    /// Reads and checks a memory directory's manifest: NOT_FOUND for a missing directory or
    /// manifest, BAD_FORMAT for malformed JSON or another format, UNSUPPORTED for a newer
    /// version. Returns the manifest and its path (for error messages).
    static func readManifest(directory: String, name: String, format: String, version maxVersion: Int, kind: String) throws -> (JSONValue, String) {
        guard FileIO.isDirectory(directory) else { throw HMSTError.notFound("\(directory): no such memory directory") }
        let path = directory + "/" + name
        guard FileIO.exists(path) else { throw HMSTError.notFound("\(directory) is not \(kind): no \(name)") }
        let m = try JSONValue.parse(file: path, regularOnly: true)
        guard m["format"]?.string == format else { throw HMSTError.badFormat("\(path): \"format\" is not \"\(format)\"") }
        guard let version = m["version"]?.int, version >= 1 else { throw HMSTError.badFormat("\(path): \"version\" must be an integer >= 1") }
        guard version <= maxVersion else {
            throw HMSTError.unsupported("\(path): format version \(version) is newer than this hmst reads (\(maxVersion))")
        }
        return (m, path)
    }
}

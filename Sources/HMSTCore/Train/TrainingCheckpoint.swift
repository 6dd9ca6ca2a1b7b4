// TrainingCheckpoint: the single commit point of a training checkpoint directory (final/,
// best_model/, checkpoint-epoch-N/ of Trainer and MemoryTrainer). The parts (config.json,
// model.safetensors, tokenizer.json, optimizer.safetensors, the trainer state) are written
// into a fresh hidden sibling directory; checkpoint.json, naming every part with its size and
// checksum and the step, is written last into it; then the directory is swapped into place
// with one renameat2(RENAME_EXCHANGE) and the old one is removed. A kill at any moment leaves
// either the old directory or the new one, never a mix; resume refuses a directory whose
// manifest is missing or whose parts do not match it. The parts themselves are written by
// the trainers; the manifest scheme follows Memory/MemoryFiles.swift.
import CHMST

public enum TrainingCheckpoint {
    public static let manifestName = "checkpoint.json"
    static let format = "hmst-training-checkpoint"

    /// Files a directory may hold and still be replaced by a save (what saves write, and
    /// temp files of writes that died): a save never deletes a host's unrelated files.
    static func isCheckpointFile(_ name: String) -> Bool {
        let known: Set<String> = [manifestName, "config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors",
                                  Trainer.stateFile, MemoryTrainer.stateFile,
                                  CopyHead.weightsName, CopyHead.configName, MemoryTrainer.copyOptimizerName,
                                  EpisodicSoftTokens.weightsName, EpisodicSoftTokens.configName, MemoryTrainer.episodicOptimizerName]
        return known.contains(name) || known.contains { name.hasPrefix($0 + ".tmp.") }
    }

    /// Writes `directory` as a whole: write(staging) fills a new directory, the manifest is
    /// added, and the result replaces `directory` (created if absent) in one rename. Throws,
    /// leaving `directory` as it was, on any failure.
    public static func commit(_ directory: String, step: Int, write: (String) throws -> Void) throws {
        let (parent, base) = split(directory)
        try FileIO.makeDirectories(parent)
        if FileIO.exists(directory) {
            guard FileIO.isDirectory(directory) else { throw HMSTError.invalidArgument("\(directory) exists and is not a directory") }
            let foreign = FileIO.listDirectory(directory).filter { !isCheckpointFile($0) }
            guard foreign.isEmpty else {
                throw HMSTError.invalidArgument("\(directory) holds files a checkpoint does not write (\(foreign.prefix(3).joined(separator: ", "))); "
                                                + "refusing to replace it: save to a new or empty directory")
            }
        }
        removeStale(parent: parent, base: base)
        let generation = MemoryFiles.newGeneration()
        let staging = "\(parent)/.\(base).partial-\(generation)"
        guard mkdir(staging, 0o755) == 0 else { throw HMSTError.io("cannot create \(staging): \(FileIO.errnoMessage())") }
        var swapped = false
        defer { if !swapped { removeFlat(staging) } }
        try write(staging)
        // test hook: a pause with every part written and no manifest yet (the kill -9 tests aim here)
        if let p = getenv("HMST_TEST_CHECKPOINT_PAUSE_MS"), let ms = UInt32(String(cString: p)) { usleep(ms * 1000) }
        var files: [JSONValue] = []
        for name in FileIO.listDirectory(staging).sorted() {
            let info = try FileChecksum.of(path: staging + "/" + name)
            files.append(.object([("file", .string(name)), ("bytes", .number(Double(info.bytes))),
                                  ("checksum", .string(FileChecksum.hex(info.checksum)))]))
        }
        let w = JSONWriter()
        w.object {
            w.field("format", format); w.field("version", 1); w.field("step", step)
            w.field("files", JSONValue.array(files))
        }
        try FileIO.writeAtomically(staging + "/" + manifestName, text: w.output + "\n")
        FileIO.syncDirectory(of: staging + "/" + manifestName)
        if !FileIO.exists(directory) {
            guard rename(staging, directory) == 0 else { throw HMSTError.io("cannot rename \(staging) to \(directory): \(FileIO.errnoMessage())") }
            swapped = true
        } else if chmst_rename_exchange(staging, directory) == 0 {
            swapped = true
            removeFlat(staging)  // now the old checkpoint
        } else {
            // a file system without RENAME_EXCHANGE: two renames, with a moment where only
            // the old copy (.<base>.old-<generation>) exists
            let old = "\(parent)/.\(base).old-\(generation)"
            guard rename(directory, old) == 0 else { throw HMSTError.io("cannot move \(directory) aside: \(FileIO.errnoMessage())") }
            guard rename(staging, directory) == 0 else {
                let m = FileIO.errnoMessage()
                _ = rename(old, directory)
                throw HMSTError.io("cannot rename \(staging) to \(directory): \(m)")
            }
            swapped = true
            removeFlat(old)
        }
        FileIO.syncDirectory(of: directory)
    }

    /// Checks that `directory` is one committed checkpoint holding `required`: its manifest
    /// exists, names every file present, and each file has the size and checksum it was
    /// committed with. Returns the committed step. Messages name the directory and the part.
    @discardableResult
    public static func verify(_ directory: String, required: [String]) throws -> Int {
        guard FileIO.isDirectory(directory) else { throw HMSTError.notFound("\(directory): no such checkpoint directory") }
        let path = directory + "/" + manifestName
        guard FileIO.exists(path) else {
            throw HMSTError.badFormat("\(directory) has no \(manifestName), so nothing proves its parts were written together "
                                      + "(a save that did not finish, or a directory assembled by hand); resume from a checkpoint "
                                      + "written as a whole by hmst train / train-memory")
        }
        let m = try JSONValue.parse(file: path)
        guard m["format"]?.string == format, let step = m["step"]?.int, let files = m["files"]?.array else {
            throw HMSTError.badFormat("\(path) is not an hmst training checkpoint manifest")
        }
        var named = Set<String>()
        for entry in files {
            do {
                _ = try MemoryFiles.checkedFile(entry, directory: directory, manifest: path)
            } catch let e as HMSTError {
                throw HMSTError(e.status, "\(directory): its parts do not belong together (\(e.message)); refusing to resume from a mix of saves")
            }
            if let n = entry["file"]?.string { named.insert(n) }
        }
        for name in required where !named.contains(name) {
            throw HMSTError.badFormat("\(directory): \(manifestName) does not name \(name); the checkpoint lacks a part resume needs")
        }
        for name in FileIO.listDirectory(directory) where name != manifestName && !named.contains(name) && isCheckpointFile(name) && !name.contains(".tmp.") {
            throw HMSTError.badFormat("\(directory): \(name) is not part of the committed checkpoint (step \(step)); "
                                      + "refusing to resume from a mix of saves")
        }
        return step
    }

    static func split(_ path: String) -> (parent: String, base: String) {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        guard let slash = p.lastIndex(of: "/") else { return (".", p) }
        let parent = slash == p.startIndex ? "/" : String(p[..<slash])
        return (parent, String(p[p.index(after: slash)...]))
    }

    /// Removes a flat directory we created (its files, then itself); best effort.
    static func removeFlat(_ directory: String) {
        for name in FileIO.listDirectory(directory) { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    /// Staging and old copies of `base` left by saves that were killed.
    static func removeStale(parent: String, base: String) {
        for name in FileIO.listDirectory(parent) where name.hasPrefix(".\(base).partial-") || name.hasPrefix(".\(base).old-") {
            removeFlat(parent + "/" + name)
        }
    }
}

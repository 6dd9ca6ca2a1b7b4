// CheckpointParts: the optional parts a checkpoint directory holds beside config.json,
// model.safetensors and tokenizer.json (retriever, exit head, copy head, episodic soft tokens,
// chat template, critic/, controller/), for front ends that write a whole checkpoint from another one or
// from nothing (`hmst quantize`, `hmst init`): such a write must not leave another model's
// parts behind, and a converted checkpoint keeps the parts of the one it came from.
import Glibc

public enum CheckpointParts {
    /// Files a part is stored in, directly in the checkpoint directory.
    static let files = [RetrieverProjection.weightsName, RetrieverProjection.configName, ExitHead.weightsName, ExitHead.configName,
                        CopyHead.weightsName, CopyHead.configName, EpisodicSoftTokens.weightsName, EpisodicSoftTokens.configName,
                        ChatTemplate.patternFileName, ChatTemplate.jinjaFileName, "tokenizer_config.json"]
    /// Parts stored in a directory of their own.
    static let directories = [Critic.directoryName, MetaController.directoryName]

    /// Whether `directory` already holds a checkpoint (its config.json or model.safetensors).
    public static func holdsCheckpoint(_ directory: String) -> Bool {
        FileIO.exists(directory + "/config.json") || FileIO.exists(directory + "/model.safetensors")
    }

    /// What a checkpoint written over another must not keep of it beside its parts: a sharded
    /// model's index (shards are matched by name), a training state, and the tokenizer when the
    /// new model has none (save writes config.json, model.safetensors and a tokenizer it has).
    static let staleFiles = ["model.safetensors.index.json", TrainingCheckpoint.manifestName, Trainer.stateFile, MemoryTrainer.stateFile,
                             "optimizer.safetensors", MemoryTrainer.copyOptimizerName, MemoryTrainer.episodicOptimizerName]

    static func isShard(_ name: String) -> Bool { name.hasPrefix("model-") && name.contains("-of-") && name.hasSuffix(".safetensors") }

    /// INVALID_ARGUMENT when `directory` already holds a checkpoint and `replace` is not set;
    /// call it before any work, then write with `replacing`.
    public static func refuseExisting(_ directory: String, replace: Bool, flag: String = "--force") throws {
        guard holdsCheckpoint(directory), !replace else { return }
        throw HMSTError.invalidArgument("\(directory) already holds a checkpoint; write elsewhere, or pass \(flag) to replace it")
    }

    /// Removes what a new checkpoint written into `directory` must not keep of the one there:
    /// its parts, a sharded model's index and shards, its training state, and its tokenizer
    /// when `keepTokenizer` is false (the new model has none). Other files are left alone.
    static func clear(_ directory: String, keepTokenizer: Bool) throws {
        guard holdsCheckpoint(directory) else { return }
        let names = files + staleFiles + (keepTokenizer ? [] : ["tokenizer.json"]) + FileIO.listDirectory(directory).filter(isShard)
        for name in names where FileIO.exists(directory + "/" + name) {
            guard unlink(directory + "/" + name) == 0 else { throw HMSTError.io("cannot remove \(directory)/\(name): \(FileIO.errnoMessage())") }
        }
        for name in directories { try FileIO.removeTree(directory + "/" + name) }
    }

    /// Writes a checkpoint into `directory` with `write(path)`, replacing one already there
    /// (after `refuseExisting`) only once the new one is whole: `write` then fills a staging
    /// directory inside `directory` (.hmst-replacing-PID), and only on its success is the old
    /// checkpoint's config.json removed, its parts cleared (`clear`) and the new files renamed
    /// into place, config.json last: a process killed in between leaves a directory that fails
    /// to load ("no config.json") rather than new weights under the old config. A failed write
    /// removes the staging directory and leaves the old checkpoint as it was. Needs room for
    /// both while it writes. A staging directory left by a killed run is removed; one of a
    /// running process is an error. A directory without a checkpoint is written directly.
    public static func replacing(_ directory: String, keepTokenizer: Bool, _ write: (String) throws -> Void) throws {
        guard holdsCheckpoint(directory) else { return try write(directory) }
        for name in FileIO.listDirectory(directory) where name.hasPrefix(stagingPrefix) {
            if let pid = Int32(name.dropFirst(stagingPrefix.count)), pid != getpid(), kill(pid, 0) == 0 || errno == EPERM {
                throw HMSTError.invalidArgument("\(directory) is being replaced by process \(pid) (\(directory)/\(name)); wait for it, or remove that directory if no such process is writing")
            }
            Log.warn("removing \(directory)/\(name), left by an earlier replacement that did not finish")
            try FileIO.removeTree(directory + "/" + name)
        }
        let staging = directory + "/" + stagingPrefix + "\(getpid())"
        do {
            try FileIO.makeDirectories(staging)
            try write(staging)
        } catch {
            try? FileIO.removeTree(staging)
            throw error
        }
        func failed(_ what: String, _ reason: String = FileIO.errnoMessage()) -> HMSTError {
            HMSTError.io("\(what): \(reason); the new checkpoint's files are in \(staging), and \(directory) is incomplete: "
                         + "move them into it, or write the checkpoint again")
        }
        if FileIO.exists(directory + "/config.json"), unlink(directory + "/config.json") != 0 { throw failed("cannot remove \(directory)/config.json") }
        do { try clear(directory, keepTokenizer: keepTokenizer) } catch { throw failed("clearing the old checkpoint's parts failed", "\(error)") }
        let names = FileIO.listDirectory(staging).sorted { a, b in (a == "config.json" ? 1 : 0, a) < (b == "config.json" ? 1 : 0, b) }
        for name in names {
            // rename replaces a file (or a link, not what it leads to); part directories were cleared
            guard rename(staging + "/" + name, directory + "/" + name) == 0 else { throw failed("cannot move \(staging)/\(name) into \(directory)") }
        }
        FileIO.syncDirectory(of: directory + "/config.json")
        try FileIO.removeTree(staging)
    }

    static let stagingPrefix = ".hmst-replacing-"

    /// INVALID_ARGUMENT when a file the write would replace in `output` resolves into the input
    /// checkpoint `input` (a link to its weights, a shard, a part): the write would go through it.
    public static func refuseWritingInto(_ input: String, from output: String) throws {
        guard let inRoot = FileIO.resolvedPath(input) else { return }
        for name in ["config.json", "model.safetensors", "tokenizer.json"] + files + directories {
            guard let r = FileIO.resolvedPath(output + "/" + name) else { continue }
            if FileIO.isSameOrBelow(r, inRoot) {
                throw HMSTError.invalidArgument("the output \(output)/\(name) is \(r), inside the input \(input): write the checkpoint elsewhere")
            }
        }
    }

    /// Copies the parts `source` has and `destination` lacks (those its save did not write),
    /// each file atomically. Returns the names copied.
    @discardableResult
    public static func copy(from source: String, to destination: String, skipping: Set<String> = []) throws -> [String] {
        var copied: [String] = []
        for name in files where !skipping.contains(name) && FileIO.isRegularFile(source + "/" + name) && !FileIO.exists(destination + "/" + name) {
            try FileIO.writeAtomically(destination + "/" + name, try FileIO.readAll(source + "/" + name, regularOnly: true))
            copied.append(name)
        }
        for name in directories where !skipping.contains(name) && FileIO.isDirectory(source + "/" + name) && !FileIO.exists(destination + "/" + name) {
            try copyTree(source + "/" + name, destination + "/" + name)
            copied.append(name + "/")
        }
        return copied
    }

    private static func copyTree(_ from: String, _ to: String) throws {
        try FileIO.makeDirectories(to)
        for name in FileIO.listDirectory(from).sorted() {
            if FileIO.isDirectory(from + "/" + name) {
                try copyTree(from + "/" + name, to + "/" + name)
            } else if FileIO.isRegularFile(from + "/" + name) {
                try FileIO.writeAtomically(to + "/" + name, try FileIO.readAll(from + "/" + name, regularOnly: true))
            }
        }
    }
}

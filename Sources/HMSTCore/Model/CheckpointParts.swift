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
                        "chat_template.json"]   // the server's chat template (hmst-server's ChatTemplate.fileName)
    /// Parts stored in a directory of their own.
    static let directories = [Critic.directoryName, MetaController.directoryName]

    /// Whether `directory` already holds a checkpoint (its config.json or model.safetensors).
    public static func holdsCheckpoint(_ directory: String) -> Bool {
        FileIO.exists(directory + "/config.json") || FileIO.exists(directory + "/model.safetensors")
    }

    /// Prepares `directory` for a new checkpoint. One already there is INVALID_ARGUMENT unless
    /// `replace`; with it, the old checkpoint's parts are removed first (its config, weights and
    /// tokenizer are replaced by the write that follows). Other files are left alone.
    public static func prepareOutput(_ directory: String, replace: Bool, flag: String = "--force") throws {
        guard holdsCheckpoint(directory) else { return }
        guard replace else {
            throw HMSTError.invalidArgument("\(directory) already holds a checkpoint; write elsewhere, or pass \(flag) to replace it")
        }
        for name in files where FileIO.exists(directory + "/" + name) {
            guard unlink(directory + "/" + name) == 0 else { throw HMSTError.io("cannot remove \(directory)/\(name): \(FileIO.errnoMessage())") }
        }
        for name in directories { try FileIO.removeTree(directory + "/" + name) }
    }

    /// Copies the parts `source` has and `destination` lacks (those its save did not write),
    /// each file atomically. Returns the names copied.
    @discardableResult
    public static func copy(from source: String, to destination: String) throws -> [String] {
        var copied: [String] = []
        for name in files where FileIO.isRegularFile(source + "/" + name) && !FileIO.exists(destination + "/" + name) {
            try FileIO.writeAtomically(destination + "/" + name, try FileIO.readAll(source + "/" + name, regularOnly: true))
            copied.append(name)
        }
        for name in directories where FileIO.isDirectory(source + "/" + name) && !FileIO.exists(destination + "/" + name) {
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

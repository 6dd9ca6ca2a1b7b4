// HeadFiles: how a trained head is stored beside a checkpoint's weights (the exit head, the copy
// head, the retrieval projection): a JSON description (format, version, sizes, the weights'
// hash) and a safetensors file it names. Reading one checks the same things for every head.

enum HeadFiles {
    /// The description dir/configName as JSON, or nil when the checkpoint has none. BAD_FORMAT
    /// unless its "format" is `format` and it has "version", "hash" and every key of `required`;
    /// UNSUPPORTED when its version is newer than `version`.
    static func description(dir: String, configName: String, format: String, version: Int, required: [String],
                            what: String) throws -> (json: JSONValue, path: String, hash: String)? {
        let path = dir + "/" + configName
        guard FileIO.exists(path) else { return nil }
        let j = try JSONValue.parse(bytes: try FileIO.readAll(path))
        guard j["format"]?.string == format, let v = j["version"]?.int, let hash = j["hash"]?.string,
              required.allSatisfy({ j[$0] != nil }) else {
            throw HMSTError.badFormat("\(path): not \(what) (format, version, \((required + ["hash"]).joined(separator: ", ")))")
        }
        guard v <= version else { throw HMSTError.unsupported("\(path): version \(v) is newer than this hmst reads") }
        return (j, path, hash)
    }

    /// The weights file dir/weightsName named by the description at jsonPath, opened.
    static func weights(dir: String, weightsName: String, describedBy jsonPath: String) throws -> (file: SafeTensorsFile, path: String) {
        let path = dir + "/" + weightsName
        guard FileIO.exists(path) else { throw HMSTError.notFound("\(path): missing (named by \(jsonPath))") }
        return (try SafeTensorsFile(path: path), path)
    }
}

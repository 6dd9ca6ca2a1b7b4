// HeadFiles: how a trained head is stored beside a checkpoint's weights (the exit head, the copy
// head, the episodic soft tokens, the retrieval projection, the meta-controller, the critic): a
// JSON description (format, version, sizes, the weights' hash) and a safetensors file it names.
// Reading one checks the same things for every head; a head that is a ParameterSet also writes and
// reads its tensors here.

enum HeadFiles {
    /// The description dir/configName as JSON, or nil when the checkpoint has none. BAD_FORMAT
    /// unless its "format" is `format` and it has "version", "hash" and every key of `required`;
    /// UNSUPPORTED when its version is newer than `version`.
    static func description(dir: String, configName: String, format: String, version: Int, required: [String],
                            what: String) throws -> (json: JSONValue, path: String, hash: String)? {
        let path = dir + "/" + configName
        guard FileIO.exists(path) else { return nil }
        let j = try JSONValue.parse(file: path)
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

extension HeadFiles {
    /// Writes the weights dir/weightsName, then the description dir/configName naming their hash,
    /// each atomically (a crash between the two is caught at load by the hash). The description's
    /// fields, in order: format, version, what `fields` writes, hash, training (when given).
    static func save(dir: String, weightsName: String, tensors: [RawTensor], configName: String, format: String, version: Int,
                     hash: String, training: JSONValue?, fields: (JSONWriter) -> Void) throws {
        try SafeTensorsWriter.writeRaw(path: dir + "/" + weightsName, tensors: tensors)
        let w = JSONWriter()
        w.object {
            w.field("format", format)
            w.field("version", version)
            fields(w)
            w.field("hash", hash)
            if let training { w.field("training", training) }
        }
        try FileIO.writeAtomically(dir + "/" + configName, text: w.output + "\n")
    }

    /// Fills every tensor of `set` (by name, f32) from the weights file at weightsPath, then checks
    /// the values against the description's hash and that they are finite (BAD_FORMAT otherwise).
    /// `tensors`: how many of the set's tensors the file holds (the first ones; an older format
    /// without the last ones leaves them as they are, outside the hash).
    static func read(_ set: ParameterSet, tensors: Int? = nil, from file: SafeTensorsFile, weightsPath: String, describedBy jsonPath: String,
                     hash: String) throws {
        let n = tensors ?? set.names.count
        for i in 0..<n {
            try file.copy(set.names[i], dtype: .f32, count: set.shapes[i].reduce(1, *), to: set.values.pointer + set.offsets[i])
        }
        let stored = n < set.names.count ? set.offsets[n] : set.count
        let actual = FileChecksum.hex(FileChecksum.of(UnsafeRawBufferPointer(start: set.values.pointer, count: stored * 4)))
        guard actual == hash else { throw HMSTError.badFormat("\(weightsPath) does not match \(jsonPath) (hash \(actual), expected \(hash))") }
        guard UnsafeBufferPointer(start: set.values.pointer, count: set.count).allSatisfy(\.isFinite) else {
            throw HMSTError.badFormat("\(weightsPath): weights are not finite")
        }
    }
}

extension ParameterSet {
    /// Every tensor as f32 views of values (the set owns the bytes), in the set's order.
    var rawTensors: [RawTensor] {
        (0..<names.count).map { i in
            RawTensor(name: names[i], dtype: .f32, shape: shapes[i],
                      bytes: UnsafeRawBufferPointer(start: values.pointer + offsets[i], count: shapes[i].reduce(1, *) * 4), owner: values)
        }
    }

    /// The checksum of all values' bytes, what a head's description stores as "hash".
    var valuesHash: String { FileChecksum.hex(FileChecksum.of(UnsafeRawBufferPointer(start: values.pointer, count: count * 4))) }
}

// TrainerState: what the resume state of every trainer shares (Trainer's trainer_state.json,
// MemoryTrainer's memory_trainer_state.json). The file starts with format, version, step,
// optimizer and optimizer_step, carries ranks and effective_batch (the data stream and the
// schedule depend on the global batch, not on how it is split), and stores RNG words as
// strings (JSON numbers cannot hold 64-bit integers exactly); each trainer adds its own keys.
// Resume checks, in this order: the directory was committed whole (TrainingCheckpoint), its
// model has the shape being trained, the state's format and step match the commit, the
// optimizer is the same kind, and the effective batch is the same.

struct TrainerState {
    let path: String
    let json: JSONValue
    let step: Int
    let optimizerStep: Int
    /// the checkpoint's model, loaded as f32 without its tokenizer
    let model: LanguageModel
    /// its parameters (the same shape as the trainer's)
    let loaded: Parameters

    /// The keys every state file starts with, in order.
    static func writeHeader(_ w: JSONWriter, format: String, step: Int, optimizer: Optimizer) {
        w.field("format", format); w.field("version", 1)
        w.field("step", step); w.field("optimizer", optimizer.kind); w.field("optimizer_step", optimizer.step)
    }

    /// ranks and effective_batch (batch x accumulation x ranks)
    static func writeBatch(_ w: JSONWriter, batchSize: Int, accumulation: Int, dataParallel: DataParallel) {
        w.field("ranks", dataParallel.size)
        w.field("effective_batch", batchSize * accumulation * dataParallel.size)
    }

    /// What a resume must keep of the run that wrote the state (its data, sequence lengths,
    /// curriculum: what the data stream and the restored samplers depend on), under "run".
    static func writeRun(_ w: JSONWriter, _ kept: [DataParallel.Agreed]) {
        w.field("run", .array(kept.map { .object([("name", .string($0.name)), ("bits", .string(String($0.bits, radix: 16))),
                                                  ("shown", .string($0.shown))]) }))
    }

    /// INVALID_ARGUMENT naming the first of `kept` that differs from the run that wrote the
    /// state (states written before session 36 hold none and are not checked).
    func checkRun(_ kept: [DataParallel.Agreed], dir: String) throws {
        guard let saved = json["run"]?.array else { return }
        for v in kept {
            guard let s = saved.first(where: { $0["name"]?.string == v.name }), s["bits"]?.string != String(v.bits, radix: 16) else { continue }
            throw HMSTError.invalidArgument("\(dir) was trained with \(v.name) \(s["shown"]?.string ?? "?"); this run's is \(v.shown): "
                                            + "resume with the run's own data and options, or start a new run")
        }
    }

    static func words(_ r: RNG) -> [String] { [String(r.s.0), String(r.s.1), String(r.s.2), String(r.s.3)] }

    /// Opens dir/stateFile of a committed checkpoint for `params` and `optimizer` and checks what
    /// every trainer's resume needs (above). `missing` explains a directory without the state
    /// file (nil: TrainingCheckpoint's message); `what` names the state in errors ("an hmst
    /// trainer state").
    init(resuming dir: String, stateFile: String, format: String, what: String, missing: String? = nil,
         params: Parameters, optimizer: Optimizer, batchSize: Int, accumulation: Int, dataParallel dp: DataParallel) throws {
        path = dir + "/" + stateFile
        if let missing, !FileIO.exists(path) { throw HMSTError.invalidArgument("\(dir) has no \(stateFile): \(missing)") }
        let committedStep = try TrainingCheckpoint.verify(dir, required: ["model.safetensors", "optimizer.safetensors", stateFile])
        model = try LanguageModel.load(path: dir, options: { var o = ModelLoadOptions(); o.loadTokenizer = false; o.weightType = .f32; return o }())
        loaded = try Parameters(model: model)
        guard loaded.count == params.count, try model.modelConfig().dims == params.config.dims else {
            throw HMSTError.invalidArgument("\(dir) holds a model of another shape than the one being trained")
        }
        json = try JSONValue.parse(file: path)
        guard json["format"]?.string == format, json["step"]?.int != nil, json["optimizer_step"]?.int != nil else {
            throw HMSTError.badFormat("\(path) is not \(what)")
        }
        let (st, ost) = (try TrainerState.counter(json, "step", path), try TrainerState.counter(json, "optimizer_step", path))
        guard st == committedStep else {
            throw HMSTError.badFormat("\(path) is at step \(st) but the checkpoint was committed at step \(committedStep)")
        }
        (step, optimizerStep) = (st, ost)
        let savedKind = json["optimizer"]?.string ?? "adamw"
        guard savedKind == optimizer.kind else {
            throw HMSTError.invalidArgument("\(dir) was trained with \(savedKind); resume it with the same optimizer (not \(optimizer.kind))")
        }
        let effective = batchSize * accumulation * dp.size
        if let savedBatch = json["effective_batch"]?.int, savedBatch != effective {
            let savedRanks = json["ranks"]?.int ?? 1
            func ranks(_ n: Int) -> String { "\(n) rank\(n == 1 ? "" : "s")" }
            throw HMSTError.invalidArgument("\(dir) was trained with an effective batch of \(savedBatch) (\(ranks(savedRanks))); "
                                            + "this run's is \(effective) (batch \(batchSize) x \(accumulation) accumulation x "
                                            + "\(ranks(dp.size))): choose batch, accumulation and ranks with the same product to resume exactly")
        }
    }

    /// The largest count a state may hold (steps, tokens, windows): far beyond any run, and far
    /// enough below Int.max that the next step's additions cannot overflow.
    static let maxCounter = 1 << 50

    /// The non-negative counter under `key` (0 when absent); BAD_FORMAT naming the file and
    /// key for a negative or absurd value (a hand-edited state: a negative step ran with a
    /// negative learning rate, 2^63 - 1 tokens trapped on the next step's sum).
    func counter(_ key: String) throws -> Int { try TrainerState.counter(json, key, path) }

    static func counter(_ json: JSONValue, _ key: String, _ path: String) throws -> Int {
        guard let v = json[key], !v.isNull else { return 0 }
        guard let n = v.int, n >= 0, n <= maxCounter else {
            throw HMSTError.badFormat("\(path): \"\(key)\" must be an integer in 0 ... 2^50, not \(v.serialized)")
        }
        return n
    }

    /// Seconds under `key` (0 when absent): finite and >= 0, else BAD_FORMAT naming the file.
    func seconds(_ key: String) throws -> Double {
        guard let v = json[key], !v.isNull else { return 0 }
        guard let x = v.number, x.isFinite, x >= 0 else {
            throw HMSTError.badFormat("\(path): \"\(key)\" must be a finite number of seconds >= 0, not \(v.serialized)")
        }
        return x
    }

    /// The RNG stored under `key` (BAD_FORMAT naming the key when it is not four words).
    func rng(_ key: String) throws -> RNG {
        let w = (json[key]?.array ?? []).compactMap { $0.string.flatMap { UInt64($0) } }
        guard w.count == 4 else { throw HMSTError.badFormat("\(path): bad \(key)") }
        var r = RNG(seed: 0)
        r.s = (w[0], w[1], w[2], w[3])
        return r
    }
}

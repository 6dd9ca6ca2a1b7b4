// Critic: the seed's CriticModel, small: P(answer correct) from a handful of features of the
// answer (CriticObserver), one of them a logistic probe on the final hidden state, combined by
// a logistic regression on standardised features and mapped through a calibration fitted on a
// validation split (CriticTraining.swift fits all three). Stored in the checkpoint directory:
//   critic/critic.safetensors  head.weight [F], head.bias [1], features.mean [F], features.std [F],
//                              probe.weight [C], probe.bias [1], probe.mean [C], probe.std [C]   (f32)
//   critic/config.json         format, version, feature names, the model's fingerprint (sizes and
//                              a hash of its embedding), sampling settings, calibration, the
//                              weights' hash (written second; load checks the pair) and training.
// A Critic is immutable: assess may run on several threads at once (each makes its own Session).

/// What ties a critic to one model: sizes and a hash of the first embedding values (rounded to
/// bf16, so a bf16 copy of the same weights matches; an int8 copy does not).
public struct CriticModelFingerprint: Sendable, Equatable {
    public var hiddenSize: Int
    public var vocabSize: Int
    public var nLayers: Int
    public var weightsHash: String

    public init(hiddenSize: Int, vocabSize: Int, nLayers: Int, weightsHash: String) {
        self.hiddenSize = hiddenSize
        self.vocabSize = vocabSize
        self.nLayers = nLayers
        self.weightsHash = weightsHash
    }

    public init(model: LanguageModel) {
        let d = model.dims
        let w = model.decoder.weights.embed
        let n = min(w.count, 32768) / 32 * 32
        var bits = [UInt16](repeating: 0, count: n)
        if n > 0 {
            let f = FloatBuffer(count: n)
            SafeTensorsWriter.copyFlat(w, from: 0, count: n, to: f.pointer)
            for i in 0..<n {
                let u = f.pointer[i].bitPattern
                bits[i] = UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)   // round to nearest even bf16
            }
        }
        let h = bits.withUnsafeBytes { FileChecksum.of($0) }
        self.init(hiddenSize: d.C, vocabSize: d.V, nLayers: d.L, weightsHash: FileChecksum.hex(h))
    }

    /// Why a critic made for self cannot serve `other`, or nil when it can.
    public func mismatch(with other: CriticModelFingerprint) -> String? {
        if hiddenSize != other.hiddenSize { return "hidden size \(hiddenSize), the model's is \(other.hiddenSize)" }
        if vocabSize != other.vocabSize { return "vocabulary \(vocabSize), the model's is \(other.vocabSize)" }
        if nLayers != other.nLayers { return "\(nLayers) layers, the model has \(other.nLayers)" }
        if weightsHash != other.weightsHash { return "weights hash \(weightsHash), the model's is \(other.weightsHash) (other weights)" }
        return nil
    }
}

public final class Critic: @unchecked Sendable {
    public static let directoryName = "critic"
    public static let weightsName = "critic.safetensors"
    public static let configName = "config.json"
    static let formatName = "hmst-critic"
    static let formatVersion = 1

    public let featureNames: [String]
    /// head: z = Σ_j w_j · (x_j − mean_j) / std_j + b     [F] each
    public let featureScaling: Standardizer
    public let headWeights: [Float]
    public let headBias: Float
    /// probe: s = Σ_c u_c · (h_c − mean_c) / std_c + b    [C] each
    public let probeScaling: Standardizer
    public let probeWeights: [Float]
    public let probeBias: Float
    public let calibration: CriticCalibration
    public let settings: CriticSettings
    public let fingerprint: CriticModelFingerprint
    /// the training summary (metrics, counts), kept as written into config.json
    public let training: JSONValue
    /// 16 hex digits over every tensor, in file order
    public let hash: String

    public init(featureScaling: Standardizer, headWeights: [Float], headBias: Float, probeScaling: Standardizer,
                probeWeights: [Float], probeBias: Float, calibration: CriticCalibration, settings: CriticSettings,
                fingerprint: CriticModelFingerprint, training: JSONValue = .object([])) throws {
        let F = CriticFeatures.names.count, C = fingerprint.hiddenSize
        func bad(_ m: String) -> HMSTError { HMSTError.invalidArgument("critic: \(m)") }
        guard headWeights.count == F, featureScaling.mean.count == F, featureScaling.std.count == F else {
            throw bad("the head needs \(F) weights, means and stds (one per feature); got \(headWeights.count), \(featureScaling.mean.count), \(featureScaling.std.count)")
        }
        guard C >= 1, probeWeights.count == C, probeScaling.mean.count == C, probeScaling.std.count == C else {
            throw bad("the probe needs \(C) weights, means and stds (the hidden size); got \(probeWeights.count), \(probeScaling.mean.count), \(probeScaling.std.count)")
        }
        let all = headWeights + featureScaling.mean + featureScaling.std + probeWeights + probeScaling.mean + probeScaling.std + [headBias, probeBias]
        guard all.allSatisfy(\.isFinite) else { throw bad("a weight is not finite") }
        guard (featureScaling.std + probeScaling.std).allSatisfy({ $0 > 0 }) else { throw bad("a standard deviation is not positive") }
        switch calibration {
        case let .temperature(t): guard t.isFinite, t > 0 else { throw bad("calibration temperature \(t) must be finite and > 0") }
        case let .platt(a, b): guard a.isFinite, b.isFinite else { throw bad("Platt parameters must be finite") }
        case .none: break
        }
        try settings.validate()
        featureNames = CriticFeatures.names
        self.featureScaling = featureScaling
        self.headWeights = headWeights
        self.headBias = headBias
        self.probeScaling = probeScaling
        self.probeWeights = probeWeights
        self.probeBias = probeBias
        self.calibration = calibration
        self.settings = settings
        self.fingerprint = fingerprint
        self.training = training
        var bytes: [UInt8] = []
        for t in Critic.tensorList(headWeights, headBias, featureScaling, probeWeights, probeBias, probeScaling) {
            t.1.withUnsafeBytes { bytes += $0 }
        }
        hash = FileChecksum.hex(FileChecksum.of(bytes))
    }

    /// The tensors in file order (SafeTensorsWriter sorts by name; so does this list).
    static func tensorList(_ hw: [Float], _ hb: Float, _ fs: Standardizer, _ pw: [Float], _ pb: Float,
                           _ ps: Standardizer) -> [(String, [Float])] {
        [("features.mean", fs.mean), ("features.std", fs.std), ("head.bias", [hb]), ("head.weight", hw),
         ("probe.bias", [pb]), ("probe.mean", ps.mean), ("probe.std", ps.std), ("probe.weight", pw)]
    }

    // ---- scoring

    /// The probe's logit for a pooled hidden state [C].
    public func probeScore(hidden h: [Float]) -> Float {
        var s = Double(probeBias)
        for c in 0..<min(h.count, probeWeights.count) {
            s += Double(probeWeights[c]) * (Double(h[c]) - Double(probeScaling.mean[c])) / Double(probeScaling.std[c])
        }
        return Float(s)
    }

    /// The head's raw logit for a feature vector in CriticFeatures.names order.
    public func logit(features x: [Float]) -> Double {
        var z = Double(headBias)
        for j in 0..<min(x.count, headWeights.count) {
            z += Double(headWeights[j]) * (Double(x[j]) - Double(featureScaling.mean[j])) / Double(featureScaling.std[j])
        }
        return z
    }

    /// The calibrated probability and raw logit of an observation (the probe applied first).
    public func score(_ o: CriticObservation) -> (probability: Float, logit: Float, features: CriticFeatures) {
        var f = o.features
        f.probeScore = probeScore(hidden: o.hidden)
        let z = logit(features: f.vector)
        return (Float(calibration.probability(logit: z)), Float(z), f)
    }

    /// Scores one answer. The model must be the one the critic was trained for (its fingerprint).
    /// seed drives the agreement samples: the same seed gives the same assessment.
    public func assess(model: LanguageModel, evidence: CriticEvidence, seed: UInt64) throws -> CriticAssessment {
        if let why = fingerprint.mismatch(with: CriticModelFingerprint(model: model)) {
            throw HMSTError.invalidArgument("this critic was trained for another model: \(why)")
        }
        let o = try CriticObserver.observe(model: model, evidence: evidence, settings: settings, seed: seed)
        let s = score(o)
        return CriticAssessment(probability: s.probability, logit: s.logit, features: s.features, cost: o.cost)
    }

    // ---- files

    /// Writes critic/critic.safetensors then critic/config.json under the checkpoint directory,
    /// each atomically; the json names the weights' hash, so a crash between the two is caught.
    public func save(checkpoint dir: String) throws {
        guard FileIO.isDirectory(dir) else { throw HMSTError.notFound("\(dir): no such checkpoint directory") }
        let cdir = dir + "/" + Critic.directoryName
        try FileIO.makeDirectories(cdir)
        var tensors: [RawTensor] = []
        for (name, values) in Critic.tensorList(headWeights, headBias, featureScaling, probeWeights, probeBias, probeScaling) {
            let b = FloatBuffer(count: values.count)
            b.pointer.update(from: values, count: values.count)
            tensors.append(RawTensor(name: name, dtype: .f32, shape: [values.count],
                                     bytes: UnsafeRawBufferPointer(start: b.pointer, count: values.count * 4), owner: b))
        }
        try HeadFiles.save(dir: cdir, weightsName: Critic.weightsName, tensors: tensors, configName: Critic.configName,
                           format: Critic.formatName, version: Critic.formatVersion, hash: hash, training: training) { w in
            for (name, value) in descriptionFields() { w.field(name, value) }
        }
    }

    /// The description's own fields, between version and hash.
    func descriptionFields() -> [(String, JSONValue)] {
        var cal: [(String, JSONValue)] = [("kind", .string(calibration.kind))]
        switch calibration {
        case let .temperature(t): cal.append(("temperature", .number(t)))
        case let .platt(a, b): cal += [("a", .number(a)), ("b", .number(b))]
        case .none: break
        }
        return [
            ("feature_names", .array(featureNames.map(JSONValue.string))),
            ("model", .object([("hidden_size", .number(Double(fingerprint.hiddenSize))),
                               ("vocab_size", .number(Double(fingerprint.vocabSize))),
                               ("n_layers", .number(Double(fingerprint.nLayers))),
                               ("weights_hash", .string(fingerprint.weightsHash))])),
            ("settings", .object([("samples", .number(Double(settings.samples))),
                                  ("temperature", .number(Double(settings.temperature))),
                                  ("max_tokens", .number(Double(settings.maxTokens))),
                                  ("stop_strings", .array(settings.stopStrings.map(JSONValue.string)))])),
            ("calibration", .object(cal)),
        ]
    }

    /// Whether a checkpoint directory holds a critic (critic/config.json).
    public static func exists(checkpoint dir: String) -> Bool {
        FileIO.exists(dir + "/" + directoryName + "/" + configName)
    }

    /// The critic stored in a checkpoint directory for `model`, or nil when there is none.
    /// BAD_FORMAT for malformed or mismatched files (naming the file and the field),
    /// UNSUPPORTED for a newer version, INVALID_ARGUMENT when it was trained for another model.
    public static func load(checkpoint dir: String, model: LanguageModel) throws -> Critic? {
        let cdir = dir + "/" + directoryName
        let jsonPath = cdir + "/" + configName
        guard FileIO.exists(jsonPath) else { return nil }
        let j = try JSONValue.parse(file: jsonPath)
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(jsonPath): \(m)") }
        guard j["format"]?.string == formatName else { throw bad("not a critic description (\"format\" must be \"\(formatName)\")") }
        guard let version = j["version"]?.int else { throw bad("missing integer \"version\"") }
        guard version <= formatVersion else { throw HMSTError.unsupported("\(jsonPath): version \(version) is newer than this hmst reads (\(formatVersion))") }
        guard let names = j["feature_names"]?.array?.compactMap(\.string) else { throw bad("missing \"feature_names\"") }
        guard names == CriticFeatures.names else {
            throw bad("feature_names \(names) differ from this hmst's \(CriticFeatures.names): retrain the critic")
        }
        guard let m = j["model"], let C = m["hidden_size"]?.int, let V = m["vocab_size"]?.int, let L = m["n_layers"]?.int,
              let wh = m["weights_hash"]?.string else {
            throw bad("\"model\" must hold hidden_size, vocab_size, n_layers and weights_hash")
        }
        let fp = CriticModelFingerprint(hiddenSize: C, vocabSize: V, nLayers: L, weightsHash: wh)
        if let why = fp.mismatch(with: CriticModelFingerprint(model: model)) {
            throw CriticForAnotherModel(message: "\(cdir) holds a critic trained for another model: \(why); retrain it with hmst train-critic")
        }
        var settings = CriticSettings()
        guard let s = j["settings"], let n = s["samples"]?.int, let t = s["temperature"]?.number, let mt = s["max_tokens"]?.int,
              let stops = s["stop_strings"]?.array?.compactMap(\.string) else {
            throw bad("\"settings\" must hold samples, temperature, max_tokens and stop_strings")
        }
        settings.samples = n
        settings.temperature = Float(t)
        settings.maxTokens = mt
        settings.stopStrings = stops
        do { try settings.validate() } catch let e as HMSTError { throw bad(e.message) }
        guard let c = j["calibration"], let kind = c["kind"]?.string else { throw bad("missing \"calibration\" with its \"kind\"") }
        let calibration: CriticCalibration
        switch kind {
        case "none": calibration = .none
        case "temperature":
            guard let t = c["temperature"]?.number else { throw bad("temperature calibration without \"temperature\"") }
            calibration = .temperature(t)
        case "platt":
            guard let a = c["a"]?.number, let b = c["b"]?.number else { throw bad("Platt calibration without \"a\" and \"b\"") }
            calibration = .platt(a: a, b: b)
        default: throw bad("unknown calibration kind \"\(kind)\" (expected platt, temperature or none)")
        }
        guard let hash = j["hash"]?.string else { throw bad("missing \"hash\" of the weights") }
        let (file, weightsPath) = try HeadFiles.weights(dir: cdir, weightsName: weightsName, describedBy: jsonPath)
        let F = CriticFeatures.names.count
        func read(_ name: String, _ count: Int) throws -> [Float] {
            var v = [Float](repeating: 0, count: count)
            try v.withUnsafeMutableBytes { try file.copy(name, dtype: .f32, count: count, to: $0.baseAddress!) }
            return v
        }
        let critic: Critic
        do {
            critic = try Critic(featureScaling: Standardizer(mean: try read("features.mean", F), std: try read("features.std", F)),
                                headWeights: try read("head.weight", F), headBias: try read("head.bias", 1)[0],
                                probeScaling: Standardizer(mean: try read("probe.mean", C), std: try read("probe.std", C)),
                                probeWeights: try read("probe.weight", C), probeBias: try read("probe.bias", 1)[0],
                                calibration: calibration, settings: settings, fingerprint: fp, training: j["training"] ?? .object([]))
        } catch let e as HMSTError where e.status == .invalidArgument {
            throw HMSTError.badFormat("\(weightsPath): \(e.message)")
        }
        guard critic.hash == hash else {
            throw HMSTError.badFormat("\(weightsPath) does not match \(jsonPath) (hash \(critic.hash), expected \(hash)): retrain the critic")
        }
        return critic
    }
}

/// A stored critic made for other weights (another model, or these weights in int8 or f16, whose
/// hidden states it was not calibrated on): not an error in the checkpoint, so the model loads
/// without it (LanguageModel.criticProblem says why); asking for it by name is an error.
public struct CriticForAnotherModel: Error {
    public let message: String
}

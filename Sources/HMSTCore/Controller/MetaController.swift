// MetaController: the seed's MetaController, the policy that makes the engine's five decisions.
// It reads the state summary (StateSummary: the base model's encoding of the query beside the
// memory and uncertainty signals) through CleanRL's actor MLP, either with five two-way heads
// (one per decision) or one 32-way head over the joint decisions (ControllerTrainingOptions.
// jointActions: the decisions pay off together, memory only at full depth, which independent
// heads learn poorly); the base model is the transformer that encodes, the controller the small
// network on top. Trained by
// PPO (Controller/ControllerTraining.swift, `hmst rl-train`). Stored in the checkpoint:
//   controller/controller.safetensors  "params" [P] f32 (actor then critic, ActorCritic's order);
//                                      version 3 with observation scaling: "obs_mean" and
//                                      "obs_scale" [features] f32 (ObservationScaling)
//   controller/config.json             format, version, features, heads, action_heads ([2, 2, 2,
//                                      2, 2] or [32]; version 1: the former), hidden sizes, the
//                                      model's hidden size / layers / vocabulary, the exit layer,
//                                      the projection seed, the weights' hash, training summary
// LanguageModel.load leaves it alone; Engine users load it with MetaController.load.

import Foundation

public final class MetaController: EngineController, @unchecked Sendable {
    public static let directoryName = "controller"
    static let weightsName = "controller.safetensors"
    static let configName = "config.json"
    static let formatName = "hmst-controller"
    static let formatVersion = 3
    static let factorizedHeads = [2, 2, 2, 2, 2]
    static let jointHeads = [EngineDecisions.count]

    public let network: ActorCritic
    public let hidden: [Int]
    /// the model it was trained for: hidden size, layers, vocabulary
    public let modelShape: [Int]
    public let exitLayer: Int
    public let projectionSeed: UInt64
    /// the input standardisation PPO trained with (nil: raw state summaries; version 2 files)
    public let scaling: ObservationScaling?
    /// free-form record of the training run (JSON object), saved with the weights
    public var trainingSummary: JSONValue = .object([])
    private let decideLock = NSLock()

    public init(network: ActorCritic, hidden: [Int], model: LanguageModel, exitLayer: Int, projectionSeed: UInt64,
                scaling: ObservationScaling? = nil) throws {
        guard network.observationSize == StateSummary.size,
              [MetaController.factorizedHeads, MetaController.jointHeads].contains(network.actionHeads) else {
            throw HMSTError.invalidArgument("controller: the network must read \(StateSummary.size) features into five two-way heads or one \(EngineDecisions.count)-way head")
        }
        if let scaling, scaling.mean.count != StateSummary.size {
            throw HMSTError.invalidArgument("controller: observation scaling of \(scaling.mean.count) features for a state summary of \(StateSummary.size)")
        }
        self.scaling = scaling
        self.network = network
        self.hidden = hidden
        modelShape = MetaController.shape(of: model)
        self.exitLayer = exitLayer
        self.projectionSeed = projectionSeed
    }

    static func shape(of model: LanguageModel) -> [Int] { [model.dims.C, model.dims.L, model.dims.V] }

    /// One head over the 32 joint decisions (else five two-way heads).
    public var joint: Bool { network.actionHeads == MetaController.jointHeads }

    /// The greedy decision index for a network's logits row: the likeliest of the 32 with a
    /// joint head, else each two-way head's likelier choice.
    static func greedyIndex(_ logits: UnsafePointer<Float>, joint: Bool) -> Int {
        if joint { return (0..<EngineDecisions.count).max { logits[$0] < logits[$1] } ?? 0 }
        return EngineDecisions(bits: (0..<5).map { logits[2 * $0 + 1] > logits[2 * $0] }).index
    }

    /// Greedy decisions (each head's likelier choice, or the likeliest joint decision) and each
    /// decision's probability of yes (with a joint head, summed over the joint decisions).
    /// Thread-safe: the network's forward writes its own activation buffers, so concurrent
    /// engines sharing the checkpoint's controller take turns here (a few small GEMVs).
    public func decide(_ observation: [Float]) throws -> (EngineDecisions, DecisionProbabilities) {
        guard observation.count == network.observationSize else {
            throw HMSTError.invalidArgument("controller: observation has \(observation.count) values, the controller reads \(network.observationSize)")
        }
        decideLock.lock()
        defer { decideLock.unlock() }
        let input = scaling?.apply(observation) ?? observation
        let (logits, _) = input.withUnsafeBufferPointer { network.forward($0.baseAddress!, B: 1) }
        var yes = [Float](repeating: 0, count: 5)
        if joint {
            let n = EngineDecisions.count
            let lse = logSumExp(logits, n)
            for a in 0..<n {
                let p = expf(logits[a] - lse)
                for (h, on) in EngineDecisions(index: a).bits.enumerated() where on { yes[h] += p }
            }
            return (EngineDecisions(index: MetaController.greedyIndex(logits, joint: true)), DecisionProbabilities(yes: yes))
        }
        for h in 0..<5 {
            let a = logits[2 * h], b = logits[2 * h + 1]
            yes[h] = 1 / (1 + expf(a - b))
        }
        return (EngineDecisions(bits: yes.map { $0 > 0.5 }), DecisionProbabilities(yes: yes))
    }

    // MARK: files

    /// of the parameters, then the scaling's mean and scale when there is one
    private var hash: String {
        let p = UnsafeBufferPointer(start: network.params.p, count: network.parameterCount)
        var bytes = Array(UnsafeRawBufferPointer(p))
        if let scaling {
            for v in [scaling.mean, scaling.scale] { v.withUnsafeBytes { bytes += $0 } }
        }
        return FileChecksum.hex(FileChecksum.of(bytes))
    }

    /// Writes controller/controller.safetensors, then controller/config.json (naming the
    /// weights' hash, so a crash between the two is caught at load), each atomically.
    public func save(checkpoint dir: String) throws {
        let d = dir + "/" + MetaController.directoryName
        try FileIO.makeDirectories(d)
        let P = network.parameterCount
        let buf = FloatBuffer(count: P)
        buf.pointer.update(from: network.params.p, count: P)
        var tensors = [RawTensor(name: "params", dtype: .f32, shape: [P], bytes: UnsafeRawBufferPointer(start: buf.pointer, count: P * 4), owner: buf)]
        if let scaling {
            let n = scaling.mean.count
            for (name, v) in [("obs_mean", scaling.mean), ("obs_scale", scaling.scale)] {
                let b = FloatBuffer(count: n)
                v.withUnsafeBufferPointer { b.pointer.update(from: $0.baseAddress!, count: n) }
                tensors.append(RawTensor(name: name, dtype: .f32, shape: [n], bytes: UnsafeRawBufferPointer(start: b.pointer, count: n * 4), owner: b))
            }
        }
        try HeadFiles.save(dir: d, weightsName: MetaController.weightsName, tensors: tensors, configName: MetaController.configName,
                           format: MetaController.formatName, version: MetaController.formatVersion, hash: hash,
                           training: trainingSummary) { w in
            w.field("features", StateSummary.featureNames)
            w.field("heads", EngineDecisions.names)
            w.field("action_heads", .array(network.actionHeads.map { .number(Double($0)) }))
            w.field("hidden", .array(hidden.map { .number(Double($0)) }))
            w.field("model_hidden_size", modelShape[0])
            w.field("model_layers", modelShape[1])
            w.field("model_vocab_size", modelShape[2])
            w.field("exit_layer", exitLayer)
            w.field("projection_seed", String(projectionSeed))
            w.field("parameters", P)
            w.field("observation_scaling", scaling != nil)
        }
    }

    /// The controller stored in a checkpoint directory for this model, or nil when it has none.
    /// BAD_FORMAT for malformed or mismatched files, INVALID_ARGUMENT for a controller trained
    /// for another model; StaleController for a sound one that reads other state-summary
    /// features than this hmst computes (an older hmst's): the checkpoint still loads, without it.
    public static func load(checkpoint dir: String, model: LanguageModel) throws -> MetaController? {
        let d = dir + "/" + directoryName
        let required = ["features", "hidden", "model_hidden_size", "model_layers", "model_vocab_size", "exit_layer", "projection_seed", "parameters"]
        guard let (j, jsonPath, hash) = try HeadFiles.description(dir: d, configName: configName, format: formatName, version: formatVersion,
                                                                  required: required, what: "a controller description") else { return nil }
        guard let version = j["version"]?.int, let features = j["features"]?.array?.compactMap({ $0.string }), let hiddenJ = j["hidden"]?.array,
              let C = j["model_hidden_size"]?.int, let L = j["model_layers"]?.int, let V = j["model_vocab_size"]?.int,
              let exit = j["exit_layer"]?.int, let seedS = j["projection_seed"]?.string, let seed = UInt64(seedS),
              let P = j["parameters"]?.int else {
            throw HMSTError.badFormat("\(jsonPath): features and hidden must be arrays, projection_seed a decimal string, the sizes integers")
        }
        let shape = shape(of: model)
        guard [C, L, V] == shape else {
            throw HMSTError.invalidArgument("\(jsonPath): the controller was trained for a model of hidden size \(C), \(L) layers, vocabulary \(V); this model has \(shape[0]), \(shape[1]), \(shape[2])")
        }
        guard exit >= 1, exit <= L else { throw HMSTError.badFormat("\(jsonPath): exit layer \(exit) is outside 1...\(L)") }
        // after the checks above: a controller of another model is an error, a stale one is not
        guard features == StateSummary.featureNames else {
            throw StaleController(message: "\(jsonPath): its features (\(features.count)) are not the ones this hmst computes (\(StateSummary.size)); retrain the controller (hmst rl-train)")
        }
        let hidden = hiddenJ.compactMap { $0.int }
        guard hidden.count == hiddenJ.count, !hidden.isEmpty, hidden.allSatisfy({ $0 >= 1 && $0 <= 4096 }) else {
            throw HMSTError.badFormat("\(jsonPath): hidden sizes must be 1...4096")
        }
        let heads = version >= 2 ? (j["action_heads"]?.array?.compactMap { $0.int } ?? []) : factorizedHeads
        guard [factorizedHeads, jointHeads].contains(heads) else {
            throw HMSTError.badFormat("\(jsonPath): action_heads must be [2, 2, 2, 2, 2] or [\(EngineDecisions.count)]")
        }
        let net = try ActorCritic(observationSize: StateSummary.size, actionHeads: heads, hidden: hidden, seed: 0)
        guard net.parameterCount == P else { throw HMSTError.badFormat("\(jsonPath): \(P) parameters, but the hidden sizes give \(net.parameterCount)") }
        let (file, weightsPath) = try HeadFiles.weights(dir: d, weightsName: weightsName, describedBy: jsonPath)
        try file.copy("params", dtype: .f32, count: P, to: UnsafeMutableRawPointer(net.params.p))
        for i in 0..<P where !net.params.p[i].isFinite { throw HMSTError.badFormat("\(weightsPath): parameter \(i) is not finite") }
        var scaling: ObservationScaling? = nil
        if version >= 3, j["observation_scaling"]?.bool == true {
            let n = StateSummary.size
            var mean = [Float](repeating: 0, count: n), scale = [Float](repeating: 0, count: n)
            try mean.withUnsafeMutableBytes { try file.copy("obs_mean", dtype: .f32, count: n, to: $0.baseAddress!) }
            try scale.withUnsafeMutableBytes { try file.copy("obs_scale", dtype: .f32, count: n, to: $0.baseAddress!) }
            do { scaling = try ObservationScaling(mean: mean, scale: scale) } catch {
                throw HMSTError.badFormat("\(weightsPath): obs_mean / obs_scale must be finite, scales > 0")
            }
        }
        let c = try MetaController(network: net, hidden: hidden, model: model, exitLayer: exit, projectionSeed: seed, scaling: scaling)
        guard c.hash == hash else { throw HMSTError.badFormat("\(weightsPath) does not match \(jsonPath) (hash \(c.hash), expected \(hash))") }
        c.trainingSummary = j["training"] ?? .object([])
        return c
    }
}

/// A stored controller trained on another version's state summary: not an error in the
/// checkpoint, so the model loads without it (LanguageModel.controllerProblem says why) and
/// `hmst rl-train` can replace it.
public struct StaleController: Error {
    public let message: String
}

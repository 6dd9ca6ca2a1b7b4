// Optimizer: what the trainer needs of AdamW and 8-bit AdamW: an update from Parameters.grads,
// the step count, the bytes of state, and the state as raw tensors for optimizer.safetensors
// (so a resumed run continues bit for bit).

public protocol Optimizer: AnyObject {
    /// "adamw" or "adamw8bit": recorded in trainer_state.json, checked on resume.
    var kind: String { get }
    var step: Int { get }
    /// Bytes of optimizer state (moments, quantisation scales).
    var stateBytes: Int { get }
    /// One update with learning rate lr from params.grads × gradScale (the clipping and
    /// accumulation factors, applied inside the update instead of in passes of their own).
    func update(lr: Float, gradScale: Float)
    /// The state, for saving.
    func stateTensors() -> [RawTensor]
    /// Restores the state written by stateTensors() and the step count.
    func loadState(_ file: SafeTensorsFile, step: Int) throws
}

extension Optimizer {
    /// Runs body(tensor index, offset, element count, weight decay) over every parameter
    /// tensor with this step's bias corrections (bc1, bc2) for `step` (1-based).
    func forEachTensor(_ params: any ParameterSet, decays: [Bool], config c: AdamWConfig, step: Int,
                       _ body: (_ t: Int, _ start: Int, _ n: Int, _ wd: Float, _ bc1: Float, _ bc2: Float) -> Void) {
        let bc1 = 1 - powf(c.beta1, Float(step)), bc2 = 1 - powf(c.beta2, Float(step))
        for (t, start) in params.offsets.enumerated() {
            body(t, start, params.shapes[t].reduce(1, *), decays[t] ? c.weightDecay : 0, bc1, bc2)
        }
    }
}

extension Optimizer {
    public func update(lr: Float) { update(lr: lr, gradScale: 1) }
}

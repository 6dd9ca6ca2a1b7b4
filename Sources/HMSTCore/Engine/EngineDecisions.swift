// EngineDecisions: the five things the meta-controller decides for a query (the seed's
// MetaController): early exit, episodic access, semantic retrieval, expert selection and
// verification. Each is a yes/no; the 32 combinations are numbered by their bits (bit i =
// decision i in `names` order) so fixed policies, PPO actions and outcome tables share one index.

public struct EngineDecisions: Sendable, Hashable {
    /// run only the first layers (up to the model's exit layer) and read the answer there
    public var earlyExit = false
    /// give the model the best entries of the episodic tier
    public var episodic = false
    /// give the model the best entries of the semantic tier
    public var semantic = false
    /// expert selection: route each token to its single best expert instead of the model's K
    public var expertSelection = false
    /// score the answer with the critic (and retry with memory or abstain when it is low)
    public var verify = false

    public static let names = ["early_exit", "episodic", "semantic", "expert_selection", "verify"]
    public static let count = 32

    public init(earlyExit: Bool = false, episodic: Bool = false, semantic: Bool = false,
                expertSelection: Bool = false, verify: Bool = false) {
        self.earlyExit = earlyExit
        self.episodic = episodic
        self.semantic = semantic
        self.expertSelection = expertSelection
        self.verify = verify
    }

    /// The decisions as bits, in `names` order.
    public var bits: [Bool] { [earlyExit, episodic, semantic, expertSelection, verify] }

    public init(bits b: [Bool]) {
        self.init(earlyExit: b.count > 0 && b[0], episodic: b.count > 1 && b[1], semantic: b.count > 2 && b[2],
                  expertSelection: b.count > 3 && b[3], verify: b.count > 4 && b[4])
    }

    /// 0 ..< 32
    public var index: Int { bits.enumerated().reduce(0) { $0 | ($1.element ? 1 << $1.offset : 0) } }

    public init(index: Int) { self.init(bits: (0..<5).map { index >> $0 & 1 == 1 }) }

    /// Everything that costs: both memories, verification, full depth, every expert of the
    /// model. The reward's latency and compute are measured against this action.
    public static let full = EngineDecisions(episodic: true, semantic: true, verify: true)
    /// Every decision yes (early exit and a single expert included).
    public static let allOn = EngineDecisions(index: 31)
    /// Nothing but the plain model at full depth.
    public static let allOff = EngineDecisions()

    /// The same decisions without the parts that change the generation (verify only).
    public var generationKey: Int { index & 0b01111 }

    /// "episodic+semantic+verify", "none" when every decision is no.
    public var summary: String {
        let on = zip(EngineDecisions.names, bits).filter(\.1).map(\.0)
        return on.isEmpty ? "none" : on.joined(separator: "+")
    }
}

/// A policy's view of the decisions: the probability of "yes" for each of the five (1 or 0 for a
/// fixed policy).
public struct DecisionProbabilities: Sendable, Equatable {
    public var yes: [Float] = [Float](repeating: 0, count: 5)
    public init(yes: [Float] = [Float](repeating: 0, count: 5)) { self.yes = yes }
    public init(fixed d: EngineDecisions) { yes = d.bits.map { $0 ? 1 : 0 } }
}

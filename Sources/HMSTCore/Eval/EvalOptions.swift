// EvalOptions: what an evaluation run is asked to do besides its tasks: the memory conditions,
// retrieval depth, bootstrap settings and the session's size. Memory conditions:
//   off      no memories in the prompt
//   on       the k texts the retriever finds for the item's prompt (or text)
//   oracle   the item's gold memory texts, in file order: measures the reader alone
//   deleted  as on, from the memory minus every entry whose text is one of the item's gold or
//            linked texts (EvalItem.linkedMemory: what gives the answer away without stating it)

public enum MemoryCondition: String, Sendable, CaseIterable {
    case off, on, oracle, deleted

    /// Whether the condition needs a retriever (a memory directory).
    public var retrieves: Bool { self == .on || self == .deleted }

    /// "off,on,oracle" -> [.off, .on, .oracle]; unknown names and repeats are errors.
    public static func parseList(_ s: String) throws -> [MemoryCondition] {
        var out: [MemoryCondition] = []
        for part in s.split(separator: ",", omittingEmptySubsequences: false) {
            let name = String(part.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
            guard let c = MemoryCondition(rawValue: name) else {
                throw HMSTError.invalidArgument("unknown memory condition \"\(name)\" (expected off, on, oracle or deleted)")
            }
            guard !out.contains(c) else { throw HMSTError.invalidArgument("memory condition \(name) is listed twice") }
            out.append(c)
        }
        return out
    }
}

public struct EvalOptions: Sendable {
    public var conditions: [MemoryCondition] = [.off]
    /// memories retrieved per item (on, deleted)
    public var k = 4
    /// bootstrap seed and resamples for the 95% intervals
    public var seed: UInt64 = 0
    public var resamples = 1000
    /// 0 = the model's context, capped at 4096 tokens
    public var nCtx = 0
    /// 0 = the library-wide thread count
    public var nThreads = 0
    /// keep one record per (task, condition, item) for the per-item JSONL
    public var keepItems = false
    /// kNN-LM control (KNNLM.swift): for each λ, knn_answer_nll@λ under the off condition of
    /// loglikelihood and generate_until tasks, over a datastore of the task's gold memory texts
    public var knnLambdas: [Double] = []
    public var knnK = 32
    /// score generate_until answers with this critic too (Critic/CriticEval.swift); nil = not
    public var critic: Critic?
    /// how episodic memories reach the model: as text, as the checkpoint's trained soft tokens
    /// (state) or both (Eval/EpisodicInjection.swift)
    public var episodicInjection: EpisodicInjection = .text

    public init() {}

    public func validate() throws {
        guard !conditions.isEmpty else { throw HMSTError.invalidArgument("no memory conditions given") }
        guard k >= 1, k <= 1024 else { throw HMSTError.invalidArgument("k = \(k) must be in 1...1024") }
        guard resamples >= 1, resamples <= 1_000_000 else {
            throw HMSTError.invalidArgument("bootstrap resamples \(resamples) must be in 1...1000000")
        }
        if let l = knnLambdas.first(where: { !($0 >= 0 && $0 <= 1) }) {
            throw HMSTError.invalidArgument("kNN-LM λ \(l) must be in [0, 1]")
        }
        guard knnK >= 1 else { throw HMSTError.invalidArgument("kNN-LM k \(knnK) must be >= 1") }
        guard nCtx >= 0 else { throw HMSTError.invalidArgument("n_ctx \(nCtx) must be >= 0 (0 = the model's)") }
    }
}

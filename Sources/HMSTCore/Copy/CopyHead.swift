// CopyHead: a pointer from the answer being generated to the tokens of the memories in the
// context (See et al.'s pointer-generator, over Stage 2's `<mem>` … `</mem>` spans). At a
// position t whose context holds memory tokens x_j (j <= t):
//   s_tj = (Wq·h_t) · (Wk·h_{j-1}) / sqrt(D)     h = the final norm's output (what the LM head reads)
//   α_t  = softmax_j(s_tj)                       the key of x_j is the state that precedes it
//   m_t  = Σ_{j in the best's span} α_tj          how much of the pointer one memory holds
//   c_t  = Σ_j α_tj h_j                           what the pointer would copy: the states at the
//                                                 memory tokens themselves (See et al.'s context vector)
//   e_t  = (P·h_t) · Σ_j α_tj (R·h_j)             the agreement of the answer's state with what
//                                                 the pointer reads (P, R: [A, C], A = 0: none)
//   o_t  = Σ_j α_tj Σ_{w ∈ span(j) ∩ question(t)} λ_w
//                                                 the lexical overlap of what the pointer reads
//                                                 with the question being answered: λ_w a learned
//                                                 weight per token id over the distinct tokens a
//                                                 span shares with the question (none: 0),
//                                                 + Σ_{w ∈ question(t) \ span(j)} ν_w with the
//                                                 missing terms: a learned weight per token id
//                                                 over the question's tokens the span lacks
//   g_t  = σ(w_g·h_t + w_c·c_t + e_t + o_t + u·max_j s_tj + v·m_t + b)
//                                                 the gate sees how well the best memory matches,
//                                                 whether it stands out from the others, what
//                                                 it would copy and whether that agrees with
//                                                 what is asked
//   p(w) = g_t · Σ_j α_tj [x_j = w] + (1 − g_t) · softmax(LM logits)(w)
// Without c (format 2) the gate saw only the answer's own state, so it closed wherever a name
// looked complete: the answer's end marker, which memory never holds, taught it to, and a third
// of the reader's misses with the gold fact alone were names cut short (" Zoden" for " Zodenous":
// the pointer held "ous" at 0.99, the gate was 0.01; session 17). With c it can tell a memory
// that goes on with the name from one whose next token is the sentence's full stop.
// A span is one <mem> … </mem> entry (or one injected soft row). m_t tells the gate whether the
// pointer found one memory that answers, or is spread over look-alikes: with the gold entry
// deleted, the same relation of similar entities scores almost as well as the gold entry did,
// and the best score alone opened the gate on them (session 10: deleted answer NLL +14.6%).
// Every other term is linear in h_t or in c_t, so the gate could not compare the two: with the
// gold entry deleted it opened on an entry of the same relation about another entity (a
// look-alike capital or ISO code) as on the gold one (session 22: half the deleted gap came
// from the worst 10% of items, capitals and ISO codes). The bilinear e_t (format 4) is the
// comparison: its low-rank P and R learn which features of the asked entity and of the copied
// entry must agree. It did not close the gap (session 23: the head's share of the deleted gap stayed
// 5.7 of its 6.7 points): a micro model's states of unseen names do not compare well. o_t compares
// the names themselves: the question of a position is the set of tokens after the latest `<q>` up
// to its `<a>` (or the position), and a look-alike entry shares its relation's words with the
// question but not the entity's, which the per-token weights λ learn to tell apart (entity
// pieces come from the same syllables in training and held-out names).
// The overlap is a sum over what a span shares, so an entry that shares the entity but not the
// relation (the same country's other ISO code) or the relation but not the entity (another
// entity's founding year) scores as the shared part says, and how much must be shared to open
// depends on the question: "all of it" is a threshold the gate's other terms would have to learn
// from h_t. The missing terms ν (format 5, `--copy-gate-missing-terms`) charge each question token
// a span lacks: with ν_w < 0 on the words that name an entity or a relation, one missing word is
// enough to close the gate, however many others the span shares. (Σ over what is missing is
// Σ_question ν − Σ_shared ν: the same as the overlap with λ − ν plus a per-question bias.)
// Without memory tokens in the context, p is the LM's own distribution. It is the learned
// form of Eval/KNNLM.swift's training-free interpolation: a small model copies a value it
// has read once, which its attention alone learns only after millions of tokens.
// Trained in Stage 2 (`hmst train-memory --copy-head`, CopyHeadGrad.swift) with the model;
// applied by every Session of a decoder that has one (CopyHeadSession.swift). Stored in the
// checkpoint directory:
//   copy_head.safetensors  "q_proj.weight", "k_proj.weight" [D, C]; "gate.weight" [1, C];
//                          "gate.score_weight" [1]; "gate.bias" [1]; "gate.span_weight" [1];
//                          "gate.context_weight" [1, C] (version 3; a version-2 head has no
//                          w_c and reads it as 0, a version-1 head has no v either);
//                          "gate.agreement_query", "gate.agreement_key" [A, C] when A > 0;
//                          "gate.overlap_weight" [V] with the lexical overlap (version 4);
//                          "gate.missing_weight" [V] with its missing terms (version 5); f32
//   copy_head.json         format, version, hidden_size, key_size, agreement_size (version 4;
//                          absent: 0), overlap_vocabulary (V, 0: no overlap term) with the
//                          question and answer markers' ids, missing_terms and overlap_scale
//                          (version 5; absent: false, 1), the two memory markers' ids and
//                          text, the weights' hash, training summary
import CBLAS

public final class CopyHead: ParameterSet, @unchecked Sendable {
    public static let weightsName = "copy_head.safetensors"
    public static let configName = "copy_head.json"
    static let formatName = "hmst-copy-head"
    static let formatVersion = 5

    /// hidden size of the model, size of the query and key vectors
    public let C: Int
    public let D: Int
    /// rank of the gate's agreement term (0: none)
    public let A: Int
    /// vocabulary of the lexical-overlap weights λ (0: no overlap term), and the markers that
    /// delimit a question (-1 without the term)
    public let overlapVocabulary: Int
    /// whether the overlap has its missing terms ν (only with overlapVocabulary > 0)
    public let missingTerms: Bool
    /// s in o = s·(Σ λ + Σ ν): a fixed scale of the overlap's weights (1 unless set; stored with
    /// the head). λ and ν are sparse (a token's weight has a gradient only on the steps that ask
    /// about it), so Adam moves them much less than lr a step and after Stage 2 they span about
    /// ±0.15, against the several units a gate logit moves by (session 25); s multiplies what
    /// each step can move the gate by s, as a learning rate s times the head's would.
    public var overlapScale: Float = 1 {
        didSet { if !(overlapScale.isFinite && overlapScale > 0) { overlapScale = 1 } }
    }
    public let questionMarker: Int32
    public let answerMarker: Int32
    /// token ids of the markers that open and close a memory span
    public let openMarker: Int32
    public let closeMarker: Int32

    public let names: [String]
    public let shapes: [[Int]]
    public let offsets: [Int]
    public let count: Int
    public let values: FloatBuffer
    public let grads: FloatBuffer
    public let roles: [ParameterRole]
    public var summary: JSONValue = .object([])

    public init(C: Int, D: Int, A: Int = 0, overlapVocabulary V: Int = 0, missingTerms: Bool = false, openMarker: Int32, closeMarker: Int32,
                questionMarker: Int32 = -1, answerMarker: Int32 = -1) throws {
        guard C >= 1, D >= 1, D <= 4096 else { throw HMSTError.invalidArgument("copy head: hidden size \(C) and key size \(D) must be >= 1 (key size <= 4096)") }
        guard A >= 0, A <= 1024 else { throw HMSTError.invalidArgument("copy head: agreement rank \(A) must be in 0...1024") }
        guard V >= 0, V <= 1 << 24 else { throw HMSTError.invalidArgument("copy head: overlap vocabulary \(V) must be in 0...\(1 << 24)") }
        if V > 0 {
            let ids = [openMarker, closeMarker, questionMarker, answerMarker]
            guard ids.allSatisfy({ $0 >= 0 && Int($0) < V }), Set(ids).count == 4 else {
                throw HMSTError.invalidArgument("copy head: the lexical overlap needs four distinct markers inside its vocabulary of \(V), not \(ids)")
            }
        }
        guard !missingTerms || V > 0 else { throw HMSTError.invalidArgument("copy head: the missing terms belong to the lexical overlap, which this head does not have") }
        guard openMarker >= 0, closeMarker >= 0, openMarker != closeMarker else {
            throw HMSTError.invalidArgument("copy head: the memory markers \(openMarker) and \(closeMarker) must be two distinct token ids")
        }
        self.C = C
        self.D = D
        self.A = A
        overlapVocabulary = V
        self.missingTerms = missingTerms
        self.questionMarker = V > 0 ? questionMarker : -1
        self.answerMarker = V > 0 ? answerMarker : -1
        self.openMarker = openMarker
        self.closeMarker = closeMarker
        var n = ["q_proj.weight", "k_proj.weight", "gate.weight", "gate.score_weight", "gate.bias", "gate.span_weight", "gate.context_weight"]
        var sh = [[D, C], [D, C], [1, C], [1], [1], [1], [1, C]]
        var r: [ParameterRole] = [.matrix, .matrix, .matrix, .vector, .bias, .vector, .matrix]
        if A > 0 {
            n += ["gate.agreement_query", "gate.agreement_key"]
            sh += [[A, C], [A, C]]
            r += [.matrix, .matrix]
        }
        if V > 0 {
            n.append("gate.overlap_weight")
            sh.append([V])
            r.append(.vector)
        }
        if missingTerms {
            n.append("gate.missing_weight")
            sh.append([V])
            r.append(.vector)
        }
        names = n
        shapes = sh
        roles = r
        (offsets, count, values, grads) = parameterStorage(sh)
    }

    /// A fresh head: the query and key projections start equal (one random N(0, 1/C) matrix),
    /// so the first scores favour memory tokens whose preceding state resembles the current
    /// one; the gate starts mostly closed (bias −2: g ≈ 0.12), so the model begins as the LM,
    /// and blind to the span mass and the context (v = 0, w_c = 0) until training finds a use
    /// for them. The agreement term starts at 0 too (P = 0, R random), so its first gradient
    /// goes to P.
    public static func initialised(C: Int, D: Int, A: Int = 0, overlapVocabulary V: Int = 0, missingTerms: Bool = false, openMarker: Int32,
                                   closeMarker: Int32, questionMarker: Int32 = -1, answerMarker: Int32 = -1, seed: UInt64) throws -> CopyHead {
        let h = try CopyHead(C: C, D: D, A: A, overlapVocabulary: V, missingTerms: missingTerms, openMarker: openMarker, closeMarker: closeMarker,
                             questionMarker: questionMarker, answerMarker: answerMarker)
        var rng = RNG(seed: seed)
        let std = 1 / Float(C).squareRoot()
        for i in 0..<(D * C) {
            let r = rng.nextGaussian() * std
            h.wq[i] = r
            h.wk[i] = r
        }
        for i in 0..<(A * C) { h.agreementKey[i] = rng.nextGaussian() * std }
        h.gateBias.pointee = -2
        return h
    }

    /// The head for a tokenizer that has Stage 2's markers.
    /// overlapVocabulary: the model's vocabulary for a lexical-overlap term (0: none), missingTerms
    /// its ν.
    public static func initialised(for tokenizer: Tokenizer, C: Int, D: Int = 64, A: Int = 0, overlapVocabulary V: Int = 0,
                                   missingTerms: Bool = false, seed: UInt64) throws -> CopyHead {
        guard let open = tokenizer.id(for: MemoryPrompt.memoryOpen), let close = tokenizer.id(for: MemoryPrompt.memoryClose),
              let q = tokenizer.id(for: MemoryPrompt.question), let a = tokenizer.id(for: MemoryPrompt.answer) else {
            throw HMSTError.invalidArgument("a copy head needs the tokenizer's Stage 2 markers (\(MemoryPrompt.markers.joined(separator: " ")))")
        }
        return try initialised(C: C, D: D, A: A, overlapVocabulary: V, missingTerms: missingTerms, openMarker: open, closeMarker: close,
                               questionMarker: V > 0 ? q : -1, answerMarker: V > 0 ? a : -1, seed: seed)
    }

    var wq: UnsafeMutablePointer<Float> { values.pointer + offsets[0] }
    var wk: UnsafeMutablePointer<Float> { values.pointer + offsets[1] }
    var gateWeight: UnsafeMutablePointer<Float> { values.pointer + offsets[2] }
    var scoreWeight: UnsafeMutablePointer<Float> { values.pointer + offsets[3] }
    var gateBias: UnsafeMutablePointer<Float> { values.pointer + offsets[4] }
    var spanWeight: UnsafeMutablePointer<Float> { values.pointer + offsets[5] }
    var contextWeight: UnsafeMutablePointer<Float> { values.pointer + offsets[6] }
    /// P and R of the agreement term, [A, C] each (only when A > 0)
    static let agreementQueryIndex = 7, agreementKeyIndex = 8
    var agreementQuery: UnsafeMutablePointer<Float> { values.pointer + offsets[CopyHead.agreementQueryIndex] }
    var agreementKey: UnsafeMutablePointer<Float> { values.pointer + offsets[CopyHead.agreementKeyIndex] }
    /// λ of the lexical overlap, one per token id (only when overlapVocabulary > 0), and ν of its
    /// missing terms (only when missingTerms)
    var overlapIndex: Int { names.count - (missingTerms ? 2 : 1) }
    var overlapWeight: UnsafeMutablePointer<Float> { values.pointer + offsets[overlapIndex] }
    var missingIndex: Int { names.count - 1 }
    var missingWeight: UnsafeMutablePointer<Float> { values.pointer + offsets[missingIndex] }

    /// w_c·h for a final-norm state h: a source's share of the gate's context term (the gate
    /// adds Σ_j α_j·contextValue(h_j)).
    func contextValue(_ h: UnsafePointer<Float>) -> Float {
        cblas_sdot(Int32(C), contextWeight, 1, h, 1)
    }

    /// out[rows, n] = x[rows, C] · W^T for W [n, C]: wq or wk (n = D), P or R (n = A).
    func project(_ w: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, n: Int? = nil) {
        let n = n ?? D
        guard rows > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(C), 1, x, Int32(C),
                    w, Int32(C), 0, out, Int32(n))
    }

    /// values[i] = base[i] + (P·h)·(R·h_i) + the overlap of source i's span, for the first S
    /// sources: the gate's per-source context term at one query (training and inference alike).
    /// ph: the query's agreement query (A floats); source i's agreement key R·h_i at
    /// keys[rows[i] * A] (rows nil: keys[i * A]). Each term only when the head has it.
    func queryValues(_ base: UnsafePointer<Float>, ph: UnsafePointer<Float>, keys: UnsafePointer<Float>, rows: UnsafePointer<Int>?,
                     overlaps: OverlapCache, spans: UnsafePointer<Int32>, S: Int, into values: UnsafeMutablePointer<Float>) {
        for i in 0..<S {
            var e: Float = 0
            if A > 0 {
                let k = keys + (rows?[i] ?? i) * A
                for r in 0..<A { e += ph[r] * k[r] }
            }
            values[i] = base[i] + e
        }
        overlaps.add(to: values, spans: spans, n: S)
    }

    /// The pointer at one query: alpha[0..<S] = softmax of the scores of q against the S keys
    /// (key i at keys[keyRows[i] * D], in span spans[i], contextValue of its own state values[i]).
    /// Returns the best score, its index, the pointer's mass on the best's span and the gate's
    /// context term Σ_i α_i·values[i].
    func attend(q: UnsafePointer<Float>, keys: UnsafePointer<Float>, keyRows: UnsafePointer<Int32>, spans: UnsafePointer<Int32>,
                values: UnsafePointer<Float>, S: Int, alpha: UnsafeMutablePointer<Float>) -> (best: Float, at: Int, spanMass: Float, context: Float) {
        let scale = 1 / Float(D).squareRoot()
        var best = -Float.infinity, at = 0
        for i in 0..<S {
            let k = keys + Int(keyRows[i]) * D
            var s: Float = 0
            for c in 0..<D { s += q[c] * k[c] }
            s *= scale
            alpha[i] = s
            if s > best { best = s; at = i }
        }
        var sum: Float = 0
        for i in 0..<S { alpha[i] = expf(alpha[i] - best); sum += alpha[i] }
        var mass: Float = 0, context: Float = 0
        for i in 0..<S {
            alpha[i] /= sum
            if spans[i] == spans[at] { mass += alpha[i] }
            context += alpha[i] * values[i]
        }
        return (best, at, mass, context)
    }

    /// The gate's pre-activation for a final-norm state h, the best score, its span's mass and
    /// the context term w_c·c = Σ_j α_j·contextValue(h_j).
    func gateLogit(h: UnsafePointer<Float>, best: Float, spanMass: Float, context: Float) -> Float {
        var a = gateBias.pointee + scoreWeight.pointee * best + spanWeight.pointee * spanMass + context
        let w = gateWeight
        for c in 0..<C { a += w[c] * h[c] }
        return a
    }

    /// Checks the head against a model: hidden size and markers inside the vocabulary.
    public func validate(for dims: DecoderDims) throws {
        guard C == dims.C else { throw HMSTError.invalidArgument("the copy head was made for hidden size \(C), not this model's \(dims.C)") }
        guard overlapVocabulary == 0 || overlapVocabulary == dims.V else {
            throw HMSTError.invalidArgument("the copy head's overlap weights cover \(overlapVocabulary) tokens, not this model's \(dims.V)")
        }
        guard Int(openMarker) < dims.V, Int(closeMarker) < dims.V else {
            throw HMSTError.invalidArgument("the copy head's markers (\(openMarker), \(closeMarker)) are outside this model's vocabulary of \(dims.V)")
        }
    }

    /// Writes the weights, then the json naming their hash, each atomically. The version written
    /// is the oldest that describes the head (5 only with missing terms or an overlap scale), so builds that predate
    /// format 5 still read every other head.
    public func save(checkpoint dir: String) throws {
        try HeadFiles.save(dir: dir, weightsName: CopyHead.weightsName, tensors: rawTensors, configName: CopyHead.configName,
                           format: CopyHead.formatName, version: missingTerms || overlapScale != 1 ? CopyHead.formatVersion : 4, hash: valuesHash,
                           training: summary) { w in
            w.field("hidden_size", C)
            w.field("key_size", D)
            w.field("agreement_size", A)
            w.field("overlap_vocabulary", overlapVocabulary)
            if overlapVocabulary > 0 {
                w.field("question_marker_id", Int(questionMarker)); w.field("answer_marker_id", Int(answerMarker))
                if missingTerms { w.field("missing_terms", true) }
                if overlapScale != 1 { w.field("overlap_scale", Double(overlapScale)) }
            }
            w.field("open_marker_id", Int(openMarker)); w.field("open_marker", MemoryPrompt.memoryOpen)
            w.field("close_marker_id", Int(closeMarker)); w.field("close_marker", MemoryPrompt.memoryClose)
        }
    }

    /// The copy head stored with a checkpoint, or nil. BAD_FORMAT for malformed or mismatched
    /// files; INVALID_ARGUMENT for one made for another model.
    public static func load(checkpoint dir: String, dims: DecoderDims) throws -> CopyHead? {
        guard let (j, jsonPath, hash) = try HeadFiles.description(dir: dir, configName: configName, format: formatName, version: formatVersion,
                                                                  required: ["hidden_size", "key_size", "open_marker_id", "close_marker_id"],
                                                                  what: "a copy head description") else { return nil }
        guard let C = j["hidden_size"]?.int, let D = j["key_size"]?.int, let open = j["open_marker_id"]?.int,
              let close = j["close_marker_id"]?.int else {
            throw HMSTError.badFormat("\(jsonPath): hidden_size, key_size and the marker ids must be integers")
        }
        func optionalInt(_ key: String, _ absent: Int) throws -> Int {
            switch j[key] {
            case nil, .null?: return absent
            case let v?:
                guard let i = v.int, i >= Int(Int32.min), i <= Int(Int32.max) else { throw HMSTError.badFormat("\(jsonPath): \(key) must be an integer") }
                return i
            }
        }
        let A = try optionalInt("agreement_size", 0), V = try optionalInt("overlap_vocabulary", 0)
        let qm = try optionalInt("question_marker_id", -1), am = try optionalInt("answer_marker_id", -1)
        let missing: Bool
        switch j["missing_terms"] {
        case nil, .null?: missing = false
        case let v?:
            guard let b = v.bool else { throw HMSTError.badFormat("\(jsonPath): missing_terms must be true or false") }
            missing = b
        }
        guard open >= 0, close >= 0, open <= Int(Int32.max), close <= Int(Int32.max) else {
            throw HMSTError.badFormat("\(jsonPath): marker ids \(open), \(close) are not token ids")
        }
        var scale: Float = 1
        switch j["overlap_scale"] {
        case nil, .null?: break
        case let v?:
            guard let d = v.number, d.isFinite, d > 0, d <= 1e4, V > 0 else {
                throw HMSTError.badFormat("\(jsonPath): overlap_scale must be a number in (0, 10000] and needs overlap_vocabulary > 0")
            }
            scale = Float(d)
        }
        let h: CopyHead
        do {
            h = try CopyHead(C: C, D: D, A: A, overlapVocabulary: V, missingTerms: missing, openMarker: Int32(open), closeMarker: Int32(close),
                             questionMarker: Int32(qm), answerMarker: Int32(am))
        } catch let e as HMSTError {
            throw HMSTError.badFormat("\(jsonPath): \(e.message)")
        }
        h.overlapScale = scale
        try h.validate(for: dims)
        let (file, weightsPath) = try HeadFiles.weights(dir: dir, weightsName: weightsName, describedBy: jsonPath)
        // version 1 stored the first five tensors, version 2 six, version 3 seven (a version-3
        // json has no agreement_size): the hash covers what is stored, the rest stays 0
        let version = j["version"]?.int ?? formatVersion
        let stored = version >= 3 ? h.names.count : version == 2 ? 6 : 5
        try HeadFiles.read(h, tensors: stored, from: file, weightsPath: weightsPath, describedBy: jsonPath, hash: hash)
        h.summary = j["training"] ?? .object([])
        return h
    }
}

/// The question a position reads, for the gate's lexical overlap: the distinct tokens after the
/// latest question marker, up to the answer marker that follows it. Fed the context's tokens in
/// order (training and inference alike); `version` changes whenever the set does.
struct QuestionScan {
    var open = false
    var tokens: Set<Int32> = []
    /// the same tokens in the order they first came
    var order: [Int32] = []
    var version = 0

    mutating func read(_ tok: Int32, head: CopyHead) {
        if tok == head.questionMarker {
            tokens.removeAll(keepingCapacity: true); order.removeAll(keepingCapacity: true); open = true; version += 1
        } else if tok == head.answerMarker {
            open = false
        } else if open, tokens.insert(tok).inserted {
            order.append(tok)
            version += 1
        }
    }
}

/// Per span, s·Σ λ_w over the distinct tokens w it shares with a question (+ s·Σ ν_w over the
/// question's tokens it lacks, with the missing terms), and those tokens (for the gradients);
/// recomputed only when the question or the number of sources changes. Without missing terms a
/// span that shares nothing has no entry (its overlap is 0); with them every span has one.
struct OverlapCache {
    var version = -1, sources = -1
    var perSpan: [Int32: (value: Float, tokens: [Int32], missing: [Int32])] = [:]
    /// perSpan's spans in increasing order: the gradients sum over spans in this order, since a
    /// hashed dictionary's order changes with the process and so would the sums' last bits
    var spanOrder: [Int32] = []

    mutating func update(head: CopyHead, question: QuestionScan, tokens: UnsafePointer<Int32>, spans: UnsafePointer<Int32>, n: Int) {
        guard question.version != version || n != sources else { return }
        version = question.version
        sources = n
        perSpan.removeAll(keepingCapacity: true)
        spanOrder.removeAll(keepingCapacity: true)
        guard !question.tokens.isEmpty else { return }
        var seen = Set<Int64>()
        let u = head.overlapWeight, scale = head.overlapScale
        for i in 0..<n where question.tokens.contains(tokens[i]) {
            guard seen.insert(Int64(spans[i]) << 32 | Int64(UInt32(bitPattern: tokens[i]))).inserted else { continue }
            var entry = perSpan[spans[i]] ?? (0, [], [])
            entry.value += scale * u[Int(tokens[i])]
            entry.tokens.append(tokens[i])
            perSpan[spans[i]] = entry
        }
        if head.missingTerms {
            let nu = head.missingWeight
            for i in 0..<n where perSpan[spans[i]] == nil { perSpan[spans[i]] = (0, [], []) }
            for (s, var entry) in perSpan {
                let shared = Set(entry.tokens)
                // in the question's own order, so the sums do not depend on a Set's iteration
                for w in question.order where !shared.contains(w) {
                    entry.value += scale * nu[Int(w)]
                    entry.missing.append(w)
                }
                perSpan[s] = entry
            }
        }
        spanOrder = perSpan.keys.sorted()
    }

    /// values[i] += the overlap of source i's span, for the first n sources.
    func add(to values: UnsafeMutablePointer<Float>, spans: UnsafePointer<Int32>, n: Int) {
        guard !perSpan.isEmpty else { return }
        for i in 0..<n { if let o = perSpan[spans[i]] { values[i] += o.value } }
    }
}

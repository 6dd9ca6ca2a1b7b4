// MemoryCurriculum: Stage 2's examples. Each is a question with up to k retrieved memories laid
// out by MemoryPrompt (`<mem>fact</mem>...<q>question<a> answer</a>`), in one of three
// conditions so the model learns both to use memory and to ignore it:
//   gold             the question's fact among k-1 distractors, at a random position -> the answer
//   distractorsOnly  k unrelated facts -> the answer if the model can know it (train_known),
//                    else the fixed " unknown"
//   none             no memory -> as distractorsOnly
// With distractorDistillation, a share of the distractorsOnly examples carry the real answer
// instead, and its tokens are trained towards the model's own prediction for the same question
// and answer without memory (MemoryExample.distillFrom; ModelGrad.softTargets): memory that does
// not hold the fact should leave the model's belief as it was ("deleted" as "off").
// With retrievedFraction, a share of the memory blocks is what retrieval over the non-held-out
// facts returns for the question (retrievedBy: BM25, the projection's vectors, or both fused,
// RetrievedBlocks.swift), in its rank order: the neighbours the model meets at evaluation,
// where they stand there.
// Only the answer tokens and </a> carry loss (targets -1 elsewhere). MemoryBatch packs
// examples into [B, T] inputs and targets, padding past each example's end.

public enum CurriculumCondition: String, Sendable, CaseIterable {
    case gold
    case distractorsOnly = "distractors_only"
    case none
}

public struct CurriculumOptions: Sendable, Equatable {
    /// memories per example
    public var k = 4
    /// shares of the conditions (normalised): gold + distractors, distractors only, no memory
    public var goldWeight = 0.5
    public var distractorsOnlyWeight = 0.25
    public var noneWeight = 0.25
    /// how often an example with memory has fewer than k of them (1 ... k-1, uniformly)
    public var fewerFraction = 0.25
    /// the answer when memory does not hold the fact and the model cannot know it
    public var unknownAnswer = "unknown"
    /// gold examples ask up to this many questions after one memory block, each about a
    /// different memory (`...</mem><q>q1<a> a1</a><q>q2<a> a2</a>`): every answer carries loss,
    /// so a step teaches reading from memory several times over; 1 = one question per example
    public var questionsPerExample = 1
    /// every token of a memory example carries loss, not only the answers: the memories and
    /// the question (which repeats the entity a memory names) teach copying from context
    /// far more often per step than the answer tokens alone
    public var promptLoss = false
    /// share of examples that are synthetic copy tasks: a random token span, then the same span
    /// again with loss on the repeat (the induction pattern that copying from memory builds on;
    /// a small model pre-trained briefly has not learnt it)
    public var copyFraction = 0.0
    /// share of distractors that are hard: another fact about the same entity, or the same
    /// relation of another entity (what retrieval returns beside, or instead of, the gold fact),
    /// so the model learns to tell the fact asked about from its neighbours and to say it does
    /// not know when only neighbours are given
    public var hardDistractorFraction = 0.0
    /// share of memory blocks (gold, distractors only, multi-question) taken from a search of
    /// the question over the non-held-out facts, best first: the gold fact at its rank (or,
    /// when the search misses it, at a random position), the other hits as distractors; a
    /// multi-question example then also asks about those hits
    public var retrievedFraction = 0.0
    /// how that search ranks: lexical (BM25), dense or hybrid (both need the checkpoint's
    /// retrieval projection, given to the curriculum as its embedder)
    public var retrievedBy: RetrievalMode = .lexical
    /// hybrid: the weight of the lexical (BM25) rank in that search's fusion (the dense rank's
    /// is 1); set it to what evaluation retrieves with (hmst eval --lexical-weight)
    public var retrievedLexicalWeight: Float = 1
    /// share of distractorsOnly examples that ask for the real answer (teacher-forced) and
    /// train every answer position towards the model's own distribution at that position
    /// without memory (a KL to a stop-gradient teacher: the same model, the same step), in
    /// place of a hard target. " unknown" still arrives through that teacher where the no-memory
    /// examples taught it. 0.5 took "on" exact match from 0.85/0.75/0.775 to 0.86/0.805/0.835
    /// (seeds 1-3, session 18) with the deleted gap +4.7/+4.0/+5.9% against +5.4/+4.7/+5.4%;
    /// 1.0 with the gate target on these rows: gap −1.3% but exact match 0.75 (README)
    public var distractorDistillation = 0.5
    public init() {}

    func validate() throws {
        guard k >= 1, k <= 64 else { throw HMSTError.invalidArgument("k must be between 1 and 64, not \(k)") }
        let w = [goldWeight, distractorsOnlyWeight, noneWeight]
        guard w.allSatisfy({ $0 >= 0 && $0.isFinite }), w.reduce(0, +) > 0 else {
            throw HMSTError.invalidArgument("the condition weights must be >= 0 and not all 0")
        }
        guard fewerFraction >= 0, fewerFraction <= 1 else { throw HMSTError.invalidArgument("fewerFraction must be in [0, 1]") }
        guard !unknownAnswer.isEmpty else { throw HMSTError.invalidArgument("the unknown answer cannot be empty") }
        guard hardDistractorFraction >= 0, hardDistractorFraction <= 1 else {
            throw HMSTError.invalidArgument("the hard distractor fraction must be in [0, 1], not \(hardDistractorFraction)")
        }
        guard retrievedFraction >= 0, retrievedFraction <= 1 else {
            throw HMSTError.invalidArgument("the retrieved fraction must be in [0, 1], not \(retrievedFraction)")
        }
        guard retrievedLexicalWeight.isFinite, retrievedLexicalWeight >= 0 else {
            throw HMSTError.invalidArgument("the retrieved blocks' lexical weight must be finite and >= 0, not \(retrievedLexicalWeight)")
        }
        guard distractorDistillation >= 0, distractorDistillation <= 1 else {
            throw HMSTError.invalidArgument("the distractor distillation share must be in [0, 1], not \(distractorDistillation)")
        }
        guard copyFraction >= 0, copyFraction < 1 else { throw HMSTError.invalidArgument("the copy fraction must be in [0, 1), not \(copyFraction)") }
        guard questionsPerExample >= 1, questionsPerExample <= k else {
            throw HMSTError.invalidArgument("questions per example must be in 1...k (\(k)), not \(questionsPerExample)")
        }
    }
}

/// One tokenized example: tokens[answerStart...] are the answer tokens (and </a>) that count.
public struct MemoryExample: Sendable, Equatable {
    public var tokens: [Int32]
    public var answerStart: Int
    public var condition: CurriculumCondition
    /// index of the gold memory among the memories, when there is one
    public var goldPosition: Int?
    public var memories: [String]
    /// multi-question examples: every answer's token range (the first starts at answerStart);
    /// only these carry loss. Empty: everything from answerStart on is the answer.
    public var answerSpans: [Range<Int>] = []
    /// distilled examples (CurriculumOptions.distractorDistillation): the same question and
    /// answer without memory. Its last answer tokens equal this example's; the model's
    /// prediction there, without gradient, is the target of this example's answer positions.
    public var distillFrom: [Int32]? = nil
}

public struct MemoryCurriculum: Sendable {
    public let corpus: FactsCorpus
    public let tokenizer: Tokenizer
    public let options: CurriculumOptions
    /// questions trained on: train_known and train_memory_only
    public let trainQuestions: [FactQuestion]
    /// facts that may serve as distractors: every fact but the held-out ones
    let distractorPool: [Int]
    /// the pool's facts by entity and by relation (hard distractors)
    let poolByEntity: [String: [Int]]
    let poolByRelation: [String: [Int]]
    /// per training question id, the first k + 4 facts a search of it over the pool returns,
    /// best first (only with retrievedFraction > 0)
    let retrieved: [String: [Int]]
    /// per fact id, the indices of its training questions
    let trainQuestionsByFact: [String: [Int]]

    /// embedder: the retrieval projection's maps, for retrievedBy dense or hybrid.
    public init(corpus: FactsCorpus, tokenizer: Tokenizer, options: CurriculumOptions = CurriculumOptions(),
                embedder: RetrievalEmbedder? = nil) throws {
        try options.validate()
        guard MemoryPrompt.isSupported(by: tokenizer) else {
            throw HMSTError.invalidArgument("the tokenizer lacks the memory markers \(MemoryPrompt.markers.joined(separator: " ")) (see MemoryTokens.prepare)")
        }
        self.corpus = corpus
        self.tokenizer = tokenizer
        self.options = options
        trainQuestions = corpus.questions.filter { $0.split == "train_known" || $0.split == "train_memory_only" }
        guard !trainQuestions.isEmpty else { throw HMSTError.invalidArgument("the facts have no train_known or train_memory_only questions") }
        distractorPool = corpus.facts.indices.filter { corpus.facts[$0].split != "heldout" }
        poolByEntity = Dictionary(grouping: distractorPool) { corpus.facts[$0].entity }
        poolByRelation = Dictionary(grouping: distractorPool) { corpus.facts[$0].relation }
        guard distractorPool.count > options.k else {
            throw HMSTError.invalidArgument("\(distractorPool.count) non-held-out facts are too few for k = \(options.k) memories")
        }
        let questions = trainQuestions
        trainQuestionsByFact = Dictionary(grouping: questions.indices) { questions[$0].factId }
        var found: [String: [Int]] = [:]
        if options.retrievedFraction > 0 {
            let pool = distractorPool
            var fusion = RetrievalOptions()
            fusion.lexicalWeight = options.retrievedLexicalWeight
            found = try RetrievedBlocks.lists(texts: pool.map { corpus.facts[$0].text }, queries: questions.map { ($0.id, $0.question) },
                                              limit: options.k + 4, mode: options.retrievedBy, embedder: embedder, options: fusion)
                .mapValues { $0.map { pool[$0] } }
        }
        retrieved = found
    }

    /// A memory block as lexical retrieval returns it for q (see retrievedFraction): n texts,
    /// best first, and where the gold fact is (nil unless withGold).
    func retrievedMemories(for q: FactQuestion, hits: [Int], n: Int, withGold: Bool, rng: inout RNG) -> (texts: [String], gold: Int?, facts: [Int]) {
        let fact = corpus.fact(of: q), goldIndex = corpus.factIndex[q.factId] ?? -1
        var picked = hits.filter { i in
            let f = corpus.facts[i]
            return i != goldIndex && !(f.entity == fact.entity && f.relation == fact.relation)
        }
        picked = Array(picked.prefix(withGold ? n - 1 : n))
        var gold: Int? = nil
        if withGold {
            let at = hits.firstIndex(of: goldIndex).map { min($0, picked.count) } ?? Int(rng.next() % UInt64(picked.count + 1))
            picked.insert(goldIndex, at: at)
            gold = at
        }
        return (picked.map { corpus.facts[$0].text }, gold, picked)
    }

    /// A random condition with the configured shares.
    public func sampleCondition(_ rng: inout RNG) -> CurriculumCondition {
        let o = options
        let u = rng.nextDouble() * (o.goldWeight + o.distractorsOnlyWeight + o.noneWeight)
        if u < o.goldWeight { return .gold }
        return u < o.goldWeight + o.distractorsOnlyWeight ? .distractorsOnly : .none
    }

    /// The next training example: a random training question in a random condition, at most
    /// maxTokens long.
    public func sample(_ rng: inout RNG, maxTokens: Int = .max) -> MemoryExample {
        if options.copyFraction > 0, rng.nextDouble() < options.copyFraction {
            return copyExample(&rng, maxTokens: maxTokens)
        }
        let q = trainQuestions[Int(rng.next() % UInt64(trainQuestions.count))]
        let condition = sampleCondition(&rng)
        if condition == .gold, options.questionsPerExample > 1 {
            let e = multiQuestion(first: q, rng: &rng)
            if e.tokens.count <= maxTokens { return e }
        }
        if condition == .distractorsOnly, options.distractorDistillation > 0, rng.nextDouble() < options.distractorDistillation {
            var e = example(for: q, condition: condition, rng: &rng, answer: q.answer, maxTokens: maxTokens)
            e.distillFrom = make(memories: [], goldPosition: nil, question: q.question, answer: q.answer, condition: .none).tokens
            return e
        }
        return example(for: q, condition: condition, rng: &rng, maxTokens: maxTokens)
    }

    /// A synthetic copy example: n random ordinary tokens (no special ones), then the same n;
    /// the repeat after its first token carries loss.
    public func copyExample(_ rng: inout RNG, maxTokens: Int) -> MemoryExample {
        let ordinary = max(2, tokenizer.vocabSize - tokenizer.addedTokens.count)
        let longest = max(4, min(48, (min(maxTokens, 256) - 1) / 2))
        let n = 4 + Int(rng.next() % UInt64(longest - 3))
        let span = (0..<n).map { _ in Int32(rng.next() % UInt64(ordinary)) }
        return MemoryExample(tokens: span + span, answerStart: n + 1, condition: .gold, goldPosition: nil, memories: [],
                             answerSpans: [(n + 1)..<(2 * n)])
    }

    /// A gold example asking `questionsPerExample` questions, each about a different fact among
    /// the memories (the others distractors), in a random order after one memory block.
    public func multiQuestion(first q: FactQuestion, rng: inout RNG) -> MemoryExample {
        if options.retrievedFraction > 0, let hits = retrieved[q.id], rng.nextDouble() < options.retrievedFraction {
            return retrievedMultiQuestion(first: q, hits: hits, rng: &rng)
        }
        var asked = [q]
        var entities = Set([corpus.fact(of: q).entity + "/" + corpus.fact(of: q).relation])
        var tries = 0
        while asked.count < options.questionsPerExample && tries < 50 {
            tries += 1
            let c = trainQuestions[Int(rng.next() % UInt64(trainQuestions.count))]
            let f = corpus.fact(of: c)
            if entities.insert(f.entity + "/" + f.relation).inserted { asked.append(c) }
        }
        var memories = asked.map { corpus.fact(of: $0).text }
        memories += distractors(excluding: corpus.fact(of: q), count: max(0, options.k - memories.count), rng: &rng)
            .filter { !memories.contains($0) }
        for i in stride(from: memories.count - 1, to: 0, by: -1) { memories.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return asking(asked, memories: memories, gold: memories.firstIndex(of: corpus.fact(of: q).text))
    }

    /// One memory block, then every question of `asked` with its answer; each answer carries loss.
    func asking(_ asked: [FactQuestion], memories: [String], gold: Int?) -> MemoryExample {
        var tokens = tokenizer.encode(MemoryPrompt.render(memories: memories, question: asked[0].question))
        var spans: [Range<Int>] = []
        for (i, a) in asked.enumerated() {
            if i > 0 { tokens += tokenizer.encode(MemoryPrompt.question + a.question + MemoryPrompt.answer) }
            let ans = tokenizer.encode(" " + a.answer + MemoryPrompt.answerEnd)
            spans.append(tokens.count..<(tokens.count + ans.count))
            tokens += ans
        }
        return MemoryExample(tokens: tokens, answerStart: spans[0].lowerBound, condition: .gold, goldPosition: gold,
                             memories: memories, answerSpans: spans)
    }

    /// multiQuestion over the block retrieval returns for q: q first, then questions about the
    /// other hits (those that have training questions), up to questionsPerExample.
    func retrievedMultiQuestion(first q: FactQuestion, hits: [Int], rng: inout RNG) -> MemoryExample {
        let (memories, gold, facts) = retrievedMemories(for: q, hits: hits, n: options.k, withGold: true, rng: &rng)
        var asked = [q]
        for (i, f) in facts.enumerated() where i != gold && asked.count < options.questionsPerExample {
            guard let qs = trainQuestionsByFact[corpus.facts[f].id], !qs.isEmpty else { continue }
            asked.append(trainQuestions[qs[Int(rng.next() % UInt64(qs.count))]])
        }
        for i in stride(from: asked.count - 1, to: 1, by: -1) { asked.swapAt(i, 1 + Int(rng.next() % UInt64(i))) }
        return asking(asked, memories: memories, gold: gold)
    }

    /// q in `condition`, with memories and gold position drawn from rng; the answer is `answer`
    /// or else the one the curriculum teaches (target(for:condition:)).
    public func example(for q: FactQuestion, condition: CurriculumCondition, rng: inout RNG, answer: String? = nil,
                        maxTokens: Int = .max) -> MemoryExample {
        let (memories, gold) = self.memories(for: q, condition: condition, rng: &rng)
        let a = answer ?? target(for: q, condition: condition)
        let e = make(memories: memories, goldPosition: gold, question: q.question, answer: a, condition: condition)
        return e.tokens.count > maxTokens ? fitted(e, question: q.question, answer: a, length: maxTokens) : e
    }

    /// The memory entries for q in condition (and where the gold one is).
    public func memories(for q: FactQuestion, condition: CurriculumCondition, rng: inout RNG) -> (texts: [String], gold: Int?) {
        guard condition != .none else { return ([], nil) }
        let o = options
        let n = o.k > 1 && rng.nextDouble() < o.fewerFraction ? 1 + Int(rng.next() % UInt64(o.k - 1)) : o.k
        if o.retrievedFraction > 0, let hits = retrieved[q.id], rng.nextDouble() < o.retrievedFraction {
            let r = retrievedMemories(for: q, hits: hits, n: n, withGold: condition == .gold, rng: &rng)
            return (r.texts, r.gold)
        }
        let fact = corpus.fact(of: q)
        var texts = distractors(excluding: fact, count: condition == .gold ? n - 1 : n, rng: &rng)
        guard condition == .gold else { return (texts, nil) }
        let g = Int(rng.next() % UInt64(texts.count + 1))
        texts.insert(fact.text, at: g)
        return (texts, g)
    }

    /// The memories an evaluation of question q draws (MemoryEvaluator and the soft-token
    /// evaluation draw alike, so one seed gives both the same memories): the gold fact, k-1
    /// distractors, and "on", the distractors with the gold fact inserted at a random position.
    func evaluationMemories(for q: FactQuestion, rng: inout RNG) -> (fact: TuningFact, distractors: [String], on: [String], gold: Int) {
        let fact = corpus.fact(of: q)
        let distractors = self.distractors(excluding: fact, count: options.k - 1, rng: &rng)
        var on = distractors
        let g = Int(rng.next() % UInt64(on.count + 1))
        on.insert(fact.text, at: g)
        return (fact, distractors, on, g)
    }

    /// count distinct distractor texts, none about the same entity and relation as `fact`; a
    /// share hardDistractorFraction of them (when there are such facts) about the same entity
    /// or the same relation.
    public func distractors(excluding fact: TuningFact, count: Int, rng: inout RNG) -> [String] {
        var picked = Set<Int>(), out: [String] = []
        var tries = 0
        let hard = options.hardDistractorFraction
        while out.count < count && tries < count * 50 {
            tries += 1
            var from = distractorPool
            if hard > 0, rng.nextDouble() < hard {
                let sameEntity = rng.next() % 2 == 0
                from = (sameEntity ? poolByEntity[fact.entity] : poolByRelation[fact.relation]) ?? distractorPool
                if from.count < 2 { from = distractorPool }
            }
            let i = from[Int(rng.next() % UInt64(from.count))]
            let f = corpus.facts[i]
            if picked.contains(i) || f.id == fact.id || (f.entity == fact.entity && f.relation == fact.relation) { continue }
            picked.insert(i)
            out.append(f.text)
        }
        return out
    }

    /// What the model should answer: the fact's value when memory holds it or the model was
    /// taught it (train_known), else the unknown answer.
    public func target(for q: FactQuestion, condition: CurriculumCondition) -> String {
        condition == .gold || q.split == "train_known" ? q.answer : options.unknownAnswer
    }

    /// Tokens of the prompt followed by " answer</a>"; answerStart is where the answer begins.
    public func make(memories: [String], goldPosition: Int?, question: String, answer: String, condition: CurriculumCondition) -> MemoryExample {
        let prompt = tokenizer.encode(MemoryPrompt.render(memories: memories, question: question))
        let ans = tokenizer.encode(" " + answer + MemoryPrompt.answerEnd)
        return MemoryExample(tokens: prompt + ans, answerStart: prompt.count, condition: condition, goldPosition: goldPosition,
                             memories: memories)
    }

    /// example made to fit in `length` tokens: non-gold memories are dropped from the end first;
    /// if the question and answer alone are longer, the tokens are cut from the left.
    public func fitted(_ e: MemoryExample, question: String, answer: String, length: Int) -> MemoryExample {
        var e = e
        while e.tokens.count > length, e.memories.count > (e.goldPosition == nil ? 0 : 1) {
            var m = e.memories
            let drop = (m.indices.reversed()).first { $0 != e.goldPosition } ?? m.count - 1
            m.remove(at: drop)
            e = make(memories: m, goldPosition: e.goldPosition, question: question, answer: answer, condition: e.condition)
        }
        if e.tokens.count > length {
            let cut = e.tokens.count - length
            e.tokens.removeFirst(cut)
            e.answerStart = max(1, e.answerStart - cut)
        }
        return e
    }
}

/// Examples packed into a batch of B rows of T positions.
public enum MemoryBatch {
    /// inputs [B, T]: each example's tokens but the last, then pad; targets [B, T]: the next
    /// token where it is an answer token, -1 elsewhere (the prompt, the padding). Examples are
    /// cut from the left to T + 1 tokens.
    public static func pack(_ examples: [MemoryExample], T: Int, pad: Int32,
                            inputs: inout [Int32], targets: inout [Int32], promptLoss: Bool = false) {
        let B = examples.count
        inputs = [Int32](repeating: pad, count: B * T)
        targets = [Int32](repeating: -1, count: B * T)
        for (b, ex) in examples.enumerated() {
            let cut = max(0, ex.tokens.count - (T + 1))
            let toks = ex.tokens[cut...]
            let start = max(1, ex.answerStart - cut)
            for (t, tok) in toks.dropLast().enumerated() { inputs[b * T + t] = tok }
            // position t predicts token t+1, which counts when it is part of an answer (or always,
            // with promptLoss)
            if promptLoss {
                for t in 0..<(toks.count - 1) { targets[b * T + t] = toks[toks.startIndex + t + 1] }
                continue
            }
            if ex.answerSpans.isEmpty {
                for t in stride(from: start - 1, to: toks.count - 1, by: 1) { targets[b * T + t] = toks[toks.startIndex + t + 1] }
            }
            for span in ex.answerSpans {
                let lo = max(1, span.lowerBound - cut), hi = min(toks.count, span.upperBound - cut)
                for t in stride(from: lo - 1, to: hi - 1, by: 1) { targets[b * T + t] = toks[toks.startIndex + t + 1] }
            }
        }
    }
}

/// The teacher side of distilled examples (MemoryExample.distillFrom): their no-memory token
/// sequences packed into [rows, T] inputs, and which position of that batch predicts each
/// distilled answer token of the student batch (MemoryBatch.pack's layout, at T studentT).
public struct DistillBatch {
    public var inputs: [Int32]
    /// the teacher rows' next tokens at the paired positions, -1 elsewhere
    public var targets: [Int32]
    /// (student position b·studentT + t, teacher position r·T + t') predicting the same answer token
    public var pairs: [(student: Int, teacher: Int)]
    public let rows: Int, T: Int

    /// nil when no example is distilled. rows: the teacher batch's rows (fixed, so the teacher's
    /// buffers are kept; more when more examples are distilled); T: its positions per row. Both sides
    /// are cut from the left as MemoryBatch.pack cuts (to T + 1 tokens); answer token i of an
    /// example is paired when both sides still hold it.
    public static func make(_ examples: [MemoryExample], studentT: Int, rows: Int, T: Int, pad: Int32) -> DistillBatch? {
        let distilled = examples.indices.filter { examples[$0].distillFrom != nil }
        guard !distilled.isEmpty else { return nil }
        let rows = max(rows, distilled.count)
        var out = DistillBatch(inputs: [Int32](repeating: pad, count: rows * T), targets: [Int32](repeating: -1, count: rows * T),
                               pairs: [], rows: rows, T: T)
        for (r, b) in distilled.enumerated() {
            let ex = examples[b]
            guard let teacher = ex.distillFrom else { continue }
            let n = ex.tokens.count - ex.answerStart   // answer tokens (and </a>)
            let s = Array(ex.tokens.suffix(studentT + 1)), t = Array(teacher.suffix(T + 1))
            for (i, tok) in t.dropLast().enumerated() { out.inputs[r * T + i] = tok }
            // answer token i (of n) is the last n − i'th token; the position before it predicts it
            for i in 0..<n {
                let fromEnd = n - i
                let sp = s.count - fromEnd - 1, tp = t.count - fromEnd - 1
                guard sp >= 0, tp >= 0 else { continue }
                out.targets[r * T + tp] = t[tp + 1]
                out.pairs.append((b * studentT + sp, r * T + tp))
            }
        }
        return out
    }
}

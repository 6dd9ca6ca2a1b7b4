// EpisodicSoftCurriculum: Stage 2 examples whose memories reach the model only as the episodic
// tier's soft tokens (Memory/EpisodicSoftTokens.swift), never as text. MemoryPrompt's layout with
// each memory's text replaced by K placeholders:
//
//     <mem>▢▢</mem><mem>▢▢</mem><q>question<a> answer</a>        (K = 2; ▢ = soft token)
//
// A placeholder is the `<mem>` token id, so nothing reads it as text: its embedding row is
// replaced (InjectedEmbeddings) and a copy head sees no memory tokens in the span.
// A reconstruction example asks for the memory's text back instead of an answer, loss on the
// text: <mem>▢▢</mem><mem>the fact's text</mem> (every token of the fact must come through the
// soft tokens, not only the few of an answer).

/// A curriculum example with soft memories: the tokens (placeholders included), the memory
/// texts to encode, and where each memory's K placeholders start.
public struct SoftMemoryExample: Sendable, Equatable {
    public var example: MemoryExample
    /// the memories, in prompt order
    public var texts: [String]
    /// per memory, the index in example.tokens of its first placeholder (K in a row)
    public var slots: [Int]
}

extension MemoryCurriculum {
    /// The layout above for memories and one question; only the answer (and </a>) carry loss.
    public func softExample(memories: [String], goldPosition: Int?, question: String, answer: String,
                            condition: CurriculumCondition, K: Int) -> SoftMemoryExample {
        let open = tokenizer.id(for: MemoryPrompt.memoryOpen) ?? 0, close = tokenizer.id(for: MemoryPrompt.memoryClose) ?? 0
        var tokens: [Int32] = [], slots: [Int] = []
        for _ in memories {
            tokens.append(open)
            slots.append(tokens.count)
            tokens += [Int32](repeating: open, count: K)
            tokens.append(close)
        }
        tokens += tokenizer.encode(MemoryPrompt.render(memories: [], question: question))
        let start = tokens.count
        tokens += tokenizer.encode(" " + answer + MemoryPrompt.answerEnd)
        return SoftMemoryExample(example: MemoryExample(tokens: tokens, answerStart: start, condition: condition, goldPosition: goldPosition,
                                                        memories: memories),
                                 texts: memories, slots: slots)
    }

    /// A reconstruction example for a fact text (see the header); loss on the text and </mem>.
    public func softReconstruction(text: String, K: Int) -> SoftMemoryExample {
        let open = tokenizer.id(for: MemoryPrompt.memoryOpen) ?? 0, close = tokenizer.id(for: MemoryPrompt.memoryClose) ?? 0
        var tokens: [Int32] = [open] + [Int32](repeating: open, count: K) + [close, open]
        let start = tokens.count
        tokens += tokenizer.encode(text) + [close]
        return SoftMemoryExample(example: MemoryExample(tokens: tokens, answerStart: start, condition: .gold, goldPosition: 0,
                                                        memories: [text]),
                                 texts: [text], slots: [1])
    }

    /// A training question whose memories are soft tokens: the gold fact among distractors
    /// (shares as goldWeight : distractorsOnlyWeight; the none condition has no memory to give
    /// and is not drawn here), at most maxTokens long (distractors dropped to fit).
    public func sampleSoft(_ rng: inout RNG, K: Int, maxTokens: Int = .max) -> SoftMemoryExample {
        let q = trainQuestions[Int(rng.next() % UInt64(trainQuestions.count))]
        let o = options
        let total = o.goldWeight + o.distractorsOnlyWeight
        let condition: CurriculumCondition = total <= 0 || rng.nextDouble() * total < o.goldWeight ? .gold : .distractorsOnly
        var (memories, gold) = self.memories(for: q, condition: condition, rng: &rng)
        let a = target(for: q, condition: condition)
        var e = softExample(memories: memories, goldPosition: gold, question: q.question, answer: a, condition: condition, K: K)
        while e.example.tokens.count > maxTokens, memories.count > (gold == nil ? 0 : 1) {
            let drop = memories.indices.reversed().first { $0 != gold } ?? memories.count - 1
            memories.remove(at: drop)
            if let g = gold, drop < g { gold = g - 1 }
            e = softExample(memories: memories, goldPosition: gold, question: q.question, answer: a, condition: condition, K: K)
        }
        return e
    }
}

// MemoryPrompt: how retrieved memories and a question are laid out in the model's input, the one
// format Stage 2 memory fine-tuning (Train/MemoryTuning/) teaches and evaluation (Eval/) and the
// engine use when they ask:
//
//     <mem>fact one</mem><mem>fact two</mem><q>question<a> answer</a>
//
// The five markers are added tokens of the tokenizer (special: never split, never produced by
// BPE from plain text). A model that has not been memory-tuned has none of them; `plain` lays the
// same content out as ordinary text for such a model.

public enum MemoryPrompt {
    public static let memoryOpen = "<mem>"
    public static let memoryClose = "</mem>"
    public static let question = "<q>"
    public static let answer = "<a>"
    public static let answerEnd = "</a>"

    /// Every marker, in the order Stage 2 appends them to a tokenizer.
    public static let markers = [memoryOpen, memoryClose, question, answer, answerEnd]

    /// What stands in each marker's place in `plain`'s layout. Stage 2 starts a new marker's
    /// embedding and LM-head row from the mean of these tokens' rows (MemoryTokens), so a model
    /// that learnt to read the plain layout in pre-training reads the marked one from the start.
    public static let plainCounterparts: [String: String] = [
        memoryOpen: "Fact:", memoryClose: "\n", question: "Question:", answer: "\nAnswer:", answerEnd: "\n",
    ]

    /// The prompt up to and including the answer marker; the answer follows it, then `answerEnd`.
    public static func render(memories: [String], question q: String) -> String {
        layout(memories: memories, question: q, marked: true).string
    }

    /// The same content as plain text, for a tokenizer without the markers.
    public static func plain(memories: [String], question q: String) -> String {
        layout(memories: memories, question: q, marked: false).string
    }

    /// Both layouts with their parts marked: the markers (or the plain layout's words) are
    /// markup, the memories and the question literal text (PromptText).
    static func layout(memories: [String], question q: String, marked: Bool) -> PromptText {
        var p = PromptText()
        for m in memories {
            p.markup(marked ? memoryOpen : "Fact: ")
            p.literal(m)
            p.markup(marked ? memoryClose : "\n")
        }
        p.markup(marked ? question : "Question: ")
        p.literal(q)
        p.markup(marked ? answer : "\nAnswer:")
        return p
    }

    /// A whole document in the plain layout: the memories, then each question with its answer
    /// (" answer" after "Answer:", as the harness scores it), one per line.
    public static func plainDocument(memories: [String], questionsAndAnswers qa: [(question: String, answer: String)]) -> String {
        var s = ""
        for m in memories { s += "Fact: " + m + "\n" }
        return s + qa.map { "Question: " + $0.question + "\nAnswer: " + $0.answer }.joined(separator: "\n")
    }

    /// Whether a tokenizer carries all five markers as single tokens.
    public static func isSupported(by tokenizer: Tokenizer) -> Bool {
        markers.allSatisfy { tokenizer.id(for: $0) != nil }
    }

    /// `render` when the tokenizer knows the markers, else `plain`.
    public static func format(memories: [String], question q: String, tokenizer: Tokenizer) -> String {
        prompt(memories: memories, question: q, tokenizer: tokenizer).string
    }

    /// `format` with its parts marked: the layout is markup, the memories and the question are
    /// literal text (PromptText), so an entry or a query holding "</mem>", "<a>" or
    /// "<|endoftext|>" is read as those characters and cannot forge the prompt's structure.
    /// The bytes are `format`'s.
    public static func prompt(memories: [String], question q: String, tokenizer: Tokenizer) -> PromptText {
        layout(memories: memories, question: q, marked: isSupported(by: tokenizer))
    }
}

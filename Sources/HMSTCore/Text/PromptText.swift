// PromptText: a prompt built from two kinds of text. Markup (a chat template's role markers,
// MemoryPrompt's <mem> ... <a>) is tokenized as usual: a special token written in it is that
// token. Literal text (what a user typed, a stored memory entry) is only characters: an
// "<|endoftext|>" or "</mem>" inside it is encoded byte by byte, so content cannot end the text,
// open a role or forge a memory. HF tokenizers give the same choice per call
// (split_special_tokens); tiktoken refuses special text unless allowed. Pieces are joined
// before the BPE runs, so "User: " + "hi" tokenizes exactly as "User: hi" does.

public struct PromptText: Sendable, Equatable {
    public private(set) var bytes: [UInt8] = []
    /// byte ranges of literal text, ascending and disjoint
    public private(set) var literalRanges: [Range<Int>] = []

    public init() {}

    /// Markup: special tokens in it are recognised.
    public init(markup s: String) { markup(s) }

    /// Literal text only (a query or a memory entry to embed).
    public init(literal s: String) { literal(s) }

    public mutating func markup(_ s: String) { bytes += s.utf8 }

    /// Literal text: special tokens in it are plain characters.
    public mutating func literal(_ s: String) {
        guard !s.isEmpty else { return }
        let start = bytes.count
        bytes += s.utf8
        if let last = literalRanges.last, last.upperBound == start {
            literalRanges[literalRanges.count - 1] = last.lowerBound ..< bytes.count
        } else {
            literalRanges.append(start ..< bytes.count)
        }
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }
}

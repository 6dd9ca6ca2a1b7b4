// TriggeredConstraint: free text until a trigger, then a grammar (llama.cpp's lazy grammars).
// Under tool_choice auto a model may answer in prose or call a tool; once its reply starts a
// call (`<tool_call>`, `[TOOL_CALLS]`, a Llama 3 JSON call), the grammar of the tools' calls
// holds the text from the trigger's first byte on, so a call that starts is a call that parses,
// with arguments that follow the tool's schema.
//
// Before a trigger the mask changes nothing. The reply is watched as bytes (special tokens by
// their text, as the reply shows them). At a trigger the grammar is fed the text from the
// trigger's first byte; if it refuses those bytes (the token that brought the trigger went on
// with something no call allows), the rest of the reply stays free, as if no trigger had come,
// and the reply is parsed as written. A reasoning block (`<think>` ... `</think>`, at the start
// of the reply or left open by the prompt) never triggers: a model may mention a call while
// it thinks. Opening triggers (Llama 3's `<|python_tag|>` and JSON call) count only where the
// reply opens, as its parser reads them.

public struct GrammarTriggers: Sendable, Equatable {
    /// texts that trigger anywhere in the reply (outside a reasoning block)
    public var words: [String] = []
    /// texts that trigger only where the reply opens (after whitespace)
    public var openingWords: [String] = []
    /// a reply that opens (after whitespace) with a JSON object whose first key is this one
    /// triggers at its `{` (Llama 3's calls have no marker)
    public var jsonObjectKey: String? = nil
    /// the prompt leaves a reasoning block open (`<think>` at the end of the generation prompt):
    /// the reply is thought until `</think>`
    public var startsInThought = false

    public init(words: [String] = [], openingWords: [String] = [], jsonObjectKey: String? = nil, startsInThought: Bool = false) {
        self.words = words
        self.openingWords = openingWords
        self.jsonObjectKey = jsonObjectKey
        self.startsInThought = startsInThought
    }
}

extension Grammar {
    /// The constraint that holds generation to this grammar: the whole text, or from a trigger on.
    public func constraint(tokenizer: TextTokenizer) throws -> TokenConstraint {
        triggers == nil ? try GrammarConstraint(grammar: self, tokenizer: tokenizer)
                        : try TriggeredConstraint(grammar: self, tokenizer: tokenizer)
    }

    /// Whether it holds only the text after a trigger (tool calls under tool_choice auto).
    public var isLazy: Bool { triggers != nil }
}

public final class TriggeredConstraint: TokenConstraint {
    private let inner: GrammarConstraint
    private let tokenizer: TextTokenizer
    private var watch: TriggerWatch
    /// the grammar holds the text (a trigger came and its text fit)
    public private(set) var triggered = false
    /// a trigger's text did not fit: free to the end
    private var off = false

    /// The grammar's triggers must be set; the grammar itself (built now, so a grammar too
    /// ambiguous to start is an error before generation) waits for one.
    public init(grammar: Grammar, tokenizer: TextTokenizer) throws {
        guard let t = grammar.triggers else { throw HMSTError.invalidArgument("a triggered constraint needs a grammar with triggers") }
        var g = grammar
        g.triggers = nil
        inner = try GrammarConstraint(grammar: g, tokenizer: tokenizer)
        self.tokenizer = tokenizer
        watch = TriggerWatch(t)
    }

    public func mask(_ logits: UnsafeMutableBufferPointer<Float>, eos: Set<Int32>) -> Bool {
        triggered ? inner.mask(logits, eos: eos) : true
    }

    public func accept(_ id: Int32) {
        if triggered { inner.accept(id); return }
        if off { return }
        guard let piece = try? tokenizer.decode([id]) else { return }
        acceptFree(piece)
    }

    /// Text generated while free (tests feed it directly).
    func acceptFree(_ piece: [UInt8]) {
        guard !triggered, !off else { return }
        guard let at = watch.feed(piece) else { return }
        if inner.acceptBytes(Array(watch.text[at...])) { triggered = true } else { off = true }
        watch.text = []
    }

    public var isComplete: Bool { triggered && inner.isComplete }
    public var canEnd: Bool { !triggered || inner.canEnd }
}

/// Where a lazy grammar's trigger comes in a reply fed piece by piece (TriggeredConstraint, and
/// ToolCallStream, which must read calls from the same byte).
struct TriggerWatch {
    let triggers: GrammarTriggers
    private let words: [[UInt8]], openings: [[UInt8]]
    /// the reply so far (until a trigger)
    var text: [UInt8] = []
    /// where the trigger came, once it has
    private(set) var found: Int?
    private var scanned = 0               // bytes already searched for words
    private var thinking: Bool
    private var contentStart: Int?        // where the text after a reasoning block starts (nil: undecided)
    private var openingDecided = false

    private static let thinkOpen = Array("<think>".utf8), thinkClose = Array("</think>".utf8)

    init(_ t: GrammarTriggers) {
        triggers = t
        words = t.words.map { Array($0.utf8) }.filter { !$0.isEmpty }
        openings = t.openingWords.map { Array($0.utf8) }.filter { !$0.isEmpty }
        thinking = t.startsInThought
    }

    /// Feeds a piece; the trigger's offset in the reply when it comes with this piece.
    mutating func feed(_ piece: [UInt8]) -> Int? {
        guard found == nil else { return nil }
        text += piece
        found = findTrigger()
        return found
    }

    /// Where a trigger starts in the text, if one has come.
    private mutating func findTrigger() -> Int? {
        var best: Int?
        // opening triggers: the reply's first bytes after whitespace (never after a thought)
        if !openingDecided && !(openings.isEmpty && triggers.jsonObjectKey == nil) {
            let first = text.firstIndex { !JSONOpening.isSpace($0) }
            if let first {
                var undecided = false
                for w in openings {
                    let t = text[first...]
                    if t.starts(with: w) { best = first } else if w.starts(with: t) { undecided = true }
                }
                if let key = triggers.jsonObjectKey {
                    switch JSONOpening.match(text[first...], parts: ["{", "\"\(key)\""]) {
                    case .undecided: undecided = true
                    case .no: break
                    case .at: best = first
                    }
                }
                openingDecided = best != nil || !undecided
            }
        }
        if let best { return best }
        if words.isEmpty { return nil }
        if thinking {
            let from = max(0, scanned - Self.thinkClose.count + 1)
            scanned = text.count
            guard let e = TextGeneration.find(Self.thinkClose, in: text, from: from) else { return nil }
            thinking = false
            contentStart = e + Self.thinkClose.count
            scanned = contentStart!
        }
        if contentStart == nil {
            // a reply that opens with <think> thinks first; anything else is content from byte 0
            let t = text.drop(while: JSONOpening.isSpace)
            if Self.thinkOpen.starts(with: t) && t.count < Self.thinkOpen.count { return nil }
            if t.starts(with: Self.thinkOpen) {
                thinking = true
                scanned = t.startIndex + Self.thinkOpen.count
                return findTrigger()
            }
            contentStart = 0
        }
        let start = contentStart!
        for w in words {
            let from = max(start, scanned - w.count + 1)
            if let i = TextGeneration.find(w, in: text, from: from), i < (best ?? .max) { best = i }
        }
        scanned = text.count
        return best
    }
}

/// Whether bytes open with given JSON tokens, whitespace allowed before each: `{ "response" : "`.
enum JSONOpening {
    enum Match: Equatable { case undecided, no, at(Int) }

    /// .at(index after the last part) when t opens with the parts; .undecided while it may still.
    static func match(_ t: ArraySlice<UInt8>, parts: [String]) -> Match {
        var i = t.startIndex
        for part in parts {
            while i < t.endIndex, isSpace(t[i]) { i += 1 }
            let p = Array(part.utf8)
            let n = min(p.count, t.endIndex - i)
            guard t[i..<(i + n)].elementsEqual(p[0..<n]) else { return .no }
            if n < p.count { return .undecided }
            i += n
        }
        return .at(i)
    }

    /// JSON whitespace.
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x09 || b == 0x0D }
}

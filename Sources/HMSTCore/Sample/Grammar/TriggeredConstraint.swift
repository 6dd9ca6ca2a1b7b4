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
// it thinks.

public struct GrammarTriggers: Sendable, Equatable {
    /// texts that trigger anywhere in the reply (outside a reasoning block)
    public var words: [String] = []
    /// a reply that opens (after whitespace, or after its reasoning block) with a JSON object
    /// whose first key is this one triggers at its `{` (Llama 3's calls have no marker)
    public var jsonObjectKey: String? = nil
    /// the prompt leaves a reasoning block open (`<think>` at the end of the generation prompt):
    /// the reply is thought until `</think>`
    public var startsInThought = false

    public init(words: [String] = [], jsonObjectKey: String? = nil, startsInThought: Bool = false) {
        self.words = words
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
    private let triggers: GrammarTriggers
    private let tokenizer: TextTokenizer
    private let words: [[UInt8]]
    /// the grammar holds the text (a trigger came and its text fit)
    public private(set) var triggered = false
    /// a trigger's text did not fit: free to the end
    private var off = false
    private var text: [UInt8] = []
    private var scanned = 0               // bytes already searched
    private var thinking: Bool
    private var contentStart: Int?        // where the text after a reasoning block starts (nil: undecided)
    private var jsonDecided = false

    private static let thinkOpen = Array("<think>".utf8), thinkClose = Array("</think>".utf8)

    /// The grammar's triggers must be set; the grammar itself (built now, so a grammar too
    /// ambiguous to start is an error before generation) waits for one.
    public init(grammar: Grammar, tokenizer: TextTokenizer) throws {
        guard let t = grammar.triggers else { throw HMSTError.invalidArgument("a triggered constraint needs a grammar with triggers") }
        var g = grammar
        g.triggers = nil
        inner = try GrammarConstraint(grammar: g, tokenizer: tokenizer)
        triggers = t
        self.tokenizer = tokenizer
        words = t.words.map { Array($0.utf8) }.filter { !$0.isEmpty }
        thinking = t.startsInThought
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
        text += piece
        guard let at = findTrigger() else { return }
        if inner.acceptBytes(Array(text[at...])) { triggered = true } else { off = true }
        text = []
    }

    public var isComplete: Bool { triggered && inner.isComplete }
    public var canEnd: Bool { !triggered || inner.canEnd }

    /// Where a trigger starts in the text, if one has come.
    private func findTrigger() -> Int? {
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
        var best: Int?
        for w in words {
            let from = max(start, scanned - w.count + 1)
            if let i = TextGeneration.find(w, in: text, from: from), i < (best ?? .max) { best = i }
        }
        scanned = text.count
        if let key = triggers.jsonObjectKey, !jsonDecided {
            switch JSONOpening.match(text[start...], parts: ["{", "\"\(key)\""]) {
            case .undecided: break
            case .no: jsonDecided = true
            case .at:
                jsonDecided = true
                let brace = text[start...].firstIndex { !JSONOpening.isSpace($0) } ?? start
                if brace < (best ?? .max) { best = brace }
            }
        }
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

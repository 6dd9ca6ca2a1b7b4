// JSONConstraint: generation that can only produce one JSON object (OpenAI's response_format
// {"type": "json_object"}, llama.cpp's JSON grammar). Before each token every token whose bytes
// would not extend the text to a prefix of a JSON object (RFC 8259, an object at the top) is
// masked out (its logit -inf), and the end-of-text token until the object is closed; once it
// is, generation stops. Whitespace between tokens is allowed, as JSON allows it, but at most
// `maxWhitespaceRun` bytes in a row (plus 4 per open container), so a model cannot pad forever.
// Special tokens (a chat template's end of turn, which decodes to its text) are never allowed.
// JSONPrefix is the byte-level recognizer; a token is checked by feeding its bytes to a copy of
// the state.
//
// Cost: one pass over the vocabulary per generated token: a token whose first byte cannot come
// next is out at once, inside a string a token of plain string content is in at once, the rest
// go through a copy of the state. The vocabulary is decoded once per tokenizer (VocabularyIndex).

/// The state of a recognizer of JSON text that must be one object, fed byte by byte.
public struct JSONPrefix: Sendable, Equatable {
    enum Container: UInt8, Sendable { case object, array }
    enum State: Equatable, Sendable {
        case start              // before the top-level '{'
        case keyOrEnd           // after '{': a key or '}'
        case key                // after ',' in an object: a key
        case colon              // after a key
        case value              // after ':' or ',' in an array: a value
        case valueOrEnd         // after '[': a value or ']'
        case afterValue         // after a value: ',' or the closing bracket
        // escape: 0 none, 1 after '\', 2...5 hex digits left + 1; utf8: continuation bytes
        // still due for a character, the next one in lo...hi (RFC 3629's table)
        case string(key: Bool, escape: UInt8, utf8: UInt8, lo: UInt8, hi: UInt8)
        case number(NumberPart)
        case literal(rest: [UInt8])
        case done
    }
    enum NumberPart: UInt8, Sendable { case sign, zero, int, dot, frac, exp, expSign, expInt }

    var stack: [Container] = []
    var state: State = .start
    var whitespaceRun = 0
    /// Whitespace bytes in a row: 16, plus 4 per open container (4-space indentation at any depth).
    static let maxWhitespaceRun = 16
    var whitespaceLimit: Int { JSONPrefix.maxWhitespaceRun + 4 * stack.count }

    public init() {}

    /// Whether the top-level object is complete.
    public var isComplete: Bool { state == .done }

    /// Takes one byte; false (and the state unchanged in meaning) when no JSON object text can continue so.
    public mutating func feed(_ b: UInt8) -> Bool {
        let ws = b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09
        switch state {
        case .string(let isKey, let escape, let utf8, let lo, let hi):
            return feedString(b, key: isKey, escape: escape, utf8: utf8, lo: lo, hi: hi)
        case .number(let part):
            if let next = JSONPrefix.numberStep(part, b) { state = .number(next); return true }
            // the number ends here: it must be able to end, then the byte is read after it
            guard part == .zero || part == .int || part == .frac || part == .expInt else { return false }
            state = .afterValue
            return feed(b)
        case .literal(let rest):
            guard let first = rest.first, b == first else { return false }
            state = rest.count == 1 ? .afterValue : .literal(rest: Array(rest.dropFirst()))
            return true
        default:
            break
        }
        if ws {
            guard state != .done, whitespaceRun < whitespaceLimit else { return false }
            whitespaceRun += 1
            return true
        }
        whitespaceRun = 0
        switch state {
        case .start:
            guard b == UInt8(ascii: "{") else { return false }
            stack.append(.object)
            state = .keyOrEnd
        case .keyOrEnd, .key:
            if b == UInt8(ascii: "\"") { state = .string(key: true, escape: 0, utf8: 0, lo: 0, hi: 0) }
            else if b == UInt8(ascii: "}") && state == .keyOrEnd { close() }
            else { return false }
        case .colon:
            guard b == UInt8(ascii: ":") else { return false }
            state = .value
        case .value, .valueOrEnd:
            if b == UInt8(ascii: "]") && state == .valueOrEnd { close(); return true }
            return startValue(b)
        case .afterValue:
            guard let top = stack.last else { return false }
            if b == UInt8(ascii: ",") { state = top == .object ? .key : .value }
            else if b == UInt8(ascii: "}") && top == .object { close() }
            else if b == UInt8(ascii: "]") && top == .array { close() }
            else { return false }
        case .done, .string, .number, .literal:
            return false
        }
        return true
    }

    /// Takes every byte of `bytes`; false when one is refused (the state is then unspecified).
    public mutating func feed<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        for b in bytes where !feed(b) { return false }
        return true
    }

    private mutating func close() {
        stack.removeLast()
        state = stack.isEmpty ? .done : .afterValue
    }

    private mutating func startValue(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "{"): stack.append(.object); state = .keyOrEnd
        case UInt8(ascii: "["): stack.append(.array); state = .valueOrEnd
        case UInt8(ascii: "\""): state = .string(key: false, escape: 0, utf8: 0, lo: 0, hi: 0)
        case UInt8(ascii: "-"): state = .number(.sign)
        case UInt8(ascii: "0"): state = .number(.zero)
        case UInt8(ascii: "1")...UInt8(ascii: "9"): state = .number(.int)
        case UInt8(ascii: "t"): state = .literal(rest: Array("rue".utf8))
        case UInt8(ascii: "f"): state = .literal(rest: Array("alse".utf8))
        case UInt8(ascii: "n"): state = .literal(rest: Array("ull".utf8))
        default: return false
        }
        return true
    }

    private mutating func feedString(_ b: UInt8, key: Bool, escape: UInt8, utf8: UInt8, lo: UInt8, hi: UInt8) -> Bool {
        if utf8 > 0 {   // inside a multi-byte character: only its continuation
            guard b >= lo && b <= hi else { return false }
            state = .string(key: key, escape: 0, utf8: utf8 - 1, lo: 0x80, hi: 0xBF)
            return true
        }
        switch escape {
        case 0:
            if b == UInt8(ascii: "\"") { state = key ? .colon : .afterValue; return true }
            if b == UInt8(ascii: "\\") { state = .string(key: key, escape: 1, utf8: 0, lo: 0, hi: 0); return true }
            if b < 0x20 { return false }   // control characters must be escaped
            if b < 0x80 { return true }
            // a UTF-8 lead byte and the range of the byte after it (no overlongs, surrogates or > U+10FFFF)
            let (n, l, h): (UInt8, UInt8, UInt8)
            switch b {
            case 0xC2...0xDF: (n, l, h) = (1, 0x80, 0xBF)
            case 0xE0: (n, l, h) = (2, 0xA0, 0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (n, l, h) = (2, 0x80, 0xBF)
            case 0xED: (n, l, h) = (2, 0x80, 0x9F)
            case 0xF0: (n, l, h) = (3, 0x90, 0xBF)
            case 0xF1...0xF3: (n, l, h) = (3, 0x80, 0xBF)
            case 0xF4: (n, l, h) = (3, 0x80, 0x8F)
            default: return false
            }
            state = .string(key: key, escape: 0, utf8: n, lo: l, hi: h)
            return true
        case 1:
            if b == UInt8(ascii: "u") { state = .string(key: key, escape: 5, utf8: 0, lo: 0, hi: 0); return true }
            guard Array("\"\\/bfnrt".utf8).contains(b) else { return false }
            state = .string(key: key, escape: 0, utf8: 0, lo: 0, hi: 0)
            return true
        default:   // hex digits of \uXXXX: escape - 1 left
            let hex = (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x66)
            guard hex else { return false }
            state = .string(key: key, escape: escape == 2 ? 0 : escape - 1, utf8: 0, lo: 0, hi: 0)
            return true
        }
    }

    /// The next part of a number after byte b, or nil when b does not continue it.
    static func numberStep(_ part: NumberPart, _ b: UInt8) -> NumberPart? {
        let digit = b >= 0x30 && b <= 0x39
        switch part {
        case .sign: return b == 0x30 ? .zero : digit ? .int : nil
        case .zero: return b == UInt8(ascii: ".") ? .dot : (b | 0x20 == UInt8(ascii: "e") ? .exp : nil)
        case .int: return digit ? .int : b == UInt8(ascii: ".") ? .dot : (b | 0x20 == UInt8(ascii: "e") ? .exp : nil)
        case .dot: return digit ? .frac : nil
        case .frac: return digit ? .frac : (b | 0x20 == UInt8(ascii: "e") ? .exp : nil)
        case .exp: return digit ? .expInt : (b == UInt8(ascii: "+") || b == UInt8(ascii: "-")) ? .expSign : nil
        case .expSign, .expInt: return digit ? .expInt : nil
        }
    }
}

/// What Session.generate asks of a constraint on the tokens it samples.
public protocol TokenConstraint: AnyObject {
    /// Sets to -inf the logits (ids 0..<count) of tokens that may not come next; `eos` are the
    /// end-of-text ids generation stops at. False when none may (generation then stops).
    func mask(_ logits: UnsafeMutableBufferPointer<Float>, eos: Set<Int32>) -> Bool
    /// The token sampled (not an end-of-text one).
    func accept(_ id: Int32)
    /// Whether the text is complete: generation stops.
    var isComplete: Bool { get }
    /// Whether the text so far may end here (a whole sentence, though more could follow): when
    /// no token is allowed and no end-of-text token can be sampled, generation stops as at eos.
    var canEnd: Bool { get }
}

/// Generation of one JSON object (see the header).
public final class JSONConstraint: TokenConstraint {
    private var state = JSONPrefix()
    /// the tokenizer's decoded vocabulary, shared with GrammarConstraint (special tokens and
    /// tokens of no bytes are not in it: never allowed)
    private let vocab: VocabularyIndex
    /// a token the mask refused was accepted (a caller's bug): generation stops
    private var broken = false

    /// Tokens whose bytes are string content on their own (no quote, backslash or control
    /// character, whole UTF-8 characters): inside a string, between characters, they fit as they are.
    private let plain: [Bool]

    /// Over the tokenizer's vocabulary, decoded at the first constraint over this tokenizer object.
    public init(tokenizer: TextTokenizer) {
        vocab = VocabularyIndex.shared(for: tokenizer)
        plain = vocab.jsonPlain()
    }

    /// Complete (generation stops, eos); a broken constraint is not: its next mask allows nothing.
    public var isComplete: Bool { state.isComplete && !broken }
    public var canEnd: Bool { isComplete }

    public func mask(_ logits: UnsafeMutableBufferPointer<Float>, eos: Set<Int32>) -> Bool {
        if broken {
            for i in 0..<logits.count { logits[i] = -.infinity }
            return false
        }
        var any = false
        // between characters of a string, plain tokens fit without a check; elsewhere a token
        // whose first byte cannot come next is out without feeding the rest
        let betweenCharacters: Bool
        if case .string(_, 0, 0, _, _) = state.state { betweenCharacters = true } else { betweenCharacters = false }
        var firstOK = [Bool](repeating: false, count: 256)
        for b in 0..<256 {
            var s = state
            firstOK[b] = s.feed(UInt8(b))
        }
        for i in 0..<logits.count {
            let id = Int32(i)
            if eos.contains(id) { continue }
            var ok = false
            if logits[i] > -.infinity, let piece = vocab.piece(id), let first = piece.first, firstOK[Int(first)] {   // a banned token stays banned
                if betweenCharacters && plain[i] {
                    ok = true
                } else {
                    var s = state
                    ok = s.feed(piece)
                }
            }
            if ok { any = true } else { logits[i] = -.infinity }
        }
        // end of text only where the object is closed; where no token can go on, false (the
        // object is left open: stop reason noContinuation)
        if !state.isComplete {
            for id in eos where Int(id) < logits.count { logits[Int(id)] = -.infinity }
            return any
        }
        return any || eos.contains { Int($0) < logits.count && logits[Int($0)] > -.infinity }
    }

    /// Feeds bytes that no token carried (tests drive the state through a document with it).
    func acceptBytes(_ bytes: [UInt8]) {
        if !state.feed(bytes) { broken = true }
    }

    public func accept(_ id: Int32) {
        guard let piece = vocab.piece(id), state.feed(piece) else { broken = true; return }
    }
}

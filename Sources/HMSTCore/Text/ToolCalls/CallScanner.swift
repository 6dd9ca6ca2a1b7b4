// CallScanner: the calls of a streamed reply as they are written, for OpenAI's streamed
// delta.tool_calls (a call's id and name first, then its arguments' JSON text piece by piece).
// Used where a grammar holds the calls (tool_choice required or named, the generic format, and
// auto once a call starts), so the JSON is well formed and its members come in the schema's
// order (name, then arguments); a reply cut short leaves its last call open.
//
// The scanner reads JSON brackets and strings from where ToolCallStream starts holding the reply
// (after Mistral's [TOOL_CALLS] marker). A call is an object opened `callDepth` containers deep:
// 0 for a bare call (Hermes after each <tool_call>, Llama 3, a required call in `other`), 1 in
// Mistral's list, 2 in the generic format's {"tool_calls": [...]}. Its "name" string is taken
// when complete; its "arguments" (or "parameters") value is passed on byte by byte as written,
// so the pieces of a call join into its arguments' JSON text.

/// A piece of a streamed call, as OpenAI's delta.tool_calls[i]: a call's first piece carries its
/// id and name (and arguments ""), the next ones pieces of its arguments.
public struct ToolCallDelta: Sendable, Equatable {
    public var index: Int
    public var id: String?
    public var name: String?
    public var arguments: String

    public init(index: Int, id: String?, name: String?, arguments: String) {
        self.index = index
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    public var json: JSONValue {
        var o: [(String, JSONValue)] = [("index", .number(Double(index)))]
        if let id { o += [("id", .string(id)), ("type", .string("function"))] }
        var f: [(String, JSONValue)] = []
        if let name { f.append(("name", .string(name))) }
        f.append(("arguments", .string(arguments)))
        o.append(("function", .object(f)))
        return .object(o)
    }
}

struct CallScanner {
    struct Call {
        var id: String
        var name: String?
        var arguments: [UInt8] = []
        var sent = 0              // argument bytes already in deltas
        var index: Int?           // its index in the deltas, once its id/name piece is out
        var complete = false
    }

    let callDepth: Int
    private(set) var calls: [Call] = []
    private var depth = 0
    private var inString = false, escaped = false
    private var collecting: Collecting = .none
    private var text: [UInt8] = []
    private enum Collecting { case none, key, name }
    private enum Member { case key, colon, value, after }
    private var member = Member.key
    private var memberKey = ""
    private var inArguments = false
    private let newID: () -> String

    init(callDepth: Int, newID: @escaping () -> String) {
        self.callDepth = callDepth
        self.newID = newID
    }

    /// A call is open (begun, not closed: the reply was cut short inside it).
    var callOpen: Bool { calls.last.map { !$0.complete } ?? false }
    /// Calls whose id and name went out.
    private(set) var announced = 0
    /// A call named a function that is not among the tools: nothing more goes out.
    private(set) var rejected = false

    private var atCallLevel: Bool { depth == callDepth + 1 && callOpen }

    mutating func feed<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes { step(b) }
    }

    private mutating func step(_ b: UInt8) {
        if atCallLevel && member == .value && !inArguments && !JSONOpening.isSpace(b) {
            // a member's value begins
            // arguments are passed on when they are an object (what a grammar writes), array or string
            if memberKey == "arguments" || memberKey == "parameters" { inArguments = "{[\"".utf8.contains(b) }
            else if memberKey == "name" && b == UInt8(ascii: "\"") { collecting = .name }
            member = .after
            if b == UInt8(ascii: "\"") {
                inString = true
                text = []
                if inArguments { calls[calls.count - 1].arguments.append(b) }
                return
            }
        }
        if inArguments { calls[calls.count - 1].arguments.append(b) }
        if inString {
            if escaped { escaped = false; text.append(b); return }
            if b == UInt8(ascii: "\\") { escaped = true; text.append(b); return }
            guard b == UInt8(ascii: "\"") else { text.append(b); return }
            inString = false
            let value = String(decoding: ToolCallStream.decodedPrefix(text[...]), as: UTF8.self)
            switch collecting {
            case .key: memberKey = value; member = .colon
            case .name: calls[calls.count - 1].name = value
            case .none: break
            }
            collecting = .none
            if inArguments && depth == callDepth + 1 { inArguments = false }   // a string argument value ended
            return
        }
        switch b {
        case UInt8(ascii: "\""):
            inString = true
            text = []
            if atCallLevel && !inArguments && member == .key { collecting = .key }
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            if depth == callDepth && b == UInt8(ascii: "{") && !callOpen {
                calls.append(Call(id: newID()))
                member = .key
                memberKey = ""
            }
            depth += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
            depth = max(0, depth - 1)
            if inArguments && depth == callDepth + 1 { inArguments = false }
            if callOpen && depth == callDepth { calls[calls.count - 1].complete = true }
        case UInt8(ascii: ":"):
            if atCallLevel && member == .colon { member = .value }
        case UInt8(ascii: ","):
            if atCallLevel && !inArguments { member = .key }
        default:
            break
        }
    }

    /// The pieces not yet taken: a call's id and name once its name is whole, then its
    /// arguments up to the last complete UTF-8 character (all of them with `flush`). A call
    /// of a function not in `names` stops the stream of calls (the reply is then parsed whole).
    mutating func takeDeltas(names: Set<String>, flush: Bool = false) -> [ToolCallDelta] {
        var out: [ToolCallDelta] = []
        for i in calls.indices where !rejected {
            guard let name = calls[i].name else { continue }
            if calls[i].index == nil {
                guard names.contains(name) else { rejected = true; break }
                calls[i].index = announced
                announced += 1
                out.append(ToolCallDelta(index: calls[i].index!, id: calls[i].id, name: name, arguments: ""))
            }
            guard let index = calls[i].index else { continue }
            let args = calls[i].arguments
            let end = flush || calls[i].complete ? args.count : Self.wholeCharacters(args, from: calls[i].sent)
            if end > calls[i].sent {
                out.append(ToolCallDelta(index: index, id: nil, name: nil, arguments: String(decoding: args[calls[i].sent..<end], as: UTF8.self)))
                calls[i].sent = end
            }
        }
        return out
    }

    /// The end of a's last complete UTF-8 character (a trailing character still missing bytes
    /// is left for the next piece).
    static func wholeCharacters(_ a: [UInt8], from: Int) -> Int {
        var k = a.count, continuation = 0
        while k > from, continuation < 3, a[k - 1] & 0xC0 == 0x80 { k -= 1; continuation += 1 }
        guard k > from else { return a.count }
        let lead = a[k - 1]
        let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
        return need > continuation + 1 ? k - 1 : a.count
    }
}

// JinjaValue: the values a chat template computes with, printed, compared and tested the way
// jinja2 (Python) does, because chat templates are written against it (Hugging Face
// transformers renders them with jinja2's sandbox; llama.cpp's --jinja mode imitates it).
// Strings remember which of their characters came from the caller's data (message content, tool
// descriptions): those are literal and never read as special tokens (PromptText), so a user
// cannot type "<|im_end|>" into a message and end the turn. Template text is markup.
// JinjaTemplate.swift parses templates; JinjaRender.swift evaluates them.

/// A string in pieces, each either markup (template text) or literal (caller data).
struct JStr {
    private(set) var parts: [(text: String, literal: Bool)] = []
    /// Marked safe (`|safe`, markupsafe's Markup): adding a plain string to it escapes that
    /// string for HTML, as jinja2 does even without autoescaping (a template or two relies on it).
    var safe = false

    init() {}
    init(_ s: String, literal: Bool) { if !s.isEmpty { parts = [(s, literal)] } }

    var text: String { parts.count == 1 ? parts[0].text : parts.map(\.text).joined() }
    var isEmpty: Bool { parts.isEmpty }
    var hasLiteral: Bool { parts.contains { $0.literal } }
    /// The kind a transformed copy gets: literal when any piece is (caller data stays data).
    var derivedLiteral: Bool { hasLiteral }

    mutating func append(_ s: String, literal: Bool) {
        guard !s.isEmpty else { return }
        // no copy of the last piece is held while it grows (that would copy it every append)
        if !parts.isEmpty, parts[parts.count - 1].literal == literal {
            parts[parts.count - 1].text += s
        } else {
            parts.append((s, literal))
        }
    }

    mutating func append(_ o: JStr) { for p in o.parts { append(p.text, literal: p.literal) } }

    /// The same text transformed, kept in one piece of the derived kind.
    func mapped(_ f: (String) -> String) -> JStr {
        var out = JStr(f(text), literal: derivedLiteral)
        out.safe = safe
        return out
    }

    /// The pieces with & < > " ' written as HTML entities (markupsafe's escape).
    var htmlEscaped: JStr {
        var out = JStr()
        for p in parts {
            var t = ""
            for c in p.text.unicodeScalars {
                switch c {
                case "&": t += "&amp;"
                case "<": t += "&lt;"
                case ">": t += "&gt;"
                case "\"": t += "&#34;"
                case "'": t += "&#39;"
                default: t.unicodeScalars.append(c)
                }
            }
            out.append(t, literal: p.literal)
        }
        return out
    }

    /// Whitespace (or `chars`) removed from the ends, piece by piece, so markup and literal
    /// pieces keep their kinds (`trim` on "<|im_start|>" + content is common).
    func stripped(leading: Bool, trailing: Bool, chars: Set<Unicode.Scalar>? = nil) -> JStr {
        func drop(_ c: Unicode.Scalar) -> Bool { chars.map { $0.contains(c) } ?? c.properties.isWhitespace }
        var ps = parts
        if leading {
            while let first = ps.first {
                let sc = first.text.unicodeScalars
                let rest = sc.drop(while: drop)
                if rest.isEmpty { ps.removeFirst(); continue }
                ps[0].text = String(String.UnicodeScalarView(rest))
                break
            }
        }
        if trailing {
            while let last = ps.last {
                let sc = Array(last.text.unicodeScalars)
                var end = sc.count
                while end > 0, drop(sc[end - 1]) { end -= 1 }
                if end == 0 { ps.removeLast(); continue }
                var v = String.UnicodeScalarView()
                v.append(contentsOf: sc[0..<end])
                ps[ps.count - 1].text = String(v)
                break
            }
        }
        var out = JStr()
        for p in ps { out.append(p.text, literal: p.literal) }
        return out
    }
}

/// A namespace() object: the one mutable value (`{% set ns.found = true %}` inside a loop).
final class JNamespace {
    var members: [(String, JValue)] = []
    func get(_ k: String) -> JValue? { members.first { $0.0 == k }?.1 }
    func set(_ k: String, _ v: JValue) {
        if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
    }
}

/// A function a template can call: a global (range, namespace, raise_exception), a macro, or a
/// method bound to its value ("abc".upper).
struct JFunction {
    let name: String
    let call: (_ args: [JValue], _ kwargs: [(String, JValue)]) throws -> JValue
}

indirect enum JValue {
    /// A name or member that does not exist; `hint` is the error its misuse raises.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(JStr)
    case list([JValue])
    case tuple([JValue])
    /// insertion-ordered, keys unique by ==
    case dict([(JValue, JValue)])
    case function(JFunction)
    case namespace(JNamespace)

    static func markup(_ s: String) -> JValue { .string(JStr(s, literal: false)) }
    static func literal(_ s: String) -> JValue { .string(JStr(s, literal: true)) }

    /// JSON from the caller (messages, tools): every string in it is literal data.
    init(json: JSONValue) {
        switch json {
        case .null: self = .none
        case let .bool(b): self = .bool(b)
        case let .integer(i): self = Int(exactly: i).map { .int($0) } ?? .double(Double(i))
        case let .number(d): self = .double(d)
        case let .string(s): self = .literal(s)
        case let .array(a): self = .list(a.map { JValue(json: $0) })
        case let .object(o): self = .dict(o.map { (JValue.literal($0.0), JValue(json: $0.1)) })
        }
    }

    /// a list's or tuple's elements
    var sequence: [JValue]? {
        switch self {
        case let .list(a), let .tuple(a): return a
        default: return nil
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }
    var isNone: Bool { if case .none = self { return true }; return false }
    var str: JStr? { if case let .string(s) = self { return s }; return nil }

    /// Python's name for the type, as jinja2's messages show it.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .function: return "function"
        case .namespace: return "Namespace"
        }
    }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .double(d): return d != 0
        case let .string(s): return !s.isEmpty
        case let .list(a), let .tuple(a): return !a.isEmpty
        case let .dict(d): return !d.isEmpty
        case .function, .namespace: return true
        }
    }

    /// Whether any string inside came from the caller.
    var hasLiteral: Bool {
        switch self {
        case let .string(s): return s.hasLiteral
        case let .list(a), let .tuple(a): return a.contains { $0.hasLiteral }
        case let .dict(d): return d.contains { $0.0.hasLiteral || $0.1.hasLiteral }
        case let .namespace(n): return n.members.contains { $0.1.hasLiteral }
        default: return false
        }
    }

    /// A number as Double (bool counts as 0/1, as in Python), else nil.
    var number: Double? {
        switch self {
        case let .bool(b): return b ? 1 : 0
        case let .int(i): return Double(i)
        case let .double(d): return d
        default: return nil
        }
    }

    /// An integer (bool counts), else nil.
    var integer: Int? {
        switch self {
        case let .bool(b): return b ? 1 : 0
        case let .int(i): return i
        default: return nil
        }
    }

    /// The items a for loop or a filter walks: a list's elements, a dict's keys, a string's
    /// characters; nil for what is not iterable (undefined iterates as empty).
    var items: [JValue]? {
        switch self {
        case .undefined: return []
        case let .list(a), let .tuple(a): return a
        case let .dict(d): return d.map(\.0)
        case let .string(s):
            let lit = s.derivedLiteral
            return s.text.unicodeScalars.map { .string(JStr(String($0), literal: lit)) }
        default: return nil
        }
    }

    /// dict lookup by ==
    func lookup(_ key: JValue) -> JValue? {
        guard case let .dict(d) = self else { return nil }
        return d.first { $0.0 == key }?.1
    }

    // MARK: printing, as Python's str() and repr()

    /// str(value) for scalars and strings (containers: JinjaRenderer.printed, which bounds the size).
    var printed: JStr {
        switch self {
        case .undefined: return JStr()
        case let .string(s): return s
        default: return JStr(repr(top: true), literal: hasLiteral)
        }
    }

    /// Python's repr (str() with top: a string as it is); nil past limitBytes.
    func repr(top: Bool, limitBytes: Int) -> String? {
        var out = ""
        return writeRepr(&out, top: top, limit: limitBytes) ? out : nil
    }

    func repr(top: Bool = false) -> String { repr(top: top, limitBytes: Int.max) ?? "" }

    private func writeRepr(_ out: inout String, top: Bool, limit: Int) -> Bool {
        func seq(_ xs: [JValue], _ open: String, _ close: String) -> Bool {
            out += open
            for (i, x) in xs.enumerated() {
                if i > 0 { out += ", " }
                guard x.writeRepr(&out, top: false, limit: limit) else { return false }
            }
            out += close
            return out.utf8.count <= limit
        }
        switch self {
        case .undefined: break
        case .none: out += "None"
        case let .bool(b): out += b ? "True" : "False"
        case let .int(i): out += String(i)
        case let .double(d): out += JValue.pythonFloat(d)
        case let .string(s): out += top ? s.text : JValue.pythonRepr(s.text)
        case let .list(a): return seq(a, "[", "]")
        case let .tuple(a): return seq(a, "(", a.count == 1 ? ",)" : ")")
        case let .dict(d):
            out += "{"
            for (i, kv) in d.enumerated() {
                if i > 0 { out += ", " }
                guard kv.0.writeRepr(&out, top: false, limit: limit) else { return false }
                out += ": "
                guard kv.1.writeRepr(&out, top: false, limit: limit) else { return false }
            }
            out += "}"
        case let .function(f): out += "<function \(f.name)>"
        case let .namespace(n):
            out += "<Namespace "
            for (i, kv) in n.members.enumerated() {
                out += (i > 0 ? ", " : "") + kv.0 + "="
                guard kv.1.writeRepr(&out, top: false, limit: limit) else { return false }
            }
            out += ">"
        }
        return out.utf8.count <= limit
    }

    /// Elements and nesting depth (a scalar: 1 and 0), walking at most maxNodes elements
    /// (nil past it or past maxDepth): what a stored value may hold.
    func extent(maxNodes: Int, maxDepth: Int) -> (nodes: Int, depth: Int)? {
        var nodes = 0
        func walk(_ v: JValue, _ depth: Int) -> Int? {
            nodes += 1
            guard nodes <= maxNodes, depth <= maxDepth else { return nil }
            var deepest = depth
            switch v {
            case let .list(a), let .tuple(a):
                for x in a { guard let d = walk(x, depth + 1) else { return nil }; deepest = max(deepest, d) }
            case let .dict(d):
                for (k, x) in d {
                    guard let a = walk(k, depth + 1), let b = walk(x, depth + 1) else { return nil }
                    deepest = max(deepest, a, b)
                }
            default: break
            }
            return deepest
        }
        guard let d = walk(self, 0) else { return nil }
        return (nodes, d)
    }

    /// Python's repr of a float: the shortest digits that read back, fixed notation for
    /// decimal exponents -4 ..< 16, else d.ddde+XX; always a point or an exponent.
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is also the shortest round-trip form; take its digits and exponent.
        var s = "\(abs(d))"
        var exp = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exp = Int(s[s.index(after: e)...]) ?? 0
            s = String(s[..<e])
        }
        var digits = s.filter { $0 != "." }
        let point = s.firstIndex(of: ".").map { s.distance(from: s.startIndex, to: $0) } ?? s.count
        // value = 0.digits × 10^(point + exp); strip leading zeros
        var decExp = point + exp   // position of the decimal point relative to digits' start
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); decExp -= 1 }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        let sci = decExp - 1       // exponent of the first digit
        var out = d < 0 ? "-" : ""
        if sci >= -4 && sci < 16 {
            if decExp <= 0 {
                out += "0." + String(repeating: "0", count: -decExp) + digits
            } else if decExp >= digits.count {
                out += digits + String(repeating: "0", count: decExp - digits.count) + ".0"
            } else {
                let i = digits.index(digits.startIndex, offsetBy: decExp)
                out += digits[..<i] + "." + digits[i...]
            }
        } else {
            out += String(digits.prefix(1))
            if digits.count > 1 { out += "." + digits.dropFirst() }
            out += (sci < 0 ? "e-" : "e+") + (abs(sci) < 10 ? "0" : "") + String(abs(sci))
        }
        return out
    }

    /// Python's repr of a str: single quotes unless the text has ' and no ".
    static func pythonRepr(_ s: String) -> String {
        let q: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(q)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(c) == q { out += "\\" + String(q) }
                else if c.value < 0x20 || c.value == 0x7f { out += "\\x" + hex(c.value, 2) }
                else if (0x80..<0xa0).contains(c.value) { out += "\\x" + hex(c.value, 2) }
                else { out.unicodeScalars.append(c) }
            }
        }
        return out + String(q)
    }

    static func hex(_ v: UInt32, _ width: Int) -> String {
        let h = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - h.count)) + h
    }
}

extension JValue: Equatable {
    /// Python's ==: numbers across int/float/bool, strings by text, dicts by content in any order.
    static func == (a: JValue, b: JValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        // code points, as Python (Swift's == would equate canonically equivalent strings)
        case let (.string(x), .string(y)): return x.text.unicodeScalars.elementsEqual(y.text.unicodeScalars)
        case let (.list(x), .list(y)), let (.tuple(x), .tuple(y)): return x.count == y.count && zip(x, y).allSatisfy { $0 == $1 }
        case let (.dict(x), .dict(y)):
            return x.count == y.count && x.allSatisfy { kv in y.contains { $0.0 == kv.0 && $0.1 == kv.1 } }
        case let (.namespace(x), .namespace(y)): return x === y
        default:
            if let x = a.integer, let y = b.integer { return x == y }
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }
}

// JinjaTemplate: the subset of Jinja that chat templates are written in, parsed into a tree.
// Settings are Hugging Face transformers': trim_blocks and lstrip_blocks on, the loop-control
// extension (break, continue), one trailing newline of the source dropped, \r\n read as \n.
// Statements: if/elif/else, for (tuple targets, `if` filter, else, loop.*), set (names, tuples,
// namespace members, block form), macro, raw, break, continue, and transformers' generation
// tags (transparent). Expressions: jinja2's precedence, filters, tests, calls, slices,
// literals. Errors name the line. Parsing is bounded (nesting depth) and never traps; the
// evaluation is in JinjaRender.swift, the values in JinjaValue.swift.

indirect enum JExpr {
    case literal(JValue)
    case name(String)
    case attr(JExpr, String)
    case item(JExpr, JExpr)
    case slice(JExpr, JExpr?, JExpr?, JExpr?)
    case call(JExpr, [JExpr], [(String, JExpr)])
    case filter(JExpr, String, [JExpr], [(String, JExpr)])
    case test(JExpr, String, [JExpr], negated: Bool)
    case unary(String, JExpr)
    case binary(String, JExpr, JExpr)
    case and(JExpr, JExpr)
    case or(JExpr, JExpr)
    case conditional(JExpr, test: JExpr, otherwise: JExpr?)
    case list([JExpr])
    case tuple([JExpr])
    case dict([(JExpr, JExpr)])
    /// where an error inside it is reported
    case at(line: Int, JExpr)
}

enum JSetTarget {
    case names([String])
    case member(String, String)
}

indirect enum JNode {
    case text(String)
    case output(JExpr, line: Int)
    case branches([(JExpr, [JNode])], otherwise: [JNode], line: Int)
    case loop(targets: [String], over: JExpr, filter: JExpr?, body: [JNode], otherwise: [JNode], line: Int)
    case set(JSetTarget, JExpr, line: Int)
    case setBlock(String, [JNode], line: Int)
    case macro(String, params: [(String, JExpr?)], body: [JNode], line: Int)
    /// `{% call m(args) %}body{% endcall %}`: m called with `caller()` rendering body
    case callBlock(JExpr, body: [JNode], line: Int)
    case breakLoop(line: Int)
    case continueLoop(line: Int)
}

struct JinjaTemplate {
    let body: [JNode]
    static let maxDepth = 100
    static let maxSourceBytes = 1 << 20

    init(source: String) throws {
        guard source.utf8.count <= JinjaTemplate.maxSourceBytes else {
            throw HMSTError.badFormat("the chat template is \(source.utf8.count) bytes; at most \(JinjaTemplate.maxSourceBytes)")
        }
        var lexer = JLexer(source: source)
        let items = try lexer.run()
        var p = JParser(items: items)
        body = try p.document()
    }
}

// MARK: lexing

enum JToken: Equatable {
    case name(String)
    case int(Int)
    case double(Double)
    case string(String)
    case op(String)
}

enum JItem {
    case text(String)
    case variable([JToken], line: Int)
    case block([JToken], line: Int)
}

func jinjaError(_ line: Int, _ m: String) -> HMSTError { HMSTError.badFormat("chat template line \(line): \(m)") }

struct JLexer {
    let b: [UInt8]
    var pos = 0
    var line = 1
    var items: [JItem] = []
    /// strip the whitespace at the start of the next text (a `-` closed the last tag)
    var stripNext = false
    /// the last tag's closing ended a line (lstrip_blocks may strip the next text's indent)
    var lineStarting = true

    init(source: String) {
        // \r\n and \r read as \n; one trailing newline dropped (jinja2's keep_trailing_newline=False)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(source.utf8.count)
        var it = Array(source.utf8)[...]
        while let c = it.popFirst() {
            if c == 13 {
                if it.first == 10 { it.removeFirst() }
                bytes.append(10)
            } else {
                bytes.append(c)
            }
        }
        if bytes.last == 10 { bytes.removeLast() }
        b = bytes
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 10 || c == 13 || c == 11 || c == 12 }

    func at(_ i: Int) -> UInt8 { i < b.count ? b[i] : 0 }

    mutating func emitText(_ start: Int, _ end: Int, tagKind: UInt8?, sign: UInt8?) {
        var s = start, e = end
        if stripNext { while s < e, JLexer.isSpace(b[s]) { s += 1 } }
        if sign == UInt8(ascii: "-") {
            while e > s, JLexer.isSpace(b[e - 1]) { e -= 1 }
        } else if let k = tagKind, k != UInt8(ascii: "{"), sign != UInt8(ascii: "+") {
            // lstrip_blocks: spaces and tabs between a line's start and a block or comment tag
            var l = e
            while l > s, b[l - 1] != 10 { l -= 1 }
            let atLineStart = l > s || (l == s && (s > start ? b[s - 1] == 10 : lineStarting))
            if atLineStart, (l..<e).allSatisfy({ b[$0] == 32 || b[$0] == 9 || b[$0] == 11 || b[$0] == 12 || b[$0] == 13 }) { e = l }
        }
        stripNext = false
        if e > s { items.append(.text(String(decoding: b[s..<e], as: UTF8.self))) }
    }

    mutating func countLines(_ from: Int, _ to: Int) {
        var i = from
        while i < to { if b[i] == 10 { line += 1 }; i += 1 }
    }

    mutating func run() throws -> [JItem] {
        while pos < b.count {
            var t = pos
            while t + 1 < b.count, !(b[t] == UInt8(ascii: "{") && (b[t + 1] == UInt8(ascii: "{") || b[t + 1] == UInt8(ascii: "%") || b[t + 1] == UInt8(ascii: "#"))) {
                t += 1
            }
            if t + 1 >= b.count {
                emitText(pos, b.count, tagKind: nil, sign: nil)
                countLines(pos, b.count)
                pos = b.count
                break
            }
            let kind = b[t + 1]
            let signByte = at(t + 2)
            let sign: UInt8? = signByte == UInt8(ascii: "-") || signByte == UInt8(ascii: "+") ? signByte : nil
            emitText(pos, t, tagKind: kind, sign: sign)
            countLines(pos, t)
            pos = t + 2 + (sign == nil ? 0 : 1)
            let tagLine = line
            switch kind {
            case UInt8(ascii: "#"):
                var e = pos
                while e + 1 < b.count, !(b[e] == UInt8(ascii: "#") && b[e + 1] == UInt8(ascii: "}")) { e += 1 }
                guard e + 1 < b.count else { throw jinjaError(tagLine, "unterminated comment") }
                let closeSign = e > pos ? b[e - 1] : 0
                countLines(pos, e + 2)
                pos = e + 2
                closeBlock(sign: closeSign)
            case UInt8(ascii: "{"):
                let (tokens, closeSign) = try tokens(close: UInt8(ascii: "}"))
                items.append(.variable(tokens, line: tagLine))
                stripNext = closeSign == UInt8(ascii: "-")
                lineStarting = false
            default:
                let (tokens, closeSign) = try tokens(close: UInt8(ascii: "%"))
                if tokens == [.name("raw")] {
                    // the text of a raw block starts right after its tag: no trim_blocks there
                    lineStarting = false
                    stripNext = closeSign == UInt8(ascii: "-")
                    try raw(line: tagLine)
                } else {
                    items.append(.block(tokens, line: tagLine))
                    closeBlock(sign: closeSign)
                }
            }
        }
        return items
    }

    /// After a block or comment: `-` strips what follows, `+` keeps it, else trim_blocks
    /// removes one newline.
    mutating func closeBlock(sign: UInt8) {
        lineStarting = false
        if sign == UInt8(ascii: "-") {
            stripNext = true
        } else if sign != UInt8(ascii: "+"), at(pos) == 10 {
            pos += 1
            line += 1
            lineStarting = true
        }
    }

    /// `{% raw %}`: everything to `{% endraw %}` is text.
    mutating func raw(line tagLine: Int) throws {
        var e = pos
        while e + 1 < b.count {
            if b[e] == UInt8(ascii: "{"), b[e + 1] == UInt8(ascii: "%") {
                var k = e + 2
                let open = at(k)
                if open == UInt8(ascii: "-") || open == UInt8(ascii: "+") { k += 1 }
                while k < b.count, JLexer.isSpace(b[k]) { k += 1 }
                if Array(b[k..<min(b.count, k + 6)]) == Array("endraw".utf8) {
                    k += 6
                    while k < b.count, JLexer.isSpace(b[k]) { k += 1 }
                    var close: UInt8 = 0
                    if at(k) == UInt8(ascii: "-") || at(k) == UInt8(ascii: "+") { close = b[k]; k += 1 }
                    if at(k) == UInt8(ascii: "%"), at(k + 1) == UInt8(ascii: "}") {
                        emitText(pos, e, tagKind: UInt8(ascii: "%"), sign: open == UInt8(ascii: "-") ? open : nil)
                        countLines(pos, k + 2)
                        pos = k + 2
                        closeBlock(sign: close)
                        return
                    }
                }
            }
            e += 1
        }
        throw jinjaError(tagLine, "{% raw %} without {% endraw %}")
    }

    /// The tokens of a tag up to its closing `}}` or `%}` (outside brackets); returns the sign
    /// before the closing (`-`, `+` or 0).
    mutating func tokens(close: UInt8) throws -> ([JToken], UInt8) {
        var out: [JToken] = []
        var depth = 0
        let startLine = line
        let what = close == UInt8(ascii: "}") ? "'}}'" : "'%}'"
        while true {
            while pos < b.count, JLexer.isSpace(b[pos]) { if b[pos] == 10 { line += 1 }; pos += 1 }
            guard pos < b.count else { throw jinjaError(startLine, "unexpected end of template, expected \(what)") }
            let c = b[pos]
            if depth == 0 {
                if c == close, at(pos + 1) == UInt8(ascii: "}") { pos += 2; return (out, 0) }
                if (c == UInt8(ascii: "-") || c == UInt8(ascii: "+")), at(pos + 1) == close, at(pos + 2) == UInt8(ascii: "}") {
                    pos += 3
                    return (out, c)
                }
            }
            if c == UInt8(ascii: "_") || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z")) || c >= 0x80 {
                let s = pos
                while pos < b.count, b[pos] == UInt8(ascii: "_") || (b[pos] | 0x20 >= UInt8(ascii: "a") && b[pos] | 0x20 <= UInt8(ascii: "z"))
                        || (b[pos] >= UInt8(ascii: "0") && b[pos] <= UInt8(ascii: "9")) || b[pos] >= 0x80 {
                    pos += 1
                }
                out.append(.name(String(decoding: b[s..<pos], as: UTF8.self)))
            } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                out.append(try number())
            } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                out.append(.string(try string(quote: c)))
            } else {
                let two = pos + 1 < b.count ? String(decoding: b[pos..<pos + 2], as: UTF8.self) : ""
                if ["//", "**", "==", "!=", "<=", ">="].contains(two) {
                    out.append(.op(two))
                    pos += 2
                } else if "+-*/%~<>=()[]{},.:|".utf8.contains(c) {
                    if "([{".utf8.contains(c) { depth += 1 }
                    if ")]}".utf8.contains(c) { depth = max(0, depth - 1) }
                    out.append(.op(String(UnicodeScalar(c))))
                    pos += 1
                } else {
                    throw jinjaError(line, "unexpected character '\(String(UnicodeScalar(c)))'")
                }
            }
        }
    }

    mutating func number() throws -> JToken {
        let s = pos
        func digits() { while pos < b.count, (b[pos] >= UInt8(ascii: "0") && b[pos] <= UInt8(ascii: "9")) || b[pos] == UInt8(ascii: "_") { pos += 1 } }
        digits()
        var isFloat = false
        if at(pos) == UInt8(ascii: "."), at(pos + 1) >= UInt8(ascii: "0"), at(pos + 1) <= UInt8(ascii: "9") {
            isFloat = true
            pos += 1
            digits()
        }
        if at(pos) | 0x20 == UInt8(ascii: "e") {
            var k = pos + 1
            if at(k) == UInt8(ascii: "+") || at(k) == UInt8(ascii: "-") { k += 1 }
            if at(k) >= UInt8(ascii: "0"), at(k) <= UInt8(ascii: "9") { isFloat = true; pos = k; digits() }
        }
        let text = String(decoding: b[s..<pos], as: UTF8.self).filter { $0 != "_" }
        if !isFloat, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw jinjaError(line, "bad number '\(text)'") }
        return .double(d)
    }

    /// A string literal with Python's escapes (\n \t \r \\ \' \" \xHH \uHHHH \UHHHHHHHH; an
    /// unknown escape keeps its backslash).
    mutating func string(quote: UInt8) throws -> String {
        let startLine = line
        pos += 1
        var out: [UInt8] = []
        while true {
            guard pos < b.count else { throw jinjaError(startLine, "unterminated string") }
            let c = b[pos]
            if c == quote { pos += 1; break }
            if c == 10 { line += 1 }
            if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
            let e = at(pos + 1)
            pos += 2
            switch e {
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "0"): out.append(0)
            case UInt8(ascii: "a"): out.append(7)
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "v"): out.append(11)
            case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(e)
            case 10: line += 1   // a backslash-newline joins lines
            case UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "U"):
                let n = e == UInt8(ascii: "x") ? 2 : e == UInt8(ascii: "u") ? 4 : 8
                guard pos + n <= b.count, let v = UInt32(String(decoding: b[pos..<pos + n], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(v) else {
                    throw jinjaError(line, "bad \\\(String(UnicodeScalar(e))) escape in a string")
                }
                out += Array(String(Character(scalar)).utf8)
                pos += n
            default:
                out.append(UInt8(ascii: "\\"))
                if e != 0 { out.append(e) }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: parsing

struct JParser {
    let items: [JItem]
    var index = 0
    // the tag being parsed
    var toks: [JToken] = []
    var t = 0
    var line = 1
    var depth = 0

    init(items: [JItem]) { self.items = items }

    mutating func document() throws -> [JNode] {
        let (body, end) = try nodes(until: [])
        if let end { throw jinjaError(end.line, "unexpected '\(end.tag)'") }
        return body
    }

    /// Nodes up to a block tag whose keyword is in `until` (returned with its line; its
    /// remaining tokens are left in `toks`), or to the end (nil).
    mutating func nodes(until: Set<String>) throws -> ([JNode], (tag: String, line: Int)?) {
        var out: [JNode] = []
        depth += 1
        defer { depth -= 1 }
        guard depth <= JinjaTemplate.maxDepth else { throw jinjaError(line, "blocks nested deeper than \(JinjaTemplate.maxDepth)") }
        while index < items.count {
            let item = items[index]
            index += 1
            switch item {
            case let .text(s):
                out.append(.text(s))
            case let .variable(ts, l):
                begin(ts, l)
                let e = try expression()
                try finish()
                out.append(.output(e, line: l))
            case let .block(ts, l):
                begin(ts, l)
                guard case let .name(kw)? = next() else { throw jinjaError(l, "a block tag must start with a keyword") }
                if until.contains(kw) { return (out, (kw, l)) }
                switch kw {
                case "if": out.append(try ifBlock(l))
                case "for": out.append(try forBlock(l))
                case "set": out.append(try setStatement(l))
                case "macro": out.append(try macro(l))
                case "call":
                    let e = try postfix(try primary())
                    guard case .call = e else { throw jinjaError(l, "{% call %} needs a macro call") }
                    try finish()
                    let (inner, end) = try nodes(until: ["endcall"])
                    guard end != nil else { throw jinjaError(l, "{% call %} without {% endcall %}") }
                    try finish()
                    out.append(.callBlock(e, body: inner, line: l))
                case "break": try finish(); out.append(.breakLoop(line: l))
                case "continue": try finish(); out.append(.continueLoop(line: l))
                case "generation":
                    // transformers' marker of assistant text: transparent here
                    try finish()
                    let (inner, end) = try nodes(until: ["endgeneration"])
                    guard end != nil else { throw jinjaError(l, "{% generation %} without {% endgeneration %}") }
                    try finish()
                    out += inner
                case "endif", "endfor", "endset", "endmacro", "endcall", "else", "elif", "endgeneration", "endraw":
                    throw jinjaError(l, "unexpected '\(kw)'")
                default:
                    throw jinjaError(l, "unknown tag '\(kw)' (supported: if, for, set, macro, call, raw, break, continue, generation)")
                }
            }
        }
        return (out, nil)
    }

    mutating func ifBlock(_ l: Int) throws -> JNode {
        var branches: [(JExpr, [JNode])] = []
        var cond = try expression()
        try finish()
        while true {
            let (body, end) = try nodes(until: ["elif", "else", "endif"])
            guard let end else { throw jinjaError(l, "{% if %} without {% endif %}") }
            branches.append((cond, body))
            switch end.tag {
            case "elif":
                cond = try expression()
                try finish()
            case "else":
                try finish()
                let (other, e2) = try nodes(until: ["endif"])
                guard e2 != nil else { throw jinjaError(l, "{% if %} without {% endif %}") }
                try finish()
                return .branches(branches, otherwise: other, line: l)
            default:
                try finish()
                return .branches(branches, otherwise: [], line: l)
            }
        }
    }

    mutating func forBlock(_ l: Int) throws -> JNode {
        var targets: [String] = []
        let paren = peekOp("(")
        if paren { t += 1 }
        repeat {
            guard case let .name(n)? = next(), n != "in" else { throw jinjaError(l, "expected a loop variable after 'for'") }
            targets.append(n)
        } while skipOp(",")
        if paren { try expectOp(")") }
        guard case .name("in")? = next() else { throw jinjaError(l, "expected 'in' in the for tag") }
        let over = try conditionalFree()
        var filter: JExpr? = nil
        if case .name("if")? = peek() { t += 1; filter = try expression() }
        if case .name("recursive")? = peek() { throw jinjaError(l, "recursive loops are not supported") }
        try finish()
        let (body, end) = try nodes(until: ["else", "endfor"])
        guard let end else { throw jinjaError(l, "{% for %} without {% endfor %}") }
        try finish()
        var other: [JNode] = []
        if end.tag == "else" {
            let (o, e2) = try nodes(until: ["endfor"])
            guard e2 != nil else { throw jinjaError(l, "{% for %} without {% endfor %}") }
            try finish()
            other = o
        }
        return .loop(targets: targets, over: over, filter: filter, body: body, otherwise: other, line: l)
    }

    mutating func setStatement(_ l: Int) throws -> JNode {
        guard case let .name(first)? = next() else { throw jinjaError(l, "expected a name after 'set'") }
        if skipOp(".") {
            guard case let .name(member)? = next() else { throw jinjaError(l, "expected a member name after '\(first).'") }
            try expectOp("=")
            let e = try expression()
            try finish()
            return .set(.member(first, member), e, line: l)
        }
        var names = [first]
        while skipOp(",") {
            guard case let .name(n)? = next() else { throw jinjaError(l, "expected a name in the set tag") }
            names.append(n)
        }
        if t == toks.count {
            guard names.count == 1 else { throw jinjaError(l, "a block set takes one name") }
            let (body, end) = try nodes(until: ["endset"])
            guard end != nil else { throw jinjaError(l, "{% set %} without {% endset %}") }
            try finish()
            return .setBlock(first, body, line: l)
        }
        try expectOp("=")
        let e = try tupleOrExpression()
        try finish()
        return .set(.names(names), e, line: l)
    }

    mutating func macro(_ l: Int) throws -> JNode {
        guard case let .name(name)? = next() else { throw jinjaError(l, "expected the macro's name") }
        try expectOp("(")
        var params: [(String, JExpr?)] = []
        while !skipOp(")") {
            guard case let .name(p)? = next() else { throw jinjaError(l, "expected a parameter name in macro '\(name)'") }
            var d: JExpr? = nil
            if skipOp("=") { d = try expression() }
            params.append((p, d))
            if !skipOp(",") { try expectOp(")"); break }
        }
        try finish()
        let (body, end) = try nodes(until: ["endmacro"])
        guard end != nil else { throw jinjaError(l, "{% macro %} without {% endmacro %}") }
        try finish()
        return .macro(name, params: params, body: body, line: l)
    }

    // MARK: tokens of the current tag

    mutating func begin(_ ts: [JToken], _ l: Int) { toks = ts; t = 0; line = l }
    func peek() -> JToken? { t < toks.count ? toks[t] : nil }
    mutating func next() -> JToken? { defer { t += 1 }; return peek() }
    func peekOp(_ o: String) -> Bool { peek() == .op(o) }
    mutating func skipOp(_ o: String) -> Bool { if peekOp(o) { t += 1; return true }; return false }
    mutating func expectOp(_ o: String) throws {
        guard skipOp(o) else { throw jinjaError(line, "expected '\(o)'" + (peek().map { ", found \(describe($0))" } ?? " at the end of the tag")) }
    }
    func peekName(_ n: String) -> Bool { peek() == .name(n) }
    mutating func finish() throws {
        if let extra = peek() { throw jinjaError(line, "unexpected \(describe(extra))") }
    }
    func describe(_ tok: JToken) -> String {
        switch tok {
        case let .name(n): return "'\(n)'"
        case let .int(i): return "'\(i)'"
        case let .double(d): return "'\(d)'"
        case let .string(s): return "string '\(s.prefix(20))'"
        case let .op(o): return "'\(o)'"
        }
    }

    // MARK: expressions (jinja2's precedence, lowest first)

    mutating func nest() throws {
        depth += 1
        guard depth <= JinjaTemplate.maxDepth else { throw jinjaError(line, "expression nested deeper than \(JinjaTemplate.maxDepth)") }
    }

    /// `a, b` without brackets (set's right side)
    mutating func tupleOrExpression() throws -> JExpr {
        let first = try expression()
        guard peekOp(",") else { return first }
        var items = [first]
        while skipOp(",") { if peek() == nil { break }; items.append(try expression()) }
        return .tuple(items)
    }

    mutating func expression() throws -> JExpr {
        try nest()
        defer { depth -= 1 }
        let e = try orExpr()
        guard peekName("if") else { return .at(line: line, e) }
        t += 1
        let test = try orExpr()
        var other: JExpr? = nil
        if peekName("else") { t += 1; other = try expression() }
        return .at(line: line, .conditional(e, test: test, otherwise: other))
    }

    /// the iterable of a for tag: no conditional (its `if` is the loop filter)
    mutating func conditionalFree() throws -> JExpr { .at(line: line, try orExpr()) }

    /// Each link of a left-associative chain (a ~ b ~ c, x|f|g, a.b.c) is one level of the
    /// tree the evaluator recurses through: it counts against maxDepth like a bracket.
    mutating func link(_ links: inout Int) throws {
        try nest()
        links += 1
    }

    mutating func orExpr() throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var l = try andExpr()
        while peekName("or") { t += 1; try link(&links); l = .or(l, try andExpr()) }
        return l
    }

    mutating func andExpr() throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var l = try notExpr()
        while peekName("and") { t += 1; try link(&links); l = .and(l, try notExpr()) }
        return l
    }

    mutating func notExpr() throws -> JExpr {
        if peekName("not") {
            t += 1
            try nest()
            defer { depth -= 1 }
            return .unary("not", try notExpr())
        }
        return try compare()
    }

    /// `a < b < c` chains as `a < b and b < c` (Python's comparison chains)
    mutating func compare() throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var left = try math1()
        var chain: JExpr? = nil
        while true {
            var op: String
            if case let .op(o)? = peek(), ["==", "!=", "<", "<=", ">", ">="].contains(o) {
                t += 1
                op = o
            } else if peekName("in") {
                t += 1
                op = "in"
            } else if peekName("not"), t + 1 < toks.count, toks[t + 1] == .name("in") {
                t += 2
                op = "not in"
            } else {
                return chain ?? left
            }
            try link(&links)
            let right = try math1()
            let c = JExpr.binary(op, left, right)
            chain = chain.map { .and($0, c) } ?? c
            left = right
        }
    }

    mutating func math1() throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var l = try concat()
        while case let .op(o)? = peek(), o == "+" || o == "-" { t += 1; try link(&links); l = .binary(o, l, try concat()) }
        return l
    }

    mutating func concat() throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var l = try math2()
        while skipOp("~") { try link(&links); l = .binary("~", l, try math2()) }
        return l
    }

    mutating func math2() throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var l = try power()
        while case let .op(o)? = peek(), ["*", "/", "//", "%"].contains(o) { t += 1; try link(&links); l = .binary(o, l, try power()) }
        return l
    }

    mutating func power() throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var l = try unary(withFilter: true)
        while skipOp("**") { try link(&links); l = .binary("**", l, try unary(withFilter: true)) }
        return l
    }

    mutating func unary(withFilter: Bool) throws -> JExpr {
        try nest()
        defer { depth -= 1 }
        var e: JExpr
        if case let .op(o)? = peek(), o == "-" || o == "+" {
            t += 1
            e = .unary(o, try unary(withFilter: false))
        } else {
            e = try postfix(try primary())
        }
        if withFilter { e = try filtersAndTests(e) }
        return e
    }

    mutating func primary() throws -> JExpr {
        guard let tok = next() else { throw jinjaError(line, "expected an expression at the end of the tag") }
        switch tok {
        case let .name(n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case let .int(i): return .literal(.int(i))
        case let .double(d): return .literal(.double(d))
        case var .string(s):
            // adjacent literals join ("a" "b")
            while case let .string(more)? = peek() { s += more; t += 1 }
            return .literal(.markup(s))
        case .op("("):
            if skipOp(")") { return .tuple([]) }
            let first = try expression()
            if skipOp(")") { return first }
            var items = [first]
            while skipOp(",") {
                if peekOp(")") { break }
                items.append(try expression())
            }
            try expectOp(")")
            return .tuple(items)
        case .op("["):
            var items: [JExpr] = []
            while !skipOp("]") {
                items.append(try expression())
                if !skipOp(",") { try expectOp("]"); break }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(JExpr, JExpr)] = []
            while !skipOp("}") {
                let k = try expression()
                try expectOp(":")
                pairs.append((k, try expression()))
                if !skipOp(",") { try expectOp("}"); break }
            }
            return .dict(pairs)
        default:
            throw jinjaError(line, "unexpected \(describe(tok))")
        }
    }

    mutating func postfix(_ base: JExpr) throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var e = base
        while true {
            if peekOp(".") || peekOp("[") || peekOp("(") { try link(&links) }
            if skipOp(".") {
                switch next() {
                case let .name(n)?: e = .attr(e, n)
                case let .int(i)?: e = .item(e, .literal(.int(i)))
                default: throw jinjaError(line, "expected a name after '.'")
                }
            } else if skipOp("[") {
                try nest()
                defer { depth -= 1 }
                var parts: [JExpr?] = [nil]
                var isSlice = false
                while !peekOp("]") {
                    if skipOp(":") { isSlice = true; parts.append(nil); continue }
                    guard parts[parts.count - 1] == nil else { throw jinjaError(line, "expected ']'") }
                    parts[parts.count - 1] = try expression()
                }
                t += 1
                if isSlice {
                    guard parts.count <= 3 else { throw jinjaError(line, "a slice takes at most start:stop:step") }
                    while parts.count < 3 { parts.append(nil) }
                    e = .slice(e, parts[0], parts[1], parts[2])
                } else {
                    guard let i = parts[0] else { throw jinjaError(line, "expected an index inside '[]'") }
                    e = .item(e, i)
                }
            } else if peekOp("(") {
                t += 1
                let (args, kwargs) = try callArguments()
                e = .call(e, args, kwargs)
            } else {
                return e
            }
        }
    }

    /// after '(': positional then keyword arguments, up to ')'
    mutating func callArguments() throws -> ([JExpr], [(String, JExpr)]) {
        var args: [JExpr] = []
        var kwargs: [(String, JExpr)] = []
        while !skipOp(")") {
            if case let .name(n)? = peek(), t + 1 < toks.count, toks[t + 1] == .op("=") {
                t += 2
                kwargs.append((n, try expression()))
            } else {
                guard kwargs.isEmpty else { throw jinjaError(line, "a positional argument after a keyword argument") }
                args.append(try expression())
            }
            if !skipOp(",") { try expectOp(")"); break }
        }
        return (args, kwargs)
    }

    mutating func filtersAndTests(_ base: JExpr) throws -> JExpr {
        var links = 0
        defer { depth -= links }
        var e = base
        while true {
            if peekOp("|") || peekName("is") { try link(&links) }
            if skipOp("|") {
                guard case let .name(f)? = next() else { throw jinjaError(line, "expected a filter name after '|'") }
                guard JinjaBuiltins.filters.contains(f) else { throw jinjaError(line, "no filter named '\(f)'") }
                var args: [JExpr] = []
                var kwargs: [(String, JExpr)] = []
                if skipOp("(") { (args, kwargs) = try callArguments() }
                e = .filter(e, f, args, kwargs)
            } else if peekName("is") {
                t += 1
                let negated = peekName("not")
                if negated { t += 1 }
                guard case let .name(name)? = next() else { throw jinjaError(line, "expected a test name after 'is'") }
                guard JinjaBuiltins.tests.contains(name) else { throw jinjaError(line, "no test named '\(name)'") }
                var args: [JExpr] = []
                if skipOp("(") {
                    let (a, kw) = try callArguments()
                    guard kw.isEmpty else { throw jinjaError(line, "test '\(name)' takes no keyword arguments") }
                    args = a
                } else if let tok = peek(), startsTestArgument(tok) {
                    // `x is divisibleby 3`, `x is sameas none`: one argument without brackets
                    args = [try postfix(try primary())]
                }
                e = .test(e, name, args, negated: negated)
            } else {
                return e
            }
        }
    }

    func startsTestArgument(_ tok: JToken) -> Bool {
        switch tok {
        case .int, .double, .string: return true
        case let .name(n): return !["and", "or", "else", "if", "in", "not", "is"].contains(n)
        case .op("["), .op("{"): return true
        default: return false
        }
    }
}

// JinjaBuiltins: the globals, filters, tests and methods a chat template can use, with
// jinja2's results (Python's str methods, jinja2's filter defaults: case-insensitive sort and
// unique, banker's rounding, transformers' tojson). What a sandboxed jinja2 refuses (list.append
// and other mutation) is refused with its message. Names outside these tables are errors at
// parse time, as in jinja2.


enum JinjaBuiltins {
    static let filters: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "format",
        "int", "indent", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
        "unique", "upper", "wordcount",
    ]
    static let tests: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "even", "false", "float", "ge", "gt",
        "greaterthan", "in", "integer", "iterable", "le", "lower", "lt", "lessthan", "mapping", "ne", "!=", "none",
        "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper",
    ]
}

extension JinjaRenderer {
    func builtinGlobals() -> [String: JValue] {
        [
            "range": .function(JFunction(name: "range") { [unowned self] args, _ in
                let ints = try args.map { a -> Int in
                    guard let i = a.integer else { throw self.error("range() takes integers, not '\(a.typeName)'") }
                    return i
                }
                let (start, stop, step): (Int, Int, Int)
                switch ints.count {
                case 1: (start, stop, step) = (0, ints[0], 1)
                case 2: (start, stop, step) = (ints[0], ints[1], 1)
                case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
                default: throw self.error("range() takes 1 to 3 arguments")
                }
                guard step != 0 else { throw self.error("range() arg 3 must not be zero") }
                // in the magnitudes' own width: no overflow for any Int arguments
                let span: UInt = step > 0 ? (stop > start ? UInt(bitPattern: stop &- start) : 0)
                                          : (start > stop ? UInt(bitPattern: start &- stop) : 0)
                let n64 = span == 0 ? 0 : (span - 1) / step.magnitude + 1
                guard n64 <= 1 << 20 else { throw self.error("range() of \(n64) items; at most \(1 << 20)") }
                let n = Int(n64)
                try self.charge(n)
                return .list((0..<n).map { .int(start + $0 * step) })
            }),
            "namespace": .function(JFunction(name: "namespace") { [unowned self] args, kwargs in
                let ns = JNamespace()
                for a in args {
                    guard case let .dict(d) = a else { throw self.error("namespace() takes a dict or keyword arguments") }
                    for (k, v) in d { ns.set(try self.printed(k).text, v) }
                }
                for (k, v) in kwargs { ns.set(k, v) }
                return .namespace(ns)
            }),
            "dict": .function(JFunction(name: "dict") { args, kwargs in
                var d: [(JValue, JValue)] = []
                if let first = args.first, case let .dict(base) = first { d = base }
                for (k, v) in kwargs {
                    if let i = d.firstIndex(where: { $0.0 == .markup(k) }) { d[i].1 = v } else { d.append((.markup(k), v)) }
                }
                return .dict(d)
            }),
            "raise_exception": .function(JFunction(name: "raise_exception") { [unowned self] args, _ in
                let message = try args.first.map { try self.printed($0).text } ?? "raise_exception() called"
                throw HMSTError.invalidArgument("chat template: \(message)")
            }),
            "strftime_now": .function(JFunction(name: "strftime_now") { [unowned self] args, _ in
                guard let f = args.first?.str else { throw self.error("strftime_now() takes a format string") }
                guard let text = self.formatTime(f.text) else { throw self.error("strftime_now(): the time's text is too long") }
                return .string(JStr(text, literal: f.hasLiteral))
            }),
        ]
    }

    /// `format` of the render's time (UTC), nil when the text passes 4 KB (or is empty where the
    /// format is not: strftime gives 0 for both).
    func formatTime(_ format: String) -> String? {
        var t = time_t(now.isFinite ? max(-1e15, min(1e15, now)) : 0)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [Int8](repeating: 0, count: 4096)
        let n = formatTimeC(&buf, buf.count, format, &tmv)
        if n == 0 && !format.isEmpty { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: methods

    /// A method of v's type bound to v (`"x".upper`, `d.items`), or nil.
    func method(_ v: JValue, _ name: String) -> JValue? {
        func bound(_ f: @escaping ([JValue], [(String, JValue)]) throws -> JValue) -> JValue {
            .function(JFunction(name: name, call: f))
        }
        switch v {
        case let .string(s):
            return stringMethod(s, name).map { f in
                bound { a, kw in
                    try self.charge(s.text.utf8.count / 64)
                    return try f(a, kw)
                }
            }
        case let .dict(d):
            switch name {
            case "items": return bound { _, _ in .list(d.map { .tuple([$0.0, $0.1]) }) }
            case "keys": return bound { _, _ in .list(d.map(\.0)) }
            case "values": return bound { _, _ in .list(d.map(\.1)) }
            case "get": return bound { a, _ in
                guard let k = a.first else { throw self.error("get() takes a key") }
                return v.lookup(k) ?? (a.count > 1 ? a[1] : .none)
            }
            case "update", "pop", "popitem", "setdefault", "clear":
                return bound { _, _ in throw self.error("access to attribute '\(name)' of 'dict' object is unsafe.") }
            default: return nil
            }
        case .list:
            switch name {
            case "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse":
                return bound { _, _ in throw self.error("access to attribute '\(name)' of 'list' object is unsafe.") }
            case "index": return bound { [unowned self] a, _ in
                try self.charge(v.sequence?.count ?? 0)
                guard let x = a.first, let i = v.items?.firstIndex(of: x) else { throw self.error("the value is not in the list") }
                return .int(i)
            }
            case "count": return bound { [unowned self] a, _ in
                try self.charge(v.sequence?.count ?? 0)
                return .int(v.items?.filter { $0 == a.first }.count ?? 0)
            }
            default: return nil
            }
        default:
            return nil
        }
    }

    func stringMethod(_ s: JStr, _ name: String) -> (([JValue], [(String, JValue)]) throws -> JValue)? {
        let text = s.text
        let lit = s.derivedLiteral
        func str(_ x: String) -> JValue { .string(JStr(x, literal: lit)) }
        func charsArg(_ a: [JValue]) -> Set<Unicode.Scalar>? {
            guard let c = a.first?.str?.text else { return nil }
            return Set(c.unicodeScalars)
        }
        func strArg(_ a: [JValue], _ i: Int, _ what: String) throws -> String {
            guard i < a.count, let x = a[i].str?.text else { throw self.error("\(name)() takes a string as \(what)") }
            return x
        }
        switch name {
        case "strip": return { a, _ in .string(s.stripped(leading: true, trailing: true, chars: charsArg(a))) }
        case "lstrip": return { a, _ in .string(s.stripped(leading: true, trailing: false, chars: charsArg(a))) }
        case "rstrip": return { a, _ in .string(s.stripped(leading: false, trailing: true, chars: charsArg(a))) }
        case "upper": return { _, _ in str(text.uppercased()) }
        case "lower": return { _, _ in str(text.lowercased()) }
        case "title": return { _, _ in str(JinjaRenderer.pythonTitle(text)) }
        case "capitalize": return { _, _ in str(JinjaRenderer.capitalize(text)) }
        case "startswith", "endswith": return { a, _ in
            let cands: [String]
            if case let .tuple(xs)? = a.first { cands = xs.compactMap { $0.str?.text } } else { cands = [try strArg(a, 0, "prefix")] }
            return .bool(cands.contains { name == "startswith" ? text.unicodeScalars.starts(with: $0.unicodeScalars)
                                                               : text.unicodeScalars.reversed().starts(with: $0.unicodeScalars.reversed()) })
        }
        case "split", "rsplit": return { a, kw in
            let sep = a.first.flatMap { $0.isNone ? nil : $0 } ?? kw.first { $0.0 == "sep" }?.1
            let maxsplit = (a.count > 1 ? a[1] : kw.first { $0.0 == "maxsplit" }?.1)?.integer ?? -1
            if sep == nil && maxsplit >= 0 {
                // whitespace runs, at most maxsplit splits; the rest kept as it is (left-trimmed)
                var words: [String] = []
                var rest = text.unicodeScalars[...]
                if name == "rsplit" { throw self.error("rsplit(None, maxsplit) is not supported") }
                while true {
                    rest = rest.drop(while: { $0.properties.isWhitespace })
                    if rest.isEmpty { break }
                    if words.count == maxsplit { words.append(String(String.UnicodeScalarView(rest))); break }
                    let word = rest.prefix(while: { !$0.properties.isWhitespace })
                    words.append(String(String.UnicodeScalarView(word)))
                    rest = rest[word.endIndex...]
                }
                return .list(words.map(str))
            }
            if let sep {
                guard let p = sep.str?.text, !p.isEmpty else { throw self.error("empty separator") }
                var parts = JinjaRenderer.split(text, by: p)
                if maxsplit >= 0 && parts.count > maxsplit + 1 {
                    if name == "split" {
                        parts = Array(parts[..<maxsplit]) + [parts[maxsplit...].joined(separator: p)]
                    } else {
                        let k = parts.count - maxsplit
                        parts = [parts[..<k].joined(separator: p)] + Array(parts[k...])
                    }
                }
                return .list(parts.map(str))
            }
            let words = text.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace }).map { String(String.UnicodeScalarView($0)) }
            return .list(words.map(str))
        }
        case "replace": return { a, _ in
            let old = try strArg(a, 0, "the old text"), new = try strArg(a, 1, "the new text")
            let count = a.count > 2 ? a[2].integer ?? -1 : -1
            if old.isEmpty { return str(text) }
            var parts = JinjaRenderer.split(text, by: old)
            try self.ensureSize(text.utf8.count + (parts.count - 1) * new.utf8.count)
            if count >= 0 && parts.count > count + 1 { parts = Array(parts[..<count]) + [parts[count...].joined(separator: old)] }
            var out = JStr(parts.joined(separator: new), literal: lit || a[1].hasLiteral)
            if !lit && !a[1].hasLiteral { out = JStr(out.text, literal: false) }
            return .string(out)
        }
        case "find": return { a, _ in
            let p = try strArg(a, 0, "the text to find")
            return .int(JinjaRenderer.find(p, in: text) ?? -1)
        }
        case "count": return { a, _ in
            let p = try strArg(a, 0, "the text to count")
            return .int(p.isEmpty ? text.unicodeScalars.count + 1 : JinjaRenderer.split(text, by: p).count - 1)
        }
        case "join": return { a, _ in
            guard let xs = a.first?.items else { throw self.error("join() takes an iterable") }
            try self.ensureSize(xs.reduce(0) { $0 + ($1.str?.text.utf8.count ?? 0) } + max(0, xs.count - 1) * text.utf8.count)
            var out = JStr()
            for (i, x) in xs.enumerated() {
                if i > 0 { out.append(s) }
                guard let xs = x.str else { throw self.error("sequence item \(i): expected str instance, \(x.typeName) found") }
                out.append(xs)
            }
            return .string(out)
        }
        case "splitlines": return { _, _ in
            .list(text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
                .map { str(String(String.UnicodeScalarView($0))) }.dropLast(text.hasSuffix("\n") ? 1 : 0))
        }
        case "isdigit": return { _, _ in .bool(!text.isEmpty && text.unicodeScalars.allSatisfy { $0.properties.numericType != nil }) }
        case "isspace": return { _, _ in .bool(!text.isEmpty && text.unicodeScalars.allSatisfy { $0.properties.isWhitespace }) }
        case "isalpha": return { _, _ in .bool(!text.isEmpty && text.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
        case "isupper": return { _, _ in .bool(text.contains { $0.isCased } && text == text.uppercased()) }
        case "islower": return { _, _ in .bool(text.contains { $0.isCased } && text == text.lowercased()) }
        case "format": return { a, kw in try self.pythonFormatMethod(text, lit, a, kw) }
        default: return nil
        }
    }

    /// Start offsets (in code points) of the non-overlapping occurrences of sep in text, left to
    /// right, at most `limit` of them: Knuth-Morris-Pratt, linear in both lengths.
    static func occurrences(of sep: [Unicode.Scalar], in sc: [Unicode.Scalar], limit: Int = Int.max) -> [Int] {
        guard !sep.isEmpty, sep.count <= sc.count else { return [] }
        var fail = [Int](repeating: 0, count: sep.count)
        var k = 0
        for i in 1..<max(1, sep.count) where sep.count > 1 {
            while k > 0 && sep[i] != sep[k] { k = fail[k - 1] }
            if sep[i] == sep[k] { k += 1 }
            fail[i] = k
        }
        var out: [Int] = []
        var j = 0
        for (i, c) in sc.enumerated() {
            while j > 0 && c != sep[j] { j = fail[j - 1] }
            if c == sep[j] { j += 1 }
            if j == sep.count {
                out.append(i + 1 - sep.count)
                if out.count >= limit { break }
                j = 0   // non-overlapping: start again after the match
            }
        }
        return out
    }

    static func split(_ text: String, by sep: String) -> [String] {
        guard !sep.isEmpty else { return [text] }
        let sc = Array(text.unicodeScalars), ps = Array(sep.unicodeScalars)
        var out: [String] = []
        var start = 0
        for at in occurrences(of: ps, in: sc) {
            out.append(String(String.UnicodeScalarView(sc[start..<at])))
            start = at + ps.count
        }
        out.append(String(String.UnicodeScalarView(sc[start...])))
        return out
    }

    static func find(_ needle: String, in text: String) -> Int? {
        if needle.isEmpty { return 0 }
        return occurrences(of: Array(needle.unicodeScalars), in: Array(text.unicodeScalars), limit: 1).first
    }

    static func trimmed(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.drop(while: \.properties.isWhitespace).reversed()
            .drop(while: \.properties.isWhitespace).reversed()))
    }

    static func capitalize(_ s: String) -> String {
        guard let f = s.first else { return s }
        return String(f).uppercased() + s.dropFirst().lowercased()
    }

    /// Python's str.title: a letter after a non-letter starts a word.
    static func pythonTitle(_ s: String) -> String {
        var out = ""
        var prevCased = false
        for c in s {
            out += prevCased ? c.lowercased() : c.uppercased()
            prevCased = c.isCased
        }
        return out
    }

    /// jinja2's title filter: words begin after whitespace, '-', '(', '{', '[', '<'.
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var start = true
        for c in s {
            let boundary = c.isWhitespace || "-({[<".contains(c)
            if boundary { out.append(c); start = true; continue }
            out += start ? c.uppercased() : c.lowercased()
            start = false
        }
        return out
    }

    /// "{} and {name}".format(...): positional, numbered and named fields, no format specs.
    func pythonFormatMethod(_ text: String, _ lit: Bool, _ a: [JValue], _ kw: [(String, JValue)]) throws -> JValue {
        var out = JStr()
        var auto = 0
        var chars = Array(text)[...]
        var plain = ""
        while let c = chars.popFirst() {
            if c == "{" && chars.first == "{" { chars.removeFirst(); plain.append("{"); continue }
            if c == "}" && chars.first == "}" { chars.removeFirst(); plain.append("}"); continue }
            guard c == "{" else { plain.append(c); continue }
            var field = ""
            while let d = chars.popFirst(), d != "}" { field.append(d) }
            out.append(plain, literal: lit)
            plain = ""
            let v: JValue
            if field.isEmpty {
                guard auto < a.count else { throw error("format(): not enough arguments") }
                v = a[auto]
                auto += 1
            } else if let i = Int(field) {
                guard i >= 0 && i < a.count else { throw error("format(): no argument \(i)") }
                v = a[i]
            } else {
                guard let x = kw.first(where: { $0.0 == field })?.1 else { throw error("format(): no argument '\(field)'") }
                v = x
            }
            out.append(try self.printed(v))
            try ensureSize(out.parts.reduce(0) { $0 + $1.text.utf8.count })
        }
        out.append(plain, literal: lit)
        return .string(out)
    }

    /// "%s has %d" | format(a, b): Python's % with s, d, i, r, f (no widths), %%.
    func percentFormat(_ text: String, _ lit: Bool, _ a: [JValue]) throws -> JValue {
        var out = JStr()
        var chars = Array(text)[...]
        var plain = ""
        var k = 0
        while let c = chars.popFirst() {
            guard c == "%" else { plain.append(c); continue }
            guard let spec = chars.popFirst() else { throw error("format: incomplete format") }
            if spec == "%" { plain.append("%"); continue }
            out.append(plain, literal: lit)
            plain = ""
            guard k < a.count else { throw error("format: not enough arguments for format string") }
            let v = a[k]
            k += 1
            switch spec {
            case "s":
                out.append(try self.printed(v))
                try ensureSize(out.parts.reduce(0) { $0 + $1.text.utf8.count })
            case "r": out.append(JStr(v.repr(), literal: v.hasLiteral))
            case "d", "i":
                guard let n = v.number else { throw error("format: %\(spec) format: a number is required, not \(v.typeName)") }
                if let i = v.integer { out.append(String(i), literal: false) }
                else if let i = Int(exactly: n.rounded(.towardZero)) { out.append(String(i), literal: false) }
                else if n.isFinite { out.append(JinjaRenderer.fixed(n.rounded(.towardZero), 0), literal: false) }
                else { throw error("format: cannot convert float \(JValue.pythonFloat(n)) to integer") }
            case "f":
                guard let n = v.number else { throw error("format: %f format: a number is required, not \(v.typeName)") }
                out.append(JinjaRenderer.fixed(n, 6), literal: false)
            default: throw error("format: unsupported format character '\(spec)'")
            }
        }
        out.append(plain, literal: lit)
        guard k == a.count else { throw error("format: not all arguments converted during string formatting") }
        return .string(out)
    }

    static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return JValue.pythonFloat(x) }
        var buf = [Int8](repeating: 0, count: 400)
        let n = withVaList([x]) { vsnprintf(&buf, buf.count, "%.\(digits)f", $0) }
        return String(decoding: buf[0..<Int(max(0, min(Int32(buf.count - 1), n)))].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: filters

    func applyFilter(_ name: String, _ v: JValue, _ a: [JValue], _ kw: [(String, JValue)]) throws -> JValue {
        func arg(_ i: Int, _ key: String) -> JValue? { i < a.count ? a[i] : kw.first { $0.0 == key }?.1 }
        func seq() throws -> [JValue] {
            guard let xs = v.items else { throw error("'\(v.typeName)' object is not iterable (filter \(name))") }
            try charge(xs.count)
            return xs
        }
        if let s = v.str { try charge(s.text.utf8.count / 64) }
        if !v.truthy, ["map", "select", "reject", "selectattr", "rejectattr"].contains(name) {
            // jinja2 yields nothing for a false value (none included) before iterating it
            return .list([])
        }
        switch name {
        case "trim":
            guard let s = v.str else { return v.isUndefined ? .markup("") : .string(try self.printed(v).stripped(leading: true, trailing: true)) }
            let chars = arg(0, "chars")?.str.map { Set($0.text.unicodeScalars) }
            return .string(s.stripped(leading: true, trailing: true, chars: chars))
        case "length", "count":
            switch v {
            case .undefined: return .int(0)
            case let .string(s): return .int(s.text.unicodeScalars.count)
            case let .list(x), let .tuple(x): return .int(x.count)
            case let .dict(d): return .int(d.count)
            default: throw error("object of type '\(v.typeName)' has no len()")
            }
        case "upper", "lower", "capitalize", "title":
            let s = try self.printed(v)
            return .string(s.mapped { t in
                switch name {
                case "upper": return t.uppercased()
                case "lower": return t.lowercased()
                case "capitalize": return JinjaRenderer.capitalize(t)
                default: return JinjaRenderer.jinjaTitle(t)
                }
            })
        case "default", "d":
            let fallback = arg(0, "default_value") ?? .markup("")
            let boolean = arg(1, "boolean")?.truthy ?? false
            if v.isUndefined || (boolean && !v.truthy) { return fallback }
            return v
        case "join":
            let sep = try arg(0, "d").map { try self.printed($0) } ?? JStr()
            let attribute = arg(1, "attribute")
            let pieces = try seq().map { x in try self.printed(try attribute.map { try self.attributePath(x, $0) } ?? x) }
            try ensureSize(pieces.reduce(0) { $0 + $1.text.utf8.count } + max(0, pieces.count - 1) * sep.text.utf8.count)
            var out = JStr()
            for (i, p) in pieces.enumerated() {
                if i > 0 { out.append(sep) }
                out.append(p)
            }
            return .string(out)
        case "first":
            return try seq().first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            return try seq().last ?? .undefined(hint: "No last item, sequence was empty.")
        case "list":
            return .list(try seq())
        case "string":
            return .string(try self.printed(v))
        case "safe":
            guard case var .string(s) = v else { return v }
            s.safe = true
            return .string(s)
        case "e", "escape":
            guard case let .string(s) = v else { return .string(try self.printed(v).htmlEscaped) }
            if s.safe { return v }
            var e = s.htmlEscaped
            e.safe = true
            return .string(e)
        case "int":
            let d = arg(0, "default") ?? .int(0)
            switch v {
            case let .int(i): return .int(i)
            case let .bool(b): return .int(b ? 1 : 0)
            case let .double(x): return x.isFinite && abs(x) < 9e18 ? .int(Int(x)) : d
            case let .string(s):
                let t = JinjaRenderer.trimmed(s.text)
                if let i = Int(t.filter { $0 != "_" }) { return .int(i) }
                if let x = Double(t), x.isFinite, abs(x) < 9e18 { return .int(Int(x)) }
                return d
            default: return d
            }
        case "float":
            let d = arg(0, "default") ?? .double(0)
            switch v {
            case let .string(s): return Double(JinjaRenderer.trimmed(s.text)).map { .double($0) } ?? d
            default: return v.number.map { .double($0) } ?? d
            }
        case "abs":
            if case let .int(i) = v { guard i != .min else { throw error("integer overflow") }; return .int(abs(i)) }
            if case let .bool(b) = v { return .int(b ? 1 : 0) }
            guard let x = v.number else { throw error(misuse(v, "bad operand type for abs(): '\(v.typeName)'")) }
            return .double(abs(x))
        case "round":
            let precision = arg(0, "precision")?.integer ?? 0
            let method = arg(1, "method")?.str?.text ?? "common"
            if case let .int(i) = v {
                if precision >= 0 { return .int(i) }
                guard precision >= -18 else { return .int(0) }
                var p = 1
                for _ in 0 ..< -precision { p *= 10 }
                let r = (Double(i) / Double(p)).rounded(method == "floor" ? .down : method == "ceil" ? .up : .toNearestOrEven) * Double(p)
                return Int(exactly: r).map { .int($0) } ?? .double(r)
            }
            guard let x = v.number else { throw error(misuse(v, "round needs a number, not '\(v.typeName)'")) }
            guard (-20...20).contains(precision) else { throw error("round precision must be within -20...20") }
            let scale = pow(10.0, Double(precision))
            let y = x * scale
            let r: Double
            switch method {
            case "floor": r = y.rounded(.down)
            case "ceil": r = y.rounded(.up)
            case "common": r = y.rounded(.toNearestOrEven)
            default: throw error("round method must be 'common', 'ceil' or 'floor'")
            }
            return .double(r / scale)
        case "replace":
            guard let oldValue = arg(0, "old"), let new = arg(1, "new") else { throw error("replace needs the old and new text") }
            let old = try self.printed(oldValue).text
            let count = arg(2, "count")?.integer ?? -1
            var a2: [JValue] = [.markup(old), .string(try self.printed(new))]
            if count >= 0 { a2.append(.int(count)) }
            return try stringMethod(try self.printed(v), "replace")!(a2, [])
        case "indent":
            let width = arg(0, "width")
            let first = arg(1, "first")?.truthy ?? false
            let blank = arg(2, "blank")?.truthy ?? false
            let pad: String
            if let w = width?.str?.text { pad = w } else { pad = String(repeating: " ", count: max(0, min(width?.integer ?? 4, 1000))) }
            let s = try self.printed(v)
            var lines = s.text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
            try ensureSize(s.text.utf8.count + lines.count * pad.utf8.count)
            for i in lines.indices where (i > 0 || first) && (blank || !lines[i].allSatisfy(\.isWhitespace)) {
                lines[i] = pad + lines[i]
            }
            return .string(JStr(lines.joined(separator: "\n"), literal: s.derivedLiteral || (width?.hasLiteral ?? false)))
        case "map":
            let xs = try seq()
            if let attribute = kw.first(where: { $0.0 == "attribute" })?.1 {
                let d = kw.first { $0.0 == "default" }?.1
                return .list(try xs.map { x in
                    let r = try attributePath(x, attribute)
                    return r.isUndefined ? (d ?? r) : r
                })
            }
            guard let f = a.first?.str?.text else { throw error("map needs a filter name or attribute=") }
            guard JinjaBuiltins.filters.contains(f) else { throw error("No filter named '\(f)'.") }
            return .list(try xs.map { try applyFilter(f, $0, Array(a.dropFirst()), []) })
        case "select", "reject", "selectattr", "rejectattr":
            let xs = try seq()
            let byAttr = name.hasSuffix("attr")
            let rest = byAttr ? Array(a.dropFirst()) : a
            guard !byAttr || !a.isEmpty else { throw error("\(name) needs an attribute") }
            let testName = rest.first?.str?.text
            if let t = testName, !JinjaBuiltins.tests.contains(t) { throw error("No test named '\(t)'.") }
            let keep = name.hasPrefix("select")
            return .list(try xs.filter { x in
                let subject = byAttr ? try attributePath(x, a[0]) : x
                let r = try testName.map { try applyTest($0, subject, Array(rest.dropFirst())) } ?? subject.truthy
                return r == keep
            })
        case "unique":
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let attribute = arg(1, "attribute")
            var seen: [JValue] = []
            var out: [JValue] = []
            for x in try seq() {
                let k = try sortKey(try attribute.map { try attributePath(x, $0) } ?? x, caseSensitive)
                try charge(seen.count)
                if !seen.contains(k) { seen.append(k); out.append(x) }
            }
            return .list(out)
        case "sort":
            let reverse = arg(0, "reverse")?.truthy ?? false
            let caseSensitive = arg(1, "case_sensitive")?.truthy ?? false
            let attribute = arg(2, "attribute")
            let keyed = try seq().map { x in (try sortKey(try attribute.map { try attributePath(x, $0) } ?? x, caseSensitive), x) }
            return .list(try stableSort(keyed, reverse: reverse).map(\.1))
        case "dictsort":
            guard case let .dict(d) = v else { throw error("dictsort needs a dict, not '\(v.typeName)'") }
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let byValue = arg(1, "by")?.str?.text == "value"
            let reverse = arg(2, "reverse")?.truthy ?? false
            let keyed = try d.map { (try sortKey(byValue ? $0.1 : $0.0, caseSensitive), JValue.tuple([$0.0, $0.1])) }
            return .list(try stableSort(keyed, reverse: reverse).map(\.1))
        case "reverse":
            if let s = v.str { return .string(s.mapped { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }) }
            return .list(try seq().reversed())
        case "items":
            if v.isUndefined { return .list([]) }
            guard case let .dict(d) = v else { throw error("items needs a dict, not '\(v.typeName)'") }
            return .list(d.map { .tuple([$0.0, $0.1]) })
        case "tojson":
            // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
            let ensureASCII = arg(0, "ensure_ascii")?.truthy ?? false
            let indent = arg(1, "indent")?.integer
            let sortKeys = kw.first { $0.0 == "sort_keys" }?.1.truthy ?? false
            var sep = (", ", ": ")
            if indent != nil { sep.0 = "," }
            if case let .tuple(s)? = kw.first(where: { $0.0 == "separators" })?.1, s.count == 2,
               let x = s[0].str?.text, let y = s[1].str?.text { sep = (x, y) }
            var out = ""
            try toJSON(v, indent: indent.map { max(0, min($0, 64)) }, level: 0, sep: sep, sortKeys: sortKeys, ascii: ensureASCII, into: &out)
            return .string(JStr(out, literal: v.hasLiteral))
        case "format":
            return try percentFormat(try self.printed(v).text, v.hasLiteral, a)
        case "attr":
            guard let n = arg(0, "name")?.str?.text else { throw error("attr needs a name") }
            return try attribute(v, n)
        case "wordcount":
            return .int(try self.printed(v).text.split(whereSeparator: { $0.isWhitespace || $0.isPunctuation }).count)
        case "sum":
            var total: JValue = arg(1, "start") ?? .int(0)
            let attribute = arg(0, "attribute")
            for x in try seq() { total = try arithmetic("+", total, try attribute.map { try attributePath(x, $0) } ?? x) }
            return total
        case "min", "max":
            let xs = try seq()
            guard var best = xs.first else { return .undefined(hint: "No aggregated item, sequence was empty.") }
            for x in xs.dropFirst() {
                let c = try order(try sortKey(x, false), try sortKey(best, false))
                if name == "min" ? c < 0 : c > 0 { best = x }
            }
            return best
        default:
            throw error("No filter named '\(name)'.")
        }
    }

    /// `attribute="a.b"` or an integer index, as jinja2's attribute paths.
    func attributePath(_ x: JValue, _ path: JValue) throws -> JValue {
        if let i = path.integer { return try item(x, .int(i)) }
        var cur = x
        for part in try self.printed(path).text.split(separator: ".") {
            if cur.isUndefined { return cur }
            cur = try item(cur, Int(part).map { .int($0) } ?? .markup(String(part)))
        }
        return cur
    }

    func sortKey(_ x: JValue, _ caseSensitive: Bool) throws -> JValue {
        if !caseSensitive, let s = x.str { return .markup(s.text.lowercased()) }
        return x
    }

    func stableSort(_ xs: [(JValue, JValue)], reverse: Bool) throws -> [(JValue, JValue)] {
        var failure: Error? = nil
        let indexed = xs.enumerated().map { ($0.offset, $0.element) }
        let sorted = indexed.sorted { p, q in
            guard failure == nil else { return false }
            do {
                let c = try order(p.1.0, q.1.0)
                if c != 0 { return reverse ? c > 0 : c < 0 }
            } catch { failure = error }
            return p.0 < q.0
        }
        if let failure { throw failure }
        return sorted.map(\.1)
    }

    /// json.dumps(x, ensure_ascii=False, indent, separators, sort_keys), as transformers' tojson.
    func toJSON(_ v: JValue, indent: Int?, level: Int, sep: (String, String), sortKeys: Bool, ascii: Bool,
                into out: inout String) throws {
        try step()
        guard level < 200 else { throw error("tojson: nested deeper than 200") }
        func newline(_ l: Int) { if let indent { out += "\n" + String(repeating: " ", count: indent * l) } }
        switch v {
        case .none, .undefined: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d): out += d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : JValue.pythonFloat(d)
        case let .string(s):
            out += JinjaRenderer.jsonQuote(s.text, ascii: ascii)
            if out.utf8.count > limits.maxOutputBytes { throw error("tojson: the text passed \(limits.maxOutputBytes) bytes") }
        case let .list(xs), let .tuple(xs):
            if xs.isEmpty { out += "[]"; return }
            out += "["
            for (i, x) in xs.enumerated() {
                if i > 0 { out += sep.0 }
                newline(level + 1)
                try toJSON(x, indent: indent, level: level + 1, sep: sep, sortKeys: sortKeys, ascii: ascii, into: &out)
            }
            newline(level)
            out += "]"
        case let .dict(d):
            if d.isEmpty { out += "{}"; return }
            var members: [(String, JValue)] = []
            for (k, x) in d {
                switch k {
                case let .string(s): members.append((s.text, x))
                case .int, .double, .bool, .none: members.append((k.isNone ? "null" : k.repr() == "True" ? "true" : k.repr() == "False" ? "false" : k.repr(), x))
                default: throw error("tojson: keys must be str, int, float, bool or None, not \(k.typeName)")
                }
            }
            if sortKeys { members.sort { Array($0.0.unicodeScalars).map(\.value).lexicographicallyPrecedes(Array($1.0.unicodeScalars).map(\.value)) } }
            out += "{"
            for (i, (k, x)) in members.enumerated() {
                if i > 0 { out += sep.0 }
                newline(level + 1)
                out += JinjaRenderer.jsonQuote(k, ascii: ascii) + sep.1
                try toJSON(x, indent: indent, level: level + 1, sep: sep, sortKeys: sortKeys, ascii: ascii, into: &out)
            }
            newline(level)
            out += "}"
        case let .namespace(ns):
            try toJSON(.dict(ns.members.map { (.markup($0.0), $0.1) }), indent: indent, level: level, sep: sep, sortKeys: sortKeys, ascii: ascii, into: &out)
        case .function:
            throw error("tojson: Object of type function is not JSON serializable")
        }
    }

    /// As Python's json.dumps quotes a string (transformers' tojson)
    static func jsonQuote(_ s: String, ascii: Bool = false) -> String { JSONWriter.quote(s, pythonStyle: true, ascii: ascii) }

    // MARK: tests

    func applyTest(_ name: String, _ v: JValue, _ a: [JValue]) throws -> Bool {
        func other() throws -> JValue {
            guard let x = a.first else { throw error("test '\(name)' needs an argument") }
            return x
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return v.isNone
        case "string": if case .string = v { return true }; return false
        case "number": if case .int = v { return true }; if case .double = v { return true }; if case .bool = v { return true }; return false
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "iterable":
            switch v { case .string, .list, .tuple, .dict: return true; default: return false }
        case "sequence":
            switch v { case .string, .list, .tuple, .dict: return true; default: return false }
        case "callable": if case .function = v { return true }; return false
        case "odd", "even":
            guard let i = v.integer else { throw error(misuse(v, "test '\(name)' needs an integer")) }
            return (i & 1 == 1) == (name == "odd")
        case "divisibleby":
            guard let i = v.integer, let n = try other().integer, n != 0 else { throw error("divisibleby needs integers and a non-zero divisor") }
            return n == -1 || i % n == 0
        case "eq", "equalto", "==": return v == (try other())
        case "ne", "!=": return !(v == (try other()))
        case "lt", "lessthan": return try order(v, other()) < 0
        case "le": return try order(v, other()) <= 0
        case "gt", "greaterthan": return try order(v, other()) > 0
        case "ge": return try order(v, other()) >= 0
        case "in": return try contains(other(), v)
        case "sameas":
            let o = try other()
            switch (v, o) {
            case (.none, .none): return true
            case let (.bool(x), .bool(y)): return x == y
            case let (.namespace(x), .namespace(y)): return x === y
            default: return false
            }
        case "lower": return v.str.map { $0.text == $0.text.lowercased() } ?? false
        case "upper": return v.str.map { $0.text == $0.text.uppercased() } ?? false
        default: throw error("No test named '\(name)'.")
        }
    }
}

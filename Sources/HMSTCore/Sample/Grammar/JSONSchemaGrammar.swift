// JSONSchemaGrammar: a JSON Schema into GBNF (then a Grammar), for OpenAI's response_format
// {"type": "json_schema"} and llama.cpp's --json-schema. The text generated is one JSON value
// that the schema accepts, written compactly or with modest whitespace: between tokens one space,
// or a line break and up to 20 spaces or tabs of indentation.
//
// Enforced: type (one or a list), enum, const, anyOf, oneOf (as anyOf: exclusivity is not
// checked), allOf with one member, $ref to "#", "#/$defs/...", "#/definitions/..." or any JSON
// pointer into the schema (recursion allowed), properties, required, additionalProperties,
// items, prefixItems, minItems, maxItems (at most 1000), pattern (PatternGrammar: a subset of
// ECMA-262 regular expressions), minLength, maxLength (at most 1000,
// counted in string characters as written: an escape such as \u00e9 is one, a surrogate pair
// two), nullable (OpenAPI), minimum / maximum / exclusiveMinimum / exclusiveMaximum on integers
// (IntegerRange) and numbers (NumberRange: bounded numbers are written without an exponent;
// draft 4's boolean exclusiveMinimum too), multipleOf on both (MultipleOf: any multiple, those
// at least 0, or at most 512 listed between two bounds), and the
// string formats date, time, date-time (a subset of RFC 3339: upper-case T and Z, seconds 00-59,
// at most 9 fraction digits, February 29 in any year) and uuid (other formats are annotations). Properties come in the schema's order, required ones always,
// optional ones maybe. With `properties`, a missing additionalProperties means none (OpenAI's
// strict mode); without them, any members. Extra members (additionalProperties true or a
// schema) may take any key, also a declared one. prefixItems are all required; without `items`
// nothing may follow them. Beside $ref, const, enum, anyOf, oneOf and allOf (which write the
// whole value) a keyword that shapes the value is refused, except `type` beside const or enum,
// which keeps the values of that type. Annotations (title, description, default, examples,
// format, $schema, $id, $comment, deprecated, readOnly, writeOnly) and unknown keywords are
// ignored, as a validator ignores `format` by default; constraints that are not enforced
// (uniqueItems, not, if/then/else, ...) are an error that
// names them, never silently dropped.
//
// Strings may not hold raw control characters or DEL (JSON allows DEL; no model needs it).
// Numbers are bounded so a model cannot write digits forever: at most 16 integer digits, 16
// fraction digits and 3 exponent digits.

public enum JSONSchemaGrammar {
    /// The GBNF text for `schema` (its root rule is `root`).
    public static func gbnf(schema: JSONValue) throws -> String {
        var w = Writer(root: schema)
        let top = try w.rule(for: schema, name: "root", depth: 0)
        if top != "root" { w.define("root", top) }
        return w.text()
    }

    /// The GBNF text for fixed text, then one value of `schema`, then fixed text (a tool call's
    /// markers around its JSON); the value's rule is not `root`.
    public static func gbnf(schema: JSONValue, prefix: String, suffix: String) throws -> String {
        try gbnf(schema: schema) { value in
            ([prefix].filter { !$0.isEmpty }.map(literal) + [value] + [suffix].filter { !$0.isEmpty }.map(literal)).joined(separator: " ")
        }
    }

    /// The GBNF text whose root is `root(rule)`, rule being the name of the rule for one value of
    /// `schema` (not `root`): e.g. several values between markers.
    public static func gbnf(schema: JSONValue, root: (String) -> String) throws -> String {
        var w = Writer(root: schema)
        w.used.insert("root")
        let value = try w.rule(for: schema, name: "wrapped", depth: 0)   // not "value": a shared rule's name
        w.define("root", root(value))
        return w.text()
    }

    /// The Grammar for a schema given as JSON text.
    public static func grammar(schemaText: String) throws -> Grammar {
        let schema: JSONValue
        do { schema = try JSONValue.parse(schemaText) } catch let e as HMSTError {
            throw HMSTError.invalidArgument("json schema: not valid JSON: \(e.message)")
        }
        return try grammar(schema: schema)
    }

    public static func grammar(schema: JSONValue) throws -> Grammar {
        let text = try gbnf(schema: schema)
        do { return try Grammar.parse(gbnf: text) } catch let e as HMSTError {
            throw HMSTError(e.status, "json schema: its grammar is refused: \(e.message)")
        }
    }

    /// Keywords that constrain a value's shape (beside $ref, const, enum, anyOf, oneOf, allOf
    /// they are refused: they would be dropped, as those keywords write the whole value).
    static let shaping: [String] = ["type", "properties", "required", "additionalProperties", "items", "prefixItems",
                                    "minItems", "maxItems", "minLength", "maxLength", "pattern"]
    static let types: Set<String> = ["string", "number", "integer", "boolean", "null", "object", "array"]
    static let bounds = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]

    /// Whether bound `key` of s excludes its value: exclusiveMinimum / exclusiveMaximum, or
    /// minimum / maximum beside draft 4's boolean exclusiveMinimum / exclusiveMaximum true.
    static func isExclusive(_ s: JSONValue, _ key: String) -> Bool {
        key.hasPrefix("exclusive") || s[key == "minimum" ? "exclusiveMinimum" : "exclusiveMaximum"]?.bool == true
    }
    /// The string formats enforced (the text inside the quotes); other formats are annotations.
    static let formats: [String: String] = {
        // days by month (February to 29 in any year)
        let date = #"[0-9]{4} "-" (("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | ("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | "02-" ("0" [1-9] | [12] [0-9]))"#
        let time = #"([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,9})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])"#
        let hex = "[0-9a-fA-F]"
        return ["date": date, "time": time, "date-time": "\(date) \"T\" \(time)",
                "uuid": "\(hex){8} \"-\" \(hex){4} \"-\" \(hex){4} \"-\" \(hex){4} \"-\" \(hex){12}"]
    }()
    static let refused: [String] = ["patternProperties", "propertyNames", "minProperties", "maxProperties", "uniqueItems",
                                    "contains", "minContains", "maxContains", "not", "if", "then", "else", "dependentRequired",
                                    "dependentSchemas", "dependencies", "unevaluatedProperties", "unevaluatedItems", "contentEncoding",
                                    "contentMediaType", "$dynamicRef", "$recursiveRef"]
    static let maxDepth = 32
    static let maxCount = 1000

    /// The JSON Schema type of a value ("integer" for integral numbers).
    static func typeName(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "boolean"
        case .integer: return "integer"
        case .number(let n): return n == n.rounded() && n.isFinite ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// A GBNF string literal of `text`: JSON's quoting, whose escapes (\" \\ \n \r \t \uXXXX)
    /// GBNF reads the same way.
    static func literal(_ text: String) -> String { JSONWriter.quote(text) }

    struct Writer {
        let root: JSONValue
        var rules: [(String, String)] = []
        var used: Set<String> = []
        var refs: [String: String] = [:]     // JSON pointer -> rule name

        init(root: JSONValue) { self.root = root }

        func text() -> String { rules.map { "\($0.0) ::= \($0.1)" }.joined(separator: "\n") + "\n" }

        mutating func define(_ name: String, _ body: String) {
            used.insert(name)
            rules.append((name, body))
        }

        /// A fresh rule name from a readable one.
        mutating func fresh(_ hint: String) -> String {
            var base = String(hint.unicodeScalars.map { c -> Character in
                c.value < 0x80 && GBNFParser.isNameByte(UInt8(c.value)) ? Character(c) : "-"
            })
            if base.isEmpty { base = "r" }
            var name = base, k = 1
            while used.contains(name) { k += 1; name = "\(base)-\(k)" }
            used.insert(name)
            return name
        }

        /// The shared rules every JSON value uses (defined on first use).
        mutating func primitive(_ name: String) -> String {
            if used.contains(name) { return name }
            let body: String
            switch name {
            case "ws": body = #"(" " | "\n" [ \t]{0,20})?"#   // one space, or a line break and indentation
            case "char": body = #"[^"\\\x00-\x1F\x7F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"#
            case "string": body = "\"\\\"\" \(primitive("char"))* \"\\\"\""
            case "integer": body = #""-"? ("0" | [1-9] [0-9]{0,15})"#
            case "number": body = "\(primitive("integer")) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?"
            case "boolean": body = #""true" | "false""#
            case "null": body = #""null""#
            case "value":
                used.insert(name)
                let ws = primitive("ws"), s = primitive("string")
                let members = "\(s) \(ws) \":\" \(ws) value \(ws)"
                let elements = "value \(ws)"
                rules.append(("value", "\"{\" \(ws) (\(members) (\",\" \(ws) \(members))*)? \"}\" | \"[\" \(ws) (\(elements) (\",\" \(ws) \(elements))*)? \"]\" | "
                              + "\(s) | \(primitive("number")) | \(primitive("boolean")) | \(primitive("null"))"))
                return name
            default: body = ""
            }
            define(name, body)
            return name
        }

        func error(_ what: String, _ path: String) -> HMSTError {
            HMSTError.invalidArgument("json schema: at \(path.isEmpty ? "the root" : path): \(what)")
        }

        /// A rule (or an expression fit to stand in a sequence) for schema s.
        mutating func rule(for s: JSONValue, name: String, depth: Int, path: String = "") throws -> String {
            guard depth <= JSONSchemaGrammar.maxDepth else { throw error("nested deeper than \(JSONSchemaGrammar.maxDepth)", path) }
            if case .bool(let b) = s {
                guard b else { throw error("schema false accepts nothing", path) }
                return primitive("value")
            }
            guard let members = s.object else { throw error("a schema must be an object or a boolean", path) }
            for (k, _) in members where JSONSchemaGrammar.refused.contains(k) {
                throw error("'\(k)' is not supported (hmst enforces type, enum, const, anyOf, oneOf, $ref, properties, required, "
                            + "additionalProperties, items, prefixItems, minItems, maxItems, minLength, maxLength, integer bounds, "
                            + "formats date, time, date-time, uuid)", path)
            }
            let writers = ["$ref", "const", "enum", "anyOf", "oneOf", "allOf"].filter { s[$0] != nil }
            if writers.count > 1 {
                throw error("'\(writers[0])' beside '\(writers[1])' is not supported (nest one inside the other)", path)
            }
            if let w = writers.first {
                // beside const or enum, type picks the values of that type; anything else would be dropped
                let typeFilters = w == "const" || w == "enum"
                let enforcedFormat = s["format"]?.string.map { JSONSchemaGrammar.formats[$0] != nil } == true
                if let k = (JSONSchemaGrammar.shaping + JSONSchemaGrammar.bounds).first(where: { s[$0] != nil && !($0 == "type" && typeFilters) })
                    ?? (enforcedFormat ? "format" : nil) {
                    throw error("'\(k)' beside '\(w)' is not supported (move it into \(w == "$ref" ? "the schema referenced" : w == "const" || w == "enum" ? "the values" : "each alternative"))", path)
                }
            }
            var alternatives: [String]
            if let r = s["$ref"] {
                guard let ref = r.string else { throw error("$ref must be a string", path) }
                alternatives = [try reference(ref, depth: depth, path: path)]
            } else if s["const"] != nil || s["enum"] != nil {
                var values: [JSONValue]
                if let c = s["const"] { values = [c] } else {
                    guard let list = s["enum"]?.array, !list.isEmpty else { throw error("enum must be a non-empty array", path) }
                    values = list
                }
                if let t = s["type"] {
                    let allowed = Set(t.string.map { [$0] } ?? t.array?.compactMap(\.string) ?? [])
                    values = values.filter { allowed.contains(JSONSchemaGrammar.typeName($0)) || (allowed.contains("number") && JSONSchemaGrammar.typeName($0) == "integer") }
                    guard !values.isEmpty else { throw error("no value of \(s["const"] != nil ? "const" : "enum") has the type given", path) }
                }
                alternatives = values.map { JSONSchemaGrammar.literal($0.serialized) }
            } else if let any = s["anyOf"] ?? s["oneOf"] {
                let key = s["anyOf"] != nil ? "anyOf" : "oneOf"
                guard let list = any.array, !list.isEmpty else { throw error("\(key) must be a non-empty array", path) }
                alternatives = try list.enumerated().map { i, sub in
                    try rule(for: sub, name: "\(name)-\(i)", depth: depth + 1, path: "\(path)/\(key)/\(i)")
                }
            } else if let all = s["allOf"] {
                guard let list = all.array, list.count == 1 else {
                    throw error("allOf with more than one schema is not supported (merge them into one)", path)
                }
                alternatives = [try rule(for: list[0], name: name, depth: depth + 1, path: "\(path)/allOf/0")]
            } else {
                let types: [String]
                switch s["type"] {
                case .none: types = inferredTypes(s)
                case .some(.string(let t)): types = [t]
                case .some(.array(let list)):
                    types = try list.map { guard let t = $0.string else { throw error("type must be a string or strings", path) }; return t }
                    if types.isEmpty { throw error("type is an empty list", path) }
                default: throw error("type must be a string or an array of strings", path)
                }
                if let t = types.first(where: { s["type"] != nil && !JSONSchemaGrammar.types.contains($0) }) {
                    throw error("unknown type '\(t)' (string, number, integer, boolean, null, object, array)", path)
                }
                if let k = JSONSchemaGrammar.bounds.first(where: { s[$0] != nil }), types.contains("any") {
                    throw error("'\(k)' needs a type (integer or number)", path)
                }
                if s["format"]?.string.map({ JSONSchemaGrammar.formats[$0] != nil }) == true,
                   let k = ["minLength", "maxLength"].first(where: { s[$0] != nil }) {
                    throw error("'\(k)' beside a 'format' hmst enforces is not supported (the format fixes the text)", path)
                }
                alternatives = try types.map { try typed($0, s, name: name, depth: depth, path: path) }
            }
            if s["nullable"]?.bool == true { alternatives.append(primitive("null")) }
            if alternatives.count == 1 { return alternatives[0] }
            let r = fresh(name)
            rules.append((r, alternatives.joined(separator: " | ")))
            return r
        }

        /// The types a schema without "type" describes: from its keywords, or any value.
        func inferredTypes(_ s: JSONValue) -> [String] {
            if s["properties"] != nil || s["additionalProperties"] != nil || s["required"] != nil { return ["object"] }
            if s["items"] != nil || s["prefixItems"] != nil || s["minItems"] != nil || s["maxItems"] != nil { return ["array"] }
            if s["minLength"] != nil || s["maxLength"] != nil || s["pattern"] != nil { return ["string"] }
            if JSONSchemaGrammar.bounds.contains(where: { s[$0] != nil }) || s["multipleOf"] != nil { return ["number"] }
            return ["any"]
        }

        mutating func count(_ s: JSONValue, _ key: String, path: String) throws -> Int? {
            guard let v = s[key] else { return nil }
            guard let n = v.int, n >= 0 else { throw error("\(key) must be a non-negative integer", path) }
            guard n <= JSONSchemaGrammar.maxCount else { throw error("\(key) \(n) is above \(JSONSchemaGrammar.maxCount), the most hmst enforces", path) }
            return n
        }

        /// An integer within minimum / maximum / exclusiveMinimum / exclusiveMaximum (fractional
        /// bounds round inwards).
        mutating func integer(_ s: JSONValue, name: String, path: String) throws -> String {
            if s["multipleOf"] != nil { return try multiple(s, integer: true, name: name, path: path) }
            func bound(_ key: String, lower: Bool) throws -> Int64? {
                guard let v = s[key] else { return nil }
                if case .bool = v { return nil }   // draft 4 / OpenAPI 3.0: exclusiveMinimum true makes minimum exclusive
                // draft 4's boolean form: the bound itself is exclusive
                let exclusive = JSONSchemaGrammar.isExclusive(s, key)
                if case .integer(let i) = v {   // exact, also past 2^53
                    let c = max(min(i, 100_000_000_000_000_000), -100_000_000_000_000_000)
                    return exclusive ? (lower ? c + 1 : c - 1) : c
                }
                guard let x = v.number, x.isFinite else { throw error("\(key) must be a number", path) }
                var r = lower ? x.rounded(.up) : x.rounded(.down)
                if exclusive && r == x { r += lower ? 1 : -1 }
                return Int64(max(min(r, 1e17), -1e17))
            }
            let los = try [bound("minimum", lower: true), bound("exclusiveMinimum", lower: true)].compactMap { $0 }
            let his = try [bound("maximum", lower: false), bound("exclusiveMaximum", lower: false)].compactMap { $0 }
            if los.isEmpty && his.isEmpty { return primitive("integer") }
            let lo = los.max(), hi = his.min()
            let alts = IntegerRange.alternatives(lo: lo, hi: hi)
            guard !alts.isEmpty else { throw error("no integer (of at most 16 digits) is within the bounds given", path) }
            let r = fresh(name + "-integer")
            rules.append((r, alts.joined(separator: " | ")))
            return r
        }

        /// A number within minimum / maximum / exclusiveMinimum / exclusiveMaximum (NumberRange:
        /// written without an exponent when bounded).
        mutating func number(_ s: JSONValue, name: String, path: String) throws -> String {
            if s["multipleOf"] != nil { return try multiple(s, integer: false, name: name, path: path) }
            /// A bound as a decimal. An exclusive one becomes inclusive at the next double inward
            /// when that has few enough digits: then no text the grammar allows reads back, as a
            /// double, as the bound itself (9.9999999999999999 is 10.0 to Python and JavaScript).
            /// A bound past the 16-digit cap on the side that constrains nothing is none.
            func bound(_ key: String, lower: Bool) throws -> NumberRange.Bound? {
                guard let v = s[key] else { return nil }
                if case .bool = v { return nil }   // draft 4: makes minimum / maximum exclusive
                guard let x = v.number, x.isFinite else { throw error("\(key) must be a finite number", path) }
                let exclusive = JSONSchemaGrammar.isExclusive(s, key)
                if x.magnitude >= 1e16 {
                    if lower == (x < 0) { return nil }
                    throw error("no number (of at most 16 integer digits) is within \(key) \(v.serialized)", path)
                }
                if exclusive && x != 0, let d = NumberRange.Decimal(.number(lower ? x.nextUp : x.nextDown)) {
                    return NumberRange.Bound(value: d, exclusive: false)
                }
                guard let d = NumberRange.Decimal(v) else {
                    throw error("\(key) \(v.serialized) needs more than 16 fraction digits, the most hmst writes", path)
                }
                return NumberRange.Bound(value: d, exclusive: exclusive)
            }
            let los = try [bound("minimum", lower: true), bound("exclusiveMinimum", lower: true)].compactMap { $0 }
            let his = try [bound("maximum", lower: false), bound("exclusiveMaximum", lower: false)].compactMap { $0 }
            // no numeric bound at all: any number (a bound past the cap still means no exponent)
            if los.isEmpty && his.isEmpty && !JSONSchemaGrammar.bounds.contains(where: { s[$0]?.number != nil }) {
                return primitive("number")
            }
            // two lower (upper) bounds: the tighter, compared exactly; the exclusive one on a tie
            let lo = los.max { a, b in
                let c = NumberRange.compare(a.value, b.value)
                return c != 0 ? c < 0 : (!a.exclusive && b.exclusive)
            }
            let hi = his.min { a, b in
                let c = NumberRange.compare(a.value, b.value)
                return c != 0 ? c < 0 : (a.exclusive && !b.exclusive)
            }
            let alts = NumberRange.alternatives(lo: lo, hi: hi)
            guard !alts.isEmpty else { throw error("no number (of at most 16 integer and 16 fraction digits) is within the bounds given", path) }
            let r = fresh(name + "-number")
            rules.append((r, alts.joined(separator: " | ")))
            return r
        }

        /// A multiple of multipleOf (MultipleOf): any, at least 0 (minimum 0), or listed between
        /// two bounds (at most 512). An integer multiple of a fractional m is a multiple of the
        /// integer p / gcd(p, 10^d); a number multiple of an integral m is written as an integer.
        mutating func multiple(_ s: JSONValue, integer: Bool, name: String, path: String) throws -> String {
            guard let mv = s["multipleOf"], let (p0, d0) = MultipleOf.decimal(mv) else {
                throw error("multipleOf must be a positive number of at most 16 digits on either side of the point", path)
            }
            let (p, d) = integer || d0 == 0 ? (MultipleOf.integerModulus(p: p0, d: d0), 0) : (p0, d0)
            let unit = IntegerRange.pow10(d)
            /// A bound in units of 10^-d, rounded inwards; an exclusive one moved one unit in.
            func bound(_ key: String, lower: Bool) throws -> Int64? {
                guard let v = s[key] else { return nil }
                if case .bool = v { return nil }   // draft 4: makes minimum / maximum exclusive
                let exclusive = JSONSchemaGrammar.isExclusive(s, key)
                guard let x = NumberRange.Decimal(v), x.int <= (Int64.max / 10) / unit else {
                    throw error("\(key) \(v.serialized) is too large or too fine beside multipleOf", path)
                }
                var mag = x.int * unit
                for (i, f) in x.frac.prefix(d).enumerated() { mag += Int64(f) * IntegerRange.pow10(d - 1 - i) }
                let cut = x.frac.count > d   // digits below 10^-d: the bound lies between two units
                var b = x.negative ? -mag : mag
                if cut { b += lower ? (x.negative ? 0 : 1) : (x.negative ? -1 : 0) }
                if exclusive && !cut { b += lower ? 1 : -1 }
                return b
            }
            let los = try [bound("minimum", lower: true), bound("exclusiveMinimum", lower: true)].compactMap { $0 }
            let his = try [bound("maximum", lower: false), bound("exclusiveMaximum", lower: false)].compactMap { $0 }
            let lo = los.max(), hi = his.min()
            let r = fresh(name + "-multiple")
            if let lo, let hi {
                guard let values = MultipleOf.listed(p: p, d: d, lo: lo, hi: hi) else {
                    throw error("multipleOf \(mv.serialized) has more than \(MultipleOf.maxListed) multiples between the bounds, the most hmst lists", path)
                }
                guard !values.isEmpty else { throw error("no multiple of \(mv.serialized) is within the bounds given", path) }
                rules.append((r, values.joined(separator: " | ")))
                return r
            }
            guard lo == nil && hi == nil || lo == 0 && hi == nil else {
                throw error("multipleOf beside one bound is supported only as minimum 0; give both bounds (at most \(MultipleOf.maxListed) multiples between them)", path)
            }
            guard let made = MultipleOf.rules(p: p, d: d, signed: lo == nil, root: r) else {
                throw error("multipleOf \(mv.serialized) needs more than \(MultipleOf.maxRules) grammar rules (at most about 250 for an integer step, fewer with fraction digits)", path)
            }
            for (n, body) in made { rules.append((n, body)) }
            used.formUnion(made.map(\.0))
            return r
        }

        /// `x` repeated min...max times, separated by `sep` (nil max: any number).
        func repeatedList(_ x: String, sep: String, min: Int, max: Int?) -> String {
            if let m = max, m == 0 { return "" }
            let more = max.map { "{\(Swift.max(min - 1, 0)),\($0 - 1)}" } ?? (min > 1 ? "{\(min - 1),}" : "*")
            let list = "\(x) (\(sep) \(x))\(more)"
            return min == 0 ? "(\(list))?" : list
        }

        mutating func typed(_ type: String, _ s: JSONValue, name: String, depth: Int, path: String) throws -> String {
            let ws = primitive("ws")
            switch type {
            case "any": return primitive("value")
            case "integer":
                return try integer(s, name: name, path: path)
            case "number": return try number(s, name: name, path: path)
            case "null", "boolean": return primitive(type)
            case "string":
                if let pv = s["pattern"] {
                    guard let pattern = pv.string else { throw error("pattern must be a string", path) }
                    if let k = ["minLength", "maxLength"].first(where: { s[$0] != nil }) {
                        throw error("'\(k)' beside 'pattern' is not supported (write the length into the pattern)", path)
                    }
                    if s["format"]?.string.map({ JSONSchemaGrammar.formats[$0] != nil }) == true {
                        throw error("'pattern' beside a 'format' hmst enforces is not supported", path)
                    }
                    let body: String
                    do { body = try PatternGrammar.expression(pattern, char: primitive("char")) } catch let e as HMSTError {
                        throw error(e.message, path)
                    }
                    let r = fresh(name + "-pattern")
                    rules.append((r, "\"\\\"\" \(body) \"\\\"\""))
                    return r
                }
                if let f = s["format"]?.string, let body = JSONSchemaGrammar.formats[f] {
                    let r = fresh(name + "-" + f)
                    rules.append((r, "\"\\\"\" \(body) \"\\\"\""))
                    return r
                }
                let lo = try count(s, "minLength", path: path) ?? 0
                let hi = try count(s, "maxLength", path: path)
                if lo == 0 && hi == nil { return primitive("string") }
                if let h = hi, h < lo { throw error("maxLength \(h) is below minLength \(lo)", path) }
                let r = fresh(name + "-string")
                rules.append((r, "\"\\\"\" \(primitive("char")){\(lo),\(hi.map(String.init) ?? "")} \"\\\"\""))
                return r
            case "array":
                let lo = try count(s, "minItems", path: path) ?? 0
                let hi = try count(s, "maxItems", path: path)
                if let h = hi, h < lo { throw error("maxItems \(h) is below minItems \(lo)", path) }
                let r = fresh(name)
                used.insert(r)
                if let prefix = s["prefixItems"] {
                    guard let list = prefix.array else { throw error("prefixItems must be an array", path) }
                    guard s["minItems"] == nil && s["maxItems"] == nil else {
                        throw error("minItems or maxItems with prefixItems is not supported", path)
                    }
                    var parts: [String] = []
                    for (i, sub) in list.enumerated() {
                        parts.append(try rule(for: sub, name: "\(r)-\(i)", depth: depth + 1, path: "\(path)/prefixItems/\(i)") + " \(ws)")
                    }
                    var tail = ""
                    if let items = s["items"], items != .bool(false) {
                        let x = try rule(for: items, name: "\(r)-item", depth: depth + 1, path: "\(path)/items")
                        tail = list.isEmpty ? repeatedList("\(x) \(ws)", sep: "\",\" \(ws)", min: 0, max: nil)
                                            : "(\",\" \(ws) \(x) \(ws))*"
                    }
                    rules.append((r, "\"[\" \(ws) \(parts.joined(separator: " \",\" \(ws) ")) \(tail) \"]\""))
                    return r
                }
                let item: String
                if let items = s["items"] {
                    if items == .bool(false) {
                        guard lo == 0 else { throw error("items false with minItems above 0 accepts nothing", path) }
                        rules.append((r, "\"[\" \(ws) \"]\""))
                        return r
                    }
                    item = try rule(for: items, name: "\(r)-item", depth: depth + 1, path: "\(path)/items")
                } else {
                    item = primitive("value")
                }
                rules.append((r, "\"[\" \(ws) \(repeatedList("\(item) \(ws)", sep: "\",\" \(ws)", min: lo, max: hi)) \"]\""))
                return r
            case "object":
                return try object(s, name: name, depth: depth, path: path)
            default:   // (types were checked where they were read)
                throw error("unknown type '\(type)' (string, number, integer, boolean, null, object, array)", path)
            }
        }

        mutating func object(_ s: JSONValue, name: String, depth: Int, path: String) throws -> String {
            let ws = primitive("ws")
            var props: [(String, JSONValue)] = []
            if let p = s["properties"] {
                guard let list = p.object else { throw error("properties must be an object", path) }
                props = list
            }
            var required: [String] = []
            if let r = s["required"] {
                guard let list = r.array, list.allSatisfy({ $0.string != nil }) else { throw error("required must be an array of strings", path) }
                required = list.compactMap(\.string)
            }
            // a required name without a schema: any value
            for k in required where !props.contains(where: { $0.0 == k }) { props.append((k, .bool(true))) }
            var extra: String? = nil
            switch s["additionalProperties"] {
            case .none: if s["properties"] == nil { extra = primitive("value") }
            case .some(.bool(false)): extra = nil
            case .some(let a):
                extra = try rule(for: a, name: "\(name)-additional", depth: depth + 1, path: "\(path)/additionalProperties")
            }
            let r = fresh(name)
            let extraMember = extra.map { "\(primitive("string")) \(ws) \":\" \(ws) \($0) \(ws)" }
            // first-k: members k... when none came yet; rest-k: after one came (so a comma first)
            var first = extraMember.map { "(\($0) (\",\" \(ws) \($0))*)?" } ?? ""
            var rest = extraMember.map { "(\",\" \(ws) \($0))*" } ?? ""
            for (k, (key, sub)) in props.enumerated().reversed() {
                let value = try rule(for: sub, name: "\(r)-\(key)", depth: depth + 1, path: "\(path)/properties/\(key)")
                let member = "\(JSONSchemaGrammar.literal(JSONWriter.quote(key))) \(ws) \":\" \(ws) \(value) \(ws)"
                let firstName = fresh("\(r)-first\(k)")
                let isRequired = required.contains(key)
                rules.append((firstName, isRequired ? "\(member) \(rest)" : "\(member) \(rest) | \(first.isEmpty ? "\"\"" : first)"))
                first = firstName
                if k > 0 {   // after an earlier member: a comma first (the first member has none)
                    let restName = fresh("\(r)-rest\(k)")
                    rules.append((restName, isRequired ? "\",\" \(ws) \(member) \(rest)" : "(\",\" \(ws) \(member))? \(rest)"))
                    rest = restName
                }
            }
            rules.append((r, "\"{\" \(ws) \(first) \"}\""))
            return r
        }

        mutating func reference(_ ref: String, depth: Int, path: String) throws -> String {
            if let known = refs[ref] { return known }
            guard ref == "#" || ref.hasPrefix("#/") else {
                throw error("$ref '\(ref)' is not supported (only references into this schema: \"#\", \"#/$defs/NAME\")", path)
            }
            var target = root
            for raw in ref.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) where ref != "#" {
                let key = raw.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                if let next = target[key] { target = next }
                else if let list = target.array, let i = Int(key), i >= 0, i < list.count { target = list[i] }
                else { throw error("$ref '\(ref)' names nothing in the schema", path) }
            }
            // named before its body is written, so a recursive reference finds it
            let r = fresh("ref-" + (ref.split(separator: "/").last.map(String.init) ?? "root"))
            refs[ref] = r
            let body = try rule(for: target, name: r, depth: depth + 1, path: String(ref.dropFirst()))
            rules.append((r, body))
            return r
        }
    }
}

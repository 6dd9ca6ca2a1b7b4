// JinjaRender: evaluates a parsed template (JinjaTemplate) the way jinja2's sandbox does:
// undefined names and members print as nothing and are false, but using one (a member of it,
// arithmetic) is an error naming it; each loop iteration and macro call has its own scope
// (namespace() is how a loop tells the outside something); values are Python's (JinjaValue).
// Filters, tests and methods are those chat templates use (JinjaBuiltins.swift). Rendering is
// bounded: output size, work steps, macro depth, range and repetition lengths, so a hostile
// template in a downloaded checkpoint gets an error, never a hang or a trap.

struct JinjaRenderLimits {
    var maxOutputBytes = 64 << 20
    /// a real template spends some tens of steps a message
    var maxSteps = 5_000_000
    var maxCallDepth = 16
    /// nested evaluation (expressions, blocks, macro calls together): bounds the stack
    var maxEvalDepth = 160
    /// what a variable may hold: elements and nesting
    var maxStoredNodes = 1 << 20
    var maxStoredDepth = 64
}

final class JinjaRenderer {
    var scopes: [[String: JValue]]
    let limits: JinjaRenderLimits
    var steps = 0
    var callDepth = 0
    var evalDepth = 0
    var outputBytes = 0
    var line = 1
    /// seconds since 1970 for strftime_now
    let now: Double

    enum Flow: Error { case breakLoop, continueLoop }

    init(globals: [String: JValue], limits: JinjaRenderLimits = JinjaRenderLimits(), now: Double) {
        self.limits = limits
        self.now = now
        scopes = [[:], globals]
        scopes.swapAt(0, 1)   // globals outermost, the template's own scope inside
        scopes[0].merge(builtinGlobals()) { user, _ in user }
    }

    func error(_ m: String) -> HMSTError { HMSTError.invalidArgument("chat template line \(line): \(m)") }

    func step() throws { try charge(1) }

    /// Work in steps: one a node, one an element an operation makes or walks (ranges,
    /// repetitions, joins, sorts), one per 64 bytes a string operation writes.
    func charge(_ n: Int) throws {
        steps += max(0, n)
        if steps > limits.maxSteps { throw error("rendering took more than \(limits.maxSteps) steps") }
    }

    func lookup(_ name: String) -> JValue {
        for s in scopes.reversed() { if let v = s[name] { return v } }
        return .undefined(hint: "'\(name)' is undefined")
    }

    func assign(_ name: String, _ v: JValue) { scopes[scopes.count - 1][name] = v }

    func render(_ nodes: [JNode]) throws -> JStr {
        var out = JStr()
        try run(nodes, into: &out)
        return out
    }

    func emit(_ s: JStr, into out: inout JStr) throws {
        for p in s.parts { outputBytes += p.text.utf8.count }
        if outputBytes > limits.maxOutputBytes { throw error("the rendered prompt passed \(limits.maxOutputBytes) bytes") }
        out.append(s)
    }

    func enter() throws {
        evalDepth += 1
        if evalDepth > limits.maxEvalDepth { throw error("the template nests more than \(limits.maxEvalDepth) deep") }
    }

    /// A value a variable will hold: at most maxStoredNodes elements nested maxStoredDepth deep
    /// (its walk is charged), so printing, comparing or freeing it is bounded too.
    func storable(_ v: JValue) throws -> JValue {
        switch v {
        case .list, .tuple, .dict:
            guard let e = v.extent(maxNodes: limits.maxStoredNodes, maxDepth: limits.maxStoredDepth) else {
                throw error("a value of more than \(limits.maxStoredNodes) elements or nested more than \(limits.maxStoredDepth) deep")
            }
            try charge(e.nodes)
        default: break
        }
        return v
    }

    /// str(value), bounded by the output limit (a container's repr is built only that far)
    func printed(_ v: JValue) throws -> JStr {
        switch v {
        case .list, .tuple, .dict, .namespace:
            guard let text = v.repr(top: true, limitBytes: limits.maxOutputBytes) else {
                throw error("the value's text passed \(limits.maxOutputBytes) bytes")
            }
            try charge(text.utf8.count / 64)
            return JStr(text, literal: v.hasLiteral)
        default:
            return v.printed
        }
    }

    /// Fails when a result of `bytes` would pass the output limit (checked before building it).
    func ensureSize(_ bytes: Int) throws {
        guard bytes <= limits.maxOutputBytes else { throw error("a string of \(bytes) bytes; at most \(limits.maxOutputBytes)") }
        try charge(bytes / 64)
    }

    func run(_ nodes: [JNode], into out: inout JStr) throws {
        try enter()
        defer { evalDepth -= 1 }
        for n in nodes {
            try step()
            switch n {
            case let .text(s):
                try emit(JStr(s, literal: false), into: &out)
            case let .output(e, l):
                line = l
                try emit(try printed(try eval(e)), into: &out)
            case let .branches(bs, otherwise, l):
                line = l
                var taken = false
                for (cond, body) in bs where try eval(cond).truthy {
                    try run(body, into: &out)
                    taken = true
                    break
                }
                if !taken { try run(otherwise, into: &out) }
            case let .loop(targets, over, filter, body, otherwise, l):
                line = l
                try loop(targets, over, filter, body, otherwise, into: &out)
            case let .set(target, e, l):
                line = l
                let v = try storable(try eval(e))
                switch target {
                case let .names(ns):
                    if ns.count == 1 { assign(ns[0], v); break }
                    guard let vs = v.items, vs.count == ns.count else {
                        throw error("cannot unpack \(v.typeName) into \(ns.count) names")
                    }
                    for (n, x) in zip(ns, vs) { assign(n, x) }
                case let .member(obj, member):
                    guard case let .namespace(space) = lookup(obj) else {
                        throw error("cannot assign to '\(obj).\(member)': '\(obj)' is not a namespace()")
                    }
                    space.set(member, v)
                }
            case let .setBlock(name, body, l):
                line = l
                assign(name, .string(try render(body)))
            case let .macro(name, params, body, l):
                line = l
                assign(name, .function(macroFunction(name, params, body)))
            case let .callBlock(e, body, l):
                line = l
                guard case let .call(f, args, kwargs) = e else { break }
                guard case let .function(fn) = try eval(f) else { throw error("{% call %} needs a macro") }
                let scopesHere = scopes
                let caller = JFunction(name: "caller") { [unowned self] _, _ in
                    self.callDepth += 1
                    defer { self.callDepth -= 1 }
                    guard self.callDepth <= self.limits.maxCallDepth else { throw self.error("macros called \(self.limits.maxCallDepth) deep") }
                    let saved = self.scopes
                    self.scopes = scopesHere
                    defer { self.scopes = saved }
                    return .string(try self.render(body))
                }
                let kw = try kwargs.map { ($0.0, try eval($0.1)) } + [("caller", JValue.function(caller))]
                try emit(try printed(try fn.call(try args.map(eval), kw)), into: &out)
            case let .breakLoop(l):
                line = l
                throw Flow.breakLoop
            case let .continueLoop(l):
                line = l
                throw Flow.continueLoop
            }
        }
    }

    func loop(_ targets: [String], _ over: JExpr, _ filter: JExpr?, _ body: [JNode], _ otherwise: [JNode],
              into out: inout JStr) throws {
        let seqValue = try eval(over)
        guard var seq = seqValue.items else { throw error("'\(seqValue.typeName)' object is not iterable") }
        try charge(seq.count)
        func bind(_ x: JValue) throws {
            if targets.count == 1 { assign(targets[0], x); return }
            guard let xs = x.items, xs.count == targets.count else {
                throw error("cannot unpack \(x.typeName) into \(targets.count) loop variables")
            }
            for (n, v) in zip(targets, xs) { assign(n, v) }
        }
        if let filter {
            var kept: [JValue] = []
            for x in seq {
                scopes.append([:])
                defer { scopes.removeLast() }
                try bind(x)
                if try eval(filter).truthy { kept.append(x) }
            }
            seq = kept
        }
        if seq.isEmpty { try run(otherwise, into: &out); return }
        let n = seq.count
        for (i, x) in seq.enumerated() {
            scopes.append([:])
            defer { scopes.removeLast() }
            try bind(x)
            let cycle = JFunction(name: "loop.cycle") { [unowned self] args, _ in
                guard !args.isEmpty else { throw self.error("loop.cycle needs at least one value") }
                return args[i % args.count]
            }
            assign("loop", .dict([
                (.markup("index"), .int(i + 1)), (.markup("index0"), .int(i)),
                (.markup("revindex"), .int(n - i)), (.markup("revindex0"), .int(n - i - 1)),
                (.markup("first"), .bool(i == 0)), (.markup("last"), .bool(i == n - 1)),
                (.markup("length"), .int(n)),
                (.markup("previtem"), i > 0 ? seq[i - 1] : .undefined(hint: "there is no previous item")),
                (.markup("nextitem"), i + 1 < n ? seq[i + 1] : .undefined(hint: "there is no next item")),
                (.markup("depth"), .int(1)), (.markup("depth0"), .int(0)),
                (.markup("cycle"), .function(cycle)),
            ]))
            do {
                try run(body, into: &out)
            } catch Flow.breakLoop {
                break
            } catch Flow.continueLoop {
                continue
            }
        }
    }

    func macroFunction(_ name: String, _ params: [(String, JExpr?)], _ body: [JNode]) -> JFunction {
        // a macro sees the scopes where it is called from the template's top level down (jinja2
        // closes over the defining scope; chat templates define macros at the top)
        JFunction(name: name) { [unowned self] args, kwargs in
            guard args.count <= params.count else { throw self.error("macro '\(name)' takes \(params.count) arguments, got \(args.count)") }
            self.callDepth += 1
            defer { self.callDepth -= 1 }
            guard self.callDepth <= self.limits.maxCallDepth else { throw self.error("macros called \(self.limits.maxCallDepth) deep") }
            var frame: [String: JValue] = [:]
            for (i, (p, d)) in params.enumerated() {
                if i < args.count { frame[p] = args[i] }
                else if let v = kwargs.first(where: { $0.0 == p })?.1 { frame[p] = v }
                else if let d { frame[p] = try self.eval(d) }
                else { frame[p] = .undefined(hint: "'\(p)' is undefined") }
            }
            if let c = kwargs.first(where: { $0.0 == "caller" }) { frame["caller"] = c.1 }
            for (k, _) in kwargs where k != "caller" && !params.contains(where: { $0.0 == k }) {
                throw self.error("macro '\(name)' has no parameter '\(k)'")
            }
            let saved = self.scopes
            self.scopes = [self.scopes[0], self.scopes[1], frame]
            defer { self.scopes = saved }
            do {
                return .string(try self.render(body))
            } catch is Flow {
                throw self.error("break or continue outside a loop (in macro '\(name)')")
            }
        }
    }

    // MARK: expressions

    func eval(_ e: JExpr) throws -> JValue {
        try step()
        try enter()
        defer { evalDepth -= 1 }
        switch e {
        case let .at(l, inner):
            line = l
            return try eval(inner)
        case let .literal(v): return v
        case let .name(n): return lookup(n)
        case let .attr(base, name):
            return try attribute(try eval(base), name)
        case let .item(base, index):
            return try item(try eval(base), try eval(index))
        case let .slice(base, a, b, c):
            return try slice(try eval(base), try a.map(eval), try b.map(eval), try c.map(eval))
        case let .call(f, args, kwargs):
            let callee = try eval(f)
            let a = try args.map(eval)
            let kw = try kwargs.map { ($0.0, try eval($0.1)) }
            switch callee {
            case let .function(fn): return try fn.call(a, kw)
            case let .undefined(hint): throw error(hint)
            default: throw error("'\(callee.typeName)' object is not callable")
            }
        case let .filter(base, name, args, kwargs):
            let v = try eval(base)
            return try applyFilter(name, v, try args.map(eval), try kwargs.map { ($0.0, try eval($0.1)) })
        case let .test(base, name, args, negated):
            let r = try applyTest(name, try eval(base), try args.map(eval))
            return .bool(r != negated)
        case let .unary(op, x):
            let v = try eval(x)
            switch op {
            case "not": return .bool(!v.truthy)
            case "-":
                if case let .int(i) = v { guard i != .min else { throw error("integer overflow") }; return .int(-i) }
                if case let .bool(b) = v { return .int(b ? -1 : 0) }
                if case let .double(d) = v { return .double(-d) }
                throw error(misuse(v, "bad operand type for unary -: '\(v.typeName)'"))
            default:
                guard v.number != nil else { throw error(misuse(v, "bad operand type for unary +: '\(v.typeName)'")) }
                return v
            }
        case let .binary(op, l, r):
            return try binary(op, try eval(l), try eval(r))
        case let .and(l, r):
            let a = try eval(l)
            return a.truthy ? try eval(r) : a
        case let .or(l, r):
            let a = try eval(l)
            return a.truthy ? a : try eval(r)
        case let .conditional(x, test, otherwise):
            if try eval(test).truthy { return try eval(x) }
            return try otherwise.map(eval) ?? .undefined(hint: "the conditional expression has no else")
        case let .list(xs): return .list(try xs.map(eval))
        case let .tuple(xs): return .tuple(try xs.map(eval))
        case let .dict(pairs):
            var d: [(JValue, JValue)] = []
            for (k, v) in pairs {
                let kv = try eval(k), vv = try eval(v)
                if let i = d.firstIndex(where: { $0.0 == kv }) { d[i].1 = vv } else { d.append((kv, vv)) }
            }
            return .dict(d)
        }
    }

    /// An undefined value's own error, else `m`.
    func misuse(_ v: JValue, _ m: String) -> String {
        if case let .undefined(hint) = v { return hint }
        return m
    }

    func objectName(_ v: JValue) -> String {
        if v.isNone { return "None" }
        return "'\(v.typeName) object'"
    }

    /// `x.name`: a method of x's type first, then a member (jinja2's getattr order).
    func attribute(_ v: JValue, _ name: String) throws -> JValue {
        if case let .undefined(hint) = v { throw error(hint) }
        if let m = method(v, name) { return m }
        if case let .namespace(ns) = v {
            return ns.get(name) ?? .undefined(hint: "'Namespace object' has no attribute '\(name)'")
        }
        if case .dict = v, let found = v.lookup(.markup(name)) { return found }
        return .undefined(hint: "\(objectName(v)) has no attribute '\(name)'")
    }

    /// `x[i]`: an element or member first, then a method (jinja2's getitem order).
    func item(_ v: JValue, _ index: JValue) throws -> JValue {
        if case let .undefined(hint) = v { throw error(hint) }
        switch v {
        case let .list(a), let .tuple(a):
            if let i = index.integer {
                let j = i < 0 ? i + a.count : i
                if j >= 0 && j < a.count { return a[j] }
                return .undefined(hint: "\(objectName(v)) has no element \(i)")
            }
        case let .string(s):
            if let i = index.integer {
                let sc = Array(s.text.unicodeScalars)
                let j = i < 0 ? i + sc.count : i
                if j >= 0 && j < sc.count { return .string(JStr(String(sc[j]), literal: s.derivedLiteral)) }
                return .undefined(hint: "\(objectName(v)) has no element \(i)")
            }
        case .dict:
            if let found = v.lookup(index) { return found }
        case let .namespace(ns):
            if let k = index.str?.text, let found = ns.get(k) { return found }
        default: break
        }
        if let k = index.str?.text, let m = method(v, k) { return m }
        return .undefined(hint: "\(objectName(v)) has no element \(index.repr())")
    }

    func slice(_ v: JValue, _ a: JValue?, _ b: JValue?, _ c: JValue?) throws -> JValue {
        func bound(_ x: JValue?) throws -> Int? {
            guard let x, !x.isNone else { return nil }
            guard let i = x.integer else { throw error("slice indices must be integers or None") }
            return i
        }
        let step = try bound(c) ?? 1
        guard step != 0 else { throw error("slice step cannot be zero") }
        func indices(_ n: Int) throws -> [Int] {
            var start = try bound(a), stop = try bound(b)
            if let s = start, s < 0 { start = s + n }
            if let s = stop, s < 0 { stop = s + n }
            var out: [Int] = []
            if step > 0 {
                var i = max(0, min(start ?? 0, n))
                let e = max(0, min(stop ?? n, n))
                while i < e {
                    out.append(i)
                    let (next, over) = i.addingReportingOverflow(step)
                    if over { break }
                    i = next
                }
            } else {
                var i = min(n - 1, max(start ?? (n - 1), -1))
                let e = min(n - 1, max(stop ?? -1, -1))
                while i > e {
                    out.append(i)
                    let (next, over) = i.addingReportingOverflow(step)
                    if over { break }
                    i = next
                }
            }
            return out
        }
        switch v {
        case let .list(xs): return .list(try indices(xs.count).map { xs[$0] })
        case let .tuple(xs): return .tuple(try indices(xs.count).map { xs[$0] })
        case let .string(s):
            let sc = Array(s.text.unicodeScalars)
            var view = String.UnicodeScalarView()
            for i in try indices(sc.count) { view.append(sc[i]) }
            return .string(JStr(String(view), literal: s.derivedLiteral))
        default: throw error(misuse(v, "'\(v.typeName)' object is not subscriptable"))
        }
    }

    func binary(_ op: String, _ a: JValue, _ b: JValue) throws -> JValue {
        switch op {
        case "==": return .bool(a == b)
        case "!=": return .bool(!(a == b))
        case "<", "<=", ">", ">=":
            let c = try order(a, b)
            switch op {
            case "<": return .bool(c < 0)
            case "<=": return .bool(c <= 0)
            case ">": return .bool(c > 0)
            default: return .bool(c >= 0)
            }
        case "in": return .bool(try contains(b, a))
        case "not in": return .bool(!(try contains(b, a)))
        case "~":
            var s = try printed(a)
            s.append(try printed(b))
            try charge(s.text.utf8.count / 64)
            return .string(s)
        default: return try arithmetic(op, a, b)
        }
    }

    /// -1, 0, 1 for numbers (int, float, bool), strings, and lists of those
    func order(_ a: JValue, _ b: JValue) throws -> Int {
        if let x = a.integer, let y = b.integer { return x < y ? -1 : x > y ? 1 : 0 }
        if let x = a.number, let y = b.number { return x < y ? -1 : x > y ? 1 : 0 }
        if case let .string(x) = a, case let .string(y) = b {
            let p = Array(x.text.unicodeScalars).map(\.value), q = Array(y.text.unicodeScalars).map(\.value)
            return p.lexicographicallyPrecedes(q) ? -1 : p == q ? 0 : 1
        }
        if let x = a.sequence, let y = b.sequence {
            for (p, q) in zip(x, y) { let c = try order(p, q); if c != 0 { return c } }
            return x.count < y.count ? -1 : x.count > y.count ? 1 : 0
        }
        if case let .undefined(hint) = a { throw error(hint) }
        if case let .undefined(hint) = b { throw error(hint) }
        throw error("'<' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
    }

    func contains(_ container: JValue, _ x: JValue) throws -> Bool {
        switch container {
        case .undefined: return false
        case let .string(s):
            guard case let .string(needle) = x else {
                throw error(misuse(x, "'in <string>' requires string as left operand, not \(x.typeName)"))
            }
            try charge(s.text.utf8.count / 64)
            return JinjaRenderer.find(needle.text, in: s.text) != nil
        case let .list(a), let .tuple(a):
            try charge(a.count)
            return a.contains(x)
        case let .dict(d): return d.contains { $0.0 == x }
        default: throw error("argument of type '\(container.typeName)' is not iterable")
        }
    }

    func arithmetic(_ op: String, _ a: JValue, _ b: JValue) throws -> JValue {
        if case let .undefined(hint) = a { throw error(hint) }
        if case let .undefined(hint) = b { throw error(hint) }
        switch (op, a, b) {
        case let ("+", .string(x), .string(y)):
            try charge((x.text.utf8.count + y.text.utf8.count) / 64)
            // a safe string plus a plain one escapes the plain one (markupsafe.Markup)
            var s = y.safe && !x.safe ? x.htmlEscaped : x
            s.append(x.safe && !y.safe ? y.htmlEscaped : y)
            s.safe = x.safe || y.safe
            return .string(s)
        case let ("+", .list(x), .list(y)):
            try charge(x.count + y.count)
            return .list(x + y)
        case let ("+", .tuple(x), .tuple(y)):
            try charge(x.count + y.count)
            return .tuple(x + y)
        case ("*", .string, _), ("*", _, .string), ("*", .list, _), ("*", _, .list), ("*", .tuple, _), ("*", _, .tuple):
            let seqFirst = a.integer == nil
            guard let count = seqFirst ? b.integer : a.integer else {
                throw error("can't multiply sequence by non-int of type '\(seqFirst ? b.typeName : a.typeName)'")
            }
            let seq = seqFirst ? a : b
            let n = max(0, count)
            if case let .string(s) = seq {
                guard s.text.utf8.count.multipliedReportingOverflow(by: n).partialValue <= limits.maxOutputBytes,
                      !s.text.utf8.count.multipliedReportingOverflow(by: n).overflow else { throw error("string repetition too long") }
                try charge(s.text.utf8.count * n / 64)
                return .string(JStr(String(repeating: s.text, count: n), literal: s.derivedLiteral))
            }
            if let xs = seq.sequence {
                guard xs.count.multipliedReportingOverflow(by: n).partialValue <= 1 << 20,
                      !xs.count.multipliedReportingOverflow(by: n).overflow else { throw error("list repetition too long") }
                try charge(xs.count * n)
                let r = Array((0..<n).map { _ in xs }.joined())
                if case .tuple = seq { return .tuple(r) }
                return .list(r)
            }
        default: break
        }
        if let x = a.integer, let y = b.integer {
            switch op {
            case "+": return try checked(x.addingReportingOverflow(y))
            case "-": return try checked(x.subtractingReportingOverflow(y))
            case "*": return try checked(x.multipliedReportingOverflow(by: y))
            case "/":
                guard y != 0 else { throw error("division by zero") }
                return .double(Double(x) / Double(y))
            case "//", "%":
                guard y != 0 else { throw error("integer division or modulo by zero") }
                guard !(x == .min && y == -1) else { throw error("integer overflow") }
                var q = x / y, r = x % y
                if r != 0 && ((r < 0) != (y < 0)) { q -= 1; r += y }
                return .int(op == "//" ? q : r)
            case "**":
                if y < 0 { return .double(pow(Double(x), Double(y))) }
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 { result = try checkedInt(result.multipliedReportingOverflow(by: base)) }
                    e >>= 1
                    if e > 0 { base = try checkedInt(base.multipliedReportingOverflow(by: base)) }
                }
                return .int(result)
            default: break
            }
        }
        if let x = a.number, let y = b.number {
            switch op {
            case "+": return .double(x + y)
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/":
                guard y != 0 else { throw error("float division by zero") }
                return .double(x / y)
            case "//", "%":
                guard y != 0 else { throw error("float modulo") }
                let q = (x / y).rounded(.down)
                return .double(op == "//" ? q : x - q * y)
            case "**": return .double(pow(x, y))
            default: break
            }
        }
        throw error("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
    }

    func checkedInt(_ r: (partialValue: Int, overflow: Bool)) throws -> Int {
        guard !r.overflow else { throw error("integer overflow") }
        return r.partialValue
    }

    func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> JValue { .int(try checkedInt(r)) }
}


// Grammar: a context-free grammar over Unicode code points, written in llama.cpp's GBNF notation
// (GBNFParser.swift reads it; JSONSchemaGrammar.swift writes it from a JSON Schema), compiled
// into flat arrays for GrammarConstraint, which masks the tokens that cannot come next.
//
// A rule is a list of alternatives; an alternative is a sequence of elements, each a character
// class (a set of code-point ranges, maybe negated) or a reference to a rule, ended by `end`.
// The runtime state is a set of stacks in the style of llama.cpp's grammar sampler: a stack's
// top is the character element to match next, the nodes below it are where to go on when the
// rule above finishes (NodeArena: nodes are shared, so a stack costs one node per level).
// An empty stack (-1 in a set) means the text so far is a whole sentence of the grammar.
//
// Left recursion (`a ::= a "x" | "y"`, also through rules that can be empty) would expand
// forever; compiling refuses it and names the cycle, as repetition (`"y" "x"*`) says the same.

public struct Grammar: Sendable {
    /// An element of a rule while building (GBNFParser): a character class or a rule.
    enum Item: Equatable, Sendable { case chars(Int), ref(Int) }

    struct CharClass: Hashable, Sendable {
        var negated: Bool
        var ranges: [ClosedRange<UInt32>]
    }

    enum Kind: UInt8 { case end = 0, chars = 1, ref = 2 }

    // compiled form: element p is (kind[p], arg[p]); rule r's alternatives start at alternatives[r]
    let kind: [UInt8]
    let arg: [Int32]
    let alternatives: [[Int32]]
    let classNegated: [Bool]
    let classRanges: [[ClosedRange<UInt32>]]
    let root: Int32
    /// The rule names (generated ones for groups and repetitions look like "name(3)").
    public let ruleNames: [String]
    /// The GBNF text it was read from.
    public let source: String
    /// nil: the grammar holds the whole text. Otherwise the text is free until a trigger
    /// appears in it, and the grammar holds the text from the trigger's first byte on
    /// (llama.cpp's lazy grammars: tool calls under tool_choice auto; TriggeredConstraint).
    public var triggers: GrammarTriggers? = nil

    /// The largest number of stacks a state may hold: a token that would make a state more
    /// ambiguous than this is refused (at the start: the grammar is an error), not a slow crawl.
    static let maxStacks = 1024

    init(source: String, names: [String], rules: [[[Item]]], classes: [CharClass], root: Int) throws {
        var kind: [UInt8] = [], arg: [Int32] = [], alternatives: [[Int32]] = []
        for rule in rules {
            var starts: [Int32] = []
            for alt in rule {
                starts.append(Int32(kind.count))
                for item in alt {
                    switch item {
                    case .chars(let c): kind.append(Kind.chars.rawValue); arg.append(Int32(c))
                    case .ref(let r): kind.append(Kind.ref.rawValue); arg.append(Int32(r))
                    }
                }
                kind.append(Kind.end.rawValue); arg.append(-1)
            }
            alternatives.append(starts)
        }
        self.kind = kind
        self.arg = arg
        self.alternatives = alternatives
        classNegated = classes.map(\.negated)
        classRanges = classes.map(\.ranges)
        self.root = Int32(root)
        ruleNames = names
        self.source = source
        try Grammar.checkLeftRecursion(names: names, rules: rules)
        var arena = NodeArena()
        guard initialStacks(arena: &arena) != nil else {
            throw HMSTError.invalidArgument("grammar: more than \(Grammar.maxStacks) ways to start (too ambiguous)")
        }
    }

    /// Refuses rules that can reach themselves before reading a character. Linear in the
    /// grammar's size, and without recursion (a chain of 100,000 rules is fine).
    static func checkLeftRecursion(names: [String], rules: [[[Item]]]) throws {
        // rules that can match the empty text: an alternative of rules only, all of them empty
        var nullable = [Bool](repeating: false, count: rules.count)
        var pending: [Int] = []          // per alternative of rules only: how many are not known empty yet
        var owner: [Int] = []
        var uses = [[Int]](repeating: [], count: rules.count)   // rule -> those alternatives, once per use
        var queue: [Int] = []
        for (r, rule) in rules.enumerated() {
            for alt in rule {
                var refs: [Int] = []
                for item in alt { if case .ref(let s) = item { refs.append(s) } }
                guard refs.count == alt.count else { continue }     // a character: never empty
                if refs.isEmpty {
                    if !nullable[r] { nullable[r] = true; queue.append(r) }
                    continue
                }
                let a = pending.count
                pending.append(refs.count)
                owner.append(r)
                for s in refs { uses[s].append(a) }
            }
        }
        while let s = queue.popLast() {
            for a in uses[s] {
                pending[a] -= 1
                if pending[a] == 0 && !nullable[owner[a]] { nullable[owner[a]] = true; queue.append(owner[a]) }
            }
        }
        // edges r -> s: s can come first in r (after rules that can be empty)
        var first = [[Int]](repeating: [], count: rules.count)
        for (r, rule) in rules.enumerated() {
            for alt in rule {
                for item in alt {
                    guard case .ref(let s) = item else { break }
                    first[r].append(s)
                    if !nullable[s] { break }
                }
            }
        }
        // depth-first search for a cycle, with its own stack: 0 unvisited, 1 on the path, 2 done
        var mark = [UInt8](repeating: 0, count: rules.count)
        for root in rules.indices where mark[root] == 0 {
            var path: [(rule: Int, next: Int)] = [(root, 0)]
            mark[root] = 1
            while let (r, i) = path.last {
                guard i < first[r].count else {
                    mark[r] = 2
                    path.removeLast()
                    continue
                }
                path[path.count - 1].next = i + 1
                let s = first[r][i]
                if mark[s] == 1 {
                    let from = path.lastIndex { $0.rule == s } ?? 0
                    let shown = (path[from...].map { names[$0.rule] } + [names[s]]).joined(separator: " -> ")
                    throw HMSTError.invalidArgument("grammar: rule '\(names[s])' is left-recursive (\(shown)); "
                        + "write it with repetition instead (a ::= b c* rather than a ::= a c | b), and do not repeat what can be empty")
                }
                if mark[s] == 0 {
                    mark[s] = 1
                    path.append((s, 0))
                }
            }
        }
    }

    @inline(__always) func matches(_ element: Int32, _ cp: UInt32) -> Bool {
        let c = Int(arg[Int(element)])
        var hit = false
        for r in classRanges[c] where r.contains(cp) { hit = true; break }
        return hit != classNegated[c]
    }

    /// Whether the class of element p may hold a code point in lo...hi (a character whose first
    /// bytes are known). Negated classes answer yes unless one range covers all of lo...hi.
    func mayMatch(_ element: Int32, _ lo: UInt32, _ hi: UInt32) -> Bool {
        let c = Int(arg[Int(element)])
        if classNegated[c] { return !classRanges[c].contains { $0.lowerBound <= lo && $0.upperBound >= hi } }
        return classRanges[c].contains { $0.lowerBound <= hi && $0.upperBound >= lo }
    }

    /// Appends to out[from...] the stacks that continue at element p over the stack `parent`,
    /// each with a character element on top (or -1: the text may end here); no duplicates.
    /// False when there would be more than maxStacks. Works from its own list, not recursion,
    /// so deep chains of rules cannot exhaust a thread's stack.
    func expand(_ p0: Int32, _ parent0: Int32, arena: inout NodeArena, out: inout [Int32], from: Int) -> Bool {
        // what is left to expand beyond the current item lives in arena.work above `base` (the
        // common case, a character element next, never touches it)
        let base = arena.work.count
        var p = p0, parent = parent0
        while true {
            arena.ops += 1
            guard arena.ops <= arena.opsLimit else { arena.work.removeSubrange(base...); return false }
            // an alternative that ends returns to the element its rule was called from
            var accepted = false
            while kind[Int(p)] == Kind.end.rawValue {
                if parent < 0 { accepted = true; break }
                p = arena.pos[Int(parent)]
                parent = arena.parent[Int(parent)]
            }
            if accepted {
                if !out[from...].contains(-1) {
                    guard out.count - from < Grammar.maxStacks else { arena.work.removeSubrange(base...); return false }
                    out.append(-1)
                }
            } else if kind[Int(p)] == Kind.chars.rawValue {
                // the same stack (by content: two paths may build equal chains of distinct nodes)
                var seen = false
                var i = from
                arena.ops += out.count - from
                while i < out.count {
                    let t = out[i]
                    if t >= 0 && arena.pos[Int(t)] == p && arena.sameChain(arena.parent[Int(t)], parent) { seen = true; break }
                    i += 1
                }
                if !seen {
                    guard out.count - from < Grammar.maxStacks else { arena.work.removeSubrange(base...); return false }
                    out.append(arena.push(p, parent))
                }
            } else {
                // a rule: where to go on after it (nothing to push when it ends this alternative)
                let alts = alternatives[Int(arg[Int(p)])]
                guard arena.work.count - base + alts.count <= Grammar.maxWork else { arena.work.removeSubrange(base...); return false }
                let after = p + 1
                let cont = kind[Int(after)] == Kind.end.rawValue ? parent : arena.push(after, parent)
                if let first = alts.first {   // (the parser gives every rule one at least)
                    for k in stride(from: alts.count - 1, to: 0, by: -1) { arena.work.append((alts[k], cont)) }
                    p = first
                    parent = cont
                    continue
                }
            }
            guard arena.work.count > base else { return true }
            (p, parent) = arena.work.removeLast()
        }
    }

    /// The most pending expansions at once, and the most work (elements visited and stacks
    /// compared) one character may take (rules that can be empty, nested so that their ways
    /// multiply: a0 ::= "", a1 ::= a0 a0, ...; many stacks over wide rules): a grammar past
    /// them is as ambiguous as one past maxStacks. Nodes made per character stay below it.
    static let maxWork = 1 << 20
    static let maxStepOps = 1 << 18

    /// The stacks at the start of a text.
    func initialStacks(arena: inout NodeArena) -> [Int32]? {
        arena.opsLimit = arena.ops + Grammar.maxStepOps
        var out: [Int32] = []
        for start in alternatives[Int(root)] {
            if !expand(start, -1, arena: &arena, out: &out, from: 0) { return nil }
        }
        return out
    }

    /// Appends to out[from...] the stacks after code point cp from the stacks in
    /// stacks[range] (which may be out itself, before `from`). False when too ambiguous.
    func advance(_ stacks: inout [Int32], _ range: Range<Int>, _ cp: UInt32, arena: inout NodeArena, from: Int) -> Bool {
        var i = range.lowerBound
        while i < range.upperBound {
            let t = stacks[i]
            i += 1
            guard t >= 0 else { continue }
            let p = arena.pos[Int(t)]
            if matches(p, cp), !expand(p + 1, arena.parent[Int(t)], arena: &arena, out: &stacks, from: from) { return false }
        }
        return true
    }
}

/// The nodes of the stacks of a Grammar's state: node i is element pos[i] over node parent[i]
/// (-1: the bottom). Nodes are only appended; a caller that tries tokens truncates back.
struct NodeArena {
    var pos: [Int32] = []
    var parent: [Int32] = []
    /// Grammar.expand's list of what is left to expand (kept to reuse its storage)
    var work: [(Int32, Int32)] = []
    /// work done (Grammar.expand counts it), and where the current character must stop
    var ops = 0
    var opsLimit = Int.max

    mutating func push(_ p: Int32, _ q: Int32) -> Int32 {
        pos.append(p)
        parent.append(q)
        return Int32(pos.count - 1)
    }

    var count: Int { pos.count }

    /// Whether the stacks below nodes a and b hold the same elements.
    func sameChain(_ a0: Int32, _ b0: Int32) -> Bool {
        var a = a0, b = b0
        while a != b {
            guard a >= 0, b >= 0, pos[Int(a)] == pos[Int(b)] else { return false }
            a = parent[Int(a)]
            b = parent[Int(b)]
        }
        return true
    }

    mutating func truncate(to n: Int) {
        if pos.count > n {
            pos.removeSubrange(n...)
            parent.removeSubrange(n...)
        }
    }
}

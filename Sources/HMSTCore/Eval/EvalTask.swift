// EvalTask: a task as lm-evaluation-harness shapes one, kept local: a small JSON description
// (name, output type, data file, stop strings) and a JSONL file of items. Loading checks every
// line and names the file, line and field of the first problem. Scoring is Evaluator's.
//
//   task.json   {"name": "facts", "output_type": "generate_until", "data": "items.jsonl",
//                "until": ["</a>", "\n"], "max_gen_tokens": 16}
//   items.jsonl {"id": "q1", "prompt": "Who ...?", "target": " Tarsk", "choices": [...], "gold": 0,
//                "memory": ["gold fact", ...], "linked_memory": ["fact that gives it away", ...],
//                ...any other field kept as metadata}
//               loglikelihood_rolling items carry "text" instead of prompt/target.

public enum EvalOutputType: String, Sendable, CaseIterable {
    case loglikelihood
    case loglikelihoodRolling = "loglikelihood_rolling"
    case multipleChoice = "multiple_choice"
    case generateUntil = "generate_until"
}

public struct EvalItem: Sendable {
    public var id: String
    /// 1-based line in the data file
    public var line: Int
    public var prompt = ""
    /// the continuation scored or expected, with its leading space (" Tarsk")
    public var target = ""
    /// multiple_choice continuations, scored as given (give them their leading space too)
    public var choices: [String] = []
    public var gold = 0
    /// loglikelihood_rolling text
    public var text = ""
    /// the gold memory texts (oracle injects them, deleted removes them)
    public var memory: [String] = []
    /// memory texts that give the answer away without stating it (a country's three-letter
    /// code beside its two-letter one): deleted removes them too, so the fact is gone, not
    /// only its sentence; oracle does not inject them
    public var linkedMemory: [String] = []
    /// what the deleted condition removes: the gold and the linked memory texts
    public var deletedTexts: Set<String> { Set(memory).union(linkedMemory) }
    /// every other field, in file order
    public var metadata: [(String, JSONValue)] = []

    public init(id: String, line: Int) {
        self.id = id
        self.line = line
    }
}

public struct EvalTask: Sendable {
    public var name: String
    public var outputType: EvalOutputType
    /// the task description file and the resolved data file
    public var path: String
    public var dataPath: String
    public var until: [String] = []
    public var maxGenTokens = 32
    public var items: [EvalItem] = []

    public init(name: String, outputType: EvalOutputType, path: String = "", dataPath: String = "", items: [EvalItem] = []) {
        self.name = name
        self.outputType = outputType
        self.path = path
        self.dataPath = dataPath
        self.items = items
    }

    /// Reads the task description at path and its data file (relative to the description's
    /// folder unless absolute). limit > 0 keeps the first limit items.
    public static func load(path: String, limit: Int = 0) throws -> EvalTask {
        guard limit >= 0 else { throw HMSTError.invalidArgument("limit \(limit) must be >= 0 (0 = all items)") }
        guard FileIO.exists(path) else { throw HMSTError.notFound("task file \(path) does not exist") }
        let desc = try JSONValue.parse(file: path)
        guard desc.object != nil else { throw HMSTError.badFormat("task file \(path): expected a JSON object") }
        func str(_ key: String) throws -> String {
            guard let v = desc[key] else { throw HMSTError.badFormat("task file \(path): missing \"\(key)\"") }
            guard let s = v.string, !s.isEmpty else { throw HMSTError.badFormat("task file \(path): \"\(key)\" must be a non-empty string") }
            return s
        }
        let name = try str("name")
        let typeName = try str("output_type")
        guard let type = EvalOutputType(rawValue: typeName) else {
            throw HMSTError.badFormat("task file \(path): unknown output_type \"\(typeName)\" (expected one of "
                                      + EvalOutputType.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        let data = try str("data")
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var task = EvalTask(name: name, outputType: type, path: path, dataPath: data.hasPrefix("/") ? data : folder + "/" + data)
        if let u = desc["until"] {
            guard let a = u.array, a.allSatisfy({ ($0.string ?? "").isEmpty == false }) else {
                throw HMSTError.badFormat("task file \(path): \"until\" must be an array of non-empty strings")
            }
            task.until = a.compactMap(\.string)
        }
        if let m = desc["max_gen_tokens"] {
            guard let n = m.int, n >= 1, n <= 65536 else {
                throw HMSTError.badFormat("task file \(path): \"max_gen_tokens\" must be an integer in 1...65536")
            }
            task.maxGenTokens = n
        }
        guard FileIO.exists(task.dataPath) else { throw HMSTError.notFound("task \(name): data file \(task.dataPath) does not exist") }
        task.items = try parseItems(jsonl: try FileIO.readAll(task.dataPath), type: type, file: task.dataPath, limit: limit)
        guard !task.items.isEmpty else { throw HMSTError.badFormat("task \(name): \(task.dataPath) holds no items") }
        return task
    }

    /// Items from JSONL bytes; blank lines are skipped. Errors name file and 1-based line.
    public static func parseItems(jsonl: [UInt8], type: EvalOutputType, file: String, limit: Int = 0) throws -> [EvalItem] {
        var items: [EvalItem] = []
        var seen = Set<String>()
        var lineNo = 0
        var start = 0
        while start < jsonl.count, limit == 0 || items.count < limit {
            var end = start
            while end < jsonl.count && jsonl[end] != UInt8(ascii: "\n") { end += 1 }
            lineNo += 1
            let line = jsonl[start..<end]
            start = end + 1
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            let where_ = "\(file) line \(lineNo)"
            let v: JSONValue
            do { v = try JSONValue.parse(bytes: Array(line)) } catch let e as HMSTError {
                throw HMSTError.badFormat("\(where_): not valid JSON: \(e.message)")
            }
            let item = try parseItem(v, type: type, line: lineNo, where_: where_)
            guard seen.insert(item.id).inserted else { throw HMSTError.badFormat("\(where_): id \"\(item.id)\" appears twice") }
            items.append(item)
        }
        return items
    }

    static func parseItem(_ v: JSONValue, type: EvalOutputType, line: Int, where_: String) throws -> EvalItem {
        guard let members = v.object else { throw HMSTError.badFormat("\(where_): expected a JSON object") }
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(where_): \(m)") }
        func string(_ key: String, nonEmpty: Bool = true) throws -> String {
            guard let f = v[key] else { throw bad("missing \"\(key)\" (needed by \(type.rawValue))") }
            guard let s = f.string else { throw bad("\"\(key)\" must be a string") }
            if nonEmpty && s.isEmpty { throw bad("\"\(key)\" is empty") }
            return s
        }
        var id = "line \(line)"
        if let f = v["id"] {
            if let s = f.string { id = s } else if let n = f.int { id = String(n) } else { throw bad("\"id\" must be a string or an integer") }
        }
        var item = EvalItem(id: id, line: line)
        switch type {
        case .loglikelihood, .generateUntil:
            item.prompt = try string("prompt", nonEmpty: false)
            item.target = try string("target")
        case .multipleChoice:
            item.prompt = try string("prompt", nonEmpty: false)
            guard let c = v["choices"] else { throw bad("missing \"choices\" (needed by multiple_choice)") }
            guard let a = c.array, a.count >= 2, a.allSatisfy({ ($0.string ?? "").isEmpty == false }) else {
                throw bad("\"choices\" must be an array of at least two non-empty strings")
            }
            item.choices = a.compactMap(\.string)
            guard let g = v["gold"] else { throw bad("missing \"gold\" (needed by multiple_choice)") }
            guard let gi = g.int, gi >= 0, gi < item.choices.count else {
                throw bad("\"gold\" must be an index into choices (0..<\(item.choices.count))")
            }
            item.gold = gi
            if let t = v["target"]?.string { item.target = t }
        case .loglikelihoodRolling:
            item.text = try string("text")
        }
        if let m = v["memory"] {
            guard let a = m.array, a.allSatisfy({ $0.string != nil }) else { throw bad("\"memory\" must be an array of strings") }
            item.memory = a.compactMap(\.string)
        }
        if let m = v["linked_memory"] {
            guard let a = m.array, a.allSatisfy({ $0.string != nil }) else { throw bad("\"linked_memory\" must be an array of strings") }
            item.linkedMemory = a.compactMap(\.string)
        }
        let known: Set<String> = ["id", "prompt", "target", "choices", "gold", "text", "memory", "linked_memory"]
        item.metadata = members.filter { !known.contains($0.0) }
        return item
    }
}

// MemoryMetadata: what SemanticMemory keeps beside each vector (text, source, timestamp and an
// optional caller JSON string, and the owner the entry belongs to) and its JSON-lines form on
// disk, one object per entry:
//   {"id":"42","text":"...","source":"...","timestamp":1714000000.5,"json":"{\"k\":1}","owner":"u1"}
// "owner" is written only when non-empty, so files without owners read as before and files
// written before owners existed load with owner "" (no owner).
// Ids are decimal strings because JSON numbers lose 64-bit integers past 2^53. Reading checks
// every field and names the line of the first bad one; files and locking belong to others.

public struct MemoryMetadata: Sendable, Equatable {
    public var text: String
    public var source: String
    public var timestamp: Double   // seconds since the Unix epoch, caller-defined
    public var json: String?       // optional caller data; must parse as JSON (checked on add)
    /// who the entry belongs to (a user or session id); "" = no owner. Searches can be scoped by it.
    public var owner: String

    public init(text: String, source: String = "", timestamp: Double = MemoryMetadata.now(), json: String? = nil,
                owner: String = "") {
        self.text = text
        self.source = source
        self.timestamp = timestamp
        self.json = json
        self.owner = owner
    }

    /// The wall clock in seconds since the Unix epoch.
    public static func now() -> Double { Clock.wallSeconds() }

    /// Throws INVALID_ARGUMENT for a non-finite timestamp or a json string that is not JSON.
    /// `what` names the entry in errors ("add: metadata 3").
    func validate(_ what: String) throws {
        guard timestamp.isFinite else {
            throw HMSTError.invalidArgument("\(what): timestamp \(timestamp) is not finite")
        }
        if let json {
            do { _ = try JSONValue.parse(json) } catch let e as HMSTError {
                throw HMSTError.invalidArgument("\(what): json is not valid JSON (\(e.message))")
            }
        }
    }
}

enum MemoryMetadataLines {
    /// One line (with its newline) per entry, ids ascending so files are reproducible.
    static func encode(_ entries: [Int64: MemoryMetadata]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(entries.count * 96)
        for id in entries.keys.sorted() {
            guard let m = entries[id] else { continue }
            let w = JSONWriter()
            w.object {
                w.field("id", String(id))
                w.field("text", m.text)
                w.field("source", m.source)
                w.field("timestamp", m.timestamp)
                if let json = m.json { w.field("json", json) }
                if !m.owner.isEmpty { w.field("owner", m.owner) }
            }
            out.append(contentsOf: w.output.utf8)
            out.append(0x0A)
        }
        return out
    }

    /// Parses what encode() wrote; `source` names the file in errors (BAD_FORMAT).
    static func decode(_ bytes: [UInt8], source: String) throws -> [Int64: MemoryMetadata] {
        var out: [Int64: MemoryMetadata] = [:]
        var lineNo = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            lineNo += 1
            guard end < bytes.count else { throw HMSTError.badFormat("\(source): line \(lineNo) is truncated (no newline)") }
            let (id, m) = try bytes.withUnsafeBufferPointer { buf in
                try decodeLine(UnsafeBufferPointer(rebasing: buf[start..<end]), where: "\(source) line \(lineNo)")
            }
            guard out.updateValue(m, forKey: id) == nil else {
                throw HMSTError.badFormat("\(source) line \(lineNo): id \(id) appears twice")
            }
            start = end + 1
        }
        return out
    }

    static func decodeLine(_ line: UnsafeBufferPointer<UInt8>, where at: String) throws -> (Int64, MemoryMetadata) {
        let v: JSONValue
        do { v = try JSONValue.parse(buffer: line) } catch let e as HMSTError { throw HMSTError.badFormat("\(at): \(e.message)") }
        guard let idText = v["id"]?.string, let id = Int64(idText), id >= 0 else {
            throw HMSTError.badFormat("\(at): \"id\" must be a non-negative decimal string")
        }
        guard let text = v["text"]?.string, let source = v["source"]?.string else {
            throw HMSTError.badFormat("\(at): \"text\" and \"source\" must be strings")
        }
        guard let timestamp = v["timestamp"]?.number, timestamp.isFinite else {
            throw HMSTError.badFormat("\(at): \"timestamp\" must be a finite number")
        }
        var json: String? = nil
        if let j = v["json"], !j.isNull {
            guard let s = j.string else { throw HMSTError.badFormat("\(at): \"json\" must be a string") }
            json = s
        }
        var owner = ""
        if let o = v["owner"], !o.isNull {
            guard let s = o.string else { throw HMSTError.badFormat("\(at): \"owner\" must be a string") }
            owner = s
        }
        return (id, MemoryMetadata(text: text, source: source, timestamp: timestamp, json: json, owner: owner))
    }
}

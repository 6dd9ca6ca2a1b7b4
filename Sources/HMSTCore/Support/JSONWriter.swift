// JSONWriter: a small streaming JSON emitter for reports (system info, stats, metrics lines).
// Keys keep insertion order, which JSONEncoder does not promise; strings are escaped per RFC 8259.

public final class JSONWriter {
    public internal(set) var output = ""
    private var needsComma = [false]

    public init() {}

    private func separator() {
        if needsComma[needsComma.count - 1] { output += "," }
        needsComma[needsComma.count - 1] = true
    }

    public func object(_ body: () -> Void) {
        output += "{"
        needsComma.append(false)
        body()
        needsComma.removeLast()
        output += "}"
    }

    private func key(_ k: String) {
        separator()
        output += JSONWriter.quote(k) + ":"
    }

    public func field(_ k: String, _ v: String) { key(k); output += JSONWriter.quote(v) }
    public func field(_ k: String, _ v: Int) { key(k); output += String(v) }
    public func field(_ k: String, _ v: Bool) { key(k); output += v ? "true" : "false" }
    public func field(_ k: String, _ v: Double) {
        key(k)
        output += v.isFinite ? String(v) : "null"
    }
    public func field(_ k: String, _ v: [String]) {
        key(k)
        output += "[" + v.map(JSONWriter.quote).joined(separator: ",") + "]"
    }
    public func field(_ k: String, _ v: JSONValue) {
        key(k)
        v.write(into: &output)
    }

    public func field(_ k: String, object body: () -> Void) {
        key(k)
        object(body)
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

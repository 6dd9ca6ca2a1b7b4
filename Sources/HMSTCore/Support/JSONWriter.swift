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
        output += "[" + v.map { JSONWriter.quote($0) }.joined(separator: ",") + "]"
    }
    public func field(_ k: String, _ v: JSONValue) {
        key(k)
        v.write(into: &output)
    }

    public func field(_ k: String, object body: () -> Void) {
        key(k)
        object(body)
    }

    /// A JSON string literal. pythonStyle: as Python's json.dumps writes it (\\b and \\f
    /// short, and with ascii everything past U+007E as \\uXXXX, surrogate pairs above U+FFFF).
    public static func quote(_ s: String, pythonStyle: Bool = false, ascii: Bool = false) -> String {
        func escaped(_ v: UInt32) -> String {
            let hex = String(v, radix: 16)
            return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}" where pythonStyle: out += "\\b"
            case "\u{0C}" where pythonStyle: out += "\\f"
            case _ where u.value < 0x20: out += escaped(u.value)
            case _ where ascii && u.value > 0x7e:
                if u.value <= 0xffff {
                    out += escaped(u.value)
                } else {
                    let v = u.value - 0x10000
                    out += escaped(0xd800 + (v >> 10)) + escaped(0xdc00 + (v & 0x3ff))
                }
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

// Fields: typed, checked access to a JSON request body. Every wrong type or range is a 400 in
// the OpenAI shape that names the parameter; absent and null are the same (the default applies).
import HMSTCore
import Hummingbird

struct Fields {
    let value: JSONValue

    init(_ value: JSONValue) { self.value = value }

    /// Parses a request body that must be one JSON object.
    init(body: ByteBuffer) throws {
        let bytes = Array(body.readableBytesView)
        guard !bytes.isEmpty else { throw APIError.invalid("the request body is empty; send a JSON object") }
        let v: JSONValue
        do { v = try JSONValue.parse(bytes: bytes) } catch let e as HMSTError {
            throw APIError.invalid("the request body is not valid JSON: \(e.message)")
        }
        guard case .object = v else { throw APIError.invalid("the request body must be a JSON object") }
        value = v
    }

    subscript(_ k: String) -> JSONValue? {
        guard let v = value[k], !v.isNull else { return nil }
        return v
    }

    func string(_ k: String, required: Bool = false) throws -> String? {
        guard let v = self[k] else {
            if required { throw APIError.invalid("'\(k)' is required", param: k) }
            return nil
        }
        guard let s = v.string else { throw APIError.invalid("'\(k)' must be a string", param: k) }
        return s
    }

    func int(_ k: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = self[k] else { return nil }
        guard let n = v.int else { throw APIError.invalid("'\(k)' must be an integer", param: k) }
        guard range.contains(n) else {
            throw APIError.invalid("'\(k)' is \(n); it must be in \(range.lowerBound)...\(range.upperBound)", param: k)
        }
        return n
    }

    /// A seed: any integer in the 64-bit range, negative ones as their two's complement (every
    /// integer literal is exact, 2^53 and above included: JSONValue.integer; an integral number
    /// written 5.0 or 1e3 is taken too, as OpenAI's API takes it).
    func seed(_ k: String = "seed") throws -> UInt64? {
        guard let v = self[k] else { return nil }
        if case let .integer(n) = v { return UInt64(bitPattern: n) }
        guard let n = v.int else { throw APIError.invalid("'\(k)' must be an integer in \(Int64.min)...\(Int64.max)", param: k) }
        return UInt64(bitPattern: Int64(n))
    }

    func number(_ k: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = self[k] else { return nil }
        guard let n = v.number, n.isFinite else { throw APIError.invalid("'\(k)' must be a number", param: k) }
        guard range.contains(n) else {
            throw APIError.invalid("'\(k)' is \(n); it must be in \(range.lowerBound)...\(range.upperBound)", param: k)
        }
        return n
    }

    func bool(_ k: String) throws -> Bool? {
        guard let v = self[k] else { return nil }
        guard let b = v.bool else { throw APIError.invalid("'\(k)' must be true or false", param: k) }
        return b
    }

    /// A string or an array of strings (stop, input).
    func strings(_ k: String, maxCount: Int) throws -> [String]? {
        guard let v = self[k] else { return nil }
        if let s = v.string { return [s] }
        guard let a = v.array, a.allSatisfy({ $0.string != nil }) else {
            throw APIError.invalid("'\(k)' must be a string or an array of strings", param: k)
        }
        guard a.count <= maxCount else { throw APIError.invalid("'\(k)' has \(a.count) entries; at most \(maxCount)", param: k) }
        return a.compactMap(\.string)
    }

    /// An owner id: 1...256 bytes of UTF-8 without control characters.
    func owner(_ k: String = "owner") throws -> String {
        guard let s = try string(k, required: true) else { throw APIError.invalid("'\(k)' is required", param: k) }
        return try Fields.checkOwner(s, param: k)
    }

    static func checkOwner(_ s: String, param: String) throws -> String {
        // bytes, not characters: a letter with 200,000 combining marks is one character
        guard !s.isEmpty, s.utf8.count <= 256, !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError.invalid("'\(param)' must be 1 to 256 bytes of UTF-8 without control characters", param: param)
        }
        return s
    }
}

// GGUFFile: the header of a llama.cpp GGUF file (version 2 or 3), validated in full before any
// tensor is used, like SafeTensorsHeader.
//
// Layout, all little-endian: "GGUF", u32 version, u64 tensor count, u64 metadata count; the
// metadata as (string key, u32 type, value) with strings as u64 length + UTF-8 bytes and arrays
// as u32 element type + u64 count + elements; then per tensor: string name, u32 n_dims,
// u64 dims[n_dims] (dims[0] varies fastest: a [rows, cols] matrix is dims [cols, rows]),
// u32 ggml type, u64 offset into the data section. The data section starts at the next
// multiple of general.alignment (default 32) and every offset is a multiple of it.
//
// Checked here: the magic, the version, every read against the end of the file, string and
// array sizes against the bytes left (no allocation a few corrupt bytes can inflate), nesting,
// key uniqueness, dims (1...4, positive, product without overflow), known types with their
// block sizes (the first dim a multiple of the block), offsets aligned, inside the data section
// and not overlapping.

public enum GGUFValue: Sendable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    public var int: Int? {
        switch self {
        case let .uint(u): return u <= UInt64(Int.max) ? Int(u) : nil
        case let .int(i): return Int(i)
        default: return nil
        }
    }
    public var double: Double? {
        switch self {
        case let .float(d): return d
        case let .uint(u): return Double(u)
        case let .int(i): return Double(i)
        default: return nil
        }
    }
    public var string: String? { if case let .string(s) = self { return s }; return nil }
    public var array: [GGUFValue]? { if case let .array(a) = self { return a }; return nil }
}

/// The ggml tensor types hmst knows the size of; it loads F32, F16, BF16 and Q8_0.
public enum GGMLType: UInt32, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30

    /// (elements per block, bytes per block)
    public var block: (n: Int, bytes: Int) {
        switch self {
        case .f32, .i32: return (1, 4)
        case .f16, .bf16, .i16: return (1, 2)
        case .i8: return (1, 1)
        case .i64, .f64: return (1, 8)
        case .q4_0: return (32, 18)
        case .q4_1: return (32, 20)
        case .q5_0: return (32, 22)
        case .q5_1: return (32, 24)
        case .q8_0: return (32, 34)
        case .q8_1: return (32, 36)
        case .q2_K: return (256, 84)
        case .q3_K: return (256, 110)
        case .q4_K: return (256, 144)
        case .q5_K: return (256, 176)
        case .q6_K: return (256, 210)
        case .q8_K: return (256, 292)
        }
    }

    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q8_0: return "Q8_0"
        default: return "\(self)".uppercased()
        }
    }
}

public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// ggml order: dims[0] is the row length
    public let dims: [Int]
    public let type: GGMLType
    /// byte range within the data section
    public let begin: Int
    public let end: Int
    public var elementCount: Int { dims.reduce(1, *) }
}

public struct GGUFFile: Sendable {
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let metadataOrder: [String]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// where the data section starts in the file
    public let dataOffset: Int
    let index: [String: Int]

    public func tensor(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    static let maxTensors = 1 << 20, maxKeys = 1 << 20, maxDepth = 3

    /// Validates `file` (the whole file's bytes), which must stay valid during the call.
    public init(file: UnsafeRawBufferPointer, source: String) throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(source): \(m)") }
        var r = Reader(file: file, bad: bad)
        guard file.count >= 24 else { throw bad("file is \(file.count) bytes, too short for a GGUF header") }
        let magic = try r.bytes(4)
        guard magic == Array("GGUF".utf8) else {
            throw bad("not a GGUF file (magic \(magic.map { String(format2: $0) }.joined()) instead of \"GGUF\")")
        }
        version = try r.u32()
        guard version == 2 || version == 3 else {
            throw HMSTError.unsupported("\(source): GGUF version \(version) is not supported (2 and 3 are)")
        }
        let nTensors = try r.u64(), nKeys = try r.u64()
        guard nTensors <= UInt64(GGUFFile.maxTensors) else { throw bad("tensor count \(nTensors) is absurd") }
        guard nKeys <= UInt64(GGUFFile.maxKeys) else { throw bad("metadata count \(nKeys) is absurd") }
        var meta: [String: GGUFValue] = [:]
        var order: [String] = []
        for i in 0..<Int(nKeys) {
            let key = try r.string("metadata key #\(i)")
            guard meta[key] == nil else { throw bad("metadata key \"\(key)\" appears twice") }
            let type = try r.u32()
            meta[key] = try r.value(type: type, what: "metadata \"\(key)\"", depth: 0)
            order.append(key)
        }
        var align = 32
        if let a = meta["general.alignment"] {
            guard let v = a.int, v > 0, v <= 1 << 16, v & (v - 1) == 0 else {
                throw bad("general.alignment \(a) is not a power of two up to 65536")
            }
            align = v
        }
        var infos: [(name: String, dims: [Int], type: GGMLType, offset: Int, bytes: Int)] = []
        var index: [String: Int] = [:]
        for i in 0..<Int(nTensors) {
            let name = try r.string("tensor #\(i) name")
            guard index[name] == nil else { throw bad("tensor \"\(name)\" appears twice") }
            let nDims = try r.u32()
            guard nDims >= 1, nDims <= 4 else { throw bad("tensor \"\(name)\" has \(nDims) dimensions (1 to 4 allowed)") }
            var dims: [Int] = []
            var count = 1
            for _ in 0..<nDims {
                let d = try r.u64()
                guard d >= 1, d <= 1 << 40 else { throw bad("tensor \"\(name)\" has an invalid dimension \(d)") }
                let (m, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o, m <= 1 << 46 else { throw bad("tensor \"\(name)\" dims \(dims + [Int(d)]) are absurdly large") }
                count = m
                dims.append(Int(d))
            }
            let rawType = try r.u32()
            guard let type = GGMLType(rawValue: rawType) else { throw bad("tensor \"\(name)\" has unknown ggml type \(rawType)") }
            let blk = type.block
            guard dims[0] % blk.n == 0 else {
                throw bad("tensor \"\(name)\" row length \(dims[0]) is not a multiple of the \(type.name) block of \(blk.n)")
            }
            let offset = try r.u64()
            guard offset <= UInt64(file.count) else { throw bad("tensor \"\(name)\" offset \(offset) is past the end of the file") }
            guard Int(offset) % align == 0 else { throw bad("tensor \"\(name)\" offset \(offset) is not a multiple of the alignment \(align)") }
            index[name] = infos.count
            infos.append((name, dims, type, Int(offset), count / blk.n * blk.bytes))
        }
        let dataOffset = (r.pos + align - 1) / align * align
        guard dataOffset <= file.count else { throw bad("the data section would start at \(dataOffset), past the end of the file (\(file.count) bytes)") }
        let dataBytes = file.count - dataOffset
        var tensors: [GGUFTensorInfo] = []
        for t in infos {
            guard t.offset + t.bytes <= dataBytes else {
                throw bad("tensor \"\(t.name)\" [\(t.offset), \(t.offset + t.bytes)) runs past the data section (\(dataBytes) bytes)")
            }
            tensors.append(GGUFTensorInfo(name: t.name, dims: t.dims, type: t.type, begin: t.offset, end: t.offset + t.bytes))
        }
        var cursor = 0
        var prev = ""
        for t in tensors.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard t.begin >= cursor else { throw bad("tensor \"\(t.name)\" overlaps tensor \"\(prev)\"") }
            cursor = t.end
            prev = t.name
        }
        self.metadata = meta
        self.metadataOrder = order
        self.tensors = tensors
        self.alignment = align
        self.dataOffset = dataOffset
        self.index = index
    }

    /// A bounds-checked little-endian cursor.
    struct Reader {
        let file: UnsafeRawBufferPointer
        let bad: (String) -> HMSTError
        var pos = 0

        init(file: UnsafeRawBufferPointer, bad: @escaping (String) -> HMSTError) {
            self.file = file
            self.bad = bad
        }

        mutating func need(_ n: Int, _ what: String) throws {
            guard n >= 0, n <= file.count - pos else { throw bad("truncated: \(what) needs \(n) bytes at offset \(pos), \(file.count - pos) left") }
        }
        mutating func bytes(_ n: Int) throws -> [UInt8] {
            try need(n, "\(n) bytes")
            defer { pos += n }
            return Array(UnsafeRawBufferPointer(rebasing: file[pos..<(pos + n)]))
        }
        mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
            try need(MemoryLayout<T>.size, "a \(MemoryLayout<T>.size)-byte value")
            defer { pos += MemoryLayout<T>.size }
            return T(littleEndian: file.loadUnaligned(fromByteOffset: pos, as: T.self))
        }
        mutating func u32() throws -> UInt32 { try load(UInt32.self) }
        mutating func u64() throws -> UInt64 { try load(UInt64.self) }
        mutating func string(_ what: String) throws -> String {
            let n = try u64()
            guard n <= UInt64(file.count - pos) else { throw bad("\(what): string length \(n) is larger than the rest of the file") }
            let b = try bytes(Int(n))
            guard let s = String(validating: b, as: UTF8.self) else { throw bad("\(what) is not valid UTF-8") }
            return s
        }
        mutating func value(type: UInt32, what: String, depth: Int) throws -> GGUFValue {
            switch type {
            case 0: return .uint(UInt64(try load(UInt8.self)))
            case 1: return .int(Int64(try load(Int8.self)))
            case 2: return .uint(UInt64(try load(UInt16.self)))
            case 3: return .int(Int64(try load(Int16.self)))
            case 4: return .uint(UInt64(try load(UInt32.self)))
            case 5: return .int(Int64(try load(Int32.self)))
            case 6: return .float(Double(Float(bitPattern: try load(UInt32.self))))
            case 7:
                let b = try load(UInt8.self)
                guard b <= 1 else { throw bad("\(what): bool byte \(b) is neither 0 nor 1") }
                return .bool(b == 1)
            case 8: return .string(try string(what))
            case 9:
                guard depth < GGUFFile.maxDepth else { throw bad("\(what): arrays nested deeper than \(GGUFFile.maxDepth)") }
                let et = try u32()
                let n = try u64()
                // every element takes at least one byte: a count beyond the bytes left is corrupt
                guard n <= UInt64(file.count - pos) else { throw bad("\(what): array of \(n) elements is larger than the rest of the file") }
                var out: [GGUFValue] = []
                out.reserveCapacity(Int(n))
                for i in 0..<Int(n) { out.append(try value(type: et, what: "\(what)[\(i)]", depth: depth + 1)) }
                return .array(out)
            case 10: return .uint(try load(UInt64.self))
            case 11: return .int(Int64(bitPattern: try load(UInt64.self)))
            case 12: return .float(Double(bitPattern: try load(UInt64.self)))
            default: throw bad("\(what) has unknown value type \(type)")
            }
        }
    }
}

extension String {
    init(format2 b: UInt8) {
        let digits = Array("0123456789abcdef")
        self = "\\x" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
    }
}

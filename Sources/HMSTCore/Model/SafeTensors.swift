// SafeTensors: the header of a .safetensors file, validated in full before any tensor is used.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__": {str: str}}, then the data section. We check: the length is
// within the file, the JSON, every dtype and shape, byte lengths against shape × dtype size,
// offsets inside the data section, and that the sorted offsets tile the data section exactly
// (contiguous, non-overlapping, nothing left over), as the format requires.

public enum SafeTensorDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
    case bool = "BOOL", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    public var size: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: return 1
        }
    }
}

public struct SafeTensorInfo: Sendable {
    public let name: String
    public let dtype: SafeTensorDType
    public let shape: [Int]
    /// byte range within the data section
    public let begin: Int
    public let end: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

public struct SafeTensorsHeader: Sendable {
    public static let maxHeaderBytes = 100 << 20

    public let tensors: [SafeTensorInfo]        // in file order of the header
    public let metadata: [(String, String)]
    /// where the data section starts in the file
    public let dataOffset: Int

    public func tensor(_ name: String) -> SafeTensorInfo? { index[name] }
    let index: [String: SafeTensorInfo]

    /// Validates a mapped file, keeping the map alive while it reads.
    public init(map: MappedFile) throws {
        self = try withExtendedLifetime(map) { try SafeTensorsHeader(file: map.bytes, source: map.path) }
    }

    /// Validates `file` (the whole file's bytes), which must stay valid during the call.
    /// `source` names it in errors.
    public init(file: UnsafeRawBufferPointer, source: String) throws {
        func bad(_ m: String) -> HMSTError { HMSTError.badFormat("\(source): \(m)") }
        guard file.count >= 8 else { throw bad("file is \(file.count) bytes, too short for the 8-byte header length") }
        let n64 = file.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        guard n64 <= UInt64(file.count - 8) else {
            throw bad("header length \(n64) is larger than the rest of the file (\(file.count - 8) bytes)")
        }
        guard n64 <= UInt64(SafeTensorsHeader.maxHeaderBytes) else { throw bad("header length \(n64) exceeds 100 MiB") }
        let n = Int(n64)
        guard n >= 2 else { throw bad("header length \(n) is too small for a JSON object") }
        let json: JSONValue
        do {
            json = try JSONValue.parse(buffer: UnsafeBufferPointer(start: file.baseAddress!.advanced(by: 8).assumingMemoryBound(to: UInt8.self), count: n))
        } catch let e as HMSTError {
            throw bad("header is not valid JSON (\(e.message))")
        }
        guard let members = json.object else { throw bad("header is not a JSON object") }
        dataOffset = 8 + n
        let dataBytes = file.count - dataOffset
        var tensors: [SafeTensorInfo] = []
        var metadata: [(String, String)] = []
        var index: [String: SafeTensorInfo] = [:]
        for (name, v) in members {
            if name == "__metadata__" {
                guard let m = v.object else { throw bad("__metadata__ is not an object") }
                for (k, x) in m {
                    guard let s = x.string else { throw bad("__metadata__[\"\(k)\"] is not a string") }
                    metadata.append((k, s))
                }
                continue
            }
            guard index[name] == nil else { throw bad("tensor \"\(name)\" appears twice") }
            guard let ds = v["dtype"]?.string else { throw bad("tensor \"\(name)\" has no dtype") }
            guard let dtype = SafeTensorDType(rawValue: ds) else { throw bad("tensor \"\(name)\" has unknown dtype \"\(ds)\"") }
            guard let shapeJ = v["shape"]?.array else { throw bad("tensor \"\(name)\" has no shape list") }
            var shape: [Int] = []
            var count = 1
            for d in shapeJ {
                guard let x = d.int, x >= 0 else { throw bad("tensor \"\(name)\" has an invalid dimension \(d.serialized)") }
                let (m, o) = count.multipliedReportingOverflow(by: x)
                guard !o, m <= 1 << 46 else { throw bad("tensor \"\(name)\" shape \(shapeJ.map { $0.serialized }) is absurdly large") }
                count = m
                shape.append(x)
            }
            guard let offs = v["data_offsets"]?.array, offs.count == 2, let b = offs[0].int, let e = offs[1].int else {
                throw bad("tensor \"\(name)\" has no valid data_offsets [begin, end]")
            }
            guard b >= 0, e >= b else { throw bad("tensor \"\(name)\" data_offsets [\(b), \(e)] are not increasing") }
            guard e <= dataBytes else {
                throw bad("tensor \"\(name)\" data_offsets end \(e) is past the data section (\(dataBytes) bytes)")
            }
            guard e - b == count * dtype.size else {
                throw bad("tensor \"\(name)\" holds \(e - b) bytes but shape \(shape) of \(ds) needs \(count * dtype.size)")
            }
            let info = SafeTensorInfo(name: name, dtype: dtype, shape: shape, begin: b, end: e)
            tensors.append(info)
            index[name] = info
        }
        // The data section must be tiled exactly: sorted by begin, each starts where the last ended.
        var cursor = 0
        for t in tensors.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            if t.begin < cursor { throw bad("tensor \"\(t.name)\" at [\(t.begin), \(t.end)) overlaps the previous tensor (which ends at \(cursor))") }
            if t.begin > cursor { throw bad("gap in the data section: bytes \(cursor) ..< \(t.begin) belong to no tensor (before \"\(t.name)\")") }
            cursor = t.end
        }
        guard cursor == dataBytes else {
            throw bad("the data section has \(dataBytes - cursor) trailing bytes that belong to no tensor")
        }
        self.tensors = tensors
        self.metadata = metadata
        self.index = index
    }
}

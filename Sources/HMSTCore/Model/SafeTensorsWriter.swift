// SafeTensorsWriter: writes tensors as a .safetensors file the way HF's safetensors does:
// names sorted, data contiguous in that order, the header JSON padded with spaces (HF pads to
// 8 bytes; we pad so that the data starts 64 bytes into a page, which mmap'd tensors whose
// sizes are multiples of 64 bytes keep: the AVX-512 kernels' 64-byte loads then never split a
// cache line, 20-30% of a bf16 GEMV on Zen 5), "__metadata__": {"format": "pt"}; streamed to
// disk and published atomically.
import CKernels

public struct TensorToWrite {
    public let name: String
    public let shape: [Int]
    public let weight: Weight
    public init(name: String, shape: [Int], weight: Weight) {
        self.name = name
        self.shape = shape
        self.weight = weight
    }
}

public enum SafeTensorsWriter {
    /// dtype: .f32, .bf16 (f32 values are rounded to nearest-even bf16), .f16 (rounded to
    /// nearest-even IEEE half; beyond ±65504 becomes ±inf, which the write refuses) or .i8 (Q8_0
    /// blocks: Quant/Q8Format.swift, in `int8Layout`'s order).
    public static func write(path: String, tensors: [TensorToWrite], dtype: SafeTensorDType,
                             metadata: [(String, String)] = [("format", "pt")], int8Layout: Q8Layout = .rows) throws {
        if dtype == .i8 { return try writeInt8(path: path, tensors: tensors, metadata: metadata, layout: int8Layout) }
        guard dtype == .f32 || dtype == .bf16 || dtype == .f16 else {
            throw HMSTError.unsupported("saving as \(dtype.rawValue) is not supported (F32, BF16, F16 or I8)")
        }
        let sorted = tensors.sorted { $0.name < $1.name }
        for t in sorted where t.shape.reduce(1, *) != t.weight.count {
            throw HMSTError.invalidArgument("tensor \(t.name): shape \(t.shape) does not match \(t.weight.count) elements")
        }
        let file = try startFile(path: path, metadata: metadata,
                                 entries: sorted.map { ($0.name, dtype, $0.shape, $0.weight.count * dtype.size) })
        let chunk = 1 << 20
        var f32 = [Float](repeating: 0, count: chunk)
        var b16 = [UInt16](repeating: 0, count: chunk)
        for t in sorted {
            var start = 0
            while start < t.weight.count {
                let n = min(chunk, t.weight.count - start)
                try f32.withUnsafeMutableBufferPointer { fb in
                    copyFlat(t.weight, from: start, count: n, to: fb.baseAddress!)
                    if dtype == .f32 {
                        try file.write(UnsafeRawBufferPointer(start: fb.baseAddress, count: n * 4))
                    } else {
                        try b16.withUnsafeMutableBufferPointer { bb in
                            if dtype == .bf16 {
                                hk_f32_to_bf16(bb.baseAddress!, fb.baseAddress!, n)
                            } else if let bad = roundToHalf(bb.baseAddress!, fb.baseAddress!, n) {
                                throw HMSTError.invalidArgument("tensor \(t.name): element \(start + bad) is \(fb[bad]), beyond f16's range (±65504); save as bf16 or f32")
                            }
                            try file.write(UnsafeRawBufferPointer(start: bb.baseAddress, count: n * 2))
                        }
                    }
                }
                start += n
            }
        }
        try file.commit()
    }

    /// Elements [from, from+count) of a row-major weight, as f32.
    static func copyFlat(_ w: Weight, from: Int, count: Int, to out: UnsafeMutablePointer<Float>) {
        switch w.storage {
        case let .f32(p): out.update(from: p + from, count: count)
        case let .bf16(p): hk_bf16_to_f32(out, p + from, count)
        case let .f16(p): hk_f16_to_f32(out, p + from, count)
        case let .q8(q, sc):
            // whole blocks: from and count are multiples of 32 for the writer's chunks
            hk_q8_dequantize(out, q + from, sc + from / 32, count)
        case .q8Rows4:
            // the rows the range touches, then the range's part of them
            let r0 = from / w.cols, r1 = (from + count + w.cols - 1) / w.cols
            let rows = FloatBuffer(count: (r1 - r0) * w.cols, zeroed: false)
            w.copyRows(r0, r1, to: rows.pointer)
            out.update(from: rows.pointer + (from - r0 * w.cols), count: count)
        }
    }

    /// Writes tensors given as raw bytes of their declared dtypes (optimizer state), in the
    /// same layout and atomically.
    public static func writeRaw(path: String, tensors: [RawTensor], metadata: [(String, String)] = [("format", "pt")]) throws {
        let sorted = tensors.sorted { $0.name < $1.name }
        for t in sorted where t.shape.reduce(1, *) * t.dtype.size != t.bytes.count {
            throw HMSTError.invalidArgument("tensor \(t.name): shape \(t.shape) does not match \(t.bytes.count) bytes of \(t.dtype.rawValue)")
        }
        let file = try startFile(path: path, metadata: metadata, entries: sorted.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) })
        for t in sorted where t.bytes.count > 0 { try file.write(t.bytes) }
        try file.commit()
    }

    /// Opens the atomic writer and writes the length and the header of sorted entries
    /// (name, dtype, shape, bytes), whose data must follow in that order.
    static func startFile(path: String, metadata: [(String, String)],
                                  entries list: [(String, SafeTensorDType, [Int], Int)]) throws -> AtomicFileWriter {
        var entries: [(String, JSONValue)] = [("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))]
        var offset = 0
        for (name, dtype, shape, bytes) in list {
            entries.append((name, .object([("dtype", .string(dtype.rawValue)),
                                           ("shape", .array(shape.map { .number(Double($0)) })),
                                           ("data_offsets", .array([.number(Double(offset)), .number(Double(offset + bytes))]))])))
            offset += bytes
        }
        var header = Array(JSONValue.object(entries).serialized.utf8)
        while (8 + header.count) % 64 != 0 { header.append(0x20) }
        let file = try AtomicFileWriter(path: path)
        var len = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &len) { try file.write($0) }
        try file.write(header)
        return file
    }
}

// Q8Writer: saving a checkpoint with int8 weights (layout in Q8Format.swift): each projection
// matrix whose width is a multiple of 32 as I8 values plus F32 block scales, the rest F32.
// Weights already int8 are written as they are (no second rounding), in the layout asked for.

extension SafeTensorsWriter {
    /// Whether the writer stores this tensor as int8: matrices of width % 32 == 0 except the
    /// router (block_sparse_moe.gate), which hmst keeps in f32.
    static func quantizes(name: String, shape: [Int]) -> Bool {
        shape.count == 2 && Q8Tensor.fits(cols: shape[1]) && !name.hasSuffix(MixtralNames.routerSuffix)
    }

    /// Where the first NaN or infinity of a weight is ("row r, column c"), read from the weight
    /// itself so that any stored layout names the same place.
    static func firstNonFinite(_ w: Weight) -> String {
        var row = [Float](repeating: 0, count: w.cols)
        for r in 0..<w.rows {
            row.withUnsafeMutableBufferPointer { w.copyRow(r, to: $0.baseAddress!) }
            if let c = row.firstIndex(where: { !$0.isFinite }) { return "row \(r), column \(c): \(row[c])" }
        }
        return "no element is"
    }

    static func writeInt8(path: String, tensors: [TensorToWrite], metadata: [(String, String)], layout: Q8Layout) throws {
        for t in tensors where t.shape.reduce(1, *) != t.weight.count {
            throw HMSTError.invalidArgument("tensor \(t.name): shape \(t.shape) does not match \(t.weight.count) elements")
        }
        enum Part { case plain, values, scales }
        var entries: [(name: String, dtype: SafeTensorDType, shape: [Int], bytes: Int, tensor: TensorToWrite, part: Part)] = []
        for t in tensors {
            if quantizes(name: t.name, shape: t.shape) {
                entries.append((t.name, .i8, t.shape, t.weight.count, t, .values))
                entries.append((t.name + Q8Format.scaleSuffix, .f32, [t.shape[0], t.shape[1] / 32], t.weight.count / 32 * 4, t, .scales))
            } else {
                entries.append((t.name, .f32, t.shape, t.weight.count * 4, t, .plain))
            }
        }
        entries.sort { $0.name < $1.name }
        let file = try startFile(path: path, metadata: metadata, entries: entries.map { ($0.name, $0.dtype, $0.shape, $0.bytes) })
        var quantized: [String: Weight] = [:]
        func q8(_ t: TensorToWrite) throws -> (UnsafePointer<Int8>, UnsafePointer<Float>) {
            let rows4 = Q8Format.storedRows4(name: t.name, rows: t.shape[0], cols: t.shape[1], layout: layout)
            let w = quantized[t.name] ?? (rows4 ? Q8Tensor.rows4(t.weight) : Q8Tensor.quantize(t.weight))
            quantized[t.name] = w
            let (q, s): (UnsafePointer<Int8>, UnsafePointer<Float>)
            switch w.storage {
            case let .q8(vq, vs) where !rows4: (q, s) = (vq, vs)
            case let .q8Rows4(vq, vs) where rows4: (q, s) = (vq, vs)
            default: throw HMSTError(.internal, "tensor \(t.name) did not quantize to the \(rows4 ? "row-quad" : "row-major") layout")
            }
            // a NaN or an infinity leaves its block's scale non-finite, which no reader accepts:
            // refused before the file is committed, naming where
            if UnsafeBufferPointer(start: s, count: t.shape[0] * (t.shape[1] / 32)).contains(where: { !$0.isFinite }) {
                throw HMSTError.invalidArgument("tensor \(t.name) holds NaN or Inf (\(firstNonFinite(t.weight))), which an int8 block "
                                                + "cannot store; find them with --check-tensors")
            }
            return (q, s)
        }
        let chunk = 1 << 20
        var f32 = [Float](repeating: 0, count: chunk)
        for e in entries {
            switch e.part {
            case .values:
                try file.write(UnsafeRawBufferPointer(start: try q8(e.tensor).0, count: e.bytes))
            case .scales:
                try file.write(UnsafeRawBufferPointer(start: try q8(e.tensor).1, count: e.bytes))
                quantized[e.tensor.name] = nil
            case .plain:
                let w = e.tensor.weight
                var start = 0
                while start < w.count {
                    let n = min(chunk, w.count - start)
                    try f32.withUnsafeMutableBufferPointer { fb in
                        copyFlat(w, from: start, count: n, to: fb.baseAddress!)
                        try file.write(UnsafeRawBufferPointer(start: fb.baseAddress, count: n * 4))
                    }
                    start += n
                }
            }
        }
        try file.commit()
    }
}

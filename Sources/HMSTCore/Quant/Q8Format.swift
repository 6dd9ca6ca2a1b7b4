// Q8Format: how int8 (Q8_0) weights are stored in a safetensors checkpoint, and its checks.
//
// A quantized matrix `X.weight` of shape [rows, cols] (cols % 32 == 0) is two tensors:
//   X.weight        I8  [rows, cols]       values in [-127, 127]
//   X.weight_scale  F32 [rows, cols / 32]  one finite scale per block of 32 values along a row
// so element (r, c) = X.weight_scale[r, c / 32] · X.weight[r, c]. Other tensors (norms, the
// router, matrices of other widths) stay F32. config.json says so with
//   "quantization": {"method": "q8_0", "block_size": 32, "scale_suffix": "_scale", "scale_dtype": "float32"}
// Both are plain safetensors dtypes, so HF's safetensors and transformers read the file (the
// values are then raw int8: dequantize with the scales). Loading checks all of this before use.
//
// Opt-in, "layout": "rows4" in that entry (`hmst quantize --dtype int8-rows4`): the matrices the
// decode GEMV reads (every I8 matrix but model.embed_tokens.weight, with rows >= 4 and cols % 64
// == 0) hold their values and scales in the row-quad order of hk_q8_pack_rows4 (hmst_kernels.h;
// the shapes are unchanged, the bytes are permuted), so hmst maps them and decodes from the file
// without the copy it otherwise makes at load on AVX-512 VNNI CPUs. Without the key, or with
// "rows", every matrix is row-major. Other readers must undo the permutation first (the Python
// package's hmst.unpack_rows4 does).
import CKernels

/// The order of an int8 checkpoint's values and scales (see the header).
public enum Q8Layout: String, Sendable {
    case rows, rows4
}

public enum Q8Format {
    public static let scaleSuffix = "_scale"
    public static let method = "q8_0"

    /// config.json's entry for an int8 checkpoint (the layout key only for rows4, so row-major
    /// files stay as they were).
    static func configEntry(layout: Q8Layout) -> JSONValue {
        var o: [(String, JSONValue)] = [("method", .string(method)), ("block_size", .number(32)), ("scale_suffix", .string(scaleSuffix)),
                                        ("scale_dtype", .string("float32"))]
        if layout == .rows4 { o.append(("layout", .string(layout.rawValue))) }
        return .object(o)
    }

    /// Whether a tensor is stored in the row-quad order under `layout`.
    static func storedRows4(name: String, rows: Int, cols: Int, layout: Q8Layout) -> Bool {
        layout == .rows4 && name != MixtralNames.embed && hk_q8_packable(rows, cols) != 0
    }

    /// The layout config.json declares for q8_0 quantization, nil without quantization; throws
    /// on an entry hmst cannot read.
    static func parseConfig(_ json: JSONValue, source: String) throws -> Q8Layout? {
        guard let q = json["quantization"], !q.isNull else { return nil }
        guard q.object != nil else { throw HMSTError.badFormat("\(source): \"quantization\" is not an object") }
        guard let m = q["method"]?.string, m == method else {
            throw HMSTError.unsupported("\(source): quantization method \(q["method"]?.serialized ?? "(none)") is not supported (hmst reads \"q8_0\")")
        }
        if let b = q["block_size"], b.int != 32 {
            throw HMSTError.badFormat("\(source): quantization block_size \(b.serialized) is not 32")
        }
        if let s = q["scale_suffix"], s.string != scaleSuffix {
            throw HMSTError.badFormat("\(source): quantization scale_suffix \(s.serialized) is not \"\(scaleSuffix)\"")
        }
        if let s = q["scale_dtype"], s.string != "float32" {
            throw HMSTError.badFormat("\(source): quantization scale_dtype \(s.serialized) is not \"float32\"")
        }
        guard let l = q["layout"], !l.isNull else { return .rows }
        guard let s = l.string, let layout = Q8Layout(rawValue: s) else {
            throw HMSTError.unsupported("\(source): quantization layout \(l.serialized) is not supported (hmst reads \"rows\" and \"rows4\")")
        }
        return layout
    }

    /// `name` is the scale tensor of an I8 tensor in the checkpoint.
    static func isScaleOfInt8(_ name: String, location: (String) -> SafeTensorInfo?) -> Bool {
        guard name.hasSuffix(scaleSuffix) else { return false }
        return location(String(name.dropLast(scaleSuffix.count)))?.dtype == .i8
    }

    /// Checks an I8 tensor's declaration against its expected shape and its scale tensor.
    static func validate(name: String, shape: [Int], quantizedConfig: Bool, scale: SafeTensorInfo?) throws {
        guard quantizedConfig else {
            throw HMSTError.badFormat("tensor \(name) is I8 but config.json has no \"quantization\": {\"method\": \"q8_0\"} entry")
        }
        guard shape.count == 2, Q8Tensor.fits(cols: shape[1]) else {
            throw HMSTError.badFormat("tensor \(name) is I8 but its shape \(shape) is not a matrix whose width is a multiple of 32")
        }
        guard let scale else { throw HMSTError.badFormat("tensor \(name) is I8 but \(name)\(scaleSuffix) is missing") }
        guard scale.dtype == .f32 else {
            throw HMSTError.badFormat("tensor \(name)\(scaleSuffix) is \(scale.dtype.rawValue); int8 scales are F32")
        }
        let want = [shape[0], shape[1] / 32]
        guard scale.shape == want else {
            throw HMSTError.badFormat("tensor \(name)\(scaleSuffix) has shape \(scale.shape) but \(name) \(shape) needs \(want)")
        }
    }

    /// An int8 weight over mapped data, after checking its content: finite scales and no -128
    /// values. Scales not 4-byte aligned in the file are copied. rows4: the data is in the
    /// row-quad order (the weight is then `.q8Rows4`).
    static func view(name: String, values: UnsafeRawPointer, scales: UnsafeRawPointer, rows: Int, cols: Int,
                     rows4: Bool = false, owner: AnyObject) throws -> Weight {
        let n = rows * cols, nb = n / 32
        let q = values.assumingMemoryBound(to: Int8.self)
        let bad = hk_find_i8_value(q, n, -128)
        if bad >= 0, bad < n {
            let at = rows4 ? "byte \(bad) of the row-quad layout" : "index \(bad) (row \(bad / cols), column \(bad % cols))"
            throw HMSTError.badFormat("tensor \(name) holds -128 at \(at); int8 weights are in [-127, 127]")
        }
        var sp = scales
        var keep: AnyObject = owner
        if Int(bitPattern: scales) % 4 != 0 {
            let copy = try FloatBuffer(count: nb, zeroed: false, for: "the scales of \(name)")
            UnsafeMutableRawPointer(copy.pointer).copyMemory(from: scales, byteCount: nb * 4)
            sp = UnsafeRawPointer(copy.pointer)
            keep = Owners([owner, copy])
        }
        try TensorCheck.requireFinite(name: name + scaleSuffix, dtype: .f32, data: sp, count: nb, cols: rows4 ? nb : cols / 32)
        let s = sp.assumingMemoryBound(to: Float.self)
        return Weight(rows4 ? .q8Rows4(q, scales: s) : .q8(q, scales: s), rows: rows, cols: cols, owner: keep)
    }
}

/// Keeps several storages alive as one owner.
final class Owners {
    let all: [AnyObject]
    init(_ all: [AnyObject]) { self.all = all }
}

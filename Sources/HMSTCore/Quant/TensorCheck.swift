// TensorCheck: the optional NaN/Inf scan of weights at load (ModelLoadOptions.checkTensors,
// `--check-tensors`), like llama.cpp's --check-tensors. One vectorised pass per tensor (q8_0.c).
import CKernels

public enum TensorCheck {
    /// Throws badFormat naming the tensor, the first bad element (flat index, row and column)
    /// and its value when data[count] of `dtype` holds a NaN or an infinity. I8 data is not
    /// checked here (its scales are). `cols` is the row length, for the row/column in the message.
    public static func requireFinite(name: String, dtype: SafeTensorDType, data: UnsafeRawPointer, count n: Int, cols: Int) throws {
        let notFound = Int(bitPattern: UInt(bitPattern: -1))
        var index = notFound
        var value: Float = 0
        switch dtype {
        case .f32:
            if Int(bitPattern: data) % 4 == 0 {
                index = hk_find_nonfinite_f32(data.assumingMemoryBound(to: Float.self), n)
            } else {
                for i in 0..<n where !data.loadUnaligned(fromByteOffset: i * 4, as: Float.self).isFinite { index = i; break }
            }
            if index != notFound { value = data.loadUnaligned(fromByteOffset: index * 4, as: Float.self) }
        case .bf16, .f16:
            if Int(bitPattern: data) % 2 == 0 {
                index = hk_find_nonfinite_16(data.assumingMemoryBound(to: UInt16.self), n, dtype == .bf16 ? 1 : 0)
            } else {
                let mask: UInt16 = dtype == .bf16 ? 0x7F80 : 0x7C00
                for i in 0..<n where data.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self) & mask == mask { index = i; break }
            }
            if index != notFound {
                let bits = data.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)
                value = dtype == .bf16 ? Float(bitPattern: UInt32(bits) << 16) : Float(Float16(bitPattern: bits))
            }
        default:
            return
        }
        guard index != notFound else { return }
        let c = max(1, cols)
        throw HMSTError.badFormat("tensor \(name) has \(value.isNaN ? "NaN" : (value > 0 ? "+Inf" : "-Inf")) at index \(index) (row \(index / c), column \(index % c)); --check-tensors scans every tensor for NaN/Inf")
    }
}

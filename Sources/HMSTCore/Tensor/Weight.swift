// Weight: a read-only weight matrix as the forward pass sees it: f32, bf16, f16 or int8 (Q8_0 blocks
// of 32 values along a row, one f32 scale each: see Quant/Q8Tensor.swift; in memory, int8 matrices
// a decoder multiplies are reordered four rows at a time for the GEMV) storage, row-major
// [rows, cols] with rows = outputs (the HF/PyTorch Linear layout), living in a checkpoint map or
// in memory the model owns. `owner` keeps that storage alive for as long as the Weight exists.
import CKernels

public enum WeightStorage: @unchecked Sendable {
    case f32(UnsafePointer<Float>)
    case bf16(UnsafePointer<UInt16>)
    /// IEEE half (F16 safetensors and GGUF tensors, used in place): decode widens each weight to
    /// f32 in the GEMV (hk_gemv_f16), prefill as hmst's f32 GEMM packs it (or into f32 scratch
    /// for sgemm)
    case f16(UnsafePointer<UInt16>)
    /// values [rows, cols] in [-127, 127], scales [rows, cols / 32]; cols % 32 == 0
    case q8(UnsafePointer<Int8>, scales: UnsafePointer<Float>)
    /// the same values and scales in the row-quad layout (hk_q8_pack_rows4 in hmst_kernels.h:
    /// four rows interleaved in 64-byte chunks), which the decode GEMV reads as one stream; made
    /// by Q8Tensor.packedRows4 when a Decoder is built, never stored in a file
    case q8Rows4(UnsafePointer<Int8>, scales: UnsafePointer<Float>)
}

public struct Weight: @unchecked Sendable {
    public let storage: WeightStorage
    public let rows: Int
    public let cols: Int
    let owner: AnyObject?

    public init(_ storage: WeightStorage, rows: Int, cols: Int, owner: AnyObject?) {
        self.storage = storage
        self.rows = rows
        self.cols = cols
        self.owner = owner
    }

    public var count: Int { rows * cols }
    /// Bytes streamed per element (int8: the value; its block's scale adds 1/8 byte).
    public var bytesPerElement: Int {
        switch storage {
        case .f32: return 4
        case .bf16, .f16: return 2
        case .q8, .q8Rows4: return 1
        }
    }

    public var isQ8: Bool {
        switch storage {
        case .q8, .q8Rows4: return true
        case .f32, .bf16, .f16: return false
        }
    }
    public var isBF16: Bool { if case .bf16 = storage { return true }; return false }

    /// "f32", "bf16", "f16" or "int8"
    public var typeName: String {
        switch storage {
        case .f32: return "f32"
        case .bf16: return "bf16"
        case .f16: return "f16"
        case .q8, .q8Rows4: return "int8"
        }
    }

    /// Row r as f32 into out[cols] (embedding lookups).
    public func copyRow(_ r: Int, to out: UnsafeMutablePointer<Float>) {
        switch storage {
        case let .f32(p): out.update(from: p + r * cols, count: cols)
        case let .bf16(p): hk_bf16_to_f32(out, p + r * cols, cols)
        case let .f16(p): hk_f16_to_f32(out, p + r * cols, cols)
        case let .q8(q, s): hk_q8_dequantize(out, q + r * cols, s + r * (cols / 32), cols)
        case let .q8Rows4(q, s): hk_q8_dequantize_rows4(out, q, s, rows, cols, r, r + 1)
        }
    }

    /// Rows [r0, r1) converted to f32 into out[(r1-r0), cols].
    public func copyRows(_ r0: Int, _ r1: Int, to out: UnsafeMutablePointer<Float>) {
        switch storage {
        case let .f32(p): out.update(from: p + r0 * cols, count: (r1 - r0) * cols)
        case let .bf16(p): hk_bf16_to_f32(out, p + r0 * cols, (r1 - r0) * cols)
        case let .f16(p): hk_f16_to_f32(out, p + r0 * cols, (r1 - r0) * cols)
        case let .q8(q, s): hk_q8_dequantize(out, q + r0 * cols, s + r0 * (cols / 32), (r1 - r0) * cols)
        case let .q8Rows4(q, s): hk_q8_dequantize_rows4(out, q, s, rows, cols, r0, r1)
        }
    }
}

/// Owned, 64-byte aligned memory of a plain numeric type (weights the model holds itself,
/// training buffers, optimizer state), zeroed unless asked not to be.
public final class AlignedBuffer<Element>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Element>
    public let count: Int

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Element>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
    }

    /// The same where the size comes from a caller's arguments or a file (a context's batch and
    /// vocabulary, a training step's shapes): OUT_OF_MEMORY naming `what` when the memory cannot
    /// be had or the size overflows, instead of the trap of `allocate`.
    public init(count: Int, zeroed: Bool = true, for what: @autoclosure () -> String) throws {
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard count >= 0, !overflow else {
            throw HMSTError(.outOfMemory, "cannot allocate \(count) elements for \(what()): the size overflows")
        }
        let raw = try alignedAllocate(bytes: bytes, for: what())
        if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        self.count = count
        pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        ownedByMalloc = true
    }

    /// allocated by alignedAllocate (posix_memalign: freed with free), not by Swift's allocate
    private var ownedByMalloc = false

    deinit {
        if ownedByMalloc { free(pointer) } else { UnsafeMutableRawPointer(pointer).deallocate() }
    }

    public var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

public typealias FloatBuffer = AlignedBuffer<Float>

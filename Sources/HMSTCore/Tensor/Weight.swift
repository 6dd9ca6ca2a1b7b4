// Weight: a read-only weight matrix as the forward pass sees it: f32 or bf16 storage, row-major
// [rows, cols] with rows = outputs (the HF/PyTorch Linear layout), living in a checkpoint map or
// in memory the model owns. `owner` keeps that storage alive for as long as the Weight exists.
import CKernels

public enum WeightStorage: @unchecked Sendable {
    case f32(UnsafePointer<Float>)
    case bf16(UnsafePointer<UInt16>)
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
    public var bytesPerElement: Int {
        if case .bf16 = storage { return 2 }
        return 4
    }

    /// Row r as f32 into out[cols] (embedding lookups).
    public func copyRow(_ r: Int, to out: UnsafeMutablePointer<Float>) {
        switch storage {
        case let .f32(p): out.update(from: p + r * cols, count: cols)
        case let .bf16(p): hk_bf16_to_f32(out, p + r * cols, cols)
        }
    }

    /// Rows [r0, r1) converted to f32 into out[(r1-r0), cols].
    public func copyRows(_ r0: Int, _ r1: Int, to out: UnsafeMutablePointer<Float>) {
        switch storage {
        case let .f32(p): out.update(from: p + r0 * cols, count: (r1 - r0) * cols)
        case let .bf16(p): hk_bf16_to_f32(out, p + r0 * cols, (r1 - r0) * cols)
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

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

public typealias FloatBuffer = AlignedBuffer<Float>

// SafeTensorsFile: a .safetensors file mapped for reading tensors by name (its header validated
// by SafeTensorsHeader), and RawTensor, a tensor as raw bytes for SafeTensorsWriter.writeRaw.
// Used by every part stored beside a checkpoint: the trainers' optimizer state, the trained heads
// (HeadFiles), the controller, the critic, the episodic store.

/// A tensor given as raw little-endian bytes of a declared dtype; owner keeps them alive.
public struct RawTensor {
    public let name: String
    public let dtype: SafeTensorDType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer
    public let owner: AnyObject
}

/// A mapped .safetensors file with its validated header.
public final class SafeTensorsFile {
    public let path: String
    let map: MappedFile
    public let header: SafeTensorsHeader

    public init(path: String) throws {
        self.path = path
        map = try MappedFile(path: path)
        header = try SafeTensorsHeader(map: map)
    }

    /// Copies tensor `name` into dst, after checking its dtype and element count.
    public func copy(_ name: String, dtype: SafeTensorDType, count: Int, to dst: UnsafeMutableRawPointer) throws {
        guard let t = header.tensor(name), t.dtype == dtype, t.elementCount == count, let base = map.base else {
            throw HMSTError.badFormat("\(path) lacks \(name) as \(count) \(dtype.rawValue) values")
        }
        dst.copyMemory(from: base + header.dataOffset + t.begin, byteCount: count * dtype.size)
    }
}

extension AlignedBuffer {
    /// The whole buffer as a tensor of `dtype` (whose size must be the element's).
    func raw(_ name: String, dtype: SafeTensorDType) -> RawTensor {
        RawTensor(name: name, dtype: dtype, shape: [count],
                  bytes: UnsafeRawBufferPointer(start: pointer, count: count * MemoryLayout<Element>.stride), owner: self)
    }
}

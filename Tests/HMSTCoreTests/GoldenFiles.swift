// Reading the golden files written by tools/golden/*.py:
//   b"HMSTGOLD" | u32 version=1 | u32 ndim | u32 dims[ndim] | float32 data
@testable import HMSTCore

enum Golden {
    /// Tests/Golden, found relative to this source file so tests run from any directory.
    static var root: String {
        let here = #filePath
        let tests = here.split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + tests + "/Golden"
    }

    static func array(_ path: String) throws -> (shape: [Int], data: [Float]) {
        let b = try FileIO.readAll(path)
        guard b.count >= 16, Array(b[0..<8]) == Array("HMSTGOLD".utf8) else { throw HMSTError.badFormat("\(path): not a golden file") }
        return b.withUnsafeBytes { raw in
            let ndim = Int(raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
            let shape = (0..<ndim).map { Int(raw.loadUnaligned(fromByteOffset: 16 + $0 * 4, as: UInt32.self)) }
            let start = 16 + ndim * 4
            let n = shape.reduce(1, *)
            let data = (0..<n).map { raw.loadUnaligned(fromByteOffset: start + $0 * 4, as: Float.self) }
            return (shape, data)
        }
    }
}

// gemvBatch (Inference/Linear.swift), the decode GEMVs: however a job is cut into tasks
// (gemvTaskBytes) and however many threads take them, every output row is the same bits, since
// a row's kernel never depends on the rows beside it; and the values are the product's.
import CKernels
import XCTest
@testable import HMSTCore

final class GEMVBatchTests: XCTestCase {
    /// Two matrices large enough for many tasks at every task size tried (f32: 1.4 MB, int8:
    /// 356 KB), rows not a multiple of 4 or of a task, one input shared, one its own.
    func weights() -> (a: Weight, b: Weight, xa: [Float], xb: [Float], values: [[Float]]) {
        var rng = RNG(seed: 21)
        let rowsA = 701, rowsB = 67, cols = 512
        let va = (0..<(rowsA * cols)).map { _ in rng.nextGaussian() * 0.05 }
        let vb = (0..<(rowsB * cols)).map { _ in rng.nextGaussian() * 0.05 }
        let xa = (0..<cols).map { _ in rng.nextGaussian() }, xb = (0..<cols).map { _ in rng.nextGaussian() }
        let pa = FloatBuffer(count: va.count, zeroed: false), pb = FloatBuffer(count: vb.count, zeroed: false)
        pa.pointer.initialize(from: va, count: va.count)
        pb.pointer.initialize(from: vb, count: vb.count)
        return (Weight(.f32(pa.pointer), rows: rowsA, cols: cols, owner: pa), Weight(.f32(pb.pointer), rows: rowsB, cols: cols, owner: pb),
                xa, xb, [va, vb])
    }

    /// out rows of [a·xa, a·xb, b·xa] under the given task size and threads.
    func run(_ a: Weight, _ b: Weight, _ xa: [Float], _ xb: [Float], taskBytes: Int, threads: Int) -> [Float] {
        let saved = gemvTaskBytes
        gemvTaskBytes = taskBytes
        defer { gemvTaskBytes = saved }
        var out = [Float](repeating: .nan, count: a.rows * 2 + b.rows)
        out.withUnsafeMutableBufferPointer { o in
            xa.withUnsafeBufferPointer { pxa in
                xb.withUnsafeBufferPointer { pxb in
                    gemvBatch([GEMVJob(out: o.baseAddress!, x: pxa.baseAddress!, w: a),
                               GEMVJob(out: o.baseAddress! + a.rows, x: pxb.baseAddress!, w: a),
                               GEMVJob(out: o.baseAddress! + 2 * a.rows, x: pxa.baseAddress!, w: b)], threads: threads)
                }
            }
        }
        return out
    }

    func testEveryTaskSizeAndThreadCountGivesTheSameRows() throws {
        let before = Threads.count
        try Threads.set(3)
        defer { try? Threads.set(before) }
        let (a32, b32, xa, xb, values) = weights()
        for type in ["f32", "bf16", "f16", "int8"] {
            let (a, b): (Weight, Weight)
            switch type {
            case "bf16": (a, b) = (try convertWeight(a32, toBF16: true), try convertWeight(b32, toBF16: true))
            case "f16": (a, b) = (Self.half(a32), Self.half(b32))
            case "int8": (a, b) = (Q8Tensor.packedRows4(Q8Tensor.quantize(a32)), Q8Tensor.packedRows4(Q8Tensor.quantize(b32)))
            default: (a, b) = (a32, b32)
            }
            // one task, one thread: the reference cut
            let whole = run(a, b, xa, xb, taskBytes: 1 << 30, threads: 1)
            // the product itself, to the precision of the weight type
            let tol: Double = ["f32": 1e-4, "f16": 0.01, "bf16": 0.05][type] ?? 0.08
            for (j, (w, x, v)) in [(a, xa, values[0]), (a, xb, values[0]), (b, xa, values[1])].enumerated() {
                let base = j == 0 ? 0 : j == 1 ? a.rows : 2 * a.rows
                for r in 0..<w.rows {
                    var s = 0.0
                    for c in 0..<w.cols { s += Double(v[r * w.cols + c]) * Double(x[c]) }
                    XCTAssertEqual(Double(whole[base + r]), s, accuracy: tol, "\(type) job \(j) row \(r)")
                }
            }
            for taskKiB in [1, 4, 64, 256] {
                for threads in [1, 2, 3] {
                    let out = run(a, b, xa, xb, taskBytes: taskKiB << 10, threads: threads)
                    let differ = zip(out, whole).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                    XCTAssertEqual(differ, 0, "\(type): \(differ) rows differ with \(taskKiB) KiB tasks on \(threads) threads")
                }
            }
        }
    }

    /// An f32 weight as IEEE half, in memory the Weight owns.
    static func half(_ w: Weight) -> Weight {
        guard case let .f32(p) = w.storage else { return w }
        let h = AlignedBuffer<UInt16>(count: w.count, zeroed: false)
        hk_f32_to_f16(h.pointer, p, w.count)
        return Weight(.f16(UnsafePointer(h.pointer)), rows: w.rows, cols: w.cols, owner: h)
    }
}

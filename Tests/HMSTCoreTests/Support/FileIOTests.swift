import XCTest
@testable import HMSTCore

final class FileIOTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = "/tmp/hmst-fileio-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try? FileIO.makeDirectories(dir + "/a/b")
    }

    override func tearDown() { removeTree(dir) }

    func testAtomicWriteReplacesAndLeavesNoTemp() throws {
        let path = dir + "/a/b/file.bin"
        try FileIO.writeAtomically(path, text: "old")
        try FileIO.writeAtomically(path, [1, 2, 3, 4])
        XCTAssertEqual(try FileIO.readAll(path), [1, 2, 3, 4])
        XCTAssertFalse(FileIO.exists(path + ".tmp.\(getpid())"))
        let m = try MappedFile(path: path)
        XCTAssertEqual(Array(m.bytes), [1, 2, 3, 4])
    }

    /// Files of 4 MiB and more map at a 2 MiB boundary (so the kernel can map 2 MiB folios
    /// whole) and read back byte for byte, first and last bytes included; small files map as before.
    func testLargeFilesMapAtHugePageBoundaries() throws {
        for size in [5 << 20 | 123, 4 << 20, 100] {
            let path = dir + "/map\(size).bin"
            let bytes = [UInt8]((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
            try FileIO.writeAtomically(path, bytes)
            let m = try MappedFile(path: path)
            XCTAssertEqual(m.count, size)
            if size >= 4 << 20 { XCTAssertEqual(Int(bitPattern: m.base) % (2 << 20), 0, "size \(size)") }
            XCTAssertTrue(m.bytes.elementsEqual(bytes), "size \(size)")
        }
    }

    func testErrorsNameThePath() {
        XCTAssertThrowsError(try FileIO.readAll(dir + "/missing")) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .notFound)
            XCTAssertTrue((e as? HMSTError)?.message.contains("missing") ?? false)
        }
        XCTAssertThrowsError(try FileIO.writeAtomically(dir + "/no/such/dir/x", text: "x")) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .io)
        }
        XCTAssertThrowsError(try MappedFile(path: dir))  // a directory
    }
}

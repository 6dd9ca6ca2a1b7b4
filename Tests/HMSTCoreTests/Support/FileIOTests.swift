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

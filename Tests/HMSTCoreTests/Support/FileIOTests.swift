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

    /// An output that is a symbolic link keeps the link (its file is replaced atomically); a FIFO
    /// is written through, not renamed over (as root a rename over /dev/null would replace the
    /// device), and one nobody reads is an error; a directory is an error; MappedFile refuses a
    /// FIFO without waiting for a writer.
    func testOutputsThatAreNotRegularFiles() throws {
        let target = dir + "/target.txt", link = dir + "/link.txt"
        try FileIO.writeAtomically(target, text: "old")
        XCTAssertEqual(symlink(target, link), 0)
        try FileIO.writeAtomically(link, text: "new")
        var st = stat()
        XCTAssertEqual(lstat(link, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK, "the link is still a link")
        XCTAssertEqual(try FileIO.readText(target), "new")
        let w = try AtomicFileWriter(path: link)
        try w.write(Array("pieces".utf8))
        try w.commit()
        XCTAssertEqual(try FileIO.readText(target), "pieces")

        let fifo = dir + "/out.fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertThrowsError(try FileIO.writeAtomically(fifo, text: "x")) { e in
            XCTAssertTrue("\(e)".contains("no process reads"), "\(e)")
        }
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        XCTAssertGreaterThanOrEqual(reader, 0)
        defer { close(reader) }
        try FileIO.writeAtomically(fifo, text: "through")
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(reader, &buf, 64)
        XCTAssertEqual(String(decoding: buf[0..<max(0, n)], as: UTF8.self), "through")
        XCTAssertEqual(lstat(fifo, &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")
        XCTAssertThrowsError(try MappedFile(path: fifo)) { e in XCTAssertTrue("\(e)".contains("not a regular file"), "\(e)") }

        XCTAssertThrowsError(try FileIO.writeAtomically(dir + "/a", text: "x")) { e in XCTAssertTrue("\(e)".contains("is a directory"), "\(e)") }
        XCTAssertThrowsError(try FileIO.refuseOverwriting(inputs: [target], outputs: [link]))
        XCTAssertNoThrow(try FileIO.refuseOverwriting(inputs: [target], outputs: [dir + "/other.txt"]))
    }

    /// Lines end at "\n" or "\r\n" ("\r\n" is one Character, so split(separator: "\n") left
    /// a Windows file as one line); a lone "\r" and U+2028 do not end one.
    func testLinesSplitWindowsLineEnds() {
        XCTAssertEqual("a\r\nb\nc".lines(), ["a", "b", "c"])
        XCTAssertEqual("a\r\n\r\nb\n".lines(omittingEmpty: false), ["a", "", "b", ""])
        XCTAssertEqual("a\rb\u{2028}c".lines(), ["a\rb\u{2028}c"])
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

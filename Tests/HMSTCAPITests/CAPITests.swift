// The C API's Swift side, called directly: status mapping, the buffer protocol and the
// versioned-struct rule. The C host tests (Tests/CHost) cover the same through the real .so.
import CHMST
import XCTest
@testable import HMSTCAPI
@testable import HMSTCore

final class CAPITests: XCTestCase {
    func testErrorsBecomeStatusAndThreadLocalMessage() {
        let rc = hmstCall { throw HMSTError.badFormat("header length 99 exceeds file size 12") }
        XCTAssertEqual(rc, Status.badFormat.rawValue)
        XCTAssertEqual(String(cString: hmst_last_error()), "header length 99 exceeds file size 12")
        XCTAssertEqual(hmstCall {}, 0)
        XCTAssertEqual(String(cString: hmst_last_error()), "")
        struct Other: Error {}
        XCTAssertEqual(hmstCall { throw Other() }, Status.internal.rawValue)
    }

    func testStatusStrings() {
        XCTAssertEqual(String(cString: hmst_status_string(0)), "OK")
        XCTAssertEqual(String(cString: hmst_status_string(-4)), "BAD_FORMAT")
        XCTAssertEqual(String(cString: hmst_status_string(7)), "UNKNOWN")
    }

    func testWriteStringBufferProtocol() {
        var n = 0
        XCTAssertThrowsError(try writeString("hello", nil, 0, &n)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .bufferTooSmall)
        }
        XCTAssertEqual(n, 5)
        var buf = [CChar](repeating: 120, count: 6)
        XCTAssertThrowsError(try writeString("hello", &buf, 5, &n))
        XCTAssertEqual(buf[0], 120)
        XCTAssertNoThrow(try writeString("hello", &buf, 6, &n))
        XCTAssertEqual(String(cString: buf), "hello")
        XCTAssertThrowsError(try writeString("hello", &buf, 6, nil)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .invalidArgument)
        }
    }

    func testSystemInfoRespectsHostStructSize() {
        var info = hmst_system_info()
        info.struct_size = 8
        XCTAssertEqual(hmst_system_info(&info), Status.invalidArgument.rawValue)
        info.struct_size = UInt32(MemoryLayout<hmst_system_info>.size)
        XCTAssertEqual(hmst_system_info(&info), 0)
        XCTAssertEqual(info.abi_version, Version.abi)
        XCTAssertGreaterThanOrEqual(info.n_cpus, 1)
        XCTAssertEqual(hmst_sizeof("hmst_system_info"), MemoryLayout<hmst_system_info>.size)
    }
}

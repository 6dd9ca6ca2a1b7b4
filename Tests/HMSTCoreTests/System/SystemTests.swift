import XCTest
@testable import HMSTCore

final class SystemTests: XCTestCase {
    func testSystemInfoJSONHasEveryField() {
        let json = SystemInfo().json
        for key in ["version", "abi_version", "n_cpus", "n_threads", "blas_core", "simd", "numa_nodes",
                    "numa_policy_permitted", "faiss_version"] {
            XCTAssertTrue(json.contains("\"\(key)\":"), "missing \(key) in \(json)")
        }
        XCTAssertTrue(json.hasPrefix("{") && json.hasSuffix("}"))
    }
}

// PlacementInspection reads the kernel's view back: residency and node per page (move_pages),
// a mapping's policy (get_mempolicy), worker and caller CPUs. On one node every resident page
// is on node 0; tools/numa-vm checks the same calls on two.
import CHMST
import CNUMA
import XCTest
@testable import HMSTCore

final class PlacementInspectionTests: XCTestCase {
    func testPagesAreNotPresentUntilWrittenThenOnThisNode() throws {
        let pages = 8, size = pages * Placement.pageSize
        let p = try XCTUnwrap(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        XCTAssertNotEqual(p, MAP_FAILED)
        defer { munmap(p, size) }
        var c = PlacementInspection.pageNodes(p, nBytes: size)
        XCTAssertEqual(c.pages, pages)
        XCTAssertEqual(c.notPresent, pages)
        XCTAssertEqual(c.byNode, [:])
        // write 3 of the 8 pages; a range starting mid-page covers the page it starts in
        for i in [0, 2, 7] { p.storeBytes(of: 1, toByteOffset: i * Placement.pageSize, as: UInt8.self) }
        c = PlacementInspection.pageNodes(p, nBytes: size)
        XCTAssertEqual(c.notPresent, 5)
        XCTAssertEqual(c.byNode.values.reduce(0, +), 3)
        if NUMATopology.current.nodeCount == 1 { XCTAssertEqual(c.byNode, [0: 3]) }
        c = PlacementInspection.pageNodes(p + 100, nBytes: 10)
        XCTAssertEqual(c.pages, 1)
        XCTAssertEqual(c.byNode.values.reduce(0, +), 1)
        XCTAssertEqual(PlacementInspection.pageNodes(p, nBytes: 0), PageNodeCounts())
        XCTAssertEqual(PlacementInspection.touch(p, nBytes: size), 3)  // one byte of each page: three 1s
    }

    func testPolicyAtAnAddress() throws {
        let size = Placement.pageSize
        let p = try XCTUnwrap(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(p, size) }
        XCTAssertEqual(PlacementInspection.policy(at: p), MemoryPolicy(mode: "default", nodes: []))
        try XCTSkipUnless(NUMATopology.current.policyPermitted, "policy calls refused here")
        var mask: UInt = 1
        XCTAssertEqual(mbind(p, UInt(size), Int32(MPOL_BIND), &mask, UInt(UInt.bitWidth), 0), 0)
        XCTAssertEqual(PlacementInspection.policy(at: p), MemoryPolicy(mode: "bind", nodes: [0]))
    }

    func testWorkerAndCallerCPUs() throws {
        try Threads.set(3)
        defer { Placement.placeThreads(.disabled); try? Threads.set(0) }
        Placement.placeThreads(.isolate)
        let workers = PlacementInspection.workerCPUs()
        XCTAssertEqual(workers.count, 2)
        let node = Placement.cpusByNode().first { $0.contains(chmst_current_cpu()) } ?? []
        for w in workers { XCTAssertEqual(w, node) }
        XCTAssertEqual(PlacementInspection.callerCPUs().count, Threads.cpuCount)
    }
}

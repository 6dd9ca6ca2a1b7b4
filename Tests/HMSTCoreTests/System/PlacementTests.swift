// NUMA placement on a real file map. On one node the logic still runs: the policy is set on
// the range (checked back with get_mempolicy) and pages are faulted in under it; where policy
// calls are refused it must degrade with a warning, never fail.
import CHMST
import CNUMA
import XCTest
@testable import HMSTCore

final class PlacementTests: XCTestCase {
    var path = ""

    override func setUpWithError() throws {
        path = "/tmp/hmst-placement-\(getpid()).bin"
        try FileIO.writeAtomically(path, (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
    }

    override func tearDown() { unlink(path) }

    func policy(at p: UnsafeRawPointer) -> Int32 {
        var mode: Int32 = -1
        _ = get_mempolicy(&mode, nil, 0, UnsafeMutableRawPointer(mutating: p), UInt32(MPOL_F_ADDR))
        return mode
    }

    func testDistributeSetsInterleaveAndTouchesEveryPage() throws {
        let map = try MappedFile(path: path)
        var o = PlacementOptions()
        o.strategy = .distribute
        let (region, report) = Placement.place(map.bytes, options: o)
        if NUMATopology.current.policyPermitted {
            XCTAssertEqual(report.applied, .distribute, report.summary)
            XCTAssertEqual(report.pagesTouched, (3 << 20) / Placement.pageSize)
            XCTAssertEqual(policy(at: region.base!), Int32(MPOL_INTERLEAVE))
            // one node here: every page resident on node 0, nothing to move
            XCTAssertEqual(report.pagesMoved, 0)
            let c = PlacementInspection.pageNodes(region.base!, nBytes: 3 << 20)
            XCTAssertEqual(c.byNode, [0: (3 << 20) / Placement.pageSize])
        } else {
            XCTAssertEqual(report.applied, .disabled)
            XCTAssertFalse(report.warnings.isEmpty)
        }
        XCTAssertEqual(region.base, map.base)
    }

    func testTargetNodesDealBlocksRoundRobin() {
        XCTAssertEqual(Placement.blockPages, 512)
        XCTAssertEqual([0, 511, 512, 1023, 1024, 1536].map { Placement.targetNode(page: $0, nodes: [0, 1]) }, [0, 0, 1, 1, 0, 1])
        XCTAssertEqual([0, 512, 1024].map { Placement.targetNode(page: $0, nodes: [2, 0, 1]) }, [2, 0, 1])
        XCTAssertEqual([0, 700, 5000].map { Placement.targetNode(page: $0, nodes: [1]) }, [1, 1, 1])
    }

    /// In-place placement sets the faulting threads' own policy per block; the caller's policy
    /// (default, or one numactl gave it) must come back unchanged.
    func testInPlacePlacementRestoresTheThreadPolicy() throws {
        try XCTSkipUnless(NUMATopology.current.policyPermitted, "policy calls refused here")
        try Threads.set(1)  // every block faults in on this thread
        defer { _ = set_mempolicy(Int32(MPOL_DEFAULT), nil, 0); try? Threads.set(0) }
        func threadPolicy() -> (Int32, UInt) {
            var mode: Int32 = -1
            var mask = [UInt](repeating: 0, count: 16)
            XCTAssertEqual(get_mempolicy(&mode, &mask, UInt(16 * UInt.bitWidth), nil, 0), 0)
            return (mode, mask[0])
        }
        for strategy in [NUMAStrategy.distribute, .isolate] {
            var o = PlacementOptions()
            o.strategy = strategy
            let map = try MappedFile(path: path)
            XCTAssertEqual(threadPolicy().0, Int32(MPOL_DEFAULT))
            _ = Placement.place(map.bytes, options: o)
            XCTAssertEqual(threadPolicy().0, Int32(MPOL_DEFAULT), strategy.name)

            var node0: UInt = 1
            XCTAssertEqual(set_mempolicy(Int32(MPOL_BIND), &node0, UInt(UInt.bitWidth)), 0)
            let map2 = try MappedFile(path: path)
            _ = Placement.place(map2.bytes, options: o)
            let (mode, mask) = threadPolicy()
            XCTAssertEqual(mode, Int32(MPOL_BIND), strategy.name)
            XCTAssertEqual(mask, 1, strategy.name)
            _ = set_mempolicy(Int32(MPOL_DEFAULT), nil, 0)
        }
    }

    func testCopyToAnonymousKeepsTheBytes() throws {
        let map = try MappedFile(path: path)
        var o = PlacementOptions()
        o.strategy = .isolate
        o.copyToAnonymous = true
        o.mlock = true
        let (region, report) = Placement.place(map.bytes, options: o)
        if NUMATopology.current.policyPermitted {
            XCTAssertTrue(report.copied)
            XCTAssertNotEqual(region.base, map.base)
            XCTAssertEqual(policy(at: region.base!), Int32(MPOL_BIND))
        }
        XCTAssertEqual(memcmp(region.base!, map.base!, map.count), 0)
        XCTAssertTrue(report.locked || report.warnings.contains { $0.contains("mlock") }, report.summary)
    }

    func testWorkersArePinnedPerStrategy() throws {
        try Threads.set(3)
        defer { Placement.placeThreads(.disabled); try? Threads.set(0) }
        let nodes = Placement.cpusByNode()
        XCTAssertFalse(Placement.placeThreads(.distribute).isEmpty)
        var cpus = [Int32](repeating: -1, count: 1024)
        for w in 0..<2 {
            let n = Int(chmst_pool_worker_cpus(Int32(w), &cpus, 1024))
            XCTAssertEqual(Array(cpus[0..<n]), nodes[w % nodes.count], "worker \(w)")
        }
        // a resize keeps the plan
        try Threads.set(2)
        let n = Int(chmst_pool_worker_cpus(0, &cpus, 1024))
        XCTAssertEqual(Array(cpus[0..<n]), nodes[0])
        XCTAssertEqual(Placement.placeThreads(.numactl), "")
        let all = Int(chmst_pool_worker_cpus(0, &cpus, 1024))
        XCTAssertEqual(all, Threads.cpuCount)
        XCTAssertEqual(chmst_pool_worker_cpus(99, &cpus, 1024), -1)
    }

    func testDisabledAndNumactlLeaveTheMapAlone() throws {
        let map = try MappedFile(path: path)
        for s in [NUMAStrategy.disabled, .numactl] {
            var o = PlacementOptions()
            o.strategy = s
            o.prefetch = true
            let (region, report) = Placement.place(map.bytes, options: o)
            XCTAssertEqual(report.applied, s)
            XCTAssertEqual(region.base, map.base)
            XCTAssertTrue(report.prefetched)
            XCTAssertEqual(report.pagesTouched, 0)
        }
        XCTAssertEqual(NUMAStrategy(name: "distribute"), .distribute)
        XCTAssertNil(NUMAStrategy(name: "spread"))
    }
}

// NUMA: what the machine's topology is and whether we may place pages. Policy calls are often
// refused with EPERM inside containers; callers then degrade to plain mmap and say so.
import CNUMA

public struct NUMATopology: Sendable {
    /// The kernel and libnuma support NUMA calls.
    public let available: Bool
    /// Configured nodes (1 when NUMA is unavailable).
    public let nodeCount: Int
    /// mbind() on an anonymous page succeeded (not EPERM/ENOSYS).
    public let policyPermitted: Bool
    /// Why policy calls are refused, if they are.
    public let policyError: String?

    public static let current: NUMATopology = probe()

    static func probe() -> NUMATopology {
        guard numa_available() >= 0 else {
            return NUMATopology(available: false, nodeCount: 1, policyPermitted: false,
                                policyError: "numa_available() < 0: kernel without NUMA support")
        }
        let nodes = max(1, Int(numa_num_configured_nodes()))
        // Try to bind one anonymous page to node 0: the real test of whether policy calls work.
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let page = mmap(nil, pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              page != MAP_FAILED else {
            return NUMATopology(available: true, nodeCount: nodes, policyPermitted: false,
                                policyError: "mmap of a probe page failed")
        }
        defer { munmap(page, pageSize) }
        var mask: UInt = 1
        let rc = mbind(page, UInt(pageSize), Int32(MPOL_PREFERRED), &mask, UInt(UInt.bitWidth), 0)
        if rc == 0 {
            return NUMATopology(available: true, nodeCount: nodes, policyPermitted: true, policyError: nil)
        }
        let err = errno
        return NUMATopology(available: true, nodeCount: nodes, policyPermitted: false,
                            policyError: "mbind: \(String(cString: strerror(err))) (errno \(err))")
    }
}

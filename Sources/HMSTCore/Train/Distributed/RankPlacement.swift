// RankPlacement: one data-parallel rank per NUMA node (--numa-rank). The rank's node is its
// local rank (mpirun's OMPI_COMM_WORLD_LOCAL_RANK) modulo the node count; the process and
// hmst's worker pool are pinned to that node's CPUs and its memory policy is bound to the node
// (MPOL_BIND), so weights, gradients and optimizer state are allocated there. Reuses
// Placement's node -> CPU table and pool pinning; where policy calls are refused (EPERM in
// containers) it says so instead of failing.
import CHMST
import CNUMA

public struct RankPlacementReport: Sendable {
    public var node = 0
    public var nodes = 1
    public var cpus: [Int32] = []
    public var cpusPinned = false
    public var memoryBound = false
    public var warnings: [String] = []

    /// "NUMA node 1 of 2: 8 CPUs 8-15 pinned, memory bound to node 1"
    public var summary: String {
        let range = cpus.isEmpty ? "" : cpus.count == 1 ? " \(cpus[0])" : " \(cpus.first!)-\(cpus.last!)"
        var s = "NUMA node \(node) of \(nodes): \(cpus.count) CPU\(cpus.count == 1 ? "" : "s")\(range) \(cpusPinned ? "pinned" : "NOT pinned")"
        s += memoryBound ? ", memory bound to node \(node)" : ", memory NOT bound"
        if !warnings.isEmpty { s += " (" + warnings.joined(separator: "; ") + ")" }
        return s
    }
}

public enum RankPlacement {
    /// Binds this process to NUMA node localRank % nodes. Call before the thread pool and the
    /// model are created, so both start on the node (the pool's workers are re-pinned anyway).
    public static func bind(localRank: Int) -> RankPlacementReport {
        var r = RankPlacementReport()
        let nodes = Placement.cpusByNode()
        r.nodes = max(1, nodes.count)
        r.node = localRank % r.nodes
        r.cpus = nodes.isEmpty ? [] : nodes[r.node]
        let topo = NUMATopology.current
        // the process (and threads it creates from now on) on the node's CPUs
        if topo.available {
            if numa_run_on_node(Int32(r.node)) == 0 {
                r.cpusPinned = true
            } else {
                r.warnings.append("numa_run_on_node: \(String(cString: strerror(errno)))")
            }
        } else {
            r.warnings.append("libnuma unavailable")
        }
        // workers that already exist
        var offsets: [Int32] = [0, Int32(r.cpus.count)]
        let failed = r.cpus.withUnsafeBufferPointer { c in offsets.withUnsafeMutableBufferPointer { chmst_pool_pin(c.baseAddress, $0.baseAddress, 1) } }
        if failed > 0 { r.warnings.append("\(failed) worker(s) could not be pinned") }
        // memory: MPOL_BIND to the node for this thread and the threads it creates
        if topo.policyPermitted {
            let bits = UInt.bitWidth
            var mask = [UInt](repeating: 0, count: max(1, (r.nodes + bits - 1) / bits))
            mask[r.node / bits] |= 1 << UInt(r.node % bits)
            let rc = mask.withUnsafeMutableBufferPointer { set_mempolicy(Int32(MPOL_BIND), $0.baseAddress, UInt($0.count * bits)) }
            if rc == 0 { r.memoryBound = true } else { r.warnings.append("set_mempolicy: \(String(cString: strerror(errno)))") }
        } else {
            r.warnings.append("memory policy refused: \(topo.policyError ?? "unknown")")
        }
        return r
    }
}

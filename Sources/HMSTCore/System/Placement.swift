// Placement: where the pages of a memory-mapped checkpoint live. Page-cache pages of a file
// mapping are allocated under the policy of the thread that faults them, not the mapping's
// (mbind alone left them all on the toucher's node: tools/numa-vm found it), so each strategy
// sets the policy on the range, faults every page in with the touching thread's policy set to
// the page's node, and moves the pages the kernel still put elsewhere (read-around, pages
// cached before); or, when asked, copies the weights into anonymous memory bound with the
// policy. Where policy calls are refused (EPERM in containers) or there is one node, it
// degrades to a plain mapping and says so in the report. PlacementInspection.swift reads back.
import CHMST
import CNUMA

public enum NUMAStrategy: Int32, Sendable, CaseIterable {
    /// plain mmap, no policy calls
    case disabled = 0
    /// pages dealt over all nodes (2 MiB blocks in place, interleaved when copied), worker
    /// threads spread over nodes
    case distribute = 1
    /// pages and threads on the calling thread's node
    case isolate = 2
    /// leave placement to the process policy (numactl --interleave / --membind ...)
    case numactl = 3

    public var name: String {
        switch self {
        case .disabled: return "disabled"
        case .distribute: return "distribute"
        case .isolate: return "isolate"
        case .numactl: return "numactl"
        }
    }

    public init?(name: String) {
        guard let s = NUMAStrategy.allCases.first(where: { $0.name == name }) else { return nil }
        self = s
    }
}

public struct PlacementOptions: Sendable {
    public var strategy = NUMAStrategy.disabled
    /// madvise(MADV_WILLNEED) so the kernel reads ahead
    public var prefetch = false
    /// mlock the weights; a failure is a warning, not an error
    public var mlock = false
    /// copy into anonymous memory bound with the strategy's policy instead of faulting the
    /// file's pages in place (needed when the file is already in the page cache elsewhere)
    public var copyToAnonymous = false
    public init() {}
}

public struct PlacementReport: Sendable {
    public var requested = NUMAStrategy.disabled
    /// what was really done: .disabled when the policy could not be applied
    public var applied = NUMAStrategy.disabled
    public var nodes = 1
    public var pagesTouched = 0
    /// pages moved after faulting because they were on another node (cached before the load,
    /// or read ahead across a block edge)
    public var pagesMoved = 0
    public var copied = false
    public var prefetched = false
    public var locked = false
    /// non-fatal problems (EPERM, mlock limits), for the host's log and the load result
    public var warnings: [String] = []
    /// how hmst's worker threads were placed ("" when left alone)
    public var threads = ""

    public var summary: String {
        var s = "numa \(requested.name)"
        if applied != requested { s += " (applied: \(applied.name))" }
        s += ", \(nodes) node(s)"
        if copied { s += ", copied to bound memory" }
        if pagesTouched > 0 { s += ", \(pagesTouched) pages placed" }
        if pagesMoved > 0 { s += " (\(pagesMoved) moved)" }
        if prefetched { s += ", prefetched" }
        if locked { s += ", mlocked" }
        if !threads.isEmpty { s += ", " + threads }
        return s
    }
}

/// A region of weights: where it starts and how long it is, plus the memory that backs it
/// when placement copied it (the caller then reads from `base`, not the file map).
public final class PlacedRegion: @unchecked Sendable {
    public let base: UnsafeRawPointer?
    public let count: Int
    let anonymous: UnsafeMutableRawPointer?
    let lockedCount: Int

    init(base: UnsafeRawPointer?, count: Int, anonymous: UnsafeMutableRawPointer?, lockedCount: Int) {
        self.base = base
        self.count = count
        self.anonymous = anonymous
        self.lockedCount = lockedCount
    }

    deinit {
        if let base, lockedCount > 0 { munlock(base, lockedCount) }
        if let anonymous { munmap(anonymous, count) }
    }

    /// Drops the whole pages inside `bytes` from the process (madvise DONTNEED) when the region is
    /// the read-only file mapping itself: a later read faults them in again from the file. Not
    /// for an anonymous copy (its pages would read as zeros) nor locked memory.
    func dropPages(_ bytes: UnsafeRawBufferPointer) {
        guard anonymous == nil, lockedCount == 0, let p = bytes.baseAddress, bytes.count > 0 else { return }
        let page = Placement.pageSize
        let start = (Int(bitPattern: p) + page - 1) / page * page
        let end = (Int(bitPattern: p) + bytes.count) / page * page
        guard end > start, let first = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(first, end - start, MADV_DONTNEED)
    }
}

public enum Placement {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Places `bytes` (a read-only file mapping) according to options.
    public static func place(_ bytes: UnsafeRawBufferPointer, options: PlacementOptions) -> (PlacedRegion, PlacementReport) {
        var report = PlacementReport()
        report.requested = options.strategy
        let topo = NUMATopology.current
        report.nodes = topo.nodeCount
        guard let src = bytes.baseAddress, bytes.count > 0 else {
            return (PlacedRegion(base: bytes.baseAddress, count: 0, anonymous: nil, lockedCount: 0), report)
        }
        var base: UnsafeRawPointer = src
        var anonymous: UnsafeMutableRawPointer?

        switch options.strategy {
        case .disabled:
            break
        case .numactl:
            report.applied = .numactl  // the process policy governs faults; nothing to do
        case .distribute, .isolate:
            if !topo.available || !topo.policyPermitted {
                report.warnings.append("NUMA \(options.strategy.name) not applied: \(topo.policyError ?? "NUMA unavailable"); using plain mmap")
            } else {
                var mask = nodeMask(strategy: options.strategy, nodes: topo.nodeCount)
                let mode = options.strategy == .distribute ? Int32(MPOL_INTERLEAVE) : Int32(MPOL_BIND)
                if options.copyToAnonymous {
                    if let anon = mmap(nil, bytes.count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), anon != MAP_FAILED {
                        if mbindRange(anon, bytes.count, mode: mode, mask: &mask) {
                            copyParallel(to: anon, from: src, count: bytes.count)
                            mprotect(anon, bytes.count, PROT_READ)
                            anonymous = anon
                            base = UnsafeRawPointer(anon)
                            report.copied = true
                            report.applied = options.strategy
                        } else {
                            report.warnings.append("mbind on anonymous memory failed: \(String(cString: strerror(errno))); using the file map")
                            munmap(anon, bytes.count)
                        }
                    } else {
                        report.warnings.append("could not allocate \(bytes.count) bytes to copy weights into; using the file map")
                    }
                } else if mbindRange(UnsafeMutableRawPointer(mutating: src), bytes.count, mode: mode, mask: &mask) {
                    let nodes = options.strategy == .distribute ? (0..<Int32(topo.nodeCount)).map { $0 } : [callerNode()]
                    let r = placeFilePages(src, bytes.count, nodes: nodes)
                    report.pagesTouched = r.pages
                    report.pagesMoved = r.moved
                    if r.stuck > 0 {
                        report.warnings.append("\(r.stuck) of \(r.pages) weight pages could not be moved to their node "
                            + "(shared with another process?); copying to bound memory places them")
                    }
                    report.applied = options.strategy
                } else {
                    report.warnings.append("mbind on the weight map failed: \(String(cString: strerror(errno))); using plain mmap")
                }
            }
        }

        if options.prefetch && anonymous == nil {
            let (start, len) = pageAligned(base, bytes.count)
            if madvise(UnsafeMutableRawPointer(mutating: start), len, MADV_WILLNEED) == 0 {
                report.prefetched = true
            } else {
                report.warnings.append("madvise(WILLNEED) failed: \(String(cString: strerror(errno)))")
            }
        }
        var locked = 0
        if options.mlock {
            if mlock(base, bytes.count) == 0 {
                locked = bytes.count
                report.locked = true
            } else {
                let err = errno
                report.warnings.append("mlock of \(bytes.count) bytes failed: \(String(cString: strerror(err)))"
                    + (err == ENOMEM || err == EPERM ? " (raise RLIMIT_MEMLOCK, e.g. ulimit -l unlimited)" : ""))
            }
        }
        return (PlacedRegion(base: base, count: bytes.count, anonymous: anonymous, lockedCount: locked), report)
    }

    /// CPUs of each NUMA node (node index -> CPU ids), from libnuma; one set of every CPU when
    /// NUMA is unavailable.
    static func cpusByNode() -> [[Int32]] {
        let topo = NUMATopology.current
        guard topo.available, let mask = numa_allocate_cpumask() else {
            return [Array(0..<Int32(Threads.cpuCount))]
        }
        defer { numa_free_cpumask(mask) }
        var out: [[Int32]] = []
        for node in 0..<topo.nodeCount {
            guard numa_node_to_cpus(Int32(node), mask) == 0 else { continue }
            var cpus: [Int32] = []
            for c in 0..<Int32(numa_num_configured_cpus()) where numa_bitmask_isbitset(mask, UInt32(c)) != 0 { cpus.append(c) }
            if !cpus.isEmpty { out.append(cpus) }
        }
        return out.isEmpty ? [Array(0..<Int32(Threads.cpuCount))] : out
    }

    /// Pins hmst's workers for a strategy: distribute spreads worker i over node i % nodes,
    /// isolate keeps every worker on the calling thread's node, the others unpin.
    /// Returns a description for the load report.
    @discardableResult
    public static func placeThreads(_ strategy: NUMAStrategy) -> String {
        let nodes = cpusByNode()
        var sets: [[Int32]] = []
        switch strategy {
        case .distribute: sets = nodes
        case .isolate:
            let cpu = chmst_current_cpu()
            sets = [nodes.first { $0.contains(cpu) } ?? nodes[0]]
        case .disabled, .numactl: sets = []
        }
        var flat: [Int32] = [], offsets: [Int32] = [0]
        for s in sets { flat += s; offsets.append(Int32(flat.count)) }
        let failed = flat.withUnsafeBufferPointer { f in
            offsets.withUnsafeBufferPointer { o in chmst_pool_pin(f.baseAddress, o.baseAddress, Int32(sets.count)) }
        }
        if sets.isEmpty { return "" }
        let what = strategy == .distribute ? "workers spread over \(sets.count) node(s)" : "workers on the caller's node"
        return failed == 0 ? what : what + " (\(failed) could not be pinned)"
    }

    /// The node of the CPU the calling thread runs on (0 when unknown).
    static func callerNode() -> Int32 {
        let cpu = chmst_current_cpu()
        return cpu >= 0 ? max(0, numa_node_of_cpu(cpu)) : 0
    }

    static func nodeMask(strategy: NUMAStrategy, nodes: Int) -> [UInt] {
        let bits = UInt.bitWidth
        var mask = [UInt](repeating: 0, count: max(1, (nodes + bits - 1) / bits))
        if strategy == .isolate {
            let node = Int(callerNode())
            mask[node / bits] |= 1 << UInt(node % bits)
        } else {
            for n in 0..<nodes { mask[n / bits] |= 1 << UInt(n % bits) }
        }
        return mask
    }

    static func pageAligned(_ p: UnsafeRawPointer, _ count: Int) -> (UnsafeRawPointer, Int) {
        let addr = UInt(bitPattern: p)
        let start = addr & ~UInt(pageSize - 1)
        return (UnsafeRawPointer(bitPattern: start)!, Int(addr - start) + count)
    }

    static func mbindRange(_ p: UnsafeMutableRawPointer, _ count: Int, mode: Int32, mask: inout [UInt]) -> Bool {
        let (start, len) = pageAligned(UnsafeRawPointer(p), count)
        let maxNode = UInt(mask.count * UInt.bitWidth)
        return mask.withUnsafeMutableBufferPointer {
            mbind(UnsafeMutableRawPointer(mutating: start), UInt(len), mode, $0.baseAddress, maxNode + 1, 0) == 0
        }
    }

    /// In-place placement deals pages to nodes in blocks of this many pages (2 MiB of 4 KiB
    /// pages): distribute round-robin over the nodes, isolate all to one node.
    static let blockPages = 512

    /// The node page `page` of a placed range belongs on.
    static func targetNode(page: Int, nodes: [Int32]) -> Int32 {
        nodes[(page / blockPages) % nodes.count]
    }

    /// Faults every page of a file mapping in on its target node, then moves the pages the
    /// kernel put elsewhere. Returns the page count, how many were moved and how many could
    /// not be (move_pages leaves pages that another process also maps).
    static func placeFilePages(_ p: UnsafeRawPointer, _ count: Int, nodes: [Int32]) -> (pages: Int, moved: Int, stuck: Int) {
        let (start, len) = pageAligned(p, count)
        let pages = (len + pageSize - 1) / pageSize
        let blocks = (pages + blockPages - 1) / blockPages
        let sink = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, blocks))
        defer { sink.deallocate() }
        parallelFor(blocks) { b in
            withThreadPolicy(preferring: targetNode(page: b * blockPages, nodes: nodes)) {
                var acc: UInt8 = 0
                for page in (b * blockPages)..<min(pages, (b + 1) * blockPages) {
                    acc &+= start.load(fromByteOffset: page * pageSize, as: UInt8.self)
                }
                sink[b] = acc  // keeps the loads from being optimised away
            }
        }
        let (moved, stuck) = moveMisplaced(start, pages: pages, nodes: nodes)
        return (pages, moved, stuck)
    }

    /// Runs body with the calling thread's memory policy set to prefer `node` (page-cache
    /// pages follow the faulting thread's policy), then restores the thread's own policy.
    static func withThreadPolicy(preferring node: Int32, _ body: () -> Void) {
        let bits = UInt.bitWidth
        let words = max(1, (Int(numa_num_possible_nodes()) + bits - 1) / bits)
        let maxNode = UInt(words * bits)
        var oldMode: Int32 = 0
        var oldMask = [UInt](repeating: 0, count: words)
        var want = [UInt](repeating: 0, count: words)
        want[Int(node) / bits] |= 1 << UInt(Int(node) % bits)
        let saved = get_mempolicy(&oldMode, &oldMask, maxNode, nil, 0) == 0
        let set = saved && set_mempolicy(Int32(MPOL_PREFERRED), &want, maxNode) == 0
        body()
        if set {
            // MPOL_DEFAULT takes no nodes; every other mode gets its mask back (flags ride in the mode)
            if oldMode == Int32(MPOL_DEFAULT) { _ = set_mempolicy(oldMode, nil, 0) } else { _ = set_mempolicy(oldMode, &oldMask, maxNode) }
        }
    }

    /// Moves the resident pages of [start, start + pages * pageSize) that are not on their
    /// target node there (move_pages, MPOL_MF_MOVE: only pages no other process maps).
    static func moveMisplaced(_ start: UnsafeRawPointer, pages: Int, nodes: [Int32]) -> (moved: Int, stuck: Int) {
        let batch = 4096
        var addrs = [UnsafeMutableRawPointer?](repeating: nil, count: batch)
        var status = [Int32](repeating: 0, count: batch)
        var wrongAddrs: [UnsafeMutableRawPointer?] = [], wrongNodes: [Int32] = []
        var moved = 0, stuck = 0
        var first = 0
        while first < pages {
            let n = min(batch, pages - first)
            for i in 0..<n { addrs[i] = UnsafeMutableRawPointer(mutating: start + (first + i) * pageSize) }
            let rc = addrs.withUnsafeMutableBufferPointer { a in
                status.withUnsafeMutableBufferPointer { move_pages(0, UInt(n), a.baseAddress, nil, $0.baseAddress, 0) }
            }
            wrongAddrs.removeAll(keepingCapacity: true)
            wrongNodes.removeAll(keepingCapacity: true)
            if rc == 0 {
                for i in 0..<n where status[i] >= 0 && status[i] != targetNode(page: first + i, nodes: nodes) {
                    wrongAddrs.append(addrs[i])
                    wrongNodes.append(targetNode(page: first + i, nodes: nodes))
                }
            }
            if !wrongAddrs.isEmpty {
                let k = wrongAddrs.count
                let rc = wrongAddrs.withUnsafeMutableBufferPointer { a in
                    wrongNodes.withUnsafeBufferPointer { t in
                        status.withUnsafeMutableBufferPointer { move_pages(0, UInt(k), a.baseAddress, t.baseAddress, $0.baseAddress, Int32(MPOL_MF_MOVE)) }
                    }
                }
                if rc < 0 {
                    stuck += k
                } else {
                    for i in 0..<k { if status[i] == wrongNodes[i] { moved += 1 } else { stuck += 1 } }
                }
            }
            first += n
        }
        return (moved, stuck)
    }

    static func copyParallel(to dst: UnsafeMutableRawPointer, from src: UnsafeRawPointer, count: Int) {
        let chunks = splitRange(count, parts: Threads.count * 4)
        parallelFor(chunks.count) { c in
            let r = chunks[c]
            (dst + r.lowerBound).copyMemory(from: src + r.lowerBound, byteCount: r.count)
        }
    }
}

// PlacementInspection: the kernel's view of where a loaded model's pages and worker threads
// are, to check Placement against what its strategy promises (hmst placement-report, the
// two-node guest check in tools/numa-vm). Read-only: move_pages with no target nodes only
// queries, get_mempolicy(MPOL_F_ADDR) reads a mapping's policy. Placement.swift places.
import CHMST
import CNUMA

/// Pages of one address range by the node that holds them.
public struct PageNodeCounts: Sendable, Equatable {
    public var pages = 0
    /// node -> resident pages on it
    public var byNode: [Int: Int] = [:]
    /// pages not faulted in (move_pages: -ENOENT)
    public var notPresent = 0
    /// pages the kernel would not report (any other negative status), or all of them when
    /// move_pages itself failed
    public var unknown = 0

    public init() {}
}

/// A mapping's memory policy at one address (get_mempolicy with MPOL_F_ADDR).
public struct MemoryPolicy: Sendable, Equatable {
    /// "default", "preferred", "bind", "interleave", "local" or "mode N"
    public var mode: String
    public var nodes: [Int]
}

public enum PlacementInspection {
    /// Nodes of the pages in [p, p + nBytes): one move_pages query per 4096 pages.
    public static func pageNodes(_ p: UnsafeRawPointer, nBytes: Int) -> PageNodeCounts {
        var out = PageNodeCounts()
        guard nBytes > 0 else { return out }
        let (start, len) = Placement.pageAligned(p, nBytes)
        let pageSize = Placement.pageSize
        let total = (len + pageSize - 1) / pageSize
        let batch = 4096
        var pages = [UnsafeMutableRawPointer?](repeating: nil, count: batch)
        var status = [Int32](repeating: 0, count: batch)
        var first = 0
        while first < total {
            let n = min(batch, total - first)
            for i in 0..<n { pages[i] = UnsafeMutableRawPointer(mutating: start + (first + i) * pageSize) }
            let rc = pages.withUnsafeMutableBufferPointer { pp in
                status.withUnsafeMutableBufferPointer { st in
                    move_pages(0, UInt(n), pp.baseAddress, nil, st.baseAddress, 0)
                }
            }
            out.pages += n
            if rc != 0 {
                out.unknown += n
            } else {
                for i in 0..<n {
                    let s = Int(status[i])
                    if s >= 0 { out.byNode[s, default: 0] += 1 } else if s == -Int(ENOENT) { out.notPresent += 1 } else { out.unknown += 1 }
                }
            }
            first += n
        }
        return out
    }

    /// Reads one byte of every page in [p, p + nBytes) on the calling thread, as a first
    /// forward pass would: pages not yet resident fault in under this thread's policy (the
    /// numactl strategy leaves faulting to first use). Returns a checksum so the reads stay.
    @discardableResult
    public static func touch(_ p: UnsafeRawPointer, nBytes: Int) -> UInt8 {
        guard nBytes > 0 else { return 0 }
        let (start, len) = Placement.pageAligned(p, nBytes)
        var acc: UInt8 = 0
        var off = 0
        while off < len {
            acc &+= start.load(fromByteOffset: off, as: UInt8.self)
            off += Placement.pageSize
        }
        return acc
    }

    /// The policy of the mapping that holds p; nil when the call is refused.
    public static func policy(at p: UnsafeRawPointer) -> MemoryPolicy? {
        var mode: Int32 = 0
        let maxNode = max(64, Int(numa_num_possible_nodes()))
        let words = (maxNode + UInt.bitWidth - 1) / UInt.bitWidth
        var mask = [UInt](repeating: 0, count: words)
        let rc = mask.withUnsafeMutableBufferPointer {
            get_mempolicy(&mode, $0.baseAddress, UInt(words * UInt.bitWidth), UnsafeMutableRawPointer(mutating: p), UInt32(MPOL_F_ADDR))
        }
        guard rc == 0 else { return nil }
        var nodes: [Int] = []
        for n in 0..<(words * UInt.bitWidth) where mask[n / UInt.bitWidth] & (1 << UInt(n % UInt.bitWidth)) != 0 { nodes.append(n) }
        // the mode's high bits carry flags (MPOL_F_STATIC_NODES ...), not part of the mode
        let names = ["default", "preferred", "bind", "interleave", "local"]
        let m = Int(mode & 0xff)
        return MemoryPolicy(mode: m < names.count ? names[m] : "mode \(m)", nodes: nodes)
    }

    /// CPUs each hmst worker thread may run on, worker 0 first (the calling thread is not a worker).
    public static func workerCPUs() -> [[Int32]] {
        let n = Int(chmst_pool_get_threads()) - 1
        guard n > 0 else { return [] }
        var buf = [Int32](repeating: 0, count: 4096)
        return (0..<n).map { w in
            let got = buf.withUnsafeMutableBufferPointer { chmst_pool_worker_cpus(Int32(w), $0.baseAddress, Int32($0.count)) }
            return got > 0 ? Array(buf[0..<min(Int(got), buf.count)]) : []
        }
    }

    /// CPUs the calling thread may run on (placement pins workers, never the caller).
    public static func callerCPUs() -> [Int32] {
        var buf = [Int32](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBufferPointer { chmst_thread_cpus($0.baseAddress, Int32($0.count)) }
        return n > 0 ? Array(buf[0..<min(Int(n), buf.count)]) : []
    }

    /// CPUs of each NUMA node, node 0 first, as placement sees them.
    public static func nodeCPUs() -> [[Int32]] { Placement.cpusByNode() }
}

extension LanguageModel {
    /// The weight tensors read from a placed region (file map or bound copy), in file order:
    /// name, address, bytes. Tensors converted into owned memory at load are not listed.
    public func placedTensors() -> [(name: String, base: UnsafeRawPointer, nBytes: Int)] {
        var out: [(String, UnsafeRawPointer, Int)] = []
        for case let shard as LoadedShard in storage {
            for t in shard.header.tensors.sorted(by: { $0.begin < $1.begin }) {
                if let p = shard.pointer(t), t.end > t.begin { out.append((t.name, p, t.end - t.begin)) }
            }
        }
        return out
    }
}

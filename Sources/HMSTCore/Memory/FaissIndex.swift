// FaissIndex: a Swift owner of one FAISS index behind the CFAISSShim C API. It checks shapes
// and values before FAISS sees them and turns shim statuses into HMSTError. Locking and
// lazy training belong to SemanticMemory, not here.
import CFAISSShim

public enum VectorMetric: Int32, Sendable {
    case innerProduct = 0
    case l2 = 1
}

public final class FaissIndex: @unchecked Sendable {
    let handle: OpaquePointer
    public let dim: Int

    /// Any faiss::index_factory description ("Flat", "IVF1024,Flat", "IVF4096,PQ32", ...).
    public init(dim: Int, description: String, metric: VectorMetric) throws {
        guard dim > 0, dim <= 65536 else { throw HMSTError.invalidArgument("vector dimension \(dim) is outside 1...65536") }
        var out: OpaquePointer?
        try FaissIndex.check(hmstfs_index_factory(Int32(dim), description, metric.rawValue, &out),
                             "index_factory(\"\(description)\")")
        guard let out else { throw HMSTError(.internal, "FAISS shim returned no index") }
        handle = out
        self.dim = dim
    }

    private init(handle: OpaquePointer) {
        self.handle = handle
        dim = Int(hmstfs_index_dim(handle))
    }

    deinit { hmstfs_index_free(handle) }

    public static func read(path: String) throws -> FaissIndex {
        var out: OpaquePointer?
        try check(hmstfs_index_read(path, &out), "reading \(path)")
        guard let out else { throw HMSTError(.internal, "FAISS shim returned no index") }
        return FaissIndex(handle: out)
    }

    public var count: Int { Int(hmstfs_index_ntotal(handle)) }
    public var isTrained: Bool { hmstfs_index_is_trained(handle) != 0 }

    /// x: [n, dim]
    public func train(_ x: [Float]) throws {
        let n = try rows(of: x, "train")
        try x.withUnsafeBufferPointer { try FaissIndex.check(hmstfs_index_train(handle, Int64(n), $0.baseAddress), "train") }
    }

    /// x: [n, dim], ids: [n]
    public func add(_ x: [Float], ids: [Int64]) throws {
        let n = try rows(of: x, "add")
        guard ids.count == n else { throw HMSTError.invalidArgument("add: \(n) vectors but \(ids.count) ids") }
        try x.withUnsafeBufferPointer { xp in
            try ids.withUnsafeBufferPointer { ip in
                try FaissIndex.check(hmstfs_index_add_with_ids(handle, Int64(n), xp.baseAddress, ip.baseAddress), "add")
            }
        }
    }

    /// queries: [n, dim] -> distances [n, k], ids [n, k] (-1 where fewer than k exist)
    public func search(_ queries: [Float], k: Int, nprobe: Int = 0) throws -> (distances: [Float], ids: [Int64]) {
        let n = try rows(of: queries, "search")
        guard k > 0, k <= 1 << 20 else { throw HMSTError.invalidArgument("search: k = \(k) must be in 1...1048576") }
        var d = [Float](repeating: 0, count: n * k)
        var l = [Int64](repeating: -1, count: n * k)
        try queries.withUnsafeBufferPointer { q in
            try d.withUnsafeMutableBufferPointer { dp in
                try l.withUnsafeMutableBufferPointer { lp in
                    try FaissIndex.check(hmstfs_index_search(handle, Int64(n), q.baseAddress, Int64(k), Int32(nprobe),
                                                             dp.baseAddress, lp.baseAddress), "search")
                }
            }
        }
        return (d, l)
    }

    /// Whether hmst's own IVF-Flat list scan (CFAISSShim/ivf_flat_scan.cpp, AVX-512 where the
    /// CPU has it) serves IVF-Flat L2 and inner-product searches instead of FAISS's generic
    /// build. Process-wide, on by default; tests turn it off to compare the two.
    public static var ownIVFScan: Bool {
        get { hmstfs_get_own_ivf_scan() != 0 }
        set { hmstfs_set_own_ivf_scan(newValue ? 1 : 0) }
    }

    /// Returns how many of the ids were present.
    public func remove(ids: [Int64]) throws -> Int {
        var removed: Int64 = 0
        try ids.withUnsafeBufferPointer { try FaissIndex.check(hmstfs_index_remove_ids(handle, Int64(ids.count), $0.baseAddress, &removed), "remove_ids") }
        return Int(removed)
    }

    /// What lazy training and removal need to know (see hmstfs_index_info).
    public struct Info: Sendable, Equatable {
        public let nlist: Int          // top-level IVF lists (nprobe applies), else 0
        public let minTrainCount: Int  // 39 per centroid of every k-means inside; 0 if trained
        public let supportsRemove: Bool
        public let isFlat: Bool        // an exact IDMap(Flat): exportFlat() works
    }

    public func info() throws -> Info {
        var raw = hmstfs_index_info()
        try FaissIndex.check(hmstfs_index_get_info(handle, &raw), "index info")
        return Info(nlist: Int(raw.nlist), minTrainCount: Int(raw.min_train_count),
                    supportsRemove: raw.supports_remove != 0, isFlat: raw.is_flat != 0)
    }

    /// PQ codebooks train without the polysemous reordering (as the "np" suffix would ask):
    /// it only helps Hamming-filtered search and costs seconds per sub-quantizer.
    public func skipPolysemousTraining() throws {
        try FaissIndex.check(hmstfs_index_skip_polysemous_training(handle), "skip polysemous training")
    }

    /// Bytes faiss::write_index would write: the index's own size, without copying it.
    public func serializedBytes() throws -> Int {
        var n: Int64 = 0
        try FaissIndex.check(hmstfs_index_serialized_size(handle, &n), "serialized size")
        return Int(n)
    }

    /// Every stored vector and id of an exact index, in storage order.  -> x: [n, dim], ids: [n]
    public func exportFlat() throws -> (x: [Float], ids: [Int64]) {
        let n = count
        var ids = [Int64](repeating: 0, count: n)
        var x = [Float](repeating: 0, count: n * dim)
        var got: Int64 = 0
        try ids.withUnsafeMutableBufferPointer { ip in
            try x.withUnsafeMutableBufferPointer { xp in
                try FaissIndex.check(hmstfs_index_export_flat(handle, Int64(n), ip.baseAddress, xp.baseAddress, &got),
                                     "export_flat")
            }
        }
        guard got == n else { throw HMSTError(.internal, "export_flat: expected \(n) vectors, got \(got)") }
        return (x, ids)
    }

    /// Writes with faiss::write_index to `path` as is (callers make it atomic).
    public func write(path: String) throws {
        try FaissIndex.check(hmstfs_index_write(handle, path), "writing \(path)")
    }

    private func rows(of x: [Float], _ what: String) throws -> Int {
        guard x.count % dim == 0 else {
            throw HMSTError.invalidArgument("\(what): \(x.count) floats is not a multiple of the dimension \(dim)")
        }
        return x.count / dim
    }

    static func check(_ rc: Int32, _ what: String) throws {
        guard rc != 0 else { return }
        throw HMSTError(Status(rawValue: rc) ?? .internal, "\(what): \(readable(String(cString: hmstfs_last_error())))")
    }

    /// FAISS's exception text without its C++ location: "Error in <signature> at
    /// ./faiss/index_factory.cpp:879: could not parse index string X" reads "could not parse
    /// index string X". Text of any other shape is kept whole.
    static func readable(_ message: String) -> String {
        guard message.hasPrefix("FAISS: Error in "), let at = message.range(of: ".cpp:"),
              let colon = message[at.upperBound...].firstIndex(of: ":") else { return message }
        let rest = message[message.index(after: colon)...].drop(while: { $0 == " " })
        return rest.isEmpty ? message : "FAISS: " + rest
    }
}

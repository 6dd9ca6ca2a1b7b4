// SemanticMemoryConfig: how a SemanticMemory is built (dimension, FAISS factory description,
// metric, default nprobe). The defaults are the operating point chosen
// in benchmarks/README.md ("Semantic memory"); validation of a config happens here, before
// FAISS sees it.

/// Similarity used by SemanticMemory. Scores: inner product and cosine are similarities
/// (higher is closer); l2 is the squared Euclidean distance (lower is closer).
public enum SemanticMetric: String, Sendable, CaseIterable {
    case innerProduct = "inner_product"
    case cosine = "cosine"   // vectors are L2-normalised on add and query, then inner product
    case l2 = "l2"

    var faissMetric: VectorMetric { self == .l2 ? .l2 : .innerProduct }
}

public struct SemanticMemoryConfig: Sendable, Equatable {
    /// benchmarks/README.md ("Semantic memory"): at 1M x 256 on 2 cores, recall@10 0.96 against
    /// exact search at about 2.5 ms a query; below 39 * 4096 entries the memory is exact anyway.
    public static let defaultDescription = "IVF4096,Flat"
    public static let defaultNprobe = 32

    public var dim: Int                // Dk
    public var description: String    // any faiss::index_factory string: "IVF1024,Flat", "HNSW32", "Flat"
    public var metric: SemanticMetric
    public var nprobe: Int             // IVF lists searched when a query names none

    public init(dim: Int, description: String = SemanticMemoryConfig.defaultDescription,
                metric: SemanticMetric = .cosine, nprobe: Int = SemanticMemoryConfig.defaultNprobe) {
        self.dim = dim
        self.description = description
        self.metric = metric
        self.nprobe = nprobe
    }

    func validate() throws {
        guard dim > 0, dim <= 65536 else { throw HMSTError.invalidArgument("dimension \(dim) is outside 1...65536") }
        guard !description.isEmpty, description.utf8.count <= 256, !description.utf8.contains(0) else {
            throw HMSTError.invalidArgument("index description must be 1...256 bytes without NUL")
        }
        guard nprobe >= 1 else { throw HMSTError.invalidArgument("nprobe \(nprobe) must be >= 1") }
        try SemanticMemoryConfig.checkCounts(description)
    }

    /// The largest number a description may hold (IVF lists, HNSW links, PQ sub-quantizers, PCA
    /// dimensions): 2^24.
    static let maxDescriptionCount = 1 << 24

    /// Every number in a factory string (IVF4096, HNSW32, PQ16x8, PCA64) must be in 1 ... 2^24:
    /// FAISS's factory accepts IVF0 and HNSW0 and then aborts the process in add (an assertion,
    /// not an exception), and reads a number past Int32 as an internal error.
    static func checkCounts(_ description: String) throws {
        var digits = ""
        for ch in description + "," {
            if ch.isASCII && ch.isNumber {
                digits.append(ch)
                continue
            }
            if !digits.isEmpty {
                guard let n = Int(digits), n >= 1, n <= maxDescriptionCount else {
                    throw HMSTError.invalidArgument("index description \"\(description)\": \(digits) must be in 1 ... \(maxDescriptionCount)")
                }
                digits = ""
            }
        }
    }
}

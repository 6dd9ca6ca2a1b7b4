// RetrievedBlocks: what retrieval returns for each training question over Stage 2's distractor
// pool, best first, computed once when the curriculum is built, so a share of memory blocks
// (CurriculumOptions.retrievedFraction) is laid out as the `on` condition will meet it:
//   lexical  BM25 over the pool's texts (the memories' own index, BM25Index.swift)
//   dense    the checkpoint's retrieval projection: every question's query vector against every
//            text's document vector, exact inner products (unit vectors: the cosine a Flat
//            semantic memory ranks by; IVF only approximates it)
//   hybrid   both parts' top nCandidates fused by reciprocal rank (RankFusion.swift), with
//            RetrievalOptions' defaults: what hmst eval's default `--retrieval hybrid` returns
// A reader trained on BM25's blocks alone meets, under hybrid retrieval, neighbours it never
// saw (the same relation of other entities, which dense vectors rank high) and copies them.
import CBLAS

/// The two vector maps of a retriever, over many texts at once: a query's and a document's
/// vector, unit length, one size.
public struct RetrievalEmbedder {
    public let queries: ([String]) throws -> [[Float]]
    public let documents: ([String]) throws -> [[Float]]

    public init(queries: @escaping ([String]) throws -> [[Float]], documents: @escaping ([String]) throws -> [[Float]]) {
        self.queries = queries
        self.documents = documents
    }

    /// From maps of one text each.
    public init(query: @escaping (String) throws -> [Float], document: @escaping (String) throws -> [Float]) {
        self.init(queries: { try $0.map(query) }, documents: { try $0.map(document) })
    }

    /// The model's retrieval projection, its forwards batched (nil when the checkpoint has
    /// none: pooled embeddings barely find a fact, README "Retrieval", so they are not offered
    /// as a stand-in).
    public init?(model: LanguageModel) {
        guard model.retriever != nil else { return nil }
        self.init(queries: { try model.queryEmbeddings(texts: $0) }, documents: { try model.documentEmbeddings(texts: $0) })
    }
}

enum RetrievedBlocks {
    /// Per query id, the indices into texts of the `limit` best, best first. dense and hybrid
    /// need the embedder; lexical ignores it.
    static func lists(texts: [String], queries: [(id: String, text: String)], limit: Int, mode: RetrievalMode,
                      embedder: RetrievalEmbedder?, options: RetrievalOptions = RetrievalOptions()) throws -> [String: [Int]] {
        var unique: [(id: String, text: String)] = []
        var seen = Set<String>()
        for q in queries where seen.insert(q.id).inserted { unique.append(q) }
        let per = max(limit, options.nCandidates)
        var lexical: [[(id: Int64, score: Float)]] = []
        if mode != .dense {
            let index = try BM25Index(texts: texts, ids: texts.indices.map(Int64.init))
            lexical = unique.map { q in index.search(terms: LexicalTokenizer.terms(q.text), limit: per, k1: options.k1, b: options.b).map { (id: $0.id, score: $0.score) } }
        }
        var dense: [[(id: Int64, score: Float)]] = []
        if mode != .lexical {
            guard let embedder else {
                throw HMSTError.invalidArgument("\(mode.rawValue) retrieved blocks need a retrieval projection in the checkpoint (hmst train-retriever)")
            }
            dense = try denseTop(texts: texts, queries: unique.map(\.text), limit: per, embedder: embedder)
        }
        var out: [String: [Int]] = [:]
        for (i, q) in unique.enumerated() {
            let ranked = switch mode {
            case .lexical: RankFusion.single(lexical[i], dense: false)
            case .dense: RankFusion.single(dense[i], dense: true)
            case .hybrid: RankFusion.fuse(dense: dense[i], lexical: lexical[i], k: limit, rrfK: options.rrfK,
                                          denseWeight: options.denseWeight, lexicalWeight: options.lexicalWeight)
            }
            out[q.id] = ranked.prefix(limit).map { Int($0.id) }
        }
        return out
    }

    /// Each query's `limit` best texts by inner product of its query vector with the texts'
    /// document vectors (ties: the smaller index first).
    static func denseTop(texts: [String], queries: [String], limit: Int, embedder: RetrievalEmbedder) throws -> [[(id: Int64, score: Float)]] {
        guard !texts.isEmpty, !queries.isEmpty else { return queries.map { _ in [] } }
        let docs = try embedder.documents(texts)
        let queryVectors = try embedder.queries(queries)
        let dim = docs.first?.count ?? 0
        guard dim > 0, docs.count == texts.count, docs.allSatisfy({ $0.count == dim }) else {
            throw HMSTError.invalidArgument("the retriever's document vectors do not all have one size")
        }
        guard queryVectors.count == queries.count else {
            throw HMSTError.invalidArgument("the retriever gave \(queryVectors.count) query vectors for \(queries.count) queries")
        }
        let P = texts.count, n = min(limit, P)
        let D = docs.flatMap { $0 }
        var out: [[(id: Int64, score: Float)]] = []
        out.reserveCapacity(queries.count)
        let chunk = 128
        var scores = [Float](repeating: 0, count: chunk * P)
        for start in stride(from: 0, to: queries.count, by: chunk) {
            let rows = min(chunk, queries.count - start)
            var Q = [Float]()
            Q.reserveCapacity(rows * dim)
            for r in 0..<rows {
                let v = queryVectors[start + r]
                guard v.count == dim else {
                    throw HMSTError.invalidArgument("the retriever's query vectors have \(v.count) values, its document vectors \(dim)")
                }
                Q += v
            }
            // scores[rows, P] = Q[rows, dim] · Dᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(P), Int32(dim),
                        1, Q, Int32(dim), D, Int32(dim), 0, &scores, Int32(P))
            scores.withUnsafeBufferPointer { s in
                for r in 0..<rows { out.append(topN(s.baseAddress! + r * P, count: P, n: n)) }
            }
        }
        return out
    }

    /// The n largest of v[0..<count], largest first, ties by the smaller index (TopN).
    static func topN(_ v: UnsafePointer<Float>, count: Int, n: Int) -> [(id: Int64, score: Float)] {
        TopN.largest(v, count: count, n: n).map { (id: Int64($0), score: v[$0]) }
    }
}

// InjectedEmbeddings: input rows given as embeddings instead of token ids (the episodic tier's
// soft tokens, Memory/EpisodicSoftTokens.swift). The training step (Train/ModelGrad.swift) and
// inference (Session.evaluate, Decoder.forward) take one: at each listed position the token's
// embedding row is replaced by the given row, whatever token id stands there (a placeholder).
// Token-only calls pass nil and run exactly as before. A row may also carry a copy token: the id
// a copy head (Copy/) may copy from that position, as it copies a memory's text tokens.

public struct InjectedEmbeddings: Sendable, Equatable {
    /// P positions (row indices of the input: b·T + t in a training batch, t in a sequence),
    /// strictly increasing
    public var positions: [Int]
    /// [P, C] the rows, in positions' order
    public var rows: [Float]
    /// [P] or empty: per row, the token a copy head may copy from it (-1: none)
    public var copyTokens: [Int32]

    public init(positions: [Int], rows: [Float], copyTokens: [Int32] = []) {
        self.positions = positions
        self.rows = rows
        self.copyTokens = copyTokens
    }

    /// position -> copy token, for the rows that carry one
    var copySources: [Int: Int32] {
        var m: [Int: Int32] = [:]
        for (p, t) in zip(positions, copyTokens) where t >= 0 { m[p] = t }
        return m
    }

    public var isEmpty: Bool { positions.isEmpty }

    /// Checks the rows against width C and the positions against 0 ..< limit.
    public func validate(C: Int, limit: Int, vocabulary V: Int = .max) throws {
        guard copyTokens.isEmpty || copyTokens.count == positions.count else {
            throw HMSTError.invalidArgument("injected embeddings: \(copyTokens.count) copy tokens for \(positions.count) positions")
        }
        if let bad = copyTokens.first(where: { $0 >= V }) {
            throw HMSTError.invalidArgument("injected embeddings: copy token \(bad) is outside the vocabulary of \(V)")
        }
        guard rows.count == positions.count * C else {
            throw HMSTError.invalidArgument("injected embeddings: \(rows.count) values for \(positions.count) positions of width C = \(C)")
        }
        for (i, p) in positions.enumerated() {
            guard p >= 0, p < limit else { throw HMSTError.invalidArgument("injected embeddings: position \(p) is outside 0 ..< \(limit)") }
            guard i == 0 || p > positions[i - 1] else {
                throw HMSTError.invalidArgument("injected embeddings: positions must be strictly increasing (\(positions[i - 1]) then \(p))")
            }
        }
        guard rows.allSatisfy(\.isFinite) else { throw HMSTError.invalidArgument("injected embeddings: rows are not finite") }
    }

    /// The rows whose positions fall in range, with positions made relative to its start.
    func slice(_ range: Range<Int>, C: Int) -> InjectedEmbeddings {
        var pos: [Int] = [], r: [Float] = [], ct: [Int32] = []
        for (i, p) in positions.enumerated() where range.contains(p) {
            pos.append(p - range.lowerBound)
            r += rows[(i * C)..<((i + 1) * C)]
            if !copyTokens.isEmpty { ct.append(copyTokens[i]) }
        }
        return InjectedEmbeddings(positions: pos, rows: r, copyTokens: ct)
    }

    /// x[p] = rows[i] for each listed position p (x: [rows, C]).
    func apply(to x: UnsafeMutablePointer<Float>, C: Int) {
        rows.withUnsafeBufferPointer { r in
            for (i, p) in positions.enumerated() { (x + p * C).update(from: r.baseAddress! + i * C, count: C) }
        }
    }
}

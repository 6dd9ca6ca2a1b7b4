// InjectedEmbeddings: input rows given as embeddings instead of token ids (the episodic tier's
// soft tokens, Memory/EpisodicSoftTokens.swift). The training step (Train/ModelGrad.swift) and
// inference (Session.evaluate, Decoder.forward) take one: at each listed position the token's
// embedding row is replaced by the given row, whatever token id stands there (a placeholder).
// Token-only calls pass nil and run exactly as before.

public struct InjectedEmbeddings: Sendable, Equatable {
    /// P positions (row indices of the input: b·T + t in a training batch, t in a sequence),
    /// strictly increasing
    public var positions: [Int]
    /// [P, C] the rows, in positions' order
    public var rows: [Float]

    public init(positions: [Int], rows: [Float]) {
        self.positions = positions
        self.rows = rows
    }

    public var isEmpty: Bool { positions.isEmpty }

    /// Checks the rows against width C and the positions against 0 ..< limit.
    public func validate(C: Int, limit: Int) throws {
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
        var pos: [Int] = [], r: [Float] = []
        for (i, p) in positions.enumerated() where range.contains(p) {
            pos.append(p - range.lowerBound)
            r += rows[(i * C)..<((i + 1) * C)]
        }
        return InjectedEmbeddings(positions: pos, rows: r)
    }

    /// x[p] = rows[i] for each listed position p (x: [rows, C]).
    func apply(to x: UnsafeMutablePointer<Float>, C: Int) {
        rows.withUnsafeBufferPointer { r in
            for (i, p) in positions.enumerated() { (x + p * C).update(from: r.baseAddress! + i * C, count: C) }
        }
    }
}

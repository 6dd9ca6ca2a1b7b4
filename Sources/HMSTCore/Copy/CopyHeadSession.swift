// CopyHeadSession: the copy head at inference. A Session over a decoder with a copy head keeps,
// per position of its context, the key of the state there (Wk·h, the key of the next token
// should that token be a memory token) and which positions hold memory tokens; after each
// forward, every logits row it returns is replaced by log p of the mixture (CopyHead.swift).
// Samplers, log-likelihoods and the engine read those rows as they read logits:
// softmax(log p) = p. Only at the model's full depth (a shallower compute budget reads the
// LM alone); a context without memory tokens is left exactly as the LM made it.
import CKernels

final class CopyState {
    let head: CopyHead
    let finalNorm: [Float]
    let eps: Float
    /// [nCtx, D]: row p is Wk·h_p, the key of the token at p + 1
    let keys: FloatBuffer
    /// [maxT, C] final-norm states of a chunk, [maxT, D] its queries
    let hn: FloatBuffer
    let q: FloatBuffer
    /// for each memory token, in order: its position, the position whose key it has (its own
    /// position - 1; its own for an injected row's copy token) and the token
    var sourcePositions: [Int32] = []
    var keyRows: [Int32] = []
    var sourceTokens: [Int32] = []
    /// w_c·h at each source's own position (the gate's context term, CopyHead.swift)
    var sourceValues: [Float] = []
    /// R·h at each source's own position, A floats a source (the agreement term's keys; empty when A = 0)
    var sourceAgreementKeys: [Float] = []
    /// [maxT, A] the agreement queries P·h of a chunk's logits rows; per-source values at one query
    let agreementQueries: FloatBuffer
    var values: [Float]
    /// the lexical overlap's state (only with one): the context's tokens (-1 where a position was
    /// evaluated without this state), the question they leave open, and its overlaps per span
    var contextTokens: [Int32] = []
    var question = QuestionScan()
    var overlaps = OverlapCache()
    /// the span (memory entry, or injected row) of each source; ids only compare for equality
    var sourceSpans: [Int32] = []
    var nextSpan: Int32 = 0
    /// positions holding memory tokens, in order
    var sources: [Int32] { sourcePositions }
    /// per position: inside a memory span after that token, and that span's id
    var insideAfter: [Bool] = []
    var spanAfter: [Int32] = []
    var alpha: [Float]

    init(head: CopyHead, decoder: Decoder, nCtx: Int, maxT: Int) {
        self.head = head
        let C = decoder.dims.C
        var g = [Float](repeating: 0, count: C)
        decoder.weights.finalNorm.copyRows(0, 1, to: &g)
        finalNorm = g
        eps = decoder.dims.eps
        keys = FloatBuffer(count: nCtx * head.D)
        hn = FloatBuffer(count: maxT * C)
        q = FloatBuffer(count: maxT * head.D)
        agreementQueries = FloatBuffer(count: maxT * head.A)
        alpha = [Float](repeating: 0, count: max(1, nCtx))
        values = [Float](repeating: 0, count: max(1, nCtx))
    }

    func reset() { truncate(to: 0) }

    func truncate(to n: Int) {
        if insideAfter.count > n { insideAfter.removeLast(insideAfter.count - n); spanAfter.removeLast(spanAfter.count - n) }
        while let last = sourcePositions.last, Int(last) >= n {
            sourcePositions.removeLast(); keyRows.removeLast(); sourceTokens.removeLast(); sourceValues.removeLast(); sourceSpans.removeLast()
        }
        sourceAgreementKeys.removeLast(sourceAgreementKeys.count - sourcePositions.count * head.A)
        if contextTokens.count > n {   // the question as the remaining tokens leave it
            contextTokens.removeLast(contextTokens.count - n)
            question = QuestionScan()
            for t in contextTokens { question.read(t, head: head) }
            overlaps = OverlapCache()
        }
    }

    /// After a forward of tokens[0..<T] at positions pos0..<pos0+T: x holds their residual
    /// stream [T, C]; logits rows (1: the last token's, or T) are mixed. copyTokens: chunk
    /// position -> the copy token of an injected row there.
    func observe(tokens: UnsafePointer<Int32>, T: Int, pos0: Int, x: UnsafePointer<Float>, logits: UnsafeMutablePointer<Float>,
                 logitsRows: Int, V: Int, copyTokens: [Int: Int32] = [:]) {
        let C = head.C, D = head.D
        // positions evaluated without this state (Session.encode) count as outside memory
        if insideAfter.count > pos0 { truncate(to: pos0) }
        while insideAfter.count < pos0 { insideAfter.append(false); spanAfter.append(0) }
        let overlap = head.overlapVocabulary > 0
        if overlap { while contextTokens.count < pos0 { contextTokens.append(-1) } }
        // the question each logits row reads: the chunk's tokens are scanned up to that row
        var scanned = 0
        func scan(through t: Int) {
            guard overlap else { return }
            while scanned <= t { contextTokens.append(tokens[scanned]); question.read(tokens[scanned], head: head); scanned += 1 }
        }
        defer { scan(through: T - 1) }
        var inside = insideAfter.last ?? false
        var span = spanAfter.last ?? 0   // new spans take fresh ids (nextSpan), never reused
        let firstNew = sourcePositions.count
        for t in 0..<T {
            let tok = tokens[t]
            if let copy = copyTokens[t] {
                nextSpan += 1
                sourcePositions.append(Int32(pos0 + t)); keyRows.append(Int32(pos0 + t)); sourceTokens.append(copy); sourceSpans.append(nextSpan)
            } else if tok == head.openMarker {
                inside = true; nextSpan += 1; span = nextSpan
            } else if tok == head.closeMarker { inside = false } else if inside && pos0 + t >= 1 {
                sourcePositions.append(Int32(pos0 + t)); keyRows.append(Int32(pos0 + t - 1)); sourceTokens.append(tok); sourceSpans.append(span)
            }
            insideAfter.append(inside)
            spanAfter.append(span)
        }
        finalNorm.withUnsafeBufferPointer { hk_rmsnorm(hn.pointer, nil, x, $0.baseAddress!, T, C, eps) }
        let A = head.A
        var rh = [Float](repeating: 0, count: A)
        for i in firstNew..<sourcePositions.count {
            let h = hn.pointer + (Int(sourcePositions[i]) - pos0) * C
            sourceValues.append(head.contextValue(h))
            if A > 0 {
                head.project(head.agreementKey, x: h, rows: 1, out: &rh, n: A)
                sourceAgreementKeys += rh
            }
        }
        head.project(head.wk, x: hn.pointer, rows: T, out: keys.pointer + pos0 * D)
        guard logitsRows > 0, !keyRows.isEmpty else { return }
        let first = T - logitsRows   // chunk row of logits row 0
        head.project(head.wq, x: hn.pointer + first * C, rows: logitsRows, out: q.pointer)
        if A > 0 { head.project(head.agreementQuery, x: hn.pointer + first * C, rows: logitsRows, out: agreementQueries.pointer, n: A) }
        keyRows.withUnsafeBufferPointer { kr in
          sourceSpans.withUnsafeBufferPointer { sp in
            alpha.withUnsafeMutableBufferPointer { al in
                let a = al.baseAddress!
                var n = 0
                for r in 0..<logitsRows {
                    let pos = pos0 + first + r
                    scan(through: first + r)
                    while n < sourcePositions.count && Int(sourcePositions[n]) <= pos { n += 1 }
                    guard n > 0 else { continue }
                    let custom = A > 0 || overlap   // per-query values, not just w_c·h_j
                    if overlap { overlaps.update(head: head, question: question, tokens: sourceTokens, spans: sp.baseAddress!, n: n) }
                    if custom {
                        head.queryValues(sourceValues, ph: agreementQueries.pointer + r * A, keys: sourceAgreementKeys, rows: nil, overlaps: overlaps,
                                         spans: sp.baseAddress!, S: n, into: &values)
                    }
                    let (best, _, m, context) = head.attend(q: q.pointer + r * D, keys: keys.pointer, keyRows: kr.baseAddress!, spans: sp.baseAddress!,
                                                            values: custom ? values : sourceValues, S: n, alpha: a)
                    let g = 1 / (1 + expf(-head.gateLogit(h: hn.pointer + (first + r) * C, best: best, spanMass: m, context: context)))
                    mix(row: logits + r * V, V: V, g: g, alpha: a, n: n)
                }
            }
          }
        }
    }

    /// row: LM logits -> log(g·pointer + (1 − g)·softmax(row)).
    func mix(row: UnsafeMutablePointer<Float>, V: Int, g: Float, alpha: UnsafePointer<Float>, n: Int) {
        var m = row[0]
        for v in 1..<V { m = max(m, row[v]) }
        var sum: Float = 0
        for v in 0..<V { row[v] = expf(row[v] - m); sum += row[v] }
        let keep = (1 - g) / sum
        for v in 0..<V { row[v] *= keep }
        for i in 0..<n { row[Int(sourceTokens[i])] += g * alpha[i] }
        for v in 0..<V { row[v] = logf(max(row[v], 1e-30)) }
    }
}

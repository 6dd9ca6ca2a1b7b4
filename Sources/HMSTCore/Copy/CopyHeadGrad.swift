// CopyHeadGrad: the copy head inside a training step (ModelGrad.copyHead). After the LM's
// forward, for every target position whose row holds memory tokens before it, the loss
// becomes −log p with p = g·Σ_j α_j[x_j = y] + (1 − g)·v(y) (CopyHead.swift), v the LM's
// softmax. The backward, per such position, with ρ = g·c/p the copy's share of p (c = the
// pointer's mass on y):
//   dL/dz    = r·(v − onehot(y)),  r = (1 − g)·v(y)/p        (the LM's usual gradient, scaled)
//   dL/da    = −(c − v(y))/p · g(1 − g)                        (a: the gate's pre-activation)
//   dL/ds_j  = ρ·α_j − g·α_j[x_j = y]/p  (+ u·dL/da at the best j, through the gate's max,
//              + v·dL/da·α_j·([j in the best's span] − m), through the span mass m,
//              + dL/da·α_j·(w_c·h_j − w_c·c), through the context c = Σ_j α_j h_j)
//   dL/dw_c  = dL/da·c,  dL/dh_j += dL/da·α_j·w_c  (h_j: the state at source j)
//   agreement e = (P·h_t)·Σ_j α_j (R·h_j): it joins w_c·h_j in the context term (its per-source
//   value is w_c·h_j + (P·h_t)·(R·h_j), so the scores' gradient above covers it), and
//   dL/d(P·h_t) = dL/da·Σ_j α_j R·h_j,  dL/d(R·h_j) += dL/da·α_j·P·h_t
//   lexical overlap o = Σ_j α_j·ov(span(j)): ov joins the per-source values too, and
//   dL/dλ_w += dL/da·(the pointer's mass on each span that shares w with the question), and
//   with the missing terms dL/dν_w += dL/da·(its mass on each span that lacks the question's w)
//   (both times the overlap's scale s when it is not 1)
// and from the scores and the gate to Wq, Wk, the gate's weights and the final-norm states,
// whose gradient joins the LM head's before the final norm's backward. Without backward,
// the rows it covers are replaced by the mixture, so evaluations read p.
// The gate target (run's gateTarget λ > 0): on every covered row where the memory cannot
// supply y (c = 0), the loss gains −λ·log(1 − g), so dL/da gains λ·g. On such a row the
// answer loss is already −log(1 − g) − log v(y), a pull of weight 1 towards a closed gate;
// the target raises it to 1 + λ against the rows whose memory holds the answer, which
// otherwise win and leave the gate open when the fact is missing (or was deleted). It is
// reported as an auxiliary loss, not in the answer's cross-entropy.
// Rows with a soft target (softRows: ModelGrad.softTargets) count nothing the pointer holds as
// their answer (c = 0): their loss here is −log(1 − g), the gate's share of KL(q ‖ p) when q
// puts no mass on the memory's tokens, and their LM gradient keeps scale 1. Their KL holds the
// gate's term already, so the gate target applies to them only with a weight of their own
// (softGateTarget λ_s > 0: −λ_s·log(1 − g), reported like the other rows' target).
// The opening target (openTarget μ > 0) is the other side of the same classifier: on every
// covered hard row whose memory holds y (c > 0), the loss gains −μ·log g, so dL/da gains
// −μ·(1 − g). Closing targets alone make the gate shy where the memory does hold the answer;
// with both the gate learns "does the memory hold what is asked" from labelled rows of each kind.
// Injected soft rows that carry a copy token (InjectedEmbeddings.copyTokens: the episodic soft
// tokens decoded through the LM head) are sources too: their token is that id, and their key is
// the state at their own position (a soft span has no preceding text state to key it).

final class CopyHeadStep {
    let head: CopyHead
    let N: Int
    let Q, K, dQ, dK, dxn: FloatBuffer
    /// the agreement term's P·h and R·h per batch row and their gradients ([N, A]; empty when A = 0)
    let PH, RH, dPH, dRH: FloatBuffer
    /// rows whose LM gradient is scaled by r (the other rows keep 1)
    var vocabScale: [(row: Int, r: Float)] = []
    /// whether the last run wrote any gradient into dxn
    var touched = false

    init(head: CopyHead, N: Int) {
        self.head = head
        self.N = N
        Q = FloatBuffer(count: N * head.D); K = FloatBuffer(count: N * head.D)
        dQ = FloatBuffer(count: N * head.D); dK = FloatBuffer(count: N * head.D)
        dxn = FloatBuffer(count: N * head.C)
        PH = FloatBuffer(count: N * head.A); RH = FloatBuffer(count: N * head.A)
        dPH = FloatBuffer(count: N * head.A); dRH = FloatBuffer(count: N * head.A)
    }

    /// A token the pointer can copy: its position in the row, the batch row holding its key,
    /// the token and its span (one memory entry, or one injected row). Its own state, the
    /// gate's context, is at batch row (row of b) + position.
    struct Source {
        var position: Int
        var keyRow: Int32
        var token: Int32
        var span: Int32
    }

    /// The sources of row b, in order: positions j (1 <= j < T) inside a memory span (token
    /// inputs[b, j], keyed by the state at j − 1) and positions with a copy token (keyed by
    /// their own state). copyTokens: batch row -> token.
    func sources(_ inputs: UnsafePointer<Int32>, b: Int, T: Int, copyTokens: [Int: Int32]) -> [Source] {
        var out: [Source] = []
        var inside = false
        var span: Int32 = 0
        for j in 0..<T {
            let row = b * T + j
            if let tok = copyTokens[row] { span += 1; out.append(Source(position: j, keyRow: Int32(row), token: tok, span: span)); continue }
            let tok = inputs[row]
            if tok == head.openMarker { inside = true; span += 1; continue }
            if tok == head.closeMarker { inside = false; continue }
            if inside && j >= 1 { out.append(Source(position: j, keyRow: Int32(row - 1), token: tok, span: span)) }
        }
        return out
    }

    /// xn: [N, C] final-norm states; probs: [N, V] the LM's softmax (rewritten to the mixture
    /// when !backward). Returns `added`, Σ over the covered target rows of (−log p + log v(y)):
    /// what the mixture adds to the summed cross-entropy, and `gate`, the summed gate-target loss
    /// (0 when gateTarget, its λ, softGateTarget, soft rows' λ, and openTarget, μ, are 0). With backward, gradients
    /// of both (scaled by `scale`, the loss's 1/count) go to head.grads and dxn, and vocabScale is filled.
    func run(xn: UnsafePointer<Float>, inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, probs: UnsafeMutablePointer<Float>,
             B: Int, T: Int, V: Int, scale: Float, backward: Bool, copyTokens: [Int: Int32] = [:], gateTarget lambda: Float = 0,
             softRows: Set<Int> = [], softGateTarget softLambda: Float = 0, openTarget mu: Float = 0) -> (added: Double, gate: Double) {
        let C = head.C, D = head.D, A = head.A, overlap = head.overlapVocabulary > 0
        vocabScale.removeAll(keepingCapacity: true)
        touched = false
        let perRow = (0..<B).map { sources(inputs, b: $0, T: T, copyTokens: copyTokens) }
        guard perRow.contains(where: { !$0.isEmpty }) else { return (0, 0) }
        head.project(head.wq, x: xn, rows: N, out: Q.pointer)
        head.project(head.wk, x: xn, rows: N, out: K.pointer)
        if A > 0 {
            head.project(head.agreementQuery, x: xn, rows: N, out: PH.pointer, n: A)
            head.project(head.agreementKey, x: xn, rows: N, out: RH.pointer, n: A)
        }
        if backward {
            dQ.pointer.update(repeating: 0, count: N * D)
            dK.pointer.update(repeating: 0, count: N * D)
            dxn.pointer.update(repeating: 0, count: N * C)
            dPH.pointer.update(repeating: 0, count: N * A)
            dRH.pointer.update(repeating: 0, count: N * A)
        }
        let tiny = Float.leastNormalMagnitude
        let invSqrtD = 1 / Float(D).squareRoot()
        let gw = head.grads.pointer + head.offsets[2], gu = head.grads.pointer + head.offsets[3], gb = head.grads.pointer + head.offsets[4]
        let gv = head.grads.pointer + head.offsets[5], gwc = head.grads.pointer + head.offsets[6]
        let wc = head.contextWeight
        var added = 0.0, gateLoss = 0.0
        var alpha = [Float](repeating: 0, count: T)
        var values = [Float](repeating: 0, count: T)
        for b in 0..<B where !perRow[b].isEmpty {
            let src = perRow[b]
            let keyRows = src.map(\.keyRow), tokens = src.map(\.token), spans = src.map(\.span)
            // w_c·h_j per source, h_j the state at the source itself (the batch row sourceRows[j])
            let sourceRows = src.map { b * T + $0.position }
            let contextValues = sourceRows.map { head.contextValue(xn + $0 * C) }
            keyRows.withUnsafeBufferPointer { kr in
                alpha.withUnsafeMutableBufferPointer { al in
                    let a = al.baseAddress!
                    var n = 0   // sources at or before t
                    var question = QuestionScan(), overlaps = OverlapCache()
                    for t in 0..<T {
                        while n < src.count && src[n].position <= t { n += 1 }
                        let row = b * T + t
                        if overlap { question.read(inputs[row], head: head) }
                        let y = Int(targets[row])
                        guard n > 0, y >= 0 else { continue }
                        // the context term's per-source values at this query: w_c·h_j (+ the agreement)
                        if overlap { overlaps.update(head: head, question: question, tokens: tokens, spans: spans, n: n) }
                        head.queryValues(contextValues, ph: PH.pointer + row * A, keys: RH.pointer, rows: sourceRows, overlaps: overlaps,
                                         spans: spans, S: n, into: &values)
                        let (best, at, m, context) = head.attend(q: Q.pointer + row * D, keys: K.pointer, keyRows: kr.baseAddress!, spans: spans,
                                                                 values: values, S: n, alpha: a)
                        let h = xn + row * C
                        let g = 1 / (1 + expf(-head.gateLogit(h: h, best: best, spanMass: m, context: context)))
                        let soft = softRows.contains(row)
                        var c: Float = 0
                        if !soft { for i in 0..<n where tokens[i] == Int32(y) { c += a[i] } }
                        let pr = probs + row * V
                        let v = pr[y]
                        let p = max(g * c + (1 - g) * v, tiny)
                        added += -Double(logf(p)) + Double(logf(max(v, tiny)))
                        let target: Float = soft ? softLambda : (c == 0 ? lambda : 0)   // λ of this row's closing target
                        let opening: Float = !soft && c > 0 ? mu : 0                       // μ of its opening target
                        if target > 0 { gateLoss -= Double(target) * Double(logf(max(1 - g, tiny))) }
                        if opening > 0 { gateLoss -= Double(opening) * Double(logf(max(g, tiny))) }
                        if !backward {
                            for w in 0..<V { pr[w] *= 1 - g }
                            for i in 0..<n { pr[Int(tokens[i])] += g * a[i] }
                            continue
                        }
                        touched = true
                        vocabScale.append((row, (1 - g) * v / p))
                        let dA = (-(c - v) / p * g * (1 - g) + target * g - opening * (1 - g)) * scale
                        let rho = g * c / p
                        // gate: a = w·h + u·best + v·m + b
                        for k in 0..<C { gw[k] += dA * h[k] }
                        gu.pointee += dA * best
                        gv.pointee += dA * m
                        gb.pointee += dA
                        if !overlaps.perSpan.isEmpty {   // λ_w (ν_w): dA × the pointer's mass on the spans sharing (lacking) w
                            var mass: [Int32: Float] = [:]
                            for i in 0..<n where overlaps.perSpan[spans[i]] != nil { mass[spans[i], default: 0] += a[i] }
                            let gl = head.grads.pointer + head.offsets[head.overlapIndex]
                            let gn = head.missingTerms ? head.grads.pointer + head.offsets[head.missingIndex] : nil
                            for s in overlaps.spanOrder {   // in order (OverlapCache.spanOrder)
                                guard let o = overlaps.perSpan[s] else { continue }
                                let f = dA * (mass[s] ?? 0) * head.overlapScale
                                for w in o.tokens { gl[Int(w)] += f }
                                if let gn { for w in o.missing { gn[Int(w)] += f } }
                            }
                        }
                        let dm = head.spanWeight.pointee * dA   // dL/dm; dm/ds_i = α_i ([i in the best's span] − m)
                        let dh = dxn.pointer + row * C, wg = head.gateWeight
                        for k in 0..<C { dh[k] += dA * wg[k] }
                        // context: dw_c += dA·α_i·h_i, dh_i += dA·α_i·w_c; agreement: d(P·h_t) += dA·α_i·R·h_i,
                        // d(R·h_i) += dA·α_i·P·h_t
                        let ph = PH.pointer + row * A, dph = dPH.pointer + row * A
                        for i in 0..<n where a[i] != 0 {
                            let f = dA * a[i]
                            let si = sourceRows[i]
                            cblas_saxpy(Int32(C), f, xn + si * C, 1, gwc, 1)
                            cblas_saxpy(Int32(C), f, wc, 1, dxn.pointer + si * C, 1)
                            if A > 0 {
                                let rh = RH.pointer + si * A, drh = dRH.pointer + si * A
                                for r in 0..<A { dph[r] += f * rh[r]; drh[r] += f * ph[r] }
                            }
                        }
                        // scores: s_i = q·k_i / sqrt(D)
                        let q = Q.pointer + row * D, dq = dQ.pointer + row * D
                        for i in 0..<n {
                            var ds = (rho * a[i] - (tokens[i] == Int32(y) && !soft ? g * a[i] / p : 0)) * scale
                            if i == at { ds += head.scoreWeight.pointee * dA }
                            ds += dm * a[i] * ((spans[i] == spans[at] ? 1 : 0) - m)
                            ds += dA * a[i] * (values[i] - context)
                            if ds == 0 { continue }
                            let ki = Int(kr[i]) * D
                            let k = K.pointer + ki, dk = dK.pointer + ki
                            let f = ds * invSqrtD
                            for e in 0..<D { dq[e] += f * k[e]; dk[e] += f * q[e] }
                        }
                    }
                }
            }
        }
        if backward && touched {
            let gq = head.grads.pointer + head.offsets[0], gk = head.grads.pointer + head.offsets[1]
            // dW += dQ^T · xn ([D, N] · [N, C]); dxn += dQ · W ([N, D] · [D, C]); the same for K
            var projections = [(dQ.pointer, gq, head.wq, D), (dK.pointer, gk, head.wk, D)]
            if A > 0 {
                projections += [(dPH.pointer, head.grads.pointer + head.offsets[CopyHead.agreementQueryIndex], head.agreementQuery, A),
                                (dRH.pointer, head.grads.pointer + head.offsets[CopyHead.agreementKeyIndex], head.agreementKey, A)]
            }
            for (dY, gW, W, n) in projections {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(C), Int32(N), 1, dY, Int32(n),
                            xn, Int32(C), 1, gW, Int32(C))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(n), 1, dY, Int32(n),
                            W, Int32(C), 1, dxn.pointer, Int32(C))
            }
        }
        return (added, gateLoss)
    }
}

import CBLAS

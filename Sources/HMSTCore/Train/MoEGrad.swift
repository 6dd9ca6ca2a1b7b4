// The sparse MoE block for training: dispatch of the N·K expert slots grouped by expert, the
// SwiGLU experts as one GEMM per expert and projection, and the gated combine; the backward
// follows the forward. Slots are grouped so each expert's rows are contiguous (no gather
// inside GEMMs); combine and its backward run per token, so no two threads write one row.
//   out[n] = x2[n] + Σ_k gate[n, k] · y[pos[n, k]],   y = (silu(x W1ᵀ) ⊙ x W3ᵀ) W2ᵀ

import CKernels

enum MoEGrad {
    /// Groups the slots by expert: order[i] = n·K + k for the i-th slot, pos its inverse,
    /// offsets[e] ..< offsets[e+1] the rows of expert e.  topIdx: [N, K]
    static func dispatch(_ a: LayerActs, topIdx: UnsafePointer<Int32>, N: Int, E: Int, K: Int) {
        var counts = [Int](repeating: 0, count: E)
        for i in 0..<(N * K) { counts[Int(topIdx[i])] += 1 }
        var cursor = [Int](repeating: 0, count: E)
        a.offsets[0] = 0
        for e in 0..<E { a.offsets[e + 1] = a.offsets[e] + counts[e]; cursor[e] = a.offsets[e] }
        for slot in 0..<(N * K) {
            let e = Int(topIdx[slot])
            a.order.pointer[cursor[e]] = Int32(slot)
            a.pos.pointer[slot] = Int32(cursor[e])
            cursor[e] += 1
        }
    }

    /// xe[i] = xn2[order[i] / K]   ([NK, C])
    static func gather(_ a: LayerActs, _ s: StepBuffers, d: DecoderDims) {
        let C = d.C, K = d.K, xe = s.xe.pointer, xn2 = a.xn2.pointer, order = a.order.pointer
        parallelRows(s.shape.N * K) { r in
            for i in r { (xe + i * C).update(from: xn2 + Int(order[i]) / K * C, count: C) }
        }
    }

    /// h = silu(ea) ⊙ eb over every slot   ([NK, F])
    static func swiglu(_ a: LayerActs, _ s: StepBuffers, d: DecoderDims) {
        let F = d.F, h = s.h.pointer, ea = a.ea.pointer, eb = a.eb.pointer
        parallelRows(s.shape.N * d.K) { r in
            SwiGLUGrad.forward(h: h + r.lowerBound * F, a: ea + r.lowerBound * F, b: eb + r.lowerBound * F, n: r.count * F)
        }
    }

    static func forward(out: UnsafeMutablePointer<Float>, _ a: LayerActs, _ s: StepBuffers, w: LayerTensors, mm: Matmul,
                        d: DecoderDims, N: Int) {
        let C = d.C, F = d.F, K = d.K
        gather(a, s, d: d)
        var up: [[GemmCall]] = [], down: [[GemmCall]] = []
        for e in 0..<d.E {
            let lo = a.offsets[e], n = a.offsets[e + 1] - lo
            if n == 0 { continue }
            up.append([mm.linearCall(y: a.ea.pointer + lo * F, x: s.xe.pointer + lo * C, w: w.w1[e], N: n, I: C, O: F)])  // [n, F]
            up.append([mm.linearCall(y: a.eb.pointer + lo * F, x: s.xe.pointer + lo * C, w: w.w3[e], N: n, I: C, O: F)])  // [n, F]
            down.append([mm.linearCall(y: a.ey.pointer + lo * C, x: s.h.pointer + lo * F, w: w.w2[e], N: n, I: F, O: C)]) // [n, C]
        }
        mm.run(up)
        swiglu(a, s, d: d)
        mm.run(down)
        let x2 = a.x2.pointer, ey = a.ey.pointer, gates = a.gates.pointer, pos = a.pos.pointer
        parallelRows(N) { r in
            for n in r {
                let o = out + n * C
                o.update(from: x2 + n * C, count: C)
                for k in 0..<K {
                    let gate = gates[n * K + k], y = ey + Int(pos[n * K + k]) * C
                    for c in 0..<C { o[c] += gate * y[c] }
                }
            }
        }
    }

    /// Differentiates forward given s.dx = dL/d(out): writes dxn2 (overwritten) and s.dgates,
    /// accumulates the expert weight gradients into g.
    static func backward(dxn2: UnsafeMutablePointer<Float>, _ a: LayerActs, _ s: StepBuffers, w: LayerTensors, g: LayerTensors,
                         mm: Matmul, d: DecoderDims, N: Int) {
        let C = d.C, F = d.F, K = d.K, NK = N * K
        // dy[i] = gate · dout[n],  dgate[n, k] = dout[n] · y[i]
        let dx = s.dx.pointer, dys = s.dys.pointer, dgates = s.dgates.pointer, ey = a.ey.pointer
        let order = a.order.pointer, gates = a.gates.pointer
        parallelRows(NK) { r in
            for i in r {
                let slot = Int(order[i]), dout = dx + slot / K * C, y = ey + i * C, dy = dys + i * C
                let gate = gates[slot]
                for c in 0..<C { dy[c] = gate * dout[c] }
                dgates[slot] = hk_dot(dout, y, C)
            }
        }
        gather(a, s, d: d)     // the expert inputs and h are recomputed rather than kept per layer
        swiglu(a, s, d: d)
        var down: [[GemmCall]] = [], up: [[GemmCall]] = []
        for e in 0..<d.E {
            let lo = a.offsets[e], n = a.offsets[e + 1] - lo
            if n == 0 { continue }
            let c2 = mm.linearBackwardCalls(dx: s.dh.pointer + lo * F, dxBeta: 0, dW: g.w2[e], dy: dys + lo * C, x: s.h.pointer + lo * F,
                                            w: w.w2[e], N: n, I: F, O: C)
            down += [[c2.dx], [c2.dW]]
            // w1 and w3 both feed dxe's rows: their dx GEMMs run in order in one chain
            let c1 = mm.linearBackwardCalls(dx: s.dxe.pointer + lo * C, dxBeta: 0, dW: g.w1[e], dy: s.da.pointer + lo * F,
                                            x: s.xe.pointer + lo * C, w: w.w1[e], N: n, I: C, O: F)
            let c3 = mm.linearBackwardCalls(dx: s.dxe.pointer + lo * C, dW: g.w3[e], dy: s.db.pointer + lo * F,
                                            x: s.xe.pointer + lo * C, w: w.w3[e], N: n, I: C, O: F)
            up += [[c1.dx, c3.dx], [c1.dW], [c3.dW]]
        }
        mm.run(down)
        let dh = s.dh.pointer, da = s.da.pointer, db = s.db.pointer, ea = a.ea.pointer, eb = a.eb.pointer
        parallelRows(NK) { r in
            let o = r.lowerBound * F
            SwiGLUGrad.backward(da: da + o, db: db + o, dh: dh + o, a: ea + o, b: eb + o, n: r.count * F)
        }
        mm.run(up)
        let dxe = s.dxe.pointer, pos = a.pos.pointer
        parallelRows(N) { r in
            for n in r {
                let o = dxn2 + n * C
                o.update(repeating: 0, count: C)
                for k in 0..<K {
                    let src = dxe + Int(pos[n * K + k]) * C
                    for c in 0..<C { o[c] += src[c] }
                }
            }
        }
    }
}

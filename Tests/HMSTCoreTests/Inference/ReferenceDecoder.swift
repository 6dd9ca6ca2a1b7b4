// ReferenceDecoder: the Mixtral forward written the slow, obvious way, in Double, with a
// per-token loop over experts and no cache. The fast Decoder must agree with it.
@testable import HMSTCore

struct ReferenceDecoder {
    let d: DecoderDims
    let w: DecoderWeights
    /// round the input of every product with a bf16 weight to bf16 (nearest even), as the bf16
    /// GEMM and GEMV do where bf16 weights are multiplied in bf16
    var roundInputs = false

    func matrix(_ m: Weight) -> [[Double]] {
        var out: [[Double]] = []
        var row = [Float](repeating: 0, count: m.cols)
        for r in 0..<m.rows {
            row.withUnsafeMutableBufferPointer { m.copyRow(r, to: $0.baseAddress!) }
            out.append(row.map(Double.init))
        }
        return out
    }

    /// m · x, m read from w
    func apply(_ m: [[Double]], _ x: [Double], of w: Weight) -> [Double] {
        let x = roundInputs && w.typeName == "bf16" ? x.map { Double(bf16Rounded(Float($0))) } : x
        return m.map { row in zip(row, x).reduce(0) { $0 + $1.0 * $1.1 } }
    }

    func bf16Rounded(_ f: Float) -> Float {
        let u = f.bitPattern
        return Float(bitPattern: ((u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16) << 16)
    }

    func rmsnorm(_ x: [Double], _ g: Weight) -> [Double] {
        let gw = matrix(g)[0]
        let s = 1 / (x.reduce(0) { $0 + $1 * $1 } / Double(x.count) + Double(d.eps)).squareRoot()
        return zip(x, gw).map { $0 * s * $1 }
    }

    func rope(_ v: inout [Double], pos: Int, invFreq: [Float]) {
        let half = d.Dh / 2
        for h in 0..<(v.count / d.Dh) {
            for i in 0..<half {
                let a = Double(Float(pos) * invFreq[i])
                let x1 = v[h * d.Dh + i], x2 = v[h * d.Dh + i + half]
                v[h * d.Dh + i] = x1 * cos(a) - x2 * sin(a)
                v[h * d.Dh + i + half] = x2 * cos(a) + x1 * sin(a)
            }
        }
    }

    /// logits [T][V]
    func forward(_ tokens: [Int32]) -> [[Double]] {
        let invFreq = RoPE.inverseFrequencies(Dh: d.Dh, theta: d.ropeTheta)
        let embed = matrix(w.embed)
        var xs = tokens.map { embed[Int($0)] }
        for l in 0..<d.L {
            let lw = w.layers[l]
            let (q, k, v, o) = (matrix(lw.q), matrix(lw.k), matrix(lw.v), matrix(lw.o))
            var Q: [[Double]] = [], K: [[Double]] = [], Vv: [[Double]] = []
            for (t, x) in xs.enumerated() {
                let xn = rmsnorm(x, lw.attnNorm)
                var qt = apply(q, xn, of: lw.q), kt = apply(k, xn, of: lw.k)
                rope(&qt, pos: t, invFreq: invFreq)
                rope(&kt, pos: t, invFreq: invFreq)
                Q.append(qt); K.append(kt); Vv.append(apply(v, xn, of: lw.v))
            }
            for t in 0..<xs.count {
                var att = [Double](repeating: 0, count: d.H * d.Dh)
                for h in 0..<d.H {
                    let g = h / (d.H / d.KV)
                    var s = (0...t).map { u in
                        (0..<d.Dh).reduce(0.0) { $0 + Q[t][h * d.Dh + $1] * K[u][g * d.Dh + $1] } / Double(d.Dh).squareRoot()
                    }
                    let m = s.max()!
                    s = s.map { exp($0 - m) }
                    let z = s.reduce(0, +)
                    for u in 0...t { for i in 0..<d.Dh { att[h * d.Dh + i] += s[u] / z * Vv[u][g * d.Dh + i] } }
                }
                xs[t] = zip(xs[t], apply(o, att, of: lw.o)).map(+)
            }
            let router = matrix(lw.router)
            for t in 0..<xs.count {
                let xn = rmsnorm(xs[t], lw.ffnNorm)
                let logits = apply(router, xn, of: lw.router)
                let m = logits.max()!
                let p = logits.map { exp($0 - m) }
                let z = p.reduce(0, +)
                let probs = p.map { $0 / z }
                let top = probs.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }.prefix(d.K)
                let norm = top.reduce(0) { $0 + $1.element }
                var out = [Double](repeating: 0, count: d.C)
                for (e, pe) in top {  // one expert at a time, one token at a time
                    let ex = lw.experts[e]
                    let a = apply(matrix(ex.w1), xn, of: ex.w1), b = apply(matrix(ex.w3), xn, of: ex.w3)
                    let act = zip(a, b).map { $0 / (1 + exp(-$0)) * $1 }
                    let y = apply(matrix(ex.w2), act, of: ex.w2)
                    for i in 0..<d.C { out[i] += pe / norm * y[i] }
                }
                xs[t] = zip(xs[t], out).map(+)
            }
        }
        let head = matrix(w.lmHead)
        return xs.map { apply(head, rmsnorm($0, w.finalNorm), of: w.lmHead) }
    }
}

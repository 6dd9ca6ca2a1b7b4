// Gradient checks: each backward against central differences of its forward.
// L = Σ out · r for a fixed random r (accumulated in Double). The forwards run in f32, so
// eps = 1e-2 (truncation error O(eps²) stays far below f32 noise / eps); pass when
// |a − n| / max(1, |a|, |n|) < 2e-3. Inputs are kept away from kinks (top-k ties).
import XCTest
@testable import HMSTCore

final class GradCheckTests: XCTestCase {
    var rng = RNG(seed: 17)

    func randn(_ n: Int, _ s: Float = 1) -> [Float] { (0..<n).map { _ in rng.nextGaussian() * s } }

    func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    /// Compares analytic with numeric gradients of loss() with respect to x (mutated in place).
    func check(_ name: String, _ x: inout [Float], analytic: [Float], loss: ([Float]) -> Double,
               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(analytic.contains { $0.isNaN }, "\(name): NaN in analytic gradient", file: file, line: line)
        let eps: Float = 1e-2
        var worst = 0.0
        for i in 0..<x.count {
            let keep = x[i]
            x[i] = keep + eps
            let lp = loss(x)
            x[i] = keep - eps
            let lm = loss(x)
            x[i] = keep
            let n = (lp - lm) / Double(2 * eps)
            let a = Double(analytic[i])
            worst = max(worst, abs(a - n) / max(1, abs(a), abs(n)))
        }
        XCTAssertLessThan(worst, 2e-3, "\(name): worst relative error \(worst)", file: file, line: line)
    }

    func testLinear() {
        let N = 3, I = 5, O = 4
        var x = randn(N * I), w = randn(O * I)
        let r = randn(N * O)
        func loss(_ x: [Float], _ w: [Float]) -> Double {
            var y = [Float](repeating: 0, count: N * O)
            LinearGrad.forward(y: &y, x: x, w: w, N: N, I: I, O: O)
            return dot(y, r)
        }
        var dx = [Float](repeating: 0, count: N * I), dw = [Float](repeating: 0, count: O * I)
        LinearGrad.backward(dx: &dx, dW: &dw, dy: r, x: x, w: w, N: N, I: I, O: O)
        let w0 = w, x0 = x
        check("linear dx", &x, analytic: dx) { loss($0, w0) }
        check("linear dW", &w, analytic: dw) { loss(x0, $0) }
    }

    func testRMSNorm() {
        let N = 3, C = 8
        var x = randn(N * C), w = randn(C)
        let r = randn(N * C)
        func loss(_ x: [Float], _ w: [Float]) -> Double {
            var y = [Float](repeating: 0, count: N * C), rs = [Float](repeating: 0, count: N)
            RMSNormGrad.forward(y: &y, rstd: &rs, x: x, w: w, N: N, C: C, eps: 1e-5)
            return dot(y, r)
        }
        var y = [Float](repeating: 0, count: N * C), rs = [Float](repeating: 0, count: N)
        RMSNormGrad.forward(y: &y, rstd: &rs, x: x, w: w, N: N, C: C, eps: 1e-5)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C)
        RMSNormGrad.backward(dx: &dx, dw: &dw, dy: r, x: x, w: w, rstd: rs, N: N, C: C)
        let w0 = w, x0 = x
        check("rmsnorm dx", &x, analytic: dx) { loss($0, w0) }
        check("rmsnorm dw", &w, analytic: dw) { loss(x0, $0) }
    }

    func testEmbeddingAndCrossEntropy() {
        let N = 4, V = 7, C = 3
        var table = randn(V * C)
        let tokens: [Int32] = [1, 6, 1, 0]
        let r = randn(N * C)
        func lossE(_ t: [Float]) -> Double {
            var x = [Float](repeating: 0, count: N * C)
            EmbeddingGrad.forward(x: &x, table: t, tokens: tokens, N: N, C: C)
            return dot(x, r)
        }
        var dT = [Float](repeating: 0, count: V * C)
        EmbeddingGrad.backward(dTable: &dT, dx: r, tokens: tokens, N: N, C: C)
        check("embedding", &table, analytic: dT, loss: lossE)

        var logits = randn(N * V, 2)
        let targets: [Int32] = [3, -1, 0, 6]
        func lossCE(_ z: [Float]) -> Double {
            var p = z
            return CrossEntropy.forward(logits: &p, targets: targets, N: N, V: V).loss
        }
        var probs = logits
        let (_, count) = CrossEntropy.forward(logits: &probs, targets: targets, N: N, V: V)
        XCTAssertEqual(count, 3)
        CrossEntropy.backward(probs: &probs, targets: targets, N: N, V: V, scale: 1 / Float(count))
        check("cross-entropy", &logits, analytic: probs, loss: lossCE)
    }

    func testSwiGLUAndRoPE() {
        let n = 10
        var a = randn(n), b = randn(n)
        let r = randn(n)
        func loss(_ a: [Float], _ b: [Float]) -> Double {
            var h = [Float](repeating: 0, count: n)
            SwiGLUGrad.forward(h: &h, a: a, b: b, n: n)
            return dot(h, r)
        }
        var da = [Float](repeating: 0, count: n), db = da
        SwiGLUGrad.backward(da: &da, db: &db, dh: r, a: a, b: b, n: n)
        let a0 = a, b0 = b
        check("swiglu da", &a, analytic: da) { loss($0, b0) }
        check("swiglu db", &b, analytic: db) { loss(a0, $0) }

        let N = 3, Hh = 2, Dh = 8
        var x = randn(N * Hh * Dh)
        let inv = RoPE.inverseFrequencies(Dh: Dh, theta: 10000)
        var cosT = [Float](repeating: 0, count: N * Dh / 2), sinT = cosT
        RoPE.tables(cos: &cosT, sin: &sinT, invFreq: inv, pos0: 5, T: N)
        let rr = randn(N * Hh * Dh)
        func lossR(_ x: [Float]) -> Double {
            var y = x
            RoPEGrad.forward(&y, N: N, nHeads: Hh, Dh: Dh, ld: Hh * Dh, cos: cosT, sin: sinT)
            return dot(y, rr)
        }
        var d = rr
        RoPEGrad.backward(&d, N: N, nHeads: Hh, Dh: Dh, ld: Hh * Dh, cos: cosT, negSin: sinT.map { -$0 })
        check("rope", &x, analytic: d, loss: lossR)
    }

    func testRouterWithAuxLoss() {
        let N = 5, E = 6, K = 2
        // well separated logits: a small perturbation never changes the top-2
        var logits: [Float] = (0..<(N * E)).map { i in Float((i * 7) % E) * 0.9 + rng.nextFloat() * 0.1 }
        let r = randn(N * K)
        let coef: Float = 0.3
        func loss(_ z: [Float]) -> Double {
            var p = [Float](repeating: 0, count: N * E), idx = [Int32](repeating: 0, count: N * K), g = [Float](repeating: 0, count: N * K)
            RouterGrad.forward(probs: &p, topIdx: &idx, gates: &g, logits: z, N: N, E: E, K: K)
            return dot(g, r) + Double(RouterGrad.auxLoss(dlogits: nil, probs: p, topIdx: idx, N: N, E: E, K: K, coef: coef))
        }
        var p = [Float](repeating: 0, count: N * E), idx = [Int32](repeating: 0, count: N * K), g = [Float](repeating: 0, count: N * K)
        RouterGrad.forward(probs: &p, topIdx: &idx, gates: &g, logits: logits, N: N, E: E, K: K)
        var dz = [Float](repeating: 0, count: N * E)
        RouterGrad.backward(dlogits: &dz, dgates: r, probs: p, topIdx: idx, gates: g, N: N, E: E, K: K)
        _ = RouterGrad.auxLoss(dlogits: &dz, probs: p, topIdx: idx, N: N, E: E, K: K, coef: coef)
        check("router + aux loss", &logits, analytic: dz, loss: loss)
    }

    func testCausalGQAAttention() {
        let B = 2, T = 3, H = 4, KV = 2, Dh = 4
        var q = randn(B * T * H * Dh), k = randn(B * T * KV * Dh), v = randn(B * T * KV * Dh)
        let r = randn(B * T * H * Dh)
        func loss(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            var o = [Float](repeating: 0, count: B * T * H * Dh), P = [Float](repeating: 0, count: B * H * T * T)
            AttentionGrad.forward(out: &o, probs: &P, q: q, k: k, v: v, B: B, T: T, H: H, KV: KV, Dh: Dh)
            return dot(o, r)
        }
        var o = [Float](repeating: 0, count: B * T * H * Dh), P = [Float](repeating: 0, count: B * H * T * T)
        AttentionGrad.forward(out: &o, probs: &P, q: q, k: k, v: v, B: B, T: T, H: H, KV: KV, Dh: Dh)
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        var scratch = [Float](repeating: 0, count: B * KV * T * T)
        AttentionGrad.backward(dq: &dq, dk: &dk, dv: &dv, dout: r, probs: P, q: q, k: k, v: v, scratch: &scratch,
                               B: B, T: T, H: H, KV: KV, Dh: Dh)
        let q0 = q, k0 = k, v0 = v
        check("attention dq", &q, analytic: dq) { loss($0, k0, v0) }
        check("attention dk", &k, analytic: dk) { loss(q0, $0, v0) }
        check("attention dv", &v, analytic: dv) { loss(q0, k0, $0) }
    }

    /// Causal blocks (ragged last block included) against the gradient by finite differences.
    func testCausalAttentionInBlocks() {
        let B = 1, T = 7, H = 2, KV = 1, Dh = 3, block = 3
        var q = randn(B * T * H * Dh), k = randn(B * T * KV * Dh), v = randn(B * T * KV * Dh)
        let r = randn(B * T * H * Dh)
        func loss(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            var o = [Float](repeating: 0, count: B * T * H * Dh), P = [Float](repeating: .nan, count: B * H * T * T)
            AttentionGrad.forward(out: &o, probs: &P, q: q, k: k, v: v, B: B, T: T, H: H, KV: KV, Dh: Dh, block: block)
            return dot(o, r)
        }
        // P and the scratch start as NaN: an entry the blocks should skip but read would poison the result
        var o = [Float](repeating: 0, count: B * T * H * Dh), P = [Float](repeating: .nan, count: B * H * T * T)
        AttentionGrad.forward(out: &o, probs: &P, q: q, k: k, v: v, B: B, T: T, H: H, KV: KV, Dh: Dh, block: block)
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        var scratch = [Float](repeating: .nan, count: B * KV * T * T)
        AttentionGrad.backward(dq: &dq, dk: &dk, dv: &dv, dout: r, probs: P, q: q, k: k, v: v, scratch: &scratch,
                               B: B, T: T, H: H, KV: KV, Dh: Dh, block: block)
        let q0 = q, k0 = k, v0 = v
        check("blocked attention dq", &q, analytic: dq) { loss($0, k0, v0) }
        check("blocked attention dk", &k, analytic: dk) { loss(q0, $0, v0) }
        check("blocked attention dv", &v, analytic: dv) { loss(q0, k0, $0) }
    }

    /// Every block size gives what one block of all T rows gives (the full masked GEMMs), in f32
    /// and in bf16: outputs and gradients within summation-order rounding.
    func testCausalBlocksEqualOneBlock() {
        let B = 2, T = 37, H = 4, KV = 2, Dh = 8
        let q = randn(B * T * H * Dh), k = randn(B * T * KV * Dh), v = randn(B * T * KV * Dh), dout = randn(B * T * H * Dh)
        func run(_ block: Int, _ precision: MatmulPrecision) -> [[Float]] {
            let mm = Matmul(precision: precision)
            var o = [Float](repeating: 0, count: q.count), P = [Float](repeating: .nan, count: B * H * T * T)
            AttentionGrad.forward(mm: mm, out: &o, probs: &P, q: q, k: k, v: v, B: B, T: T, H: H, KV: KV, Dh: Dh, block: block)
            var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
            var scratch = [Float](repeating: .nan, count: B * KV * T * T)
            AttentionGrad.backward(mm: mm, dq: &dq, dk: &dk, dv: &dv, dout: dout, probs: P, q: q, k: k, v: v, scratch: &scratch,
                                   B: B, T: T, H: H, KV: KV, Dh: Dh, block: block)
            return [o, dq, dk, dv]
        }
        for precision in MatmulPrecision.allCases {
            let whole = run(T, precision)
            for block in [1, 5, 16, 36] {
                let got = run(block, precision)
                for (name, (a, b)) in zip(["out", "dq", "dk", "dv"], zip(got, whole)) {
                    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .nan
                    let scale = b.map { abs($0) }.max() ?? 1
                    XCTAssertLessThan(worst, 1e-5 * max(scale, 1) * (precision == .bf16 ? 100 : 1), "\(name), block \(block), \(precision)")
                }
            }
        }
    }
}

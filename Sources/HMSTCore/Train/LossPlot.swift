// LossPlot: the training and validation loss curves as a small standalone SVG, redrawn by the
// trainer at every evaluation (output_dir/loss.svg).

enum LossPlot {
    static func svg(_ points: [(step: Int, train: Double, val: Double?)]) -> String {
        let W = 640.0, H = 360.0, left = 56.0, right = 16.0, top = 24.0, bottom = 40.0
        let finite = points.flatMap { [$0.train] + ($0.val.map { [$0] } ?? []) }.filter(\.isFinite)
        guard let maxStep = points.map(\.step).max(), maxStep > 0, var lo = finite.min(), var hi = finite.max() else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"360\"></svg>\n"
        }
        if hi - lo < 1e-9 { hi += 0.5; lo -= 0.5 }
        func x(_ s: Int) -> Double { left + Double(s) / Double(maxStep) * (W - left - right) }
        func y(_ v: Double) -> Double { top + (hi - v) / (hi - lo) * (H - top - bottom) }
        func path(_ pts: [(Int, Double)]) -> String {
            pts.enumerated().map { i, p in "\(i == 0 ? "M" : "L")\(fmt(x(p.0))),\(fmt(y(p.1)))" }.joined(separator: " ")
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(W))\" height=\"\(Int(H))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(left))\" y=\"16\">loss (nats/token) by optimizer step</text>\n"
        for i in 0...4 {
            let v = lo + (hi - lo) * Double(i) / 4
            s += "<line x1=\"\(Int(left))\" x2=\"\(Int(W - right))\" y1=\"\(fmt(y(v)))\" y2=\"\(fmt(y(v)))\" stroke=\"#ddd\"/>"
            s += "<text x=\"4\" y=\"\(fmt(y(v) + 4))\">\(fmt(v))</text>\n"
        }
        s += "<text x=\"\(Int(W - right - 40))\" y=\"\(Int(H - 12))\">step \(maxStep)</text>\n"
        let train = points.filter { $0.train.isFinite }.map { ($0.step, $0.train) }
        s += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n"
        let val = points.compactMap { p in p.val.flatMap { $0.isFinite ? (p.step, $0) : nil } }
        if !val.isEmpty {
            s += "<path d=\"\(path(val))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
            for (st, v) in val { s += "<circle cx=\"\(fmt(x(st)))\" cy=\"\(fmt(y(v)))\" r=\"3\" fill=\"#d62728\"/>\n" }
        }
        s += "<text x=\"\(Int(W - 170))\" y=\"40\" fill=\"#1f77b4\">train</text><text x=\"\(Int(W - 110))\" y=\"40\" fill=\"#d62728\">validation</text>\n"
        return s + "</svg>\n"
    }

    static func fmt(_ v: Double) -> String { String((v * 100).rounded() / 100) }
}

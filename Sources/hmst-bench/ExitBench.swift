// hmst-bench exit --model CKPT --data VAL_DIR [--windows 64] [--seq-len 128]: what the engine's
// early exit and expert selection cost in quality: validation loss (nats per token) of the
// model's head read after each layer (through the final norm: no exit head is trained) and with
// one expert per token instead of K, beside the projection FLOPs per token. One JSON line per
// budget.
import Foundation
import HMSTCore

enum ExitBench {
    static func run(model path: String, data: String, windows: Int, seqLen: Int) throws {
        let model = try LanguageModel.load(path: path)
        let ds = try TokenDataset(directory: data)
        guard let shard = ds.shards.first, shard.count > seqLen + 1 else { throw HMSTError.invalidArgument("\(data): too few tokens") }
        let d = model.dims
        var sp = SessionParams()
        sp.nCtx = seqLen
        sp.nBatch = seqLen
        let s = try Session(decoder: model.decoder, params: sp)
        let stride = max(1, (shard.count - seqLen - 1) / windows)
        var budgets: [ComputeBudget] = (1...d.L).map { ComputeBudget(layers: $0) }
        if d.K > 1 { budgets += [ComputeBudget(expertsPerToken: 1), ComputeBudget(layers: max(1, d.L / 2), expertsPerToken: 1)] }
        let fullFlops = ComputeBudget().matmulFLOPsPerToken(d)
        for b in budgets {
            var nll = 0.0, n = 0
            let t0 = Date()
            for w in 0..<windows {
                let start = w * stride
                guard start + seqLen + 1 <= shard.count else { break }
                var toks = [Int32](repeating: 0, count: seqLen + 1)
                toks.withUnsafeMutableBufferPointer { shard.copy(from: start, count: seqLen + 1, to: $0.baseAddress!) }
                s.reset()
                try s.setBudget(b)
                try s.evaluate(Array(toks[0..<seqLen]), allLogits: true)
                for t in 0..<seqLen {
                    let row = try s.logits(row: t)
                    var m = -Float.infinity
                    for v in 0..<d.V { m = max(m, row[v]) }
                    var z = 0.0
                    for v in 0..<d.V { z += exp(Double(row[v] - m)) }
                    nll -= Double(row[Int(toks[t + 1])] - m) - log(z)
                    n += 1
                }
            }
            let flops = b.matmulFLOPsPerToken(d)
            print("{\"bench\": \"exit\", \"layers\": \(b.layers ?? d.L), \"of_layers\": \(d.L), \"experts_per_token\": \(b.expertsPerToken ?? d.K), "
                  + "\"val_nll\": \(String(format: "%.4f", nll / Double(max(n, 1)))), \"tokens\": \(n), \"flops_per_token\": \(Int(flops)), "
                  + "\"flops_fraction\": \(String(format: "%.3f", flops / fullFlops)), \"seconds\": \(String(format: "%.2f", Date().timeIntervalSince(t0))), "
                  + "\"exit_head\": \"none (final norm + head of the model)\"}")
        }
    }
}

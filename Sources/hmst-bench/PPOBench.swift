// PPOBench: `hmst-bench ppo --env cartpole --seeds 1,2,3 --steps 500000 [--eval-every 10]
//           [--log-every 0]`
// Trains CleanRL-default PPO (4 envs x 128 steps, lr 2.5e-4 annealed, ...) on CartPole-v1 once
// per seed. Every eval-every updates it plays 20 evaluation episodes with the sampled policy;
// the first global step at which their mean return is >= 475 is "steps to solve". One JSON line
// per seed: steps_to_solve (null if never), final_mean_return (20 episodes after training),
// wall_s; with --log-every K also one line every K updates (losses, approx_kl, clipfrac,
// explained variance, mean episodic return).
import CBLAS
import Foundation
import HMSTCore

enum PPOBench {
    static func json(_ pairs: [(String, Any)]) {
        let body = pairs.map { k, v -> String in
            let s: String
            switch v {
            case let f as Float: s = f.isFinite ? String(format: "%.6g", Double(f)) : "null"
            case let d as Double: s = d.isFinite ? String(format: "%.6g", d) : "null"
            case let b as Bool: s = b ? "true" : "false"
            case let i as Int: s = String(i)
            case let o as Int?: s = o.map(String.init) ?? "null"
            case let t as String: s = "\"\(t)\""
            default: s = "\(v)"
            }
            return "\"\(k)\": \(s)"
        }
        print("{" + body.joined(separator: ", ") + "}")
        fflush(stdout)
    }

    /// Parses the options, runs, and exits: 0, or 2 with the reason on stderr.
    static func main(_ option: (String) -> String?) -> Never {
        do {
            let seeds = (option("--seeds") ?? "1,2,3").split(separator: ",").compactMap { UInt64($0) }
            guard !seeds.isEmpty else { throw HMSTError.invalidArgument("--seeds: a comma-separated list of integers") }
            try run(env: option("--env") ?? "cartpole", seeds: seeds, steps: Int(option("--steps") ?? "") ?? 500_000,
                    evalEvery: max(Int(option("--eval-every") ?? "") ?? 10, 1), logEvery: Int(option("--log-every") ?? "") ?? 0)
            exit(0)
        } catch {
            StandardStream.error.write("hmst-bench ppo: \(error)\nusage: hmst-bench ppo --env cartpole --seeds 1,2,3 --steps 500000 [--eval-every 10] [--log-every K]\n")
            exit(2)
        }
    }

    static func run(env: String, seeds: [UInt64], steps: Int, evalEvery: Int, logEvery: Int) throws {
        guard env == "cartpole" else { throw HMSTError.invalidArgument("hmst-bench ppo: unknown --env \(env) (known: cartpole)") }
        openblas_set_num_threads(1)
        for seed in seeds {
            var c = PPOConfig()
            c.totalSteps = steps
            c.seed = seed
            let t0 = Date()
            let trainer = try PPOTrainer(config: c) { _ in CartPole() }
            var solvedAt: Int? = nil
            var recent = [Float]()
            try trainer.train { log in
                recent += log.episodes.map(\.episodeReturn)
                if recent.count > 20 { recent.removeFirst(recent.count - 20) }
                if logEvery > 0 && log.update % logEvery == 0 {
                    json([("seed", Int(seed)), ("update", log.update), ("global_step", log.globalStep),
                          ("lr", log.learningRate), ("policy_loss", log.policyLoss), ("value_loss", log.valueLoss),
                          ("entropy", log.entropy), ("approx_kl", log.approxKL), ("clipfrac", log.clipFraction),
                          ("explained_variance", log.explainedVariance),
                          ("train_return_last20", recent.isEmpty ? Float.nan : recent.reduce(0, +) / Float(recent.count))])
                }
                if solvedAt == nil && log.update % evalEvery == 0 {
                    let r = try evaluatePolicy(trainer.model, episodes: 20, seed: 10_000 + UInt64(log.update)) { _ in CartPole() }
                    if r.reduce(0, +) / Float(r.count) >= 475 { solvedAt = log.globalStep }
                }
                return true
            }
            let r = try evaluatePolicy(trainer.model, episodes: 20, seed: 1_000_000 + seed) { _ in CartPole() }
            json([("mode", "ppo"), ("env", env), ("seed", Int(seed)), ("steps", trainer.globalStep),
                  ("steps_to_solve", solvedAt as Any), ("final_mean_return", r.reduce(0, +) / Float(r.count)),
                  ("final_min_return", r.min() ?? 0), ("solved", (r.reduce(0, +) / Float(r.count)) >= 475),
                  ("wall_s", Date().timeIntervalSince(t0))])
        }
    }
}

/// `hmst-bench controller --outcomes OUTCOMES.jsonl [--splits 10] [--seed 1] [--episodes 300000]
/// [--ent-coef 0.05] [--ppo-learning-rate 1e-3] [--hidden 64,64] [--action-heads joint]
/// [--observation-scaling on|off]`:
/// rl-train's PPO and comparisons rerun from a stored outcome table (observations included),
/// no model needed, over several entity splits. One JSON line per split and a summary line.
enum ControllerBench {
    static func main(_ option: (String) -> String?) -> Never {
        do {
            guard let path = option("--outcomes") else { throw HMSTError.invalidArgument("--outcomes OUTCOMES.jsonl is required") }
            let table = try OutcomeTable.read(path: path)
            var o = ControllerTrainingOptions()
            o.seed = UInt64(option("--seed") ?? "") ?? 1
            o.ppo.totalSteps = Int(option("--episodes") ?? "") ?? o.ppo.totalSteps
            o.ppo.entCoef = Float(option("--ent-coef") ?? "") ?? o.ppo.entCoef
            o.ppo.learningRate = Float(option("--ppo-learning-rate") ?? "") ?? o.ppo.learningRate
            if let h = option("--hidden") { o.ppo.hidden = h.split(separator: ",").compactMap { Int($0) } }
            o.jointActions = (option("--action-heads") ?? "joint") == "joint"
            let splits = Int(option("--splits") ?? "") ?? 10
            o.scaleObservations = option("--observation-scaling") != "off"
            openblas_set_num_threads(1)
            let s = try ControllerTraining.acrossSplits(table: table, options: o, splits: splits) { i, _, r in
                PPOBench.json([("bench", "controller"), ("split", i), ("test_queries", r.testQueries), ("ppo", r.scores.first?.mean ?? .nan),
                               ("best_fixed", r.bestFixed), ("gap_closed", r.gapClosed), ("ppo_minus_best_fixed", r.ppoMinusBestFixed.0),
                               ("regressor", r.scores.first { $0.name.hasPrefix("reward regressor") }?.mean ?? .nan)])
            }
            let g = SplitSummary.meanSD(s.gapClosed), d = SplitSummary.meanSD(s.ppoMinusBestFixed)
            PPOBench.json([("bench", "controller_summary"), ("outcomes", path), ("splits", splits), ("ent_coef", o.ppo.entCoef),
                           ("ppo_learning_rate", o.ppo.learningRate), ("hidden", o.ppo.hidden.map(String.init).joined(separator: ",")),
                           ("episodes", o.ppo.totalSteps), ("gap_closed_mean", g.mean), ("gap_closed_sd", g.sd),
                           ("gap_closed_min", s.gapClosed.min() ?? .nan), ("ppo_minus_best_fixed_mean", d.mean),
                           ("ppo_minus_best_fixed_min", s.ppoMinusBestFixed.min() ?? .nan)])
            exit(0)
        } catch {
            StandardStream.error.write("hmst-bench controller: \(error)\n")
            exit(2)
        }
    }
}

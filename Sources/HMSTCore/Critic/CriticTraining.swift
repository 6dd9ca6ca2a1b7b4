// CriticTraining: fits a Critic to a pool of observed answers with known correctness. Rows are
// split by entity (no entity in two splits): the fit split trains the probe (L2 strength chosen
// by out-of-fold log-loss, folds by entity too) and the head, whose probe feature on the fit
// rows is the out-of-fold score so the head does not learn to trust an overfitted probe; the
// validation split fits the calibration; the test split is only measured. Building the pool
// from the fact benchmark is CriticPool.swift.

/// Which situation an answer was given in; the critic is measured within each.
public enum CriticStratum: String, Sendable, CaseIterable {
    /// a gold memory was in the prompt
    case goldRetrieved = "gold_retrieved"
    /// memories were in the prompt, none of them gold
    case distractorsOnly = "distractors_only"
    /// no memory, a fact the model was never trained on
    case noMemory = "no_memory"
    /// no memory, a fact from the model's training text
    case knownNoMemory = "known_no_memory"
}

/// One answer of the pool: where it came from, whether it was right, and what the critic saw.
public struct CriticPoolRow: Sendable {
    public var task: String
    public var itemId: String
    public var entity: String
    public var condition: String
    public var stratum: CriticStratum
    public var correct: Bool
    public var answer: String
    public var target: String
    public var observation: CriticObservation

    public init(task: String, itemId: String, entity: String, condition: String, stratum: CriticStratum, correct: Bool,
                answer: String, target: String, observation: CriticObservation) {
        self.task = task
        self.itemId = itemId
        self.entity = entity
        self.condition = condition
        self.stratum = stratum
        self.correct = correct
        self.answer = answer
        self.target = target
        self.observation = observation
    }
}

public struct CriticTrainingOptions: Sendable {
    /// shares of entities for fitting and for calibration; the rest is the test split
    public var fitFraction = 0.6
    public var validationFraction = 0.2
    public var splitSeed: UInt64 = 0
    /// "platt", "temperature" or "none"
    public var calibration = "platt"
    /// L2 strength of the head (standardised features, summed log-loss)
    public var headL2 = 1.0
    /// L2 strengths tried for the probe; the one with the best out-of-fold log-loss is kept
    public var probeL2Grid: [Double] = [1, 10, 100, 1000]
    public var probeFolds = 5
    /// correct and wrong answers each split must hold at least (fewer cannot fit, calibrate or
    /// measure anything worth saving)
    public var minimumPerClass = 10
    public var eceBins = 10
    /// simulations behind ECE's noise floor
    public var noiseDraws = 200
    public var seed: UInt64 = 0

    public init() {}

    public func validate() throws {
        guard fitFraction > 0, validationFraction > 0, fitFraction + validationFraction < 1 else {
            throw HMSTError.invalidArgument("critic splits: fit \(fitFraction) and validation \(validationFraction) must be > 0 and leave a test share")
        }
        guard headL2 >= 0, headL2.isFinite, !probeL2Grid.isEmpty, probeL2Grid.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw HMSTError.invalidArgument("critic L2 strengths must be finite, the probe's > 0")
        }
        guard probeFolds >= 2, probeFolds <= 20 else { throw HMSTError.invalidArgument("probe folds \(probeFolds) must be in 2...20") }
        guard eceBins >= 1, eceBins <= 1000 else { throw HMSTError.invalidArgument("ECE bins \(eceBins) must be in 1...1000") }
        guard minimumPerClass >= 1 else { throw HMSTError.invalidArgument("minimum answers per class \(minimumPerClass) must be >= 1") }
        guard noiseDraws >= 1 else { throw HMSTError.invalidArgument("noise floor draws must be >= 1") }
        guard ["platt", "temperature", "none"].contains(calibration) else {
            throw HMSTError.invalidArgument("calibration \"\(calibration)\": expected platt, temperature or none")
        }
    }
}

/// Scores of a set of answers: ranking, calibration and the count behind them.
public struct CriticScores: Sendable {
    public var n = 0
    public var positives = 0
    public var auroc = Double.nan
    public var ece = Double.nan
    /// mean and 95th percentile of ECE for a perfectly calibrated predictor with these confidences
    public var eceFloor = Double.nan
    public var eceFloorP95 = Double.nan
    public var brier = Double.nan

    public init(probabilities p: [Double], labels: [Bool], bins: Int, draws: Int, seed: UInt64) {
        n = p.count
        positives = labels.filter { $0 }.count
        guard n > 0 else { return }
        auroc = CriticMetrics.auroc(scores: p, labels: labels)
        ece = CriticMetrics.ece(probabilities: p, labels: labels, bins: bins)
        let f = CriticMetrics.eceNoiseFloor(probabilities: p, bins: bins, draws: draws, seed: seed)
        eceFloor = f.mean
        eceFloorP95 = f.p95
        brier = CriticMetrics.brier(probabilities: p, labels: labels)
    }

    func json() -> JSONValue {
        .object([("n", .number(Double(n))), ("positives", .number(Double(positives))), ("auroc", num(auroc)), ("ece", num(ece)),
                 ("ece_noise_floor", num(eceFloor)), ("ece_noise_floor_p95", num(eceFloorP95)), ("brier", num(brier))])
    }
}

@inline(__always) func num(_ v: Double) -> JSONValue { v.isFinite ? .number(v) : .null }

public struct CriticTrainingReport: Sendable {
    public var poolSize = 0
    public var poolPositives = 0
    /// n and positives of fit, validation and test, and their entities
    public var splits: [(name: String, n: Int, positives: Int, entities: Int)] = []
    public var test = CriticScores(probabilities: [], labels: [], bins: 1, draws: 1, seed: 0)
    public var testUncalibratedECE = Double.nan
    public var validation = CriticScores(probabilities: [], labels: [], bins: 1, draws: 1, seed: 0)
    public var strata: [(stratum: String, auroc: Double, n: Int, positives: Int)] = []
    /// each feature alone on the test split, oriented by its direction on the fit split
    public var singleFeatures: [(name: String, auroc: Double, sign: Int)] = []
    public var probeL2 = 0.0
    public var probeOutOfFoldAUROC = Double.nan
    /// Per memory condition on the test split: the share of all answers that are wrong yet
    /// given with confidence >= 0.5, by the answer's own geometric-mean token probability (what
    /// the engine reports without a critic) and by the critic (below 0.5 the engine says it is
    /// not sure). An answer of " unknown" is an abstention, never confidently wrong.
    public var confidentWrong: [(condition: String, n: Int, withoutCritic: Double, withCritic: Double)] = []
    public var calibration = CriticCalibration.none
    public var seconds = 0.0

    /// The best single feature's test AUROC (NaN if none is defined).
    public var bestSingleFeature: (name: String, auroc: Double)? {
        singleFeatures.filter { $0.auroc.isFinite }.max { $0.auroc < $1.auroc }.map { ($0.name, $0.auroc) }
    }

    public func json() -> JSONValue {
        var o: [(String, JSONValue)] = [
            ("pool", .object([("n", .number(Double(poolSize))), ("positives", .number(Double(poolPositives)))])),
            ("splits", .object(splits.map { ($0.name, .object([("n", .number(Double($0.n))), ("positives", .number(Double($0.positives))),
                                                                ("entities", .number(Double($0.entities)))])) })),
            ("test", test.json()), ("test_ece_uncalibrated", num(testUncalibratedECE)), ("validation", validation.json()),
            ("strata", .object(strata.map { ($0.stratum, .object([("auroc", num($0.auroc)), ("n", .number(Double($0.n))),
                                                                  ("positives", .number(Double($0.positives)))])) })),
            ("single_features", .object(singleFeatures.map { ($0.name, .object([("auroc", num($0.auroc)), ("sign", .number(Double($0.sign)))])) })),
            ("probe", .object([("l2", .number(probeL2)), ("out_of_fold_auroc", num(probeOutOfFoldAUROC))])),
            ("confident_wrong", .object(confidentWrong.map { ($0.condition, .object([("n", .number(Double($0.n))),
                                                                                      ("without_critic", num($0.withoutCritic)),
                                                                                      ("with_critic", num($0.withCritic))])) })),
            ("seconds", .number(seconds)),
        ]
        if let b = bestSingleFeature { o.append(("best_single_feature", .object([("name", .string(b.name)), ("auroc", num(b.auroc))]))) }
        return .object(o)
    }

    /// The summary as printed by hmst train-critic.
    public func lines() -> [String] {
        func f(_ v: Double) -> String { v.isFinite ? String(format: "%.4f", v) : "n/a" }
        var out = ["pool: \(poolSize) answers, \(poolPositives) correct"]
        for s in splits { out.append("split \(s.name): \(s.n) answers (\(s.positives) correct), \(s.entities) entities") }
        out.append("test: AUROC \(f(test.auroc))  ECE \(f(test.ece)) (noise floor \(f(test.eceFloor)), p95 \(f(test.eceFloorP95)); uncalibrated \(f(testUncalibratedECE)))  Brier \(f(test.brier))  n=\(test.n) correct=\(test.positives)")
        for s in strata { out.append("stratum \(s.stratum): AUROC \(f(s.auroc))  n=\(s.n) correct=\(s.positives)") }
        for s in singleFeatures { out.append("feature \(s.name): AUROC \(f(s.auroc)) (direction \(s.sign >= 0 ? "+" : "-"))") }
        if let b = bestSingleFeature { out.append("best single feature: \(b.name) \(f(b.auroc)); critic - best = \(f(test.auroc - b.auroc))") }
        out.append("probe: L2 \(probeL2), out-of-fold AUROC \(f(probeOutOfFoldAUROC)); calibration \(calibration)")
        for c in confidentWrong {
            out.append("confident wrong (\(c.condition), n=\(c.n)): \(f(c.withoutCritic)) without the critic, \(f(c.withCritic)) with it")
        }
        return out
    }
}

public enum CriticTraining {
    /// Which split an entity falls in: 0 fit, 1 validation, 2 test; and a second uniform draw
    /// for the probe's folds. Deterministic in (entity, seed).
    /// CriticTrainingReport.confidentWrong over rows with the critic's probabilities.
    static func confidentWrongRates(rows: [CriticPoolRow], critic: [Double], threshold: Double = 0.5)
        -> [(condition: String, n: Int, withoutCritic: Double, withCritic: Double)] {
        var by: [String: (n: Int, without: Int, with: Int)] = [:]
        for (r, p) in zip(rows, critic) {
            var c = by[r.condition, default: (0, 0, 0)]
            c.n += 1
            let abstained = EvalMetrics.normalizeAnswer(r.answer) == "unknown" || r.answer.isEmpty
            if !r.correct && !abstained {
                if exp(Double(r.observation.features.answerLogProbMean)) >= threshold { c.without += 1 }
                if p >= threshold { c.with += 1 }
            }
            by[r.condition] = c
        }
        return by.sorted { $0.key < $1.key }.map { k, c in
            (k, c.n, Double(c.without) / Double(c.n), Double(c.with) / Double(c.n))
        }
    }

    static func split(_ entity: String, _ o: CriticTrainingOptions) -> (Int, Double) {
        var rng = RNG(seed: FileChecksum.of(Array(entity.utf8)) ^ o.splitSeed)
        let u = rng.nextDouble(), v = rng.nextDouble()
        return (u < o.fitFraction ? 0 : u < o.fitFraction + o.validationFraction ? 1 : 2, v)
    }

    /// Why a pool cannot train a critic, or nil.
    public static func poolProblem(_ rows: [CriticPoolRow]) -> String? {
        guard !rows.isEmpty else { return "the pool is empty" }
        let pos = rows.filter(\.correct).count
        var byCondition: [String] = []
        for c in Array(Set(rows.map(\.condition))).sorted() {
            let r = rows.filter { $0.condition == c }
            byCondition.append("\(c) \(r.filter(\.correct).count)/\(r.count)")
        }
        if pos == 0 {
            return "the pool has no correct answers: 0 of \(rows.count) answers match their target (correct/answers by condition: \(byCondition.joined(separator: ", "))); the model must get some questions right before a critic can learn to tell right from wrong"
        }
        if pos == rows.count { return "the pool has no wrong answers: all \(rows.count) match their target; nothing to tell apart" }
        return nil
    }

    public static func fit(model: LanguageModel, rows: [CriticPoolRow], settings: CriticSettings,
                           options o: CriticTrainingOptions) throws -> (Critic, CriticTrainingReport) {
        try fit(fingerprint: CriticModelFingerprint(model: model), rows: rows, settings: settings, options: o)
    }

    public static func fit(fingerprint: CriticModelFingerprint, rows: [CriticPoolRow], settings: CriticSettings,
                           options o: CriticTrainingOptions) throws -> (Critic, CriticTrainingReport) {
        let t0 = Clock.nowMs()
        try o.validate()
        try settings.validate()
        if let why = poolProblem(rows) { throw HMSTError.invalidArgument(why) }
        let C = fingerprint.hiddenSize, F = CriticFeatures.names.count
        if let i = rows.firstIndex(where: { $0.observation.hidden.count != C }) {
            throw HMSTError.invalidArgument("pool row \(i + 1) (counting from 1, blank lines skipped) has a hidden state of \(rows[i].observation.hidden.count) values; the model's hidden size is \(C)")
        }
        var report = CriticTrainingReport()
        report.poolSize = rows.count
        report.poolPositives = rows.filter(\.correct).count
        let assigned = rows.map { split($0.entity, o) }
        var idx: [[Int]] = [[], [], []]
        for (i, a) in assigned.enumerated() { idx[a.0].append(i) }
        for (s, name) in ["fit", "validation", "test"].enumerated() {
            report.splits.append((name, idx[s].count, idx[s].filter { rows[$0].correct }.count, Set(idx[s].map { rows[$0].entity }).count))
        }
        for s in report.splits {
            guard s.positives >= o.minimumPerClass, s.n - s.positives >= o.minimumPerClass else {
                throw HMSTError.invalidArgument("the \(s.name) split has \(s.positives) correct and \(s.n - s.positives) wrong answers (pool: \(report.poolPositives) correct of \(rows.count)); each split needs at least \(o.minimumPerClass) of each to fit, calibrate and measure a critic: a larger pool, or a model that answers more questions right")
            }
        }
        let labels = rows.map { $0.correct ? 1.0 : 0.0 }

        // ---- the probe, on the fit split: λ by out-of-fold log-loss over folds of entities
        let fit = idx[0]
        let fold = fit.map { min(o.probeFolds - 1, Int(assigned[$0].1 * Double(o.probeFolds))) }
        func hiddenMatrix(_ ids: [Int]) -> [Double] {
            var x = [Double](repeating: 0, count: ids.count * C)
            for (r, i) in ids.enumerated() { for c in 0..<C { x[r * C + c] = Double(rows[i].observation.hidden[c]) } }
            return x
        }
        func fitProbe(_ ids: [Int], _ l2: Double) throws -> (Standardizer, LogisticFit) {
            var x = hiddenMatrix(ids)
            let s = Standardizer(x: x, n: ids.count, d: C)
            s.apply(&x, n: ids.count, d: C)
            return (s, try CriticFit.logistic(x: x, y: ids.map { labels[$0] }, n: ids.count, d: C, l2: l2, maxIterations: 30, tol: 1e-6))
        }
        func probeLogit(_ s: Standardizer, _ f: LogisticFit, _ i: Int) -> Double {
            var z = f.bias
            let h = rows[i].observation.hidden
            for c in 0..<C { z += f.weights[c] * (Double(h[c]) - Double(s.mean[c])) / Double(s.std[c]) }
            return z
        }
        var best: (l2: Double, loss: Double, oof: [Double]) = (o.probeL2Grid[0], .infinity, [])
        for l2 in o.probeL2Grid {
            var oof = [Double](repeating: 0, count: fit.count)
            for k in 0..<o.probeFolds {
                let train = fit.indices.filter { fold[$0] != k }.map { fit[$0] }
                let held = fit.indices.filter { fold[$0] == k }
                guard !train.isEmpty, !held.isEmpty else { continue }
                let (s, f) = try fitProbe(train, l2)
                for j in held { oof[j] = probeLogit(s, f, fit[j]) }
            }
            var loss = 0.0
            for (j, i) in fit.enumerated() { loss += CriticFit.softplus(oof[j]) - labels[i] * oof[j] }
            if loss < best.loss { best = (l2, loss, oof) }
        }
        report.probeL2 = best.l2
        report.probeOutOfFoldAUROC = CriticMetrics.auroc(scores: best.oof, labels: fit.map { rows[$0].correct })
        let (probeS, probeF) = try fitProbe(fit, best.l2)

        // ---- head features: the probe score out of fold on fit rows, from the full probe elsewhere
        var probeScore = [Double](repeating: 0, count: rows.count)
        for (j, i) in fit.enumerated() { probeScore[i] = best.oof[j] }
        for i in idx[1] + idx[2] { probeScore[i] = probeLogit(probeS, probeF, i) }
        func featureRow(_ i: Int) -> [Double] {
            var f = rows[i].observation.features
            f.probeScore = Float(probeScore[i])
            return f.vector.map(Double.init)
        }
        var xFit = fit.flatMap(featureRow)
        let headS = Standardizer(x: xFit, n: fit.count, d: F)
        headS.apply(&xFit, n: fit.count, d: F)
        let head = try CriticFit.logistic(x: xFit, y: fit.map { labels[$0] }, n: fit.count, d: F, l2: o.headL2)
        func headLogit(_ i: Int) -> Double {
            let x = featureRow(i)
            var z = head.bias
            for j in 0..<F { z += head.weights[j] * (x[j] - Double(headS.mean[j])) / Double(headS.std[j]) }
            return z
        }

        // ---- calibration on validation, scores on test
        let val = idx[1], test = idx[2]
        let valLogits = val.map(headLogit)
        let cal = try CriticCalibration.fit(kind: o.calibration, logits: valLogits, labels: val.map { rows[$0].correct })
        report.calibration = cal
        report.validation = CriticScores(probabilities: valLogits.map { cal.probability(logit: $0) }, labels: val.map { rows[$0].correct },
                                         bins: o.eceBins, draws: o.noiseDraws, seed: o.seed)
        let testLogits = test.map(headLogit)
        let testP = testLogits.map { cal.probability(logit: $0) }
        let testY = test.map { rows[$0].correct }
        report.test = CriticScores(probabilities: testP, labels: testY, bins: o.eceBins, draws: o.noiseDraws, seed: o.seed)
        report.testUncalibratedECE = CriticMetrics.ece(probabilities: testLogits.map(CriticFit.sigmoid), labels: testY, bins: o.eceBins)
        report.strata = CriticMetrics.aurocByStratum(scores: testP, labels: testY, strata: test.map { rows[$0].stratum.rawValue })
        let fitY = fit.map { rows[$0].correct }
        for (j, name) in CriticFeatures.names.enumerated() {
            let fitAUC = CriticMetrics.auroc(scores: fit.map { featureRow($0)[j] }, labels: fitY)
            let sign = fitAUC.isFinite && fitAUC < 0.5 ? -1 : 1
            let auc = CriticMetrics.auroc(scores: test.map { Double(sign) * featureRow($0)[j] }, labels: testY)
            report.singleFeatures.append((name, auc, sign))
        }
        report.confidentWrong = confidentWrongRates(rows: test.map { rows[$0] }, critic: testP)
        report.seconds = (Clock.nowMs() - t0) / 1000

        let critic = try Critic(featureScaling: headS, headWeights: head.weights.map { Float($0) }, headBias: Float(head.bias),
                                probeScaling: probeS, probeWeights: probeF.weights.map { Float($0) }, probeBias: Float(probeF.bias),
                                calibration: cal, settings: settings, fingerprint: fingerprint, training: report.json())
        return (critic, report)
    }
}

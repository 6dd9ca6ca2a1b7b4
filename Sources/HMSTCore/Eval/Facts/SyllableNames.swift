// SyllableNames: pronounceable invented names (lands, cities, people, rivers, languages) from a
// seeded syllable generator. Every name handed out is unique (case-insensitively) within one
// generator and avoids the names it was told are taken, such as the real countries and capitals.

/// Unbiased draws from an explicit RNG, the only randomness of the fact benchmark.
struct FactRandom {
    var rng: RNG

    /// A stream for one purpose of one seed: streams of one seed are unrelated, and the same
    /// (seed, stream) always gives the same draws.
    init(seed: UInt64, stream: UInt64) {
        rng = RNG(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ stream &* 0xD1B5_4A32_D192_ED03)
    }

    /// Uniform in 0..<n (n > 0), by rejection so no value is favoured.
    mutating func below(_ n: Int) -> Int {
        let bound = UInt64(n)
        let threshold = (0 &- bound) % bound
        while true {
            let r = rng.next()
            if r >= threshold { return Int(r % bound) }
        }
    }

    mutating func pick<T>(_ xs: [T]) -> T { xs[below(xs.count)] }

    mutating func chance(_ p: Double) -> Bool { rng.nextDouble() < p }

    /// Fisher-Yates.
    mutating func shuffle<T>(_ xs: inout [T]) {
        guard xs.count > 1 else { return }
        for i in stride(from: xs.count - 1, to: 0, by: -1) {
            xs.swapAt(i, below(i + 1))
        }
    }
}

struct SyllableNames {
    // A word is onset+vowel syllables and one optional final consonant ("Velmora", "Tarsk"):
    // clusters only open the word, so no unpronounceable runs form where syllables meet.
    static let firstOnsets = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
                              "br", "dr", "gr", "kr", "tr", "st", "th", "sh", "vr", "sk", "gl", "fl"]
    static let onsets = ["b", "d", "g", "k", "l", "m", "n", "r", "s", "t", "v", "z", "th", "nd", "rk", "lv", "st"]
    static let vowels = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "ou", "y"]
    static let finals = ["", "", "", "", "n", "r", "l", "s", "th", "m", "k", "rn", "sk", "nd", "sh"]
    static let landEndings = ["ia", "ora", "and", "ar", "esh", "ost", "ene", "um"]
    static let languageEndings = ["ic", "ese", "ish", "an", "i"]

    var random: FactRandom
    private(set) var taken: Set<String>

    /// `taken`: names already in use (any case), never handed out.
    init(random: FactRandom, taken: [String]) {
        self.random = random
        self.taken = Set(taken.map { $0.lowercased() })
    }

    /// 2 syllables, sometimes 3, capitalised, at most 10 letters.
    mutating func word() -> String {
        while true {
            var w = random.pick(SyllableNames.firstOnsets) + random.pick(SyllableNames.vowels)
            for _ in 0..<(random.chance(0.3) ? 2 : 1) { w += random.pick(SyllableNames.onsets) + random.pick(SyllableNames.vowels) }
            w += random.pick(SyllableNames.finals)
            if w.count <= 10 { return w.prefix(1).uppercased() + w.dropFirst() }
        }
    }

    /// A fresh name made by `make`, unique among everything handed out so far.
    mutating func unique(_ make: (inout SyllableNames) -> String) throws -> String {
        for _ in 0..<10_000 {
            let n = make(&self)
            if taken.insert(n.lowercased()).inserted { return n }
        }
        throw HMSTError.invalidArgument("ran out of distinct invented names (\(taken.count) in use); ask for fewer entities or distractors")
    }

    /// A word, half the time with a land-like ending in place of its last letter if a vowel.
    mutating func land() throws -> String {
        try unique { g in
            let w = g.word()
            return g.random.chance(0.5) ? w : SyllableNames.dropFinalVowel(w) + g.random.pick(SyllableNames.landEndings)
        }
    }

    mutating func city() throws -> String { try unique { $0.word() } }

    mutating func river() throws -> String { try unique { $0.word() } }

    /// "Mount Word"; the bare word is reserved too, so no city or river shares it.
    mutating func mountain() throws -> String { "Mount " + (try unique { $0.word() }) }

    /// "Given Surname"; the full name is unique, so two founders never share one.
    mutating func person() throws -> String {
        try unique { g in
            g.word() + " " + g.word()
        }
    }

    mutating func language() throws -> String {
        try unique { g in
            SyllableNames.dropFinalVowel(g.word()) + g.random.pick(SyllableNames.languageEndings)
        }
    }

    static func dropFinalVowel(_ w: String) -> String {
        guard let last = w.last, "aeiouy".contains(last) else { return w }
        return String(w.dropLast())
    }
}

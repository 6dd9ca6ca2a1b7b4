// LexicalTokenizer: how texts become terms for the BM25 index (BM25Index.swift). A term is a
// maximal run of ASCII letters, ASCII digits and non-ASCII UTF-8 bytes (so words of other
// scripts stay whole); everything else (ASCII space, punctuation, symbols) separates terms.
// ASCII letters are lowercased; nothing else is normalised (no stemming, no Unicode folding).
// Terms in `stopwords` (English function and question words, written for this project) are
// dropped: they carry no evidence for finding a fact and their postings are the longest.
// The scheme is versioned ("v1" below): an index built with another scheme is rebuilt.

public enum LexicalTokenizer {
    /// Written into memory manifests; a loader that finds another name rebuilds or refuses.
    public static let scheme = "ascii-lower-alnum-stop-v1"

    /// English function and question words dropped from texts and queries.
    public static let stopwords: Set<String> = [
        "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has", "have",
        "how", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "what",
        "when", "where", "which", "who", "whom", "whose", "why", "with",
    ]

    /// The terms of text in order, repeats kept (they are term frequencies).
    public static func terms(_ text: String, dropStopwords: Bool = true) -> [String] {
        var out: [String] = []
        var word: [UInt8] = []
        word.reserveCapacity(32)
        func flush() {
            guard !word.isEmpty else { return }
            let t = String(decoding: word, as: UTF8.self)
            if !dropStopwords || !stopwords.contains(t) { out.append(t) }
            word.removeAll(keepingCapacity: true)
        }
        for c in text.utf8 {
            switch c {
            case 0x41...0x5A: word.append(c | 0x20)        // A-Z -> a-z
            case 0x61...0x7A, 0x30...0x39, 0x80...0xFF: word.append(c)
            default: flush()
            }
        }
        flush()
        return out
    }
}

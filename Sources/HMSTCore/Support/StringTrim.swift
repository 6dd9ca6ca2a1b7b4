// Trimming and line splitting without Foundation: the line readers (facts, JSONL, /proc/cpuinfo) use them.

extension Substring {
    /// Without leading and trailing spaces, tabs and carriage returns.
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return s
    }
}

extension StringProtocol {
    /// The lines of a text ended by "\n" or "\r\n". Not split(separator: "\n"): "\r\n" is one
    /// Character to Swift, so a file with Windows line ends would be one line. Lone "\r" and
    /// Unicode line separators do not end a line (U+2028 may sit inside a JSON string).
    public func lines(omittingEmpty: Bool = true) -> [SubSequence] {
        split(omittingEmptySubsequences: omittingEmpty, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
    }
}

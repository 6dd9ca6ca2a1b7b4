// Paths: small path helpers without Foundation.

public enum Paths {
    /// An absolute, normalised form of `path` (relative paths against the working directory).
    public static func absolute(_ path: String) -> String {
        var full = path
        if !path.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: 4096)
            if getcwd(&buf, buf.count) != nil { full = String(cString: buf) + "/" + path }
        }
        var parts: [Substring] = []
        for p in full.split(separator: "/", omittingEmptySubsequences: true) {
            if p == "." { continue }
            if p == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(p)
        }
        return "/" + parts.joined(separator: "/")
    }

    public static func parent(_ path: String) -> String {
        let a = absolute(path)
        guard let i = a.lastIndex(of: "/"), i != a.startIndex else { return "/" }
        return String(a[..<i])
    }

    public static func fileName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

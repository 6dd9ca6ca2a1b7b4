// CountriesTable: Debian miscfiles' table of countries (/usr/share/misc/countries.gz), the real
// facts of the fact benchmark. One country a line, `#` comments:
//
//     UN code:ISO alpha-2:ISO alpha-3:name:capital        e.g. 004:AF:AFG:Afghanistan:Kabul
//
// Codes or the capital may be empty. A capital like "Porto-Novo (official capital), Cotonou
// (seat of government)" keeps its first city, "Porto-Novo".

public struct CountryRecord: Sendable, Equatable {
    public let unCode: String       // "004", or ""
    public let alpha2: String       // "AF", or ""
    public let alpha3: String       // "AFG", or ""
    public let name: String
    public let capital: String      // cleaned to one city, or ""
    public let line: Int            // 1-based, for messages
}

public enum CountriesTable {
    /// Where Debian's miscfiles puts the table, compressed and (on some systems) not.
    public static let defaultPaths = ["/usr/share/misc/countries.gz", "/usr/share/misc/countries"]

    /// The first default path that exists, or nil.
    public static func findDefault() -> String? { defaultPaths.first { FileIO.exists($0) } }

    /// Reads and parses a table, gzip or plain (by its magic). A missing file is NOT_FOUND;
    /// a corrupt or malformed one BAD_FORMAT, naming the line.
    public static func load(path: String) throws -> [CountryRecord] {
        // the miscfiles table is about 5 KB; 16 MiB is room for any real one
        let bytes = try Gzip.readMaybeCompressed(path, limit: 16 << 20)
        return try parse(bytes: bytes, name: path)
    }

    public static func parse(bytes: [UInt8], name: String) throws -> [CountryRecord] {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw HMSTError.badFormat("\(name): not valid UTF-8 text (is it the miscfiles countries table?)")
        }
        return try parse(text: text, name: name)
    }

    public static func parse(text: String, name: String) throws -> [CountryRecord] {
        var out = [CountryRecord]()
        var names = Set<String>()
        for (i, raw) in text.lines(omittingEmpty: false).enumerated() {
            let lineNo = i + 1
            let line = trim(raw.hasSuffix("\r") ? raw.dropLast() : raw)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ":", omittingEmptySubsequences: false).map { trim($0) }
            let at = "\(name):\(lineNo)"
            guard fields.count == 5 else {
                throw HMSTError.badFormat("\(at): expected 5 colon-separated fields (UN code:ISO alpha-2:ISO alpha-3:name:capital), found \(fields.count) in \"\(line.count > 200 ? line.prefix(200) + "..." : line)\"")
            }
            let (un, a2, a3, country, capital) = (fields[0], fields[1], fields[2], fields[3], fields[4])
            guard un.isEmpty || (un.count <= 3 && un.allSatisfy { $0.isASCII && $0.isNumber }) else {
                throw HMSTError.badFormat("\(at): UN code \"\(un)\" is not 1-3 digits")
            }
            guard isCode(a2, length: 2) else { throw HMSTError.badFormat("\(at): ISO alpha-2 code \"\(a2)\" is not 2 capital letters") }
            guard isCode(a3, length: 3) else { throw HMSTError.badFormat("\(at): ISO alpha-3 code \"\(a3)\" is not 3 capital letters") }
            guard !country.isEmpty else { throw HMSTError.badFormat("\(at): empty country name") }
            guard names.insert(country.lowercased()).inserted else {
                throw HMSTError.badFormat("\(at): country \"\(country)\" appears twice")
            }
            out.append(CountryRecord(unCode: un, alpha2: a2, alpha3: a3, name: country, capital: cleanCapital(capital), line: lineNo))
        }
        guard !out.isEmpty else { throw HMSTError.badFormat("\(name): no countries in the table (only comments or blank lines)") }
        return out
    }

    static func isCode(_ s: String, length: Int) -> Bool {
        s.isEmpty || (s.count == length && s.unicodeScalars.allSatisfy { $0.value >= 65 && $0.value <= 90 })
    }

    /// The first city of a capital field: text before a parenthesis, trimmed.
    static func cleanCapital(_ s: String) -> String {
        guard let paren = s.firstIndex(of: "(") else { return s }
        return trim(s[..<paren])
    }

    static func trim<S: StringProtocol>(_ s: S) -> String {
        var sub = Substring(s)
        while let c = sub.first, c == " " || c == "\t" { sub = sub.dropFirst() }
        while let c = sub.last, c == " " || c == "\t" { sub = sub.dropLast() }
        return String(sub)
    }
}

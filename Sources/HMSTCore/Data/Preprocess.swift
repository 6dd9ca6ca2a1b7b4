// Preprocess: `hmst preprocess`: stream text files into token shards with bounded memory.
// Input is read in 4 MiB blocks and cut into documents; batches of documents are encoded in
// parallel and appended to a ShardWriter. A document longer than maxDocumentBytes is cut
// there (BPE merges across the cut are lost; the option says so).

/// What the pipeline needs of a tokenizer.
public protocol DocumentEncoder {
    var vocabSize: Int { get }
    var eosId: Int32? { get }
    func encodeBatch(_ documents: [[UInt8]]) -> [[Int32]]
}

public enum DocumentSeparator: Sendable, Equatable {
    /// paragraphs: one or more empty lines end a document (default)
    case blankLine
    /// every line is a document
    case line
    /// every input file is one document (cut at maxDocumentBytes)
    case file
    /// a line equal to this string ends a document (e.g. "%" for fortune files)
    case marker(String)

    /// blankline (paragraph), line, file, or any other text as a marker line; a marker must be
    /// one non-empty line (one holding a newline could never match a line).
    public init(parsing s: String) throws {
        switch s {
        case "blankline", "paragraph": self = .blankLine
        case "line": self = .line
        case "file": self = .file
        default:
            guard !s.isEmpty, !s.utf8.contains(0x0A), !s.utf8.contains(0x0D) else {
                throw HMSTError.invalidArgument("document separator \"\(s)\" must be blankline, line, file or a marker line (non-empty, without a newline)")
            }
            self = .marker(s)
        }
    }
}

public struct PreprocessOptions: Sendable {
    public var separator = DocumentSeparator.blankLine
    public var shardTokens = 1 << 26
    /// documents held before they are encoded together: at most this many, and at most
    /// batchBytes of text (long documents would otherwise hold 2,048 x 4 MiB)
    public var batchDocuments = 2048
    public var batchBytes = 64 << 20
    public var maxDocumentBytes = 1 << 22
    public init() {}
}

public struct PreprocessSummary: Sendable {
    public var bytes = 0
    public var documents = 0
    public var tokens = 0
    public var shards = 0
    public var seconds = 0.0
}

public enum Preprocessor {
    /// progress(bytesDone, bytesTotal) -> false cancels. beforeMetadata runs once the shards are
    /// written and before metadata.json (the command writes a tokenizer it trained there, so a
    /// run that fails earlier leaves the output's old tokenizer alone).
    public static func run(inputs: [String], output: String, encoder: DocumentEncoder, tokenizerPath: String?,
                           options: PreprocessOptions = PreprocessOptions(), beforeMetadata: () throws -> Void = {},
                           progress: (Int, Int) -> Bool = { _, _ in true }) throws -> PreprocessSummary {
        guard !inputs.isEmpty else { throw HMSTError.invalidArgument("no input files") }
        var totalBytes = 0
        for path in inputs { totalBytes += try FileIO.fileSize(path) }
        // checked before the output is touched (a dataset already there would be replaced)
        guard totalBytes > 0 || inputs.contains(where: { !FileIO.isRegularFile($0) }) else {
            throw HMSTError.invalidArgument("the input files are empty: nothing to preprocess")
        }
        let t0 = Clock.nowMs()
        let writer = try ShardWriter(directory: output, vocabSize: encoder.vocabSize, eosId: encoder.eosId,
                                     shardTokens: options.shardTokens)
        var summary = PreprocessSummary()
        var pending: [[UInt8]] = []
        var pendingBytes = 0
        func drain() throws {
            guard !pending.isEmpty else { return }
            for doc in encoder.encodeBatch(pending) { try writer.append(document: doc) }
            summary.documents += pending.count
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
        }
        for path in inputs {
            var splitter = DocumentSplitter(separator: options.separator, maxBytes: options.maxDocumentBytes)
            try forEachBlock(path) { block in
                summary.bytes += block.count
                splitter.feed(block) { pending.append($0); pendingBytes += $0.count }
                if pending.count >= options.batchDocuments || pendingBytes >= options.batchBytes { try drain() }
                guard progress(summary.bytes, totalBytes) else { throw HMSTError(.cancelled, "preprocessing cancelled") }
            }
            splitter.finish { pending.append($0) }
            try drain()
        }
        try writer.flush()
        try beforeMetadata()
        try writer.finish(tokenizer: tokenizerPath, sources: inputs.map(Paths.absolute))
        summary.tokens = writer.totalTokens
        summary.shards = (try? TokenDataset(directory: output).shards.count) ?? 0
        summary.seconds = (Clock.nowMs() - t0) / 1000
        return summary
    }

    static func forEachBlock(_ path: String, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HMSTError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1 << 22)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HMSTError.io("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { return }
            try body(buf[0..<n])
        }
    }
}

/// Cuts a byte stream into documents. Documents keep their inner newlines; separators
/// (blank lines, marker lines, the newline of .line) are not part of any document, and
/// documents that are only whitespace are dropped.
struct DocumentSplitter {
    let separator: DocumentSeparator
    let maxBytes: Int
    var current: [UInt8] = []
    var line: [UInt8] = []

    init(separator: DocumentSeparator, maxBytes: Int) {
        self.separator = separator
        self.maxBytes = max(1, maxBytes)
    }

    mutating func feed(_ block: ArraySlice<UInt8>, emit: ([UInt8]) -> Void) {
        if case .file = separator {
            current += block
            while current.count >= maxBytes {
                emit(Array(current[0..<maxBytes]))
                current.removeFirst(maxBytes)
            }
            return
        }
        for b in block {
            line.append(b)
            if b == 0x0A { endLine(emit: emit) }
            if current.count + line.count >= maxBytes {  // a runaway document: cut it
                current += line
                line.removeAll(keepingCapacity: true)
                emitCurrent(emit)
            }
        }
    }

    mutating func finish(emit: ([UInt8]) -> Void) {
        if !line.isEmpty {
            if case .marker = separator, isMarker(line) { line.removeAll() } else { current += line }
            line.removeAll()
        }
        emitCurrent(emit)
    }

    private mutating func endLine(emit: ([UInt8]) -> Void) {
        switch separator {
        case .file: break
        case .line:
            line.removeLast()  // the newline
            current = line
            emitCurrent(emit)
        case .blankLine:
            if line.allSatisfy({ $0 == 0x0A || $0 == 0x0D || $0 == 0x20 || $0 == 0x09 }) {
                emitCurrent(emit)
            } else {
                current += line
            }
        case .marker:
            if isMarker(line) { emitCurrent(emit) } else { current += line }
        }
        line.removeAll(keepingCapacity: true)
    }

    private func isMarker(_ l: [UInt8]) -> Bool {
        guard case let .marker(m) = separator else { return false }
        var end = l.count
        while end > 0 && (l[end - 1] == 0x0A || l[end - 1] == 0x0D) { end -= 1 }
        return Array(l[0..<end]) == Array(m.utf8)
    }

    private mutating func emitCurrent(_ emit: ([UInt8]) -> Void) {
        // drop trailing newlines; skip whitespace-only documents
        while let last = current.last, last == 0x0A || last == 0x0D { current.removeLast() }
        if current.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D) }) { emit(current) }
        current.removeAll(keepingCapacity: true)
    }
}

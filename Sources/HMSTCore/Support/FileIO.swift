// FileIO: the core's file primitives without Foundation. Reads whole files or maps them
// read-only; writes atomically (temp file in the same directory, fsync, rename, fsync of the
// directory), so a crash leaves either the old file or the new one, never a torn one.

public enum FileIO {
    static func errnoMessage() -> String { String(cString: strerror(errno)) }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The file type bits of what path names (links followed), nil when it cannot be stat'ed.
    static func fileType(_ path: String) -> mode_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
    }

    public static func isDirectory(_ path: String) -> Bool { fileType(path) == S_IFDIR }

    public static func isRegularFile(_ path: String) -> Bool { fileType(path) == S_IFREG }

    public static func fileSize(_ path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw HMSTError.io("cannot stat \(path): \(errnoMessage())") }
        return Int(st.st_size)
    }

    /// Creates the directory and its parents (mode 0755); existing ones are fine.
    public static func makeDirectories(_ path: String) throws {
        guard !path.isEmpty else { throw HMSTError.invalidArgument("an empty directory path") }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += part + "/"
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw HMSTError.io("cannot create directory \(prefix): \(errnoMessage())")
            }
        }
        guard isDirectory(path) else { throw HMSTError.io("\(path) exists and is not a directory") }
    }

    /// A whole file. `regularOnly`: a file the library itself wrote (a manifest), where a FIFO or
    /// device in its place is damage and must not block the open; without it, pipes and
    /// process substitutions (`--input <(cmd)`) are read like files.
    public static func readAll(_ path: String, regularOnly: Bool = false) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (regularOnly ? O_NONBLOCK : 0))
        guard fd >= 0 else {
            throw errno == ENOENT ? HMSTError.notFound("\(path): no such file") : HMSTError.io("cannot open \(path): \(errnoMessage())")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw HMSTError.io("cannot stat \(path): \(errnoMessage())") }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw HMSTError.io("\(path) is a directory, not a file") }
        if regularOnly, (st.st_mode & S_IFMT) != S_IFREG { throw HMSTError.io("\(path) is not a regular file") }
        var out = [UInt8]()
        out.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HMSTError.io("cannot read \(path): \(errnoMessage())")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    public static func readText(_ path: String, regularOnly: Bool = false) throws -> String {
        String(decoding: try readAll(path, regularOnly: regularOnly), as: UTF8.self)
    }

    /// Where a write to `path` goes. A regular file (or nothing yet) is replaced atomically; a
    /// symbolic link is followed, so the link stays and the file it names is replaced; a
    /// device, FIFO or socket (/dev/null, /dev/stdout, a pipe) is written straight through
    /// (`direct`), since a rename over it would replace the node itself with a plain file (as
    /// root, /dev/null); a directory is an error.
    static func outputTarget(_ path: String) throws -> (path: String, direct: Bool) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return (path, false) }
        var target = path
        if (st.st_mode & S_IFMT) == S_IFLNK {
            guard let r = realpath(path, nil) else { throw HMSTError.io("\(path) is a symbolic link to a missing file: \(errnoMessage())") }
            target = String(cString: r)
            free(r)
            guard stat(target, &st) == 0 else { throw HMSTError.io("cannot stat \(target): \(errnoMessage())") }
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return (target, false)
        case S_IFDIR: throw HMSTError.io("\(path) is a directory, not a file to write")
        default: return (target, true)
        }
    }

    /// Opens a device or FIFO (outputTarget's `direct`) for writing: a FIFO no process reads
    /// is an error now rather than a wait without end (O_NONBLOCK, cleared once open).
    static func openDirect(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw HMSTError.io(errno == ENXIO ? "\(path) is a FIFO that no process reads" : "cannot open \(path): \(errnoMessage())")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ name: String) throws {
        var off = 0
        while off < bytes.count {
            let n = write(fd, bytes.baseAddress! + off, min(bytes.count - off, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw HMSTError.io("cannot write \(name): \(errnoMessage())")
            }
            off += n
        }
    }

    /// Writes `bytes` to `path` atomically (AtomicFileWriter: a temp file beside it, or beside
    /// the file a symbolic link names; a device or FIFO is written straight through).
    public static func writeAtomically(_ path: String, _ bytes: UnsafeRawBufferPointer) throws {
        let w = try AtomicFileWriter(path: path)
        try w.write(bytes)
        try w.commit()
    }

    public static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAtomically(path, $0) }
    }

    public static func writeAtomically(_ path: String, text: String) throws {
        try writeAtomically(path, Array(text.utf8))
    }

    /// The absolute path `path` names with every link resolved (realpath), nil when it does not
    /// exist.
    public static func resolvedPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// Whether `path` is `directory` or lies inside it, both with every link resolved (false
    /// when either does not exist).
    public static func lies(_ path: String, within directory: String) -> Bool {
        guard let p = resolvedPath(path), let d = resolvedPath(directory) else { return false }
        return isSameOrBelow(p, d)
    }

    /// The same for paths already resolved.
    public static func isSameOrBelow(_ path: String, _ directory: String) -> Bool {
        path == directory || path.hasPrefix(directory + "/")
    }

    /// Removes a file, or a directory with everything in it; a symbolic link is removed, not
    /// followed; nothing there is no error.
    public static func removeTree(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in listDirectory(path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 else { throw HMSTError.io("cannot remove \(path): \(errnoMessage())") }
        } else {
            guard unlink(path) == 0 else { throw HMSTError.io("cannot remove \(path): \(errnoMessage())") }
        }
    }

    /// Whether two paths name the same existing file or directory (device and inode: links,
    /// "./" and relative spellings included).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// INVALID_ARGUMENT when writing an output would replace one of the inputs (a report
    /// written over the data it reports on, a tokenizer over its corpus).
    public static func refuseOverwriting(inputs: [String], outputs: [String]) throws {
        for o in outputs {
            for i in inputs where sameFile(o, i) {
                throw HMSTError.invalidArgument("the output \(o) is the input \(i): write it elsewhere")
            }
        }
    }

    /// Names of a directory's entries (no . and ..); none when it cannot be opened.
    public static func listDirectory(_ directory: String) -> [String] {
        guard let d = opendir(directory) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: &e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// fsync the directory holding `path` so the rename itself is durable (best effort).
    static func syncDirectory(of path: String) {
        let dir: String
        if let slash = path.lastIndex(of: "/") { dir = slash == path.startIndex ? "/" : String(path[..<slash]) } else { dir = "." }
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

/// A read-only memory map of a whole file. Unmapped on deinit.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer?
    public let count: Int

    public init(path: String) throws {
        self.path = path
        // O_NONBLOCK: a FIFO put where a file should be would block open() until some writer
        // came; non-blocking, it opens and fails the regular-file check below (no effect on files)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw errno == ENOENT ? HMSTError.notFound("\(path): no such file") : HMSTError.io("cannot open \(path): \(FileIO.errnoMessage())")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw HMSTError.io("cannot stat \(path): \(FileIO.errnoMessage())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw HMSTError.io("\(path) is not a regular file") }
        count = Int(st.st_size)
        if count == 0 {
            base = nil
            return
        }
        guard let p = MappedFile.mapAligned(fd: fd, count: count) ?? mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw HMSTError.io("cannot map \(path): \(FileIO.errnoMessage())")
        }
        base = UnsafeRawPointer(p)
    }

    /// Files of 4 MiB or more are mapped at a 2 MiB-aligned address and advised MADV_HUGEPAGE:
    /// where the kernel keeps the file's pages in 2 MiB folios (read after the mapping, on a
    /// filesystem with large folios: ext4 and xfs on Linux 6.x), they are then mapped whole, one
    /// TLB entry for 512 pages (a 385 MB GGUF read cold: 366 MiB of it PMD-mapped, against
    /// 2 MiB unaligned). nil when the reservation fails (the caller maps plainly).
    private static func mapAligned(fd: Int32, count: Int) -> UnsafeMutableRawPointer? {
        let huge = 2 << 20
        guard count >= 2 * huge,
              let r = mmap(nil, count + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), r != MAP_FAILED else { return nil }
        let start = Int(bitPattern: r), aligned = (start + huge - 1) & ~(huge - 1)
        guard let p = mmap(UnsafeMutableRawPointer(bitPattern: aligned), count, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0),
              p != MAP_FAILED else {
            munmap(r, count + huge)
            return nil
        }
        // the reservation's slack on either side goes back
        if aligned > start { munmap(r, aligned - start) }
        let end = aligned + count, reservedEnd = start + count + huge
        let tail = (end + Int(getpagesize()) - 1) & ~(Int(getpagesize()) - 1)
        if reservedEnd > tail { munmap(UnsafeMutableRawPointer(bitPattern: tail), reservedEnd - tail) }
        _ = madvise(p, count, MADV_HUGEPAGE)
        return p
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }
}

/// A file written in pieces and published atomically: data goes to `path.tmp.<pid>` beside
/// it; commit() fsyncs and renames; deinit without commit removes the temp file. A symbolic
/// link, a device or a FIFO is handled as FileIO.writeAtomically does (outputTarget).
public final class AtomicFileWriter {
    public let path: String
    let target: String
    let tmp: String
    /// a device or FIFO: written straight through, nothing to rename
    let direct: Bool
    var fd: Int32
    var committed = false

    public init(path: String) throws {
        self.path = path
        (target, direct) = try FileIO.outputTarget(path)
        tmp = direct ? target : "\(target).tmp.\(getpid())"
        fd = direct ? try FileIO.openDirect(target) : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw HMSTError.io(direct ? "cannot open \(path): \(FileIO.errnoMessage())"
                                      : "cannot write \(path): creating \(tmp): \(FileIO.errnoMessage())")
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { try FileIO.writeAll(fd, bytes, tmp) }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    public func commit() throws {
        if direct {
            close(fd)
            fd = -1
            committed = true
            return
        }
        guard fsync(fd) == 0 else { throw HMSTError.io("fsync of \(tmp) failed: \(FileIO.errnoMessage())") }
        close(fd)
        fd = -1
        guard rename(tmp, target) == 0 else {
            let m = FileIO.errnoMessage()
            unlink(tmp)
            throw HMSTError.io("cannot rename \(tmp) to \(target): \(m)")
        }
        committed = true
        FileIO.syncDirectory(of: target)
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed && !direct { unlink(tmp) }
    }
}

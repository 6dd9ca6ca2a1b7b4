// MemoryDirectoryLock: one writer at a time on a memory directory. A MemoryStore loads the
// tiers, changes them in memory and saves them whole; two processes doing that at once lost
// the first one's entries (the last save wins) and could delete files the surviving manifest
// names (each save removes the files its manifest no longer names). A store holds an advisory
// flock on DIR/.hmst-lock from before it reads the tiers until it is released: exclusive for a
// store that may save, shared for one opened read-only (evaluation, the engine, stats), so
// readers run together and a writer runs alone. Another process waits for it up to `wait`
// seconds (HMST_MEMORY_LOCK_WAIT, default 10), then gets an error naming the holder's pid.
// Within one process the lock is shared by every store of the directory (a flock is per open
// file, so a second open would wait for itself); a writer store in a process holding it only
// shared is refused (a flock's conversion drops the shared lock first). A directory whose lock file cannot be opened for writing (a read-only mount,
// another user's) is opened read-only and locked shared; failing that, a read-only store goes
// on unlocked with a warning. The tier-level C calls (hmst_episodic_load/save,
// hmst_semantic_load/save) take no lock: their callers own the files.
import Glibc

final class MemoryDirectoryLock: @unchecked Sendable {
    static let fileName = ".hmst-lock"

    private enum Entry {
        case pending                                             // a thread of ours is acquiring it
        case held(fd: Int32, holders: Int, exclusive: Bool, inode: (UInt64, UInt64))
    }
    private static let held = Locked<[String: Entry]>([:])

    let key: String
    /// the open file this holder's lock lives on
    let fd: Int32

    private init(key: String, fd: Int32) { self.key = key; self.fd = fd }

    /// Seconds to wait for another process's lock.
    static var defaultWait: Double {
        guard let s = getenv("HMST_MEMORY_LOCK_WAIT").map({ String(cString: $0) }), let v = Double(s), v.isFinite, v >= 0 else { return 10 }
        return min(v, 86400)
    }

    /// The lock of an existing directory (nil: a read-only store of a directory that cannot be
    /// locked, said in the log), shared with this process's other holders.
    static func acquire(_ directory: String, exclusive: Bool = true, wait: Double = defaultWait) throws -> MemoryDirectoryLock? {
        guard let resolved = FileIO.resolvedPath(directory) else { throw HMSTError.notFound("\(directory): no such memory directory") }
        let path = resolved + "/" + fileName
        // keyed by the directory itself (device and inode), so one seen through two paths or
        // mounts (a bind mount) is one lock in this process, not two that wait on each other
        let dirInode = inodeOf(path: resolved)
        let key = "\(dirInode.0):\(dirInode.1)"
        let deadline = Clock.nowMs() + wait * 1000
        // join this process's lock, or mark the directory pending and take it from the file
        while true {
            enum Step { case joined(Int32), mine, sharedHere, waitForThread }
            let step = held.withLock { h -> Step in
                switch h[key] {
                case nil:
                    h[key] = .pending
                    return .mine
                case .pending?:
                    return .waitForThread
                case let .held(fd, holders, ex, inode)?:
                    // a directory removed and made again under the same path is another lock
                    guard inodeOf(path: path) == inode else {
                        h[key] = .pending   // the old fd stays with its holders (closed by the last)
                        orphans[fd] = holders
                        return .mine
                    }
                    guard ex || !exclusive else { return .sharedHere }
                    h[key] = .held(fd: fd, holders: holders + 1, exclusive: ex, inode: inode)
                    return .joined(fd)
                }
            }
            switch step {
            case .joined(let fd): return MemoryDirectoryLock(key: key, fd: fd)
            case .waitForThread:
                guard Clock.nowMs() < deadline else {
                    throw HMSTError.io("the memory directory \(directory) is being locked by another thread of this process (waited \(describe(wait)))")
                }
                usleep(5_000)
                continue
            case .sharedHere:
                // converting a flock from shared to exclusive drops the shared lock first (and
                // keeps none when it fails): this process's readers would hold nothing meanwhile
                throw HMSTError.invalidArgument("a read-only store of the memory directory \(directory) is open in this process: "
                                                + "release it before opening one that writes")
            case .mine:
                var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
                if fd < 0 { fd = open(path, O_RDONLY | O_CLOEXEC) }   // another user's file, a read-only mount
                guard fd >= 0 else {
                    let why = FileIO.errnoMessage()
                    held.withLock { $0[key] = nil }
                    if exclusive { throw HMSTError.io("cannot open \(path) to lock the memory directory: \(why)") }
                    Log.warn("memory directory \(directory): cannot open \(path) (\(why)); reading it unlocked")
                    return nil
                }
                do {
                    try lockFile(fd, path: path, directory: directory, exclusive: exclusive, deadline: deadline, wait: wait)
                } catch {
                    close(fd)
                    held.withLock { $0[key] = nil }
                    throw error
                }
                // the file locked must still be the lock file: a holder that removed the directory
                // (and made it again) while this one waited released a lock on a deleted file
                guard inodeOf(fd: fd) == inodeOf(path: path) else {
                    close(fd)
                    held.withLock { $0[key] = nil }
                    continue
                }
                if exclusive {
                    // the holder's pid, for the message another process gets
                    let pid = Array("\(getpid())\n".utf8)
                    _ = ftruncate(fd, 0)
                    _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                }
                let inode = inodeOf(fd: fd)
                held.withLock { $0[key] = .held(fd: fd, holders: 1, exclusive: exclusive, inode: inode) }
                return MemoryDirectoryLock(key: key, fd: fd)
            }
        }
    }

    /// Holders of each lock whose directory was removed and made again (by fd), closed by the last.
    nonisolated(unsafe) private static var orphans: [Int32: Int] = [:]

    private static func lockFile(_ fd: Int32, path: String, directory: String, exclusive: Bool, deadline: Double, wait: Double) throws {
        while flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else { throw HMSTError.io("cannot lock \(path): \(FileIO.errnoMessage())") }
            guard Clock.nowMs() < deadline else {
                var buf = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &buf, 31, 0)
                let digits = n > 0 ? String(decoding: buf[..<n].filter { $0 >= 48 && $0 <= 57 }, as: UTF8.self) : ""
                let who = digits.isEmpty ? "another process" : "process \(digits)"
                throw HMSTError.io("the memory directory \(directory) is in use by \(who) (a server, or another hmst command) "
                                   + "after waiting \(describe(wait)): one writer at a time works on a memory directory "
                                   + "(readers share it; HMST_MEMORY_LOCK_WAIT sets the wait)")
            }
            usleep(20_000)
        }
    }

    private static func describe(_ wait: Double) -> String { wait >= 1 || wait == 0 ? "\(Int(wait)) s" : "\(Int(wait * 1000)) ms" }

    private static func inodeOf(fd: Int32) -> (UInt64, UInt64) {
        var st = stat()
        return fstat(fd, &st) == 0 ? (UInt64(st.st_dev), UInt64(st.st_ino)) : (0, 0)
    }

    private static func inodeOf(path: String) -> (UInt64, UInt64) {
        var st = stat()
        return stat(path, &st) == 0 ? (UInt64(st.st_dev), UInt64(st.st_ino)) : (0, 0)
    }

    deinit {
        MemoryDirectoryLock.held.withLock { h in
            if let n = MemoryDirectoryLock.orphans[fd] {   // a holder of a removed directory's lock
                if n > 1 { MemoryDirectoryLock.orphans[fd] = n - 1 } else { MemoryDirectoryLock.orphans[fd] = nil; close(fd) }
            } else if case let .held(hfd, holders, ex, inode)? = h[key], hfd == fd {
                if holders > 1 {
                    h[key] = .held(fd: fd, holders: holders - 1, exclusive: ex, inode: inode)
                } else {
                    h[key] = nil
                    close(fd)   // releases the flock
                }
            }
        }
    }
}

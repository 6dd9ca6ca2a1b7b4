// MemoryDirectoryLock: one process at a time works on a memory directory. A MemoryStore loads
// the tiers, changes them in memory and saves them whole; two processes doing that at once
// lost the first one's entries (the last save wins) and could delete files the surviving
// manifest names (each save removes the files its manifest no longer names). The store holds
// an exclusive advisory lock (flock) on DIR/.hmst-lock from before it reads the tiers until it
// is released; another process waits for it up to `wait` seconds (HMST_MEMORY_LOCK_WAIT,
// default 10), then gets an error naming the holder's pid. Within one process the lock is
// shared by every store of the directory (a flock is per open file, so a second open would
// wait for itself). The tier-level C calls (hmst_episodic_load/save, hmst_semantic_load/save)
// take no lock: their callers own the files.
import Glibc

final class MemoryDirectoryLock: @unchecked Sendable {
    static let fileName = ".hmst-lock"
    private static let held = Locked<[String: (fd: Int32, holders: Int)]>([:])
    /// Serialises acquisitions in this process, so two threads never open the file twice.
    private static let acquiring = Locked(())

    let key: String

    private init(key: String) { self.key = key }

    /// Seconds to wait for another process's lock.
    static var defaultWait: Double {
        guard let s = getenv("HMST_MEMORY_LOCK_WAIT").map({ String(cString: $0) }), let v = Double(s), v.isFinite, v >= 0 else { return 10 }
        return min(v, 86400)
    }

    /// The lock of an existing directory, shared with this process's other holders.
    static func acquire(_ directory: String, wait: Double = defaultWait) throws -> MemoryDirectoryLock {
        try acquiring.withLock { _ in try acquireSerialised(directory, wait: wait) }
    }

    private static func acquireSerialised(_ directory: String, wait: Double) throws -> MemoryDirectoryLock {
        guard let key = FileIO.resolvedPath(directory) else { throw HMSTError.notFound("\(directory): no such memory directory") }
        let taken = held.withLock { h -> Bool in
            guard let e = h[key] else { return false }
            h[key] = (e.fd, e.holders + 1)
            return true
        }
        if taken { return MemoryDirectoryLock(key: key) }
        let path = key + "/" + fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HMSTError.io("cannot open \(path) to lock the memory directory: \(FileIO.errnoMessage())") }
        let deadline = Clock.nowMs() + wait * 1000
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let why = FileIO.errnoMessage()
                close(fd)
                throw HMSTError.io("cannot lock \(path): \(why)")
            }
            guard Clock.nowMs() < deadline else {
                var buf = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &buf, 31, 0)
                close(fd)
                let digits = n > 0 ? String(decoding: buf[..<n].filter { $0 >= 48 && $0 <= 57 }, as: UTF8.self) : ""
                let pid = digits.isEmpty ? "?" : digits
                throw HMSTError.io("the memory directory \(directory) is in use by process \(pid) (a server, or another hmst command) "
                                   + "after waiting \(Int(wait)) s: one process works on a memory directory at a time (HMST_MEMORY_LOCK_WAIT sets the wait)")
            }
            usleep(20_000)
        }
        // the holder's pid, for the message another process gets
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        held.withLock { $0[key] = (fd, 1) }
        return MemoryDirectoryLock(key: key)
    }

    deinit {
        MemoryDirectoryLock.held.withLock { h in
            guard let e = h[key] else { return }
            if e.holders > 1 {
                h[key] = (e.fd, e.holders - 1)
            } else {
                h[key] = nil
                close(e.fd)   // releases the flock
            }
        }
    }
}

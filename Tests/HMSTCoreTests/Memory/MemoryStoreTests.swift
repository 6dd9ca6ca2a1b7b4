// MemoryStore: the directory layout (episodic/ and semantic/), merged search across tiers,
// removal with unknown ids reported, and saving only what the store holds.
import XCTest
@testable import HMSTCore

final class MemoryStoreTests: XCTestCase {
    func testTiersSearchRemoveAndSave() throws {
        let model = try byteModel()
        let dir = tempDirectory("memory-store")
        defer { removeTree(dir) }
        XCTAssertThrowsError(try MemoryStore(directory: dir, mustExist: true)) { XCTAssertTrue("\($0)".contains("no such memory directory")) }
        let empty = try MemoryStore(directory: dir)
        try empty.save()
        XCTAssertFalse(FileIO.exists(dir))   // nothing held, nothing written
        XCTAssertEqual(try empty.search(text: "x", model: model, k: 3), [])

        let store = try MemoryStore(directory: dir)
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        let epi = try store.episodic(creatingFor: model, config: c)
        let e1 = try epi.add(text: "the cat sat on the mat", model: model)
        _ = try epi.add(text: "stock prices fell", model: model)
        let sem = try store.semantic(creatingFor: model, description: "Flat")
        let s1 = try sem.add(text: "the cat sat on the mat", model: model)
        _ = try sem.add(text: "bread and butter", model: model)
        XCTAssertTrue(try store.episodic(creatingFor: model) === epi)   // made once
        try store.save()
        XCTAssertTrue(FileIO.exists(dir + "/episodic/episodic.json") && FileIO.exists(dir + "/semantic/memory.json"))

        let again = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertEqual(again.count, 4)
        // per tier, then both merged by score: the exact text is the best hit of each tier (cosine 1)
        let e = try again.search(text: "the cat sat on the mat", model: model, tier: .episodic, k: 5)
        XCTAssertEqual(e.map(\.tier), [.episodic, .episodic])
        XCTAssertEqual(e.first?.id, e1)
        let both = try again.search(text: "the cat sat on the mat", model: model, tier: .both, k: 3)
        XCTAssertEqual(both.count, 3)
        XCTAssertEqual(Set(both.prefix(2).map(\.tier)), [.episodic, .semantic])
        XCTAssertEqual(both.prefix(2).map(\.text), ["the cat sat on the mat", "the cat sat on the mat"])
        XCTAssertTrue(zip(both, both.dropFirst()).allSatisfy { $0.score >= $1.score })
        // removal reports unknown ids per tier; both is refused
        let r = try again.remove(ids: [s1, 999], tier: .semantic)
        XCTAssertEqual(r.removed, 1)
        XCTAssertEqual(r.unknownIds, [999])
        let re = try again.remove(ids: [e1, 555, 555], tier: .episodic)
        XCTAssertEqual(re.removed, 1)
        XCTAssertEqual(re.unknownIds, [555])
        XCTAssertThrowsError(try again.remove(ids: [1], tier: .both))
        try again.save(tier: .semantic)
        // only the semantic removal reached the disk
        let third = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertEqual(third.semantic?.count, 1)
        XCTAssertEqual(third.episodic?.count, 2)
    }

    /// One process at a time: another holder of DIR/.hmst-lock (here an open file of its own,
    /// as another process has) makes opening wait, then fail naming its pid; stores of one
    /// process share the lock, and releasing the last frees it.
    func testOneProcessWorksOnADirectoryAtATime() throws {
        let model = try byteModel()
        let dir = tempDirectory("memory-lock")
        defer { removeTree(dir) }
        var fd: Int32 = -1
        do {
            let store = try MemoryStore(directory: dir)
            _ = try store.semantic(creatingFor: model, description: "Flat").add(text: "bread", model: model)
            try store.save()   // makes the directory and locks it
            let again = try MemoryStore(directory: dir, mustExist: true)   // this process: shared
            XCTAssertEqual(again.count, 1)
            fd = open(dir + "/" + MemoryDirectoryLock.fileName, O_RDWR)
            XCTAssertNotEqual(flock(fd, LOCK_EX | LOCK_NB), 0)   // held by the stores
            withExtendedLifetime((store, again)) {}
        }
        defer { close(fd) }
        var stores: [MemoryStore] = []
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)      // both released
        XCTAssertEqual(pwrite(fd, "4242\n", 5, 0), 5)
        let t0 = Clock.nowMs()
        XCTAssertThrowsError(try MemoryDirectoryLock.acquire(dir, wait: 0.2)) { e in
            XCTAssertEqual((e as? HMSTError)?.status, .io)
            XCTAssertTrue("\(e)".contains("in use by process 4242"), "\(e)")
        }
        XCTAssertGreaterThanOrEqual(Clock.nowMs() - t0, 200)
        // another process reading (a shared lock): readers join it, a writer waits then fails
        XCTAssertEqual(flock(fd, LOCK_SH | LOCK_NB), 0)
        do {
            let reader = try MemoryStore(directory: dir, readOnly: true)
            XCTAssertEqual(reader.count, 1)
            XCTAssertThrowsError(try reader.save()) { XCTAssertTrue("\($0)".contains("read-only"), "\($0)") }
        }
        XCTAssertThrowsError(try MemoryDirectoryLock.acquire(dir, exclusive: true, wait: 0.1)) { e in
            XCTAssertTrue("\(e)".contains("in use by") && "\(e)".contains("100 ms"), "\(e)")
        }
        flock(fd, LOCK_UN)
        stores.append(try MemoryStore(directory: dir, mustExist: true))
        XCTAssertEqual(stores[0].count, 1)
        // a reader of this process, then a writer of this process: refused (converting the flock
        // would drop the readers' shared lock first); a reader joins a writer
        stores.removeAll()
        do {
            let reader = try MemoryStore(directory: dir, readOnly: true)
            XCTAssertEqual(flock(fd, LOCK_SH | LOCK_NB), 0)   // shared
            flock(fd, LOCK_UN)
            XCTAssertThrowsError(try MemoryStore(directory: dir)) { XCTAssertTrue("\($0)".contains("read-only store"), "\($0)") }
            withExtendedLifetime(reader) {}
        }
        do {
            let writer = try MemoryStore(directory: dir)
            let reader = try MemoryStore(directory: dir, readOnly: true)
            XCTAssertNotEqual(flock(fd, LOCK_SH | LOCK_NB), 0)   // exclusive
            withExtendedLifetime((reader, writer)) {}
        }
        // a directory removed and made again under the same path is locked anew
        removeTree(dir)
        try FileIO.makeDirectories(dir)
        let fresh = try MemoryStore(directory: dir)
        let fd2 = open(dir + "/" + MemoryDirectoryLock.fileName, O_RDWR)
        defer { close(fd2) }
        XCTAssertNotEqual(flock(fd2, LOCK_EX | LOCK_NB), 0)   // held by `fresh`, on the new file
        withExtendedLifetime(fresh) {}
    }
}

// Owners of memory entries (for the server's per-user memory): the owner survives a save and a
// load in both tiers, files without owners (written before owners existed) still load with
// owner "", searches see only the owner's entries, and removing an owner removes only theirs.
import XCTest
@testable import HMSTCore

final class MemoryOwnerTests: XCTestCase {
    func testMetadataLinesWithAndWithoutOwner() throws {
        // a line as written before owners existed: no "owner" key
        let old = Array(#"{"id":"7","text":"t","source":"s","timestamp":1.5}"#.utf8) + [0x0A]
        let decoded = try MemoryMetadataLines.decode(old, source: "old.jsonl")
        XCTAssertEqual(decoded[7]?.owner, "")
        XCTAssertEqual(decoded[7]?.text, "t")
        // owner "" is not written, so owner-less files are byte-identical to the old format
        XCTAssertEqual(MemoryMetadataLines.encode(decoded), old)
        var m = MemoryMetadata(text: "x", source: "", timestamp: 2, owner: "alice")
        let lines = MemoryMetadataLines.encode([3: m])
        XCTAssertEqual(String(decoding: lines, as: UTF8.self), #"{"id":"3","text":"x","source":"","timestamp":2.0,"owner":"alice"}"# + "\n")
        XCTAssertEqual(try MemoryMetadataLines.decode(lines, source: "new.jsonl")[3], m)
        m.owner = "bob"
        XCTAssertNotEqual(try MemoryMetadataLines.decode(lines, source: "new.jsonl")[3], m)
        let bad = Array(#"{"id":"1","text":"t","source":"s","timestamp":1,"owner":5}"#.utf8) + [0x0A]
        XCTAssertThrowsError(try MemoryMetadataLines.decode(bad, source: "bad.jsonl")) {
            XCTAssertTrue("\($0)".contains("\"owner\" must be a string"), "\($0)")
        }
    }

    func testOwnersAcrossTiersSaveLoadSearchAndRemove() throws {
        let model = try byteModel()
        let dir = tempDirectory("memory-owners")
        defer { removeTree(dir) }
        let store = try MemoryStore(directory: dir)
        var c = EpisodicMemoryConfig()
        c.stateSize = 16
        _ = try store.episodic(creatingFor: model, config: c)
        _ = try store.semantic(creatingFor: model, description: "Flat")
        var ids: [String: [Int64]] = [:]
        for tier in [MemoryTier.episodic, .semantic] {
            for (owner, text) in [("alice", "the cat sat on the mat"), ("bob", "the cat sat on the mat"),
                                  ("alice", "stock prices fell"), ("", "no owner at all")] {
                ids[owner, default: []].append(try store.add(text: text, model: model, tier: tier, owner: owner))
            }
        }
        XCTAssertThrowsError(try store.add(text: "x", model: model, tier: .both, owner: "a"))
        try store.save()

        let again = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertEqual(try again.ids(owner: "alice", tier: .episodic).count, 2)
        XCTAssertEqual(try again.ids(owner: "alice", tier: .semantic).count, 2)
        XCTAssertEqual(try again.ids(owner: "", tier: .semantic).count, 1)
        // bob's identical text is never alice's hit, whatever k
        for tier in [MemoryTier.episodic, .semantic, .both] {
            let hits = try again.search(text: "the cat sat on the mat", model: model, tier: tier, k: 10, owner: "alice")
            XCTAssertEqual(hits.count, tier == .both ? 4 : 2)
            XCTAssertTrue(hits.allSatisfy { $0.owner == "alice" })
            XCTAssertEqual(hits.first?.text, "the cat sat on the mat")
            XCTAssertEqual(try again.search(text: "cat", model: model, tier: tier, k: 10, owner: "nobody"), [])
        }
        let bobHit = try again.search(text: "the cat sat on the mat", model: model, tier: .semantic, k: 1, owner: "bob")
        XCTAssertEqual(bobHit.map(\.id), [ids["bob"]![1]])
        XCTAssertEqual(try again.owner(id: ids["bob"]![0], tier: .episodic), "bob")
        XCTAssertThrowsError(try again.owner(id: 999, tier: .semantic))
        // removing alice leaves bob and the owner-less entries
        XCTAssertEqual(try again.removeAll(owner: "alice", tier: .both), 4)
        XCTAssertEqual(again.count, 4)
        try again.save()
        let third = try MemoryStore(directory: dir, mustExist: true)
        XCTAssertEqual(try third.ids(owner: "alice", tier: .episodic), [])
        XCTAssertEqual(try third.ids(owner: "bob", tier: .semantic), [ids["bob"]![1]])
        XCTAssertEqual(third.episodic?.allEntries().map(\.owner).sorted(), ["", "bob"])
    }
}

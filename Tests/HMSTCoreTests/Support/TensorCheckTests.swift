// ModelLoadOptions.checkTensors: a NaN/Inf anywhere in a used tensor is reported with the
// tensor's name and the first bad element; without the option the checkpoint loads silently.
import XCTest
@testable import HMSTCore

final class TensorCheckTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws {
        dir = "/tmp/hmst-check-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
    }
    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    /// Overwrites element `index` of tensor `name` in dir/model.safetensors with raw `bits`.
    func poke(_ d: String, _ name: String, index: Int, bits: [UInt8]) throws {
        let path = d + "/model.safetensors"
        var bytes = try FileIO.readAll(path)
        let h = try SafeTensorsHeader(map: try MappedFile(path: path))
        let t = try XCTUnwrap(h.tensor(name))
        let at = h.dataOffset + t.begin + index * t.dtype.size
        bytes.replaceSubrange(at..<(at + bits.count), with: bits)
        try FileIO.writeAtomically(path, bytes)
    }

    func expectBad(_ d: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        var o = ModelLoadOptions()
        o.checkTensors = true
        XCTAssertThrowsError(try LanguageModel.load(path: d, options: o), file: file, line: line) { e in
            let h = e as? HMSTError
            XCTAssertEqual(h?.status, .badFormat, file: file, line: line)
            XCTAssertTrue(h?.message.contains(fragment) == true, "\"\(h?.message ?? "\(e)")\" lacks \"\(fragment)\"", file: file, line: line)
        }
        XCTAssertNoThrow(try LanguageModel.load(path: d), "without the check it loads", file: file, line: line)
    }

    func testOneBadValueIsFoundAndNamed() throws {
        let c = try Int8Tests.smallConfig()
        let m = try LanguageModel.random(config: c, seed: 1)
        // f32: +Inf in a projection, element 100 of [64, 64] = row 1, column 36
        try m.save(directory: dir + "/f32")
        var o = ModelLoadOptions()
        o.checkTensors = true
        XCTAssertNoThrow(try LanguageModel.load(path: dir + "/f32", options: o), "a clean checkpoint passes")
        try poke(dir + "/f32", "model.layers.1.self_attn.o_proj.weight", index: 100,
                 bits: withUnsafeBytes(of: Float.infinity) { Array($0) })
        expectBad(dir + "/f32", "tensor model.layers.1.self_attn.o_proj.weight has +Inf at index 100 (row 1, column 36)")
        // a later NaN in the same tensor does not change the first bad index
        try poke(dir + "/f32", "model.layers.1.self_attn.o_proj.weight", index: 4000,
                 bits: withUnsafeBytes(of: Float.nan) { Array($0) })
        expectBad(dir + "/f32", "has +Inf at index 100")
        // bf16: NaN (0x7FC0) in a norm (read through the f32 path)
        try m.save(directory: dir + "/bf16", dtype: .bf16)
        try poke(dir + "/bf16", "model.layers.1.post_attention_layernorm.weight", index: 63, bits: [0xC0, 0x7F])
        expectBad(dir + "/bf16", "post_attention_layernorm.weight has NaN at index 63 (row 0, column 63)")
        // and -Inf (0xFF80) in an expert matrix, which layer 0 loads first
        try poke(dir + "/bf16", "model.layers.0.block_sparse_moe.experts.2.w3.weight", index: 97, bits: [0x80, 0xFF])
        expectBad(dir + "/bf16", "experts.2.w3.weight has -Inf at index 97 (row 1, column 33)")
    }
}

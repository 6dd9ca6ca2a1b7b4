// Data parallelism without MPI: the rank slices of the window stream are the rows one process
// with the global batch reads, the replica count divides the summed gradient, and the single
// commit point of training checkpoints (TrainingCheckpoint). The MPI runs themselves are
// Tests/mpi/test_data_parallel.sh (make mpi-test).
import XCTest
@testable import HMSTCore

final class DataParallelTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = "/tmp/hmst-dp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.makeDirectories(dir)
    }

    override func tearDown() { _ = system("rm -rf '\(dir)'") }

    func testRankSlicesAreTheRowsOfOneGlobalBatch() throws {
        var text = ""
        for i in 0..<100 { text += "Document \(i): some words to fill a window or two.\n\n" }
        try FileIO.writeAtomically(dir + "/corpus.txt", text: text)
        _ = try Preprocessor.run(inputs: [dir + "/corpus.txt"], output: dir + "/data", encoder: ByteEncoder(), tokenizerPath: nil,
                                 options: PreprocessOptions())
        let ds = try TokenDataset(directory: dir + "/data")
        let T = 8, B = 3, ranks = 2
        var one = try WindowSampler(dataset: ds, blockSize: T, seed: 5)
        var global = [Int32](repeating: 0, count: ranks * B * (T + 1))
        var r0 = try WindowSampler(dataset: ds, blockSize: T, seed: 5), r1 = r0
        var w0 = [Int32](repeating: -1, count: B * (T + 1)), w1 = w0
        for _ in 0..<3 {  // three steps: the streams stay in step
            one.nextBatch(ranks * B, into: &global)
            r0.nextBatch(B, rank: 0, ranks: ranks, into: &w0)
            r1.nextBatch(B, rank: 1, ranks: ranks, into: &w1)
            XCTAssertEqual(w0 + w1, global)
            XCTAssertNotEqual(w0, w1)
        }
        // every rank's sampler state is the one process's: one state to checkpoint
        XCTAssertEqual(r0.state, one.state)
        XCTAssertEqual(r1.state, one.state)
        XCTAssertEqual(one.state.drawn, 3 * ranks * B)
    }

    /// Two replicas with the same gradient g: the hook sums to 2g, the step divides by
    /// micro-batches x replicas, so the norm is |g| and the loss the replicas' mean.
    func testReplicasDivideTheSummedGradient() throws {
        let p = MemoryTuningTests.TwoTensors()
        let step = OptimizerStep(params: p, optimizer: try OptimizerStep.makeOptimizer(params: p, use8bit: false, config: AdamWConfig()),
                                 schedule: LRSchedule(maxLR: 0.1, warmupSteps: 1, totalSteps: 10), gradClip: 100)
        step.replicas = 2
        step.allReduce = { params, loss in
            for i in 0..<params.count { params.grads.pointer[i] *= 2 }  // + the other replica's identical gradient
            loss = (loss + 3.0) / 2                                      // the other replica's loss is 3
        }
        let r = try step.run(step: 0, microBatches: 1) { _ in
            p.grads.pointer[0] = 3; p.grads.pointer[1] = 4  // |g| = 5
            return 1
        }
        XCTAssertEqual(r.gradNorm, 5, accuracy: 1e-6)
        XCTAssertEqual(r.loss, 2)
    }

    func testCheckpointCommitReplacesTheWholeDirectory() throws {
        let ck = dir + "/final"
        try TrainingCheckpoint.commit(ck, step: 1) { d in
            try FileIO.writeAtomically(d + "/model.safetensors", text: "weights one")
            try FileIO.writeAtomically(d + "/trainer_state.json", text: "{\"step\": 1}")
        }
        XCTAssertEqual(try TrainingCheckpoint.verify(ck, required: ["model.safetensors", "trainer_state.json"]), 1)
        XCTAssertThrowsError(try TrainingCheckpoint.verify(ck, required: ["optimizer.safetensors"])) {
            XCTAssertTrue("\($0)".contains("does not name optimizer.safetensors"), "\($0)")
        }
        // a save that fails half-way leaves the old directory untouched and no staging behind
        XCTAssertThrowsError(try TrainingCheckpoint.commit(ck, step: 2) { d in
            try FileIO.writeAtomically(d + "/model.safetensors", text: "weights two")
            throw HMSTError.io("disk full")
        })
        XCTAssertEqual(try FileIO.readText(ck + "/model.safetensors"), "weights one")
        XCTAssertEqual(FileIO.listDirectory(dir).sorted(), ["final"])
        // a save killed before its rename leaves a staging directory: the next commit removes it
        try FileIO.makeDirectories(dir + "/.final.partial-dead")
        try FileIO.writeAtomically(dir + "/.final.partial-dead/model.safetensors", text: "torn")
        try TrainingCheckpoint.commit(ck, step: 2) { d in
            try FileIO.writeAtomically(d + "/model.safetensors", text: "weights two")
            try FileIO.writeAtomically(d + "/trainer_state.json", text: "{\"step\": 2}")
        }
        XCTAssertEqual(try TrainingCheckpoint.verify(ck, required: ["model.safetensors"]), 2)
        XCTAssertEqual(FileIO.listDirectory(dir).sorted(), ["final"])
        // a part swapped in from another save is caught by its size and checksum
        try FileIO.writeAtomically(ck + "/model.safetensors", text: "weights one")
        XCTAssertThrowsError(try TrainingCheckpoint.verify(ck, required: [])) {
            XCTAssertTrue("\($0)".contains("do not belong together"), "\($0)")
        }
        try FileIO.writeAtomically(ck + "/model.safetensors", text: "weights 2!!")  // same size, other bytes
        XCTAssertThrowsError(try TrainingCheckpoint.verify(ck, required: [])) {
            XCTAssertTrue("\($0)".contains("checksum"), "\($0)")
        }
        // a part the manifest does not name
        try FileIO.writeAtomically(ck + "/model.safetensors", text: "weights two")
        try FileIO.writeAtomically(ck + "/optimizer.safetensors", text: "stray")
        XCTAssertThrowsError(try TrainingCheckpoint.verify(ck, required: [])) {
            XCTAssertTrue("\($0)".contains("optimizer.safetensors is not part of the committed checkpoint"), "\($0)")
        }
        // never replaces a directory holding other files
        try FileIO.makeDirectories(dir + "/mine")
        try FileIO.writeAtomically(dir + "/mine/thesis.tex", text: "keep")
        XCTAssertThrowsError(try TrainingCheckpoint.commit(dir + "/mine", step: 1) { _ in }) {
            XCTAssertTrue("\($0)".contains("thesis.tex"), "\($0)")
        }
        XCTAssertEqual(try FileIO.readText(dir + "/mine/thesis.tex"), "keep")
        XCTAssertThrowsError(try TrainingCheckpoint.verify(dir + "/mine", required: [])) {
            XCTAssertTrue("\($0)".contains("no checkpoint.json"), "\($0)")
        }
    }
}

// Data-parallel options shared by `hmst train` and `hmst train-memory`: whether to join an MPI
// job (automatic under mpirun), one rank per NUMA node, the collective timeout. The work is
// HMSTCore's (Train/Distributed/); this file parses flags and prints what rank 0 should say.
import ArgumentParser
import Foundation
import HMSTCore

struct DistributedOptions: ParsableArguments {
    @Option(name: .customLong("mpi"), help: "auto (join the MPI job when started by mpirun), on, off.")
    var mpi = "auto"
    @Flag(name: .customLong("numa-rank"), help: "Bind each rank's threads and memory to NUMA node (local rank mod nodes).")
    var numaRank = false
    @Option(name: .customLong("collective-timeout"), help: "Seconds a gradient all-reduce or other collective may take before the job is stopped.")
    var collectiveTimeout: Double = 300
    @Option(name: .customLong("allreduce-bucket-mb"), help: "MiB of gradients per all-reduce bucket.")
    var bucketMB = 16
    @Flag(name: .customLong("no-allreduce-overlap"), help: "Reduce gradients only after the backward pass, not layer by layer during it.")
    var noOverlap = false

    func validate() throws {
        guard ["auto", "on", "off"].contains(mpi) else { throw ValidationError("--mpi must be auto, on or off") }
        guard collectiveTimeout.isFinite, collectiveTimeout >= 0.001 else {
            throw ValidationError("--collective-timeout must be a finite number of seconds >= 0.001")
        }
        // as the C API's bucket_mb: past 4096 MiB the shift to elements would overflow and wrap
        guard (1...4096).contains(bucketMB) else { throw ValidationError("--allreduce-bucket-mb must be in 1...4096") }
    }

    /// Joins the MPI job (or not) and applies --numa-rank. Call before the thread pool and the
    /// model are set up, so threads and allocations start on the rank's node.
    func start() throws -> DataParallel {
        let useMPI = mpi == "on" || (mpi == "auto" && Communicator.launchedByMPI)
        let dp = DataParallel(communicator: useMPI ? try Communicator.world(timeoutSeconds: collectiveTimeout) : nil)
        dp.bucketElements = bucketMB << 18
        dp.overlapWithBackward = !noOverlap
        if numaRank {
            let report = RankPlacement.bind(localRank: Communicator.localRank ?? dp.rank)
            printError("rank \(dp.rank): --numa-rank: \(report.summary)")
        }
        return dp
    }

    /// start(), then body under abortingOnError.
    func run(_ body: (DataParallel) throws -> Void) throws {
        let dp = try start()
        try abortingOnError(dp) { try body(dp) }
    }

    /// Runs body; when it fails on a rank of a multi-rank job, prints the reason with the rank
    /// and ends the whole job (MPI_Abort), so the other ranks stop instead of waiting for this one.
    func abortingOnError(_ dp: DataParallel, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let e as HMSTError where dp.size > 1 {
            let who = e.message.hasPrefix("rank ") ? "" : "rank \(dp.rank) of \(dp.size): "
            printError("hmst: \(who)\(e.status.name.lowercased().replacingOccurrences(of: "_", with: " ")): \(e.message)")
            printError("hmst: stopping all \(dp.size) ranks (MPI_Abort)")
            dp.communicator?.abort(code: 2)
            throw e
        }
    }
}

/// Prints on rank 0 only (every rank runs the same command under mpirun).
func printLeader(_ dp: DataParallel, _ s: String) {
    if dp.isLeader { printError(s) }
}

// Exports: data-parallel training over MPI (hmst_data_parallel_params, ranks of a trainer).
// Documented in include/hmst.h; the work is HMSTCore/Train/Distributed/.
import CHMST
import HMSTCore

@_cdecl("hmst_data_parallel_default_params")
public func hmst_data_parallel_default_params() -> hmst_data_parallel_params {
    var p = hmst_data_parallel_params()
    p.struct_size = UInt32(MemoryLayout<hmst_data_parallel_params>.size)
    p.mode = Int32(HMST_DATA_PARALLEL_NONE.rawValue)
    p.mpi_comm = nil
    p.collective_timeout_s = 300
    p.bucket_mb = 16
    p.numa_rank = false
    return p
}

/// The DataParallel a trainer's params ask for (NULL: one process). Joins MPI here.
func makeDataParallel(_ ptr: UnsafePointer<hmst_data_parallel_params>?) throws -> DataParallel {
    guard ptr != nil else { return DataParallel.single }
    // every field since the struct's first version: a host's struct_size of 4 would leave mode at NONE
    let p = try readParams(ptr, defaults: hmst_data_parallel_default_params(), name: "params->data_parallel",
                           minimum: MemoryLayout<hmst_data_parallel_params>.size)
    guard p.collective_timeout_s.isFinite, p.collective_timeout_s >= 0.001 else {
        throw HMSTError.invalidArgument("params->data_parallel->collective_timeout_s = \(p.collective_timeout_s) must be a finite number of seconds >= 0.001")
    }
    guard p.bucket_mb >= 1, p.bucket_mb <= 4096 else {
        throw HMSTError.invalidArgument("params->data_parallel->bucket_mb = \(p.bucket_mb) must be in 1...4096")
    }
    let dp: DataParallel
    switch UInt32(bitPattern: p.mode) {
    case HMST_DATA_PARALLEL_NONE.rawValue:
        dp = DataParallel(communicator: nil)
    case HMST_DATA_PARALLEL_MPI_WORLD.rawValue:
        dp = DataParallel(communicator: try Communicator.world(timeoutSeconds: p.collective_timeout_s))
    case HMST_DATA_PARALLEL_MPI_COMM.rawValue:
        guard let comm = p.mpi_comm else {
            throw HMSTError.invalidArgument("params->data_parallel->mode is HMST_DATA_PARALLEL_MPI_COMM but mpi_comm is NULL")
        }
        dp = DataParallel(communicator: try Communicator.wrapping(hostCommunicator: comm, timeoutSeconds: p.collective_timeout_s))
    default:
        throw HMSTError.invalidArgument("params->data_parallel->mode = \(p.mode) is not an hmst_data_parallel_mode")
    }
    dp.bucketElements = Int(p.bucket_mb) << 18
    if p.numa_rank {
        let r = RankPlacement.bind(localRank: Communicator.localRank ?? dp.rank)
        Log.info("rank \(dp.rank): numa_rank: \(r.summary)")
    }
    return dp
}

@_cdecl("hmst_trainer_get_rank")
public func hmst_trainer_get_rank(_ t: OpaquePointer?, _ rank: UnsafeMutablePointer<Int32>?, _ ranks: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let dp = try resolveTrainer(t).trainer.dataParallel
        rank?.pointee = Int32(dp.rank)
        ranks?.pointee = Int32(dp.size)
    }
}

@_cdecl("hmst_memory_trainer_get_rank")
public func hmst_memory_trainer_get_rank(_ t: OpaquePointer?, _ rank: UnsafeMutablePointer<Int32>?, _ ranks: UnsafeMutablePointer<Int32>?) -> Int32 {
    hmstCall {
        let dp = try resolveMemoryTrainer(t).trainer.dataParallel
        rank?.pointee = Int32(dp.rank)
        ranks?.pointee = Int32(dp.size)
    }
}

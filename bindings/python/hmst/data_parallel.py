"""hmst.DataParallel: run a Trainer or MemoryTrainer as one rank of an MPI job.

    # under `mpirun -np 2 python3 train.py`
    with hmst.Trainer("data/train", "runs/a", batch_size=8, data_parallel="mpi") as t:
        t.run()                  # every rank runs; rank 0 writes metrics and checkpoints
        if t.rank == 0: print("effective batch", 8 * t.ranks)

data_parallel is None (one process), "mpi" (MPI_COMM_WORLD) or a DataParallel, which can
also carry a host's communicator: DataParallel(comm=MPI._handleof(comm)) with mpi4py over
OpenMPI (an MPI_Comm is a pointer there). libhmst loads OpenMPI itself, lazily.
"""
import ctypes

from . import _lib
from .api import _int


class DataParallel:
    """Options of struct hmst_data_parallel_params."""

    def __init__(self, comm=None, *, collective_timeout_s=300.0, bucket_mb=16, numa_rank=False):
        if comm is not None and (isinstance(comm, bool) or not isinstance(comm, int) or not 0 < comm < 2**64):
            # an OpenMPI MPI_Comm is a pointer: a bool, a negative number or one past 64 bits
            # would reach MPI_Comm_dup as some other address
            raise TypeError(f"comm must be a communicator handle, an int in 1 ... 2**64-1 (mpi4py: MPI._handleof(comm)), not {comm!r}")
        self.comm = comm
        self.collective_timeout_s = float(collective_timeout_s)
        self.bucket_mb = _int("bucket_mb", bucket_mb, 1, 4096)
        if not isinstance(numa_rank, bool):
            raise TypeError(f"numa_rank must be True or False, not {numa_rank!r}")
        self.numa_rank = numa_rank

    def _params(self):
        p = _lib.lib.hmst_data_parallel_default_params()
        p.mode = _lib.DATA_PARALLEL_MPI_WORLD if self.comm is None else _lib.DATA_PARALLEL_MPI_COMM
        p.mpi_comm = self.comm
        p.collective_timeout_s = self.collective_timeout_s
        p.bucket_mb = self.bucket_mb
        p.numa_rank = self.numa_rank
        return p


def _params_pointer(data_parallel, keep):
    """A void pointer to hmst_data_parallel_params for a trainer's params (None: one process);
    the struct is appended to keep so it outlives the create call."""
    if data_parallel is None:
        return None
    if data_parallel == "mpi":
        data_parallel = DataParallel()
    if not isinstance(data_parallel, DataParallel):
        raise TypeError(f"data_parallel must be None, 'mpi' or hmst.DataParallel, not {data_parallel!r}")
    p = data_parallel._params()
    keep.append(p)
    return ctypes.cast(ctypes.pointer(p), ctypes.c_void_p)


def _rank(fn, handle):
    r, n = ctypes.c_int32(), ctypes.c_int32()
    from .api import _check
    _check(fn(handle, ctypes.byref(r), ctypes.byref(n)))
    return r.value, n.value

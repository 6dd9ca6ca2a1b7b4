"""hmst.DataParallel in one process: the option's checks, rank/ranks, and the checkpoint
commit point seen from Python. The MPI runs are Tests/mpi/test_python_mpi.sh."""
import os

import pytest

import hmst

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "fixtures", "data")


def test_options_are_checked():
    with pytest.raises(TypeError, match="handle"):
        hmst.DataParallel(comm=0)
    with pytest.raises(TypeError, match="handle"):
        hmst.DataParallel(comm="world")
    # a bool, a negative number or one past 64 bits would reach MPI_Comm_dup as another address
    for bad in (True, -1, 2**64, 2**64 + 8):
        with pytest.raises(TypeError, match="handle"):
            hmst.DataParallel(comm=bad)
    with pytest.raises(hmst.HMSTError, match="bucket_mb 5000 must be in 1 ... 4096"):
        hmst.DataParallel(bucket_mb=5000)
    with pytest.raises(TypeError, match="numa_rank must be True or False"):
        hmst.DataParallel(numa_rank="no")
    assert hmst.DataParallel().collective_timeout_s == 300.0


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE, "metadata.json")), reason="run `make` fixtures first")
def test_one_process_rank_and_whole_checkpoints(tmp_path):
    kw = dict(seq_len=16, batch_size=2, steps_per_epoch=3, learning_rate=1e-3)
    with pytest.raises(TypeError, match="data_parallel"):
        hmst.Trainer(FIXTURE, tmp_path / "x", data_parallel="tcp", **kw)
    with pytest.raises(hmst.HMSTError, match="collective_timeout_s"):
        hmst.Trainer(FIXTURE, tmp_path / "x", data_parallel=hmst.DataParallel(collective_timeout_s=0), **kw)
    with hmst.Trainer(FIXTURE, tmp_path / "run", **kw) as t:
        assert (t.rank, t.ranks) == (0, 1)
        t.step()
        t.save(tmp_path / "ck")
    assert (tmp_path / "ck" / "checkpoint.json").exists()
    (tmp_path / "ck" / "trainer_state.json").write_text("{}")  # a part that is not the committed one
    with pytest.raises(hmst.HMSTError, match="do not belong together"):
        hmst.Trainer(FIXTURE, tmp_path / "run", resume_from=tmp_path / "ck", **kw)

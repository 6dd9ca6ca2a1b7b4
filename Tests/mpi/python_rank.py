"""One rank of Tests/mpi/test_python_mpi.sh: hmst.Trainer(data_parallel="mpi") under mpirun.
Prints one JSON line per rank: rank, ranks, the step losses, a checksum of the saved weights."""
import json
import sys

import hmst

fixtures, out = sys.argv[1], sys.argv[2]
dp = hmst.DataParallel(collective_timeout_s=60)
with hmst.Trainer(f"{fixtures}/data", out, seq_len=16, batch_size=2, steps_per_epoch=4, learning_rate=1e-3,
                  seed=3, data_parallel=dp) as t:
    losses = [t.step() for _ in range(3)]
    t.save(f"{out}/saved")  # every rank calls it; rank 0 writes
    print(json.dumps({"rank": t.rank, "ranks": t.ranks, "losses": losses}), flush=True)

"""One rank of Tests/mpi/test_python_mpi.sh's failure cases: hmst.Trainer(data_parallel="mpi")
where rank 1 alone is given something else. Writes OUT/fail-MODE-rankN.json per rank: rank, the
error, and how long the create took (the collective timeout is 120 s: a rank left waiting for the
failed one would take that long).
  python_rank_fail.py missing|otherdata FIXTURES OUT"""
import json
import os
import sys
import time

import hmst

mode, fixtures, out = sys.argv[1], sys.argv[2], sys.argv[3]
dp = hmst.DataParallel(collective_timeout_s=120)
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
data = f"{fixtures}/data"
if rank == 1:
    data = f"{out}/no-such-data" if mode == "missing" else f"{out}/other-data"
t0 = time.time()
error = None
try:
    with hmst.Trainer(data, f"{out}/run-{mode}", seq_len=16, batch_size=2, steps_per_epoch=4, seed=3, data_parallel=dp) as t:
        t.step()
except hmst.HMSTError as e:
    error = str(e)
# one file per rank: the ranks finish together, and mpirun may interleave their stdout lines
with open(f"{out}/fail-{mode}-rank{rank}.json", "w") as f:
    f.write(json.dumps({"rank": rank, "error": error, "seconds": round(time.time() - t0, 1)}))

"""A context given its own n_threads uses hmst's worker pool even when nothing set the library's
thread count first (issue 10: hosts that only pass n_threads decoded on one thread)."""
import os
import subprocess
import sys

import pytest

MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "Tests", "Golden", "model", "tiny_untied")

# a fresh process: the pool is per process and other tests start it
CODE = """
import os, sys, hmst
with hmst.Model(sys.argv[1]) as m, m.context(n_threads=2) as ctx:
    ctx.eval([1, 2, 3])
    ctx.eval([4])
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(sum(n.startswith("hmst-w") for n in names))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_context_n_threads_starts_worker_pool():
    env = dict(os.environ, HMST_NUM_THREADS="2")
    r = subprocess.run([sys.executable, "-c", CODE, MODEL], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip().splitlines()[-1]) == 1  # the caller plus one worker

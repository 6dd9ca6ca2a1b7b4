#!/usr/bin/env python3
"""Cost of the owner scope of POST /v1/hmst/ask: a shared memory with a big owner (most entries)
and a small one, then the retrieve stage's median milliseconds (the engine's own timing) for
asks as the big owner, the small owner (whose few entries the shared dense index must be ranked
in full to find) and an owner without entries. Starts its own server on a fresh memory
directory; prints one JSON line.

  python3 benchmarks/server_ask_scope.py --server build/bin/hmst-server --checkpoint build/fixtures/micro \
      --semantic 3000 --episodic 750 >> benchmarks/results/server-ask-scope-<cpu>.jsonl
"""
import argparse
import json
import platform
import re
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests

ap = argparse.ArgumentParser()
ap.add_argument("--server", required=True)
ap.add_argument("--checkpoint", required=True)
ap.add_argument("--semantic", type=int, default=3000, help="the big owner's semantic entries")
ap.add_argument("--episodic", type=int, default=750, help="the big owner's episodic entries")
ap.add_argument("--small", type=int, default=10, help="the small owner's semantic entries (a quarter as many episodic)")
ap.add_argument("--asks", type=int, default=30)
a = ap.parse_args()

words = open("/usr/share/common-licenses/GPL-3").read().split()
mem = tempfile.mkdtemp(prefix="hmst-ask-scope-")
proc = subprocess.Popen([a.server, a.checkpoint, "--port", "0", "--slots", "2", "--threads", "1", "--memory", mem],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    url = re.search(r"(http://\S+)", proc.stdout.readline()).group(1)

    def add(i, owner, tier):
        text = " ".join(words[(i * 7) % (len(words) - 12):][:12])
        r = requests.post(f"{url}/v1/hmst/memory/{tier}/entries", json={"owner": owner, "text": text}, timeout=120)
        assert r.status_code == 200, r.text

    t0 = time.time()
    with ThreadPoolExecutor(16) as p:   # concurrent adds share the group-committed saves
        for owner, n_sem, n_epi in (("big", a.semantic, a.episodic), ("small", a.small, max(1, a.small // 4))):
            list(p.map(lambda i: add(i, owner, "semantic"), range(n_sem)))
            list(p.map(lambda i: add(i, owner, "episodic"), range(n_epi)))
    fill_s = time.time() - t0
    out = {"case": "ask_owner_scope", "machine": platform.processor() or platform.machine(), "semantic_entries": a.semantic + a.small,
           "episodic_entries": a.episodic + max(1, a.small // 4), "fill_s": round(fill_s, 1)}
    for owner in ("big", "small", "nobody"):
        ms = []
        for _ in range(a.asks):
            r = requests.post(f"{url}/v1/hmst/ask", json={"query": "who may copy and distribute the program?", "owner": owner,
                                                           "policy": "episodic+semantic", "max_tokens": 1}, timeout=120).json()
            ms.append(r["stage_ms"]["retrieve"])
        out[f"retrieve_ms_p50_{owner}"] = round(statistics.median(ms), 2)
        out[f"citations_{owner}"] = len(r["citations"])
    print(json.dumps(out))
finally:
    proc.terminate()
    proc.wait(timeout=60)

#!/usr/bin/env python3
"""Starts hmst-server N times (read its "listening" line, then kill it) and counts the starts that
died instead: a check for races at process load (library constructors, thread pools). Before
the fix in Sources/CHMST/chmst_blas.c (stop OpenBLAS's workers before switching its kernel
table) about 1 start in 70 crashed with SIGSEGV on an Intel Xeon model 207.

    python3 benchmarks/start_stress.py [--server build/bin/hmst-server] [--checkpoint build/fixtures/micro] [-n 400]

Prints one JSON line; exits 1 when any start crashed.
"""
import argparse, json, os, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("--server", default="build/bin/hmst-server")
ap.add_argument("--checkpoint", default="build/fixtures/micro")
ap.add_argument("-n", type=int, default=400)
a = ap.parse_args()
crashes, t0 = [], time.time()
with tempfile.TemporaryDirectory() as tmp:
    for i in range(a.n):
        d = os.path.join(tmp, str(i))
        cmd = [a.server, a.checkpoint, "--port", "0", "--slots", "2", "--threads", "1", "--memory", d + "/mem", "--api-key", "k"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = p.stdout.readline()
        if "listening" in line:
            p.kill()
            p.wait()
        else:
            crashes.append({"start": i, "returncode": p.wait()})
print(json.dumps({"bench": "start_stress", "starts": a.n, "crashes": len(crashes), "seconds": round(time.time() - t0, 1),
                  "details": crashes[:10]}))
sys.exit(1 if crashes else 0)

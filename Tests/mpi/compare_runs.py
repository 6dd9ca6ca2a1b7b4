#!/usr/bin/env python3
"""Compares two training runs: the loss of every step (metrics.jsonl) and every parameter of
final/model.safetensors. Exits 1 when they differ by more than the tolerances given.

    compare_runs.py RUN_A RUN_B --loss-rtol 1e-5 --param-atol 1e-5
"""
import argparse
import json
import struct
import sys

import numpy as np


def losses(run):
    with open(f"{run}/metrics.jsonl") as f:
        return {d["step"]: d["loss"] for d in map(json.loads, f) if "loss" in d}


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--loss-rtol", type=float, required=True)
    ap.add_argument("--param-atol", type=float, required=True)
    ap.add_argument("--steps", type=int, required=True)
    args = ap.parse_args()
    la, lb = losses(args.a), losses(args.b)
    ok = sorted(la) == sorted(lb) == list(range(1, args.steps + 1))
    if not ok:
        print(f"steps differ: {sorted(la)} vs {sorted(lb)}")
    worst_loss = max(abs(la[s] - lb[s]) / abs(la[s]) for s in la if s in lb)
    ta, tb = tensors(f"{args.a}/final/model.safetensors"), tensors(f"{args.b}/final/model.safetensors")
    ok = ok and sorted(ta) == sorted(tb)
    worst_param, where = 0.0, ""
    for name in ta:
        d = float(np.max(np.abs(ta[name] - tb[name])))
        if d > worst_param:
            worst_param, where = d, name
    print(json.dumps({"steps": args.steps, "max_loss_rel_diff": worst_loss, "loss_rtol": args.loss_rtol,
                      "max_param_abs_diff": worst_param, "param_atol": args.param_atol, "worst_tensor": where,
                      "first_loss": [la.get(1), lb.get(1)], "last_loss": [la.get(args.steps), lb.get(args.steps)]}))
    ok = ok and worst_loss <= args.loss_rtol and worst_param <= args.param_atol
    if not ok:
        print("compare_runs: the runs differ beyond the tolerance", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

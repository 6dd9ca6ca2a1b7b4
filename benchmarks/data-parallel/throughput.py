#!/usr/bin/env python3
"""Data-parallel throughput on one machine, in one run: P ranks x 1 thread (mpirun) against
1 process x P threads, same global batch, same steps. Prints one JSON object: tokens/s of each,
the mean step time and the mean gradient all-reduce time per step of the MPI runs (with the
all-reduce overlapping the backward pass, and with --no-allreduce-overlap).

    benchmarks/data-parallel/throughput.py --hmst build/bin/hmst --data build/fixtures/data \
        --model-size micro --batch 8 --seq-len 64 --steps 12 [--ranks 2]

The first two steps are warm-up and not counted.
"""
import argparse
import json
import os
import subprocess
import tempfile


def run(cmd, env=None):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def rates(out, warmup=2):
    rows = [json.loads(l) for l in open(f"{out}/metrics.jsonl")]
    a, b = rows[warmup - 1], rows[-1]
    seconds = b["seconds"] - a["seconds"]
    steps = b["step"] - a["step"]
    r = {"tokens_per_second": (b["tokens"] - a["tokens"]) / seconds, "step_ms": 1000 * seconds / steps}
    ar = [x["allreduce_ms"] for x in rows[warmup:] if "allreduce_ms" in x]
    if ar:
        r["allreduce_ms_per_step"] = sum(ar) / len(ar)
        r["allreduce_share_of_step"] = r["allreduce_ms_per_step"] / r["step_ms"]
    return r


def cpu_name():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hmst", required=True)
    ap.add_argument("--data", required=True, help="a pre-tokenized dataset directory")
    ap.add_argument("--model-size", default="micro")
    ap.add_argument("--batch", type=int, default=8, help="global batch (sequences per optimizer step)")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--ranks", type=int, default=2)
    args = ap.parse_args()
    P = args.ranks
    assert args.batch % P == 0, "the global batch must split evenly over the ranks"
    common = [args.data, "--pretokenized", "--model-size", args.model_size, "--seq-len", str(args.seq_len),
              "--steps-per-epoch", str(args.steps), "--no-progress", "--seed", "1"]
    tmp = tempfile.mkdtemp(prefix="hmst-dp-bench-")
    run([args.hmst, "train", *common, "--batch-size", str(args.batch), "--threads", str(P), "--output-dir", f"{tmp}/threads"])
    mpirun = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(P)]
    if os.geteuid() == 0:
        mpirun.append("--allow-run-as-root")
    run([*mpirun, args.hmst, "train", *common, "--batch-size", str(args.batch // P), "--threads", "1",
         "--output-dir", f"{tmp}/ranks"])
    run([*mpirun, args.hmst, "train", *common, "--batch-size", str(args.batch // P), "--threads", "1",
         "--no-allreduce-overlap", "--output-dir", f"{tmp}/ranks-no-overlap"])
    one, many, serial = rates(f"{tmp}/threads"), rates(f"{tmp}/ranks"), rates(f"{tmp}/ranks-no-overlap")
    print(json.dumps({"bench": "data_parallel_throughput", "cpu": cpu_name(), "model_size": args.model_size,
                      "global_batch": args.batch, "seq_len": args.seq_len, "steps_counted": args.steps - 2,
                      f"1_process_x_{P}_threads": one, f"{P}_ranks_x_1_thread": many,
                      f"{P}_ranks_x_1_thread_no_overlap": serial,
                      "ranks_over_threads": many["tokens_per_second"] / one["tokens_per_second"]}))


if __name__ == "__main__":
    main()

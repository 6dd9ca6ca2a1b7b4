#!/usr/bin/env python3
"""Start-up: time to first token for a checkpoint of about 1 GB, cold and warm page cache,
hmst's mmap load against reading the whole file into memory first.

    HMST_LIBRARY=$PWD/build/lib/libhmst.so.0.1.0 PYTHONPATH=$PWD/bindings/python \\
        python3 benchmarks/startup_ttft.py --out benchmarks/results/startup-ttft-2core.jsonl

The checkpoint: the "small" preset (921M parameters) with random weights saved as int8 (Q8_0
blocks), model.safetensors about 1.04 GB, written once into --dir (--dtype int8-rows4: the same
blocks in the row-quad layout, which loads without a copy; use another --dir). Time to first token, each in
a fresh process, from just before hmst.Model(dir) (Python and libhmst already loaded) (mmap; with --prefetch rows also MADV_WILLNEED), a context,
eval of an 8-token prompt, the argmax of its logits. Modes:
  mmap            what hmst does: the weights are mapped, pages fault in as the forward pass
                  first touches them
  mmap-prefetch   the same with Model(prefetch=True)
  read-first      read(2) the whole safetensors file into an anonymous buffer first (what a
                  loader without mmap does), then the same load and first token, which now find
                  every page in the page cache; the total counts both
Cache states: cold = the checkpoint's pages evicted from the page cache before the process
starts, warm = the file read once just before. Eviction: posix_fadvise(POSIX_FADV_DONTNEED) on
each checkpoint file after fsync (writing /proc/sys/vm/drop_caches would evict every file on a
shared machine, and is refused in containers); `fincore` confirms the resident bytes, which go
into each line. One JSON line per run, each naming the CPU.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from vector_search import cpu_model  # noqa: E402

PROMPT = [1, 17, 42, 7, 99, 3, 250, 12]


def files(d):
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d, f))]


def evict_file(p):
    """Drops a file's pages from the page cache (clean pages of a file no process maps), so the
    next reader reads it from disk."""
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def evict(d):
    for p in files(d):
        evict_file(p)


def warm(d):
    for p in files(d):
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def resident_bytes(path):
    """Bytes of `path` in the page cache (util-linux fincore), or None without it."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                             capture_output=True, text=True, check=True).stdout.split()
        return int(out[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return None


def child(args):
    """One measurement in this fresh process; prints a JSON object."""
    t0 = time.perf_counter()
    read_ms = 0.0
    if args.mode == "read-first":
        path = os.path.join(args.dir, "model.safetensors")
        size = os.path.getsize(path)
        buf = bytearray(size)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            got = 0
            while got < size:
                n = f.readinto(view[got:got + (1 << 26)])
                if not n:
                    break
                got += n
        read_ms = (time.perf_counter() - t0) * 1e3
    import hmst  # imported (and libhmst loaded) before the clock started: see main()
    t1 = time.perf_counter()
    model = hmst.Model(args.dir, prefetch=args.mode == "mmap-prefetch", load_tokenizer=False)
    t2 = time.perf_counter()
    ctx = model.context(n_ctx=64)
    ctx.eval(PROMPT)
    token = int(ctx.logits().argmax())
    t3 = time.perf_counter()
    import resource
    print(json.dumps(dict(read_ms=round(read_ms, 1),
                          load_ms=round((t2 - t1) * 1e3, 1), first_token_ms=round((t3 - t2) * 1e3, 1),
                          ttft_ms=round((t3 - t0) * 1e3, 1), token=token,
                          max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/hmst-ttft-small-int8")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--dtype", default="int8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="mmap,mmap-prefetch,read-first")
    ap.add_argument("--label", default="")
    ap.add_argument("--out")
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        import hmst
        hmst.set_threads(args.threads)
        return child(args)

    if not os.path.exists(os.path.join(args.dir, "model.safetensors")):
        import hmst
        t = time.perf_counter()
        with hmst.Model.random(args.preset, seed=1) as m:
            m.save(args.dir, dtype=args.dtype)
        print(f"wrote {args.dir} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    st = os.path.join(args.dir, "model.safetensors")
    size = os.path.getsize(st)
    common = dict(bench="startup_ttft", cpu=cpu_model(), checkpoint=f"{args.preset} {args.dtype}",
                  safetensors_bytes=size, prompt_tokens=len(PROMPT), threads=args.threads,
                  eviction="posix_fadvise DONTNEED per file (after fsync)", label=args.label)
    lines = []
    for rep in range(args.repeats):
        for mode in args.modes.split(","):
            for cache in ("cold", "warm"):
                if cache == "cold":
                    evict(args.dir)
                else:
                    warm(args.dir)
                resident = resident_bytes(st)
                r = subprocess.run([sys.executable, os.path.abspath(__file__), "--mode", mode, "--dir", args.dir,
                                    "--threads", str(args.threads)], capture_output=True, text=True)
                if r.returncode != 0:
                    sys.stderr.write(r.stderr)
                    raise SystemExit(f"{mode} {cache} failed")
                row = json.loads(r.stdout.strip().splitlines()[-1])
                lines.append(dict(common, mode=mode, cache=cache, repeat=rep, resident_bytes_before=resident, **row))
                print(json.dumps(lines[-1]), flush=True)
    summary = []
    for mode in args.modes.split(","):
        for cache in ("cold", "warm"):
            t = [l["ttft_ms"] for l in lines if l["mode"] == mode and l["cache"] == cache]
            summary.append(dict(common, mode=mode, cache=cache, summary=True, ttft_ms_median=statistics.median(t),
                                ttft_ms_min=min(t), ttft_ms_max=max(t), runs=len(t)))
            print(json.dumps(summary[-1]))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n".join(json.dumps(l) for l in lines + summary) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Load test of hmst-server on loopback: N requests from C concurrent clients, mixed
completions / chat, streamed and not, plus memory adds (greedy, fixed prompts). Prints one JSON
object: request counts by status, p50/p99 latency, time to first token of streamed requests,
generated tokens/s overall, and two checks:
  - the same requests issued one at a time give identical greedy outputs;
  - every acknowledged memory add is found after a restart (the server is stopped with SIGTERM
    and started again on the same memory directory).
Only 503 (documented: slots busy and queue full) may fail a request.

  python3 benchmarks/server_load.py --server build/bin/hmst-server --checkpoint build/fixtures/micro \
      --requests 2000 --clients 16 > benchmarks/results/server-load-<cpu>.json
"""
import argparse
import concurrent.futures as cf
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests


def start(args, memory):
    cmd = [args.server, args.checkpoint, "--port", "0", "--slots", str(args.slots), "--queue", str(args.queue),
           "--memory", memory, "--log-level", "warning"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.search(r"listening on (http://\S+)", p.stdout.readline())
    if not m:
        p.kill()
        sys.exit("hmst-server did not start")
    return p, m.group(1)


def request(url, i, prompts, max_tokens, session):
    kind = i % 10
    p = prompts[i % len(prompts)]
    t0 = time.perf_counter()
    if kind == 9:
        r = session.post(url + "/v1/hmst/memory/semantic/entries" if i % 20 == 9 else url + "/v1/hmst/memory/episodic/entries",
                         json={"owner": f"client{i % 16}", "text": f"load fact {i}: {p}"}, timeout=300)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            return {"i": i, "kind": "memory", "status": r.status_code, "ms": ms}
        b = r.json()
        return {"i": i, "kind": "memory", "status": 200, "ms": ms, "ack": (b["tier"], b["id"], b["owner"], f"load fact {i}: {p}")}
    chat = kind % 2 == 1
    stream = kind in (2, 3, 6, 7)
    path = "/v1/chat/completions" if chat else "/v1/completions"
    body = {"model": "m", "max_tokens": max_tokens, "temperature": 0, "stream": stream}
    if chat:
        body["messages"] = [{"role": "user", "content": p}]
    else:
        body["prompt"] = p
    r = session.post(url + path, json=body, timeout=300, stream=stream)
    out = {"i": i, "kind": ("chat" if chat else "completion") + ("-stream" if stream else ""), "status": r.status_code}
    if r.status_code != 200:
        out["ms"] = (time.perf_counter() - t0) * 1000
        r.close()
        return out
    if not stream:
        b = r.json()
        ch = b["choices"][0]
        out["text"] = ch["message"]["content"] if chat else ch["text"]
        out["tokens"] = b["usage"]["completion_tokens"]
    else:
        text, tokens, ttft = "", 0, None
        for line in r.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            c = json.loads(line[6:])
            for ch in c.get("choices", []):
                piece = ch["delta"].get("content") if chat else ch.get("text")
                if piece:
                    if ttft is None:
                        ttft = (time.perf_counter() - t0) * 1000
                    text += piece
            if c.get("usage"):
                tokens = c["usage"]["completion_tokens"]
        out.update(text=text, tokens=tokens, ttft_ms=ttft)
    out["ms"] = (time.perf_counter() - t0) * 1000
    out["key"] = (chat, p)
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else None


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except Exception:
        return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="build/bin/hmst-server")
    ap.add_argument("--checkpoint", default="build/fixtures/micro")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    prompts = [f"Question {k}: what does clause {k % 13} of the license say about {w}?"
               for k, w in enumerate(["copying", "warranty", "patents", "source code", "distribution"] * 8)]
    memory = tempfile.mkdtemp(prefix="hmst-load-mem-")
    proc, url = start(args, memory)
    sessions = threading.local()

    def run(i):
        if not hasattr(sessions, "s"):
            sessions.s = requests.Session()
        return request(url, i, prompts, args.max_tokens, sessions.s)

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(args.clients) as ex:
        results = list(ex.map(run, range(args.requests)))
    wall = time.perf_counter() - t0
    metrics = requests.get(url + "/metrics").text

    # the same generations one at a time
    seq = {}
    for r in results:
        if "key" in r and r["key"] not in seq:
            chat, p = r["key"]
            body = {"max_tokens": args.max_tokens, "temperature": 0}
            if chat:
                body["messages"] = [{"role": "user", "content": p}]
                b = requests.post(url + "/v1/chat/completions", json=body, timeout=300).json()
                seq[r["key"]] = b["choices"][0]["message"]["content"]
            else:
                body["prompt"] = p
                seq[r["key"]] = requests.post(url + "/v1/completions", json=body, timeout=300).json()["choices"][0]["text"]
    mismatches = [r["i"] for r in results if "key" in r and r["status"] == 200 and r["text"] != seq[r["key"]]]

    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    proc2, url2 = start(args, memory)
    acked = [r["ack"] for r in results if r.get("ack")]
    found = set()
    for owner in {a[2] for a in acked}:
        for e in requests.get(url2 + "/v1/hmst/memory/both/entries", params={"owner": owner}).json()["data"]:
            found.add((e["tier"], e["id"], e["owner"], e["text"]))
    lost = [a for a in acked if tuple(a) not in found]
    proc2.send_signal(signal.SIGTERM)
    proc2.wait(timeout=60)

    statuses = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    ok = [r for r in results if r["status"] == 200]
    gen = [r for r in ok if "tokens" in r]
    streamed = [r["ttft_ms"] for r in gen if r.get("ttft_ms") is not None]
    tokens = sum(r["tokens"] for r in gen)
    failed = [r for r in results if r["status"] not in (200, 503)]
    report = {
        "bench": "server_load",
        "cpu": cpu_model(), "cores": os.cpu_count(),
        "requests": args.requests, "clients": args.clients, "slots": args.slots, "queue": args.queue,
        "max_tokens": args.max_tokens, "checkpoint": os.path.basename(os.path.normpath(args.checkpoint)),
        "status_counts": statuses, "failed_other_than_503": len(failed),
        "wall_s": round(wall, 2), "requests_per_s": round(len(results) / wall, 1),
        "latency_ms": {"p50": round(pct([r["ms"] for r in ok], 50), 1), "p99": round(pct([r["ms"] for r in ok], 99), 1)},
        "latency_ms_by_kind": {k: {"n": len(v), "p50": round(pct(v, 50), 1), "p99": round(pct(v, 99), 1)}
                               for k in sorted({r["kind"] for r in ok})
                               for v in [[r["ms"] for r in ok if r["kind"] == k]]},
        "ttft_ms_streamed": {"p50": round(pct(streamed, 50), 1), "p99": round(pct(streamed, 99), 1)} if streamed else None,
        "generated_tokens": tokens, "generated_tokens_per_s": round(tokens / wall, 1),
        "greedy_outputs_equal_sequential": not mismatches, "mismatches": mismatches[:20],
        "memory_adds_acknowledged": len(acked), "memory_adds_lost_after_restart": len(lost),
        "sigterm_exit_code": rc,
        "server_cancelled_total": float(re.search(r"^hmst_cancelled_total (\S+)", metrics, re.M).group(1)),
    }
    print(json.dumps(report, indent=1))
    return 0 if not failed and not mismatches and not lost and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

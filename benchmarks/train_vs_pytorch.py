#!/usr/bin/env python3
"""Training speed: hmst against PyTorch on the same Mixtral config (the micro preset:
hidden 256, 4 layers, 4 heads / 2 KV heads, 8 experts top-2, FFN 512, vocab 4096), sequence
256, batch 8, AdamW, 2 threads. Prints one JSON line per side and the ratios of hmst's f32
and mixed-precision (bf16 matmuls) steps to PyTorch's f32 step.
Needs `pip install torch==2.13.0+cpu transformers`.
    python3 benchmarks/train_vs_pytorch.py [--bench .build/release/hmst-bench] [--steps 5]
        [--rounds N] [--baseline-bench OLD_HMST_BENCH] [--precision f32|mixed|bf16]
--rounds N repeats PyTorch and hmst in turns and reports medians (a shared machine moves by 20%
between minutes); --baseline-bench adds an older hmst-bench to every round, its side
alternating with --bench, for an A/B of two builds against the same PyTorch figures.
--precision (rounds mode, default f32) is what hmst trains in: f32, mixed (what
--mixed-precision computes in on this CPU) or bf16 (bf16 compute forced).
"""
import argparse
import json
import statistics
import subprocess
import time

import torch
from transformers import MixtralConfig, MixtralForCausalLM


def pytorch(steps, threads, B=8, T=256):
    torch.set_num_threads(threads)
    cfg = MixtralConfig(vocab_size=4096, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                        max_position_embeddings=1024, output_router_logits=True, router_aux_loss_coef=0.001)
    model = MixtralForCausalLM(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 4096, (B, T + 1))
    times = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        out = model(ids[:, :-1], labels=ids[:, 1:].contiguous())
        # transformers shifts labels itself; feed the same window both ways for an equal amount of work
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if s > 0:
            times.append(time.perf_counter() - t0)
    ms = sorted(times)[len(times) // 2] * 1000
    return {"bench": "train", "impl": "pytorch", "torch": torch.__version__, "threads": threads, "batch": B, "seq": T,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2), "step_ms_median": round(ms, 1),
            "tokens_per_s": round(B * T / ms * 1000, 1)}


def hmst(bench, steps, threads, precisions):
    out = subprocess.run([bench, "train", "--preset", "micro", "--steps", str(steps), "--threads", str(threads),
                          "--precision", precisions], check=True, capture_output=True, text=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    for ours in lines:
        ours["impl"] = "hmst"
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=".build/release/hmst-bench")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--baseline-bench", default=None)
    ap.add_argument("--precision", default="f32", choices=["f32", "mixed", "bf16"])
    args = ap.parse_args()
    if args.rounds == 1 and args.baseline_bench is None:
        theirs = pytorch(args.steps, args.threads)
        print(json.dumps(theirs))
        ratios = {"comparison": "hmst / pytorch-f32 tokens/s (mixed = what --mixed-precision computes in on this CPU)"}
        for ours in hmst(args.bench, args.steps, args.threads, "f32,bf16,mixed"):
            print(json.dumps(ours))
            ratios[ours["dtype"]] = round(ours["tokens_per_s"] / theirs["tokens_per_s"], 2)
        print(json.dumps(ratios))
        return
    sides = {"pytorch": [], "hmst": []}
    machine = {}
    if args.baseline_bench:
        sides["baseline"] = []
    for r in range(args.rounds):
        theirs = pytorch(args.steps, args.threads)
        sides["pytorch"].append(theirs["tokens_per_s"])
        order = [("hmst", args.bench), ("baseline", args.baseline_bench)] if args.baseline_bench else [("hmst", args.bench)]
        if r % 2:
            order.reverse()
        for name, bench in order:
            line = hmst(bench, args.steps, args.threads, args.precision)[0]
            sides[name].append(line["tokens_per_s"])
            machine = {k: line[k] for k in ("cpu", "blas_core", "compute") if k in line}
        print(json.dumps({"round": r, **{k: v[-1] for k, v in sides.items()}}), flush=True)
    med = {k: statistics.median(v) for k, v in sides.items()}
    p = args.precision
    summary = {"comparison": f"hmst {p} / pytorch f32 tokens/s, medians over rounds", "rounds": args.rounds, "steps": args.steps,
               "threads": args.threads, **machine, "medians": med, p: round(med["hmst"] / med["pytorch"], 2), "raw": sides}
    if args.baseline_bench:
        summary[f"baseline_{p}"] = round(med["baseline"] / med["pytorch"], 2)
        summary["hmst_over_baseline_per_round"] = [round(a / b, 3) for a, b in zip(sides["hmst"], sides["baseline"])]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

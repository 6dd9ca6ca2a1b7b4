#!/usr/bin/env python3
"""Defaults that learn fast (issue 10, part 5): `hmst train` with its default flags for a fixed
wall-clock budget on a held-out English corpus, against a nanoGPT-style character-level GPT
in PyTorch (the "CPU recipe": 4 layers, 4 heads, 128 wide, 64-character blocks, batch 12,
learning rate 1e-3) on the same split, for the same budget, in the same run.

The corpus is Debian's fortunes (package `fortunes`): every entry of every fortune file,
shuffled with a fixed seed and split 90/10 by entry. Both sides are scored in bits per byte
on the whole validation text (non-overlapping windows). Prints one JSON line per run.

    python3 benchmarks/train_defaults.py [--budgets 100,120,600] [--hmst build/bin/hmst]
        [--threads 2] [--no-peer] [--flags "--learning-rate 1e-3"] [--work /tmp/train-defaults]
"""
import argparse
import glob
import json
import math
import os
import random
import shlex
import subprocess
import sys
import time

LN2 = math.log(2)


def split_corpus(work, seed=0, val_fraction=0.1):
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*") if "." not in os.path.basename(f))
    if not files:
        sys.exit("no fortune files: apt-get install fortunes")
    entries = []
    for f in files:
        text = open(f, encoding="utf-8", errors="replace").read()
        entries += [e.strip("\n") for e in text.split("\n%\n") if e.strip()]
    random.Random(seed).shuffle(entries)
    n_val = int(len(entries) * val_fraction)
    os.makedirs(work, exist_ok=True)
    paths = {}
    for name, part in (("val", entries[:n_val]), ("train", entries[n_val:])):
        paths[name] = os.path.join(work, name + ".txt")
        with open(paths[name], "w", encoding="utf-8") as out:
            out.write("\n%\n".join(part) + "\n")
    return paths, len(entries)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def run_hmst(hmst, paths, budget, threads, flags, work):
    out = os.path.join(work, f"hmst-{budget:g}")
    subprocess.run(["rm", "-rf", out], check=True)
    cmd = [hmst, "train", paths["train"], "--val-file", paths["val"], "--doc-separator", "%", "--time-budget", str(budget),
           "--eval-windows", "0", "--threads", str(threads), "--output-dir", out, "--no-progress"] + shlex.split(flags)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"hmst train failed ({r.returncode}):\n{r.stderr[-3000:]}")
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    last = lines[-1]
    start = next((x for x in r.stderr.splitlines() if x.startswith("training ")), "")
    return {"bench": "train_defaults", "impl": "hmst", "flags": flags or "(defaults)", "budget_s": budget,
            "val_bpb": round(last["val_bpb"], 4), "val_loss_per_token": round(last["val_loss"], 4),
            "steps": last["step"], "tokens": last["tokens"], "train_seconds": round(last["train_seconds"], 1),
            "wall_s": round(wall, 1), "start_line": start}


def run_peer(paths, budget, threads, seed=0):
    """A character-level GPT with nanoGPT's CPU recipe, trained for `budget` seconds; the rate
    warms up for 100 steps and decays by cosine to a tenth with the share of the budget spent."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train = torch.tensor(list(open(paths["train"], "rb").read()), dtype=torch.long)
    val = torch.tensor(list(open(paths["val"], "rb").read()), dtype=torch.long)
    L, H, C, T, B, lr_max = 4, 4, 128, 64, 12, 1e-3

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.n1(x)).view(b, t, 3, H, C // H).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, C)
            x = x + self.proj(a)
            return x + self.mlp(self.n2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(256, C), nn.Embedding(T, C)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.norm, self.head = nn.LayerNorm(C), nn.Linear(C, 256, bias=False)
            self.head.weight = self.tok.weight

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.norm(x))

    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=lr_max, betas=(0.9, 0.99), weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    spent, steps = 0.0, 0
    while spent < budget:
        t0 = time.perf_counter()
        f = spent / budget
        lr = lr_max * (steps + 1) / 100 if steps < 100 else lr_max * (0.1 + 0.45 * (1 + math.cos(math.pi * f)))
        for g in opt.param_groups:
            g["lr"] = lr
        ix = torch.randint(len(train) - T - 1, (B,), generator=gen)
        x = torch.stack([train[i:i + T] for i in ix])
        y = torch.stack([train[i + 1:i + T + 1] for i in ix])
        loss = F.cross_entropy(model(x).view(-1, 256), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        spent += time.perf_counter() - t0
        steps += 1
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        n = (len(val) - 1) // T
        xs = val[:n * T].view(n, T)
        ys = val[1:n * T + 1].view(n, T)
        for i in range(0, n, 256):
            logits = model(xs[i:i + 256])
            total += F.cross_entropy(logits.reshape(-1, 256), ys[i:i + 256].reshape(-1), reduction="sum").item()
            count += ys[i:i + 256].numel()
    return {"bench": "train_defaults", "impl": "pytorch-nanogpt-char", "torch": torch.__version__, "budget_s": budget,
            "val_bpb": round(total / count / LN2, 4), "steps": steps, "tokens": steps * B * T,
            "train_seconds": round(spent, 1), "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="100", help="comma-separated seconds of training")
    ap.add_argument("--hmst", default="build/bin/hmst")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flags", default="", help="extra `hmst train` flags (default: none, the defaults are measured)")
    ap.add_argument("--no-peer", action="store_true", help="skip the PyTorch side")
    ap.add_argument("--work", default="/tmp/hmst-train-defaults")
    a = ap.parse_args()
    paths, n = split_corpus(a.work)
    cpu = cpu_name()
    for budget in (float(x) for x in a.budgets.split(",")):
        r = run_hmst(a.hmst, paths, budget, a.threads, a.flags, a.work)
        r.update(cpu=cpu, threads=a.threads, corpus=f"fortunes, {n} entries, 90/10 by entry (seed 0)")
        print(json.dumps(r), flush=True)
        if not a.no_peer:
            try:
                p = run_peer(paths, budget, a.threads)
            except ImportError:
                print(json.dumps({"bench": "train_defaults", "impl": "pytorch-nanogpt-char", "skipped": "torch not installed"}))
                continue
            p.update(cpu=cpu, threads=a.threads)
            print(json.dumps(p), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tokenizer speed: hmst against Hugging Face tokenizers on the same ~5 MB English corpus.

The corpus is Debian's fortune files (apt-get install fortunes), repeated to reach --mb.
Prints one JSON line per measurement and a final comparison line with the ratios.
    python3 benchmarks/tokenizer_vs_hf.py [--bench .build/release/hmst-bench] [--mb 5]
Needs `pip install tokenizers`.
"""
import argparse
import glob
import json
import os
import subprocess
import tempfile
import time

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def corpus(mb):
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*") if os.path.isfile(f) and "." not in os.path.basename(f))
    if not files:
        raise SystemExit("no fortune files: apt-get install fortunes")
    base = b"".join(open(f, "rb").read() for f in files)
    data = base
    while len(data) < mb * 1_000_000:
        data += base
    return data[: int(mb * 1_000_000)]


def hf(path, vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, special_tokens=["<|endoftext|>", "<|pad|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    t0 = time.perf_counter()
    tok.train([path], tr)
    train_s = time.perf_counter() - t0
    text = open(path, encoding="utf-8", errors="replace").read()
    mb = len(text.encode()) / 1e6
    best = min(_timed(lambda: tok.encode(text)) for _ in range(3))
    lines = text.split("\n")
    best_batch = min(_timed(lambda: tok.encode_batch(lines)) for _ in range(3))
    return {"bench": "tokenizer", "impl": "hf-tokenizers", "vocab": vocab, "train_s": round(train_s, 3),
            "encode_mb_s_single_string": round(mb / best, 2), "encode_mb_s_batch_by_line": round(mb / best_batch, 2),
            "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default")}


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=".build/release/hmst-bench")
    ap.add_argument("--mb", type=float, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "corpus.txt")
        open(path, "wb").write(corpus(args.mb))
        results = []
        for vocab in (2000, 8000):
            r = hf(path, vocab)
            print(json.dumps(r))
            results.append(r)
        out = subprocess.run([args.bench, "tokenizer", "--corpus", path, "--vocab", "2000,8000", "--threads", "1,2"],
                             check=True, capture_output=True, text=True).stdout
        ours = [json.loads(l) for l in out.splitlines() if l.strip()]
        for o in ours:
            o["impl"] = "hmst"
            print(json.dumps(o))
        for r in results:
            o1 = next(o for o in ours if o["vocab"] == r["vocab"] and o["threads"] == 1)
            o2 = max((o for o in ours if o["vocab"] == r["vocab"]), key=lambda o: o["threads"])
            print(json.dumps({"comparison": "hmst / hf", "vocab": r["vocab"],
                              "train_speedup_1_thread": round(r["train_s"] / o1["train_s"], 2),
                              "encode_single_string_ratio": round(o1["encode_mb_s_single_string_1_thread"] / r["encode_mb_s_single_string"], 2),
                              "encode_batch_ratio": round(o2["encode_mb_s_batch_by_line"] / r["encode_mb_s_batch_by_line"], 2)}))


if __name__ == "__main__":
    main()

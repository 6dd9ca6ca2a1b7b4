"""How far another checkpoint's embeddings land from those a memory was built with.

A memory records the model that embedded its entries (ModelSignature) and refuses a model
whose sampled weights differ by more than 5%. This measures what that threshold lets through:
texts are embedded with the memory's model A and with another checkpoint B (a converted copy,
a short fine-tune), then, per text used as a query,
  - self_recall_at_1: B's query finds A's entry of the same text first;
  - cos_mean: the mean cosine of A's and B's embeddings of one text;
  - top5_vs_reencoded: the share of B's top 5 (among the other texts) in A's memory that B would
    also get from a memory re-encoded with B (what skipping `hmst memory reencode` changes).
One JSON line per checkpoint B; the signature distance comes from `hmst-bench signature`.

  HMST_LIBRARY=build/lib/libhmst.so python3 benchmarks/signature_geometry.py A B [B ...] [--texts N]
"""
import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bindings", "python"))
import hmst  # noqa: E402


def fortunes(n):
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*") if "." not in os.path.basename(f))
    texts = []
    for f in files:
        with open(f, errors="ignore") as fh:
            for t in fh.read().split("\n%\n"):
                t = " ".join(t.split())
                if 40 < len(t) < 300:
                    texts.append(t)
    if not texts:
        sys.exit("no fortune files (apt-get install fortunes-min)")
    return texts[:: max(1, len(texts) // n)][:n]


def embed(path, texts):
    with hmst.Model(path) as m:
        e = np.array([m.embed(t) for t in texts], dtype=np.float64)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def top5(scores):
    s = scores.copy()
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1)[:, :5]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("memory_model")
    ap.add_argument("others", nargs="+")
    ap.add_argument("--texts", type=int, default=600)
    a = ap.parse_args()
    texts = fortunes(a.texts)
    ea = embed(a.memory_model, texts)
    for path in a.others:
        eb = embed(path, texts)
        cross = eb @ ea.T
        own = top5(eb @ eb.T)
        stale = top5(cross)
        print(json.dumps({
            "bench": "signature_geometry", "memory_model": a.memory_model, "model": path, "texts": len(texts),
            "self_recall_at_1": round(float(np.mean(np.argmax(cross, axis=1) == np.arange(len(texts)))), 4),
            "cos_mean": round(float(np.mean(np.sum(ea * eb, axis=1))), 5),
            "top5_vs_reencoded": round(float(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(own, stale)])), 4),
        }))


if __name__ == "__main__":
    main()

"""Where the deleted gap is: per relation, the mean excess answer NLL of "deleted" over "off".

    hmst eval CKPT --task OUT/facts/tasks/facts_heldout_ll.json --memory OUT/mem \\
        --condition off,deleted --lexical-weight 6 --items-output items.jsonl
    python3 benchmarks/deleted_by_relation.py items.jsonl

Prints the overall gap (Σ deleted / Σ off − 1, as memory_finetune.sh reports it) and, per
relation, the item count, the mean excess in nats and its share of the total excess; --json for
one JSON line instead.
"""
import argparse
import collections
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("items", help="hmst eval --items-output file with off and deleted rows")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.items) if l.strip()]
    off = {r["id"]: r for r in rows if r.get("condition") == "off" and r.get("answer_nll") is not None}
    deleted = {r["id"]: r for r in rows if r.get("condition") == "deleted" and r.get("answer_nll") is not None}
    ids = sorted(set(off) & set(deleted))
    if not ids:
        print(f"{a.items}: no item has both an off and a deleted answer_nll", file=sys.stderr)
        return 2
    per = collections.defaultdict(lambda: [0, 0.0])
    for i in ids:
        rel = (off[i].get("metadata") or {}).get("relation", "?")
        per[rel][0] += 1
        per[rel][1] += deleted[i]["answer_nll"] - off[i]["answer_nll"]
    total_off = sum(off[i]["answer_nll"] for i in ids)
    excess = sum(v[1] for v in per.values())
    out = {"items": len(ids), "gap": excess / total_off,
           "relations": {r: {"n": n, "mean_excess_nats": s / n, "share": s / excess if excess else 0.0}
                         for r, (n, s) in sorted(per.items(), key=lambda x: -x[1][1])}}
    if a.json:
        print(json.dumps(out))
        return 0
    print(f"{len(ids)} items, deleted over off {100 * out['gap']:+.2f}%")
    for r, v in out["relations"].items():
        print(f"  {r:<16} n {v['n']:>5}  mean excess {v['mean_excess_nats']:+.3f} nats  share {100 * v['share']:6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())

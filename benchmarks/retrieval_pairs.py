"""Writes (question, fact) pairs from reference tables every Debian system has, and distractor
texts, for `hmst-bench retrieval` and `hmst train-retriever`:
  /usr/share/zoneinfo/iso3166.tab    country code -> name       "The ISO 3166 country code of Chad is TD."
  /usr/share/zoneinfo/zone1970.tab   zone -> coordinates         "Europe/Berlin lies at latitude 52 north ..."
  /etc/services                      service -> port/protocol    "The ssh service uses port 22 over tcp."
Questions are phrased differently from the facts (they share the entity name, not the wording).
Pairs are split by a hash of the fact into held-out (about half) and train; distractors are
lines of Debian's fortunes (the demo corpus), 20 to 200 characters, deduplicated.

    python3 benchmarks/retrieval_pairs.py OUTDIR [--distractors 10000]
    -> OUTDIR/heldout.jsonl OUTDIR/train.jsonl OUTDIR/distractors.txt
"""
import glob
import hashlib
import json
import os
import sys


def countries():
    for line in open("/usr/share/zoneinfo/iso3166.tab", encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        code, name = line.rstrip("\n").split("\t")[:2]
        yield f"Which two-letter code does ISO 3166 assign to {name}?", f"The ISO 3166 country code of {name} is {code}."


def zones():
    def deg(s, width):
        sign, d = s[0], int(s[1:1 + width])
        return d, sign
    for line in open("/usr/share/zoneinfo/zone1970.tab", encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        coord, zone = parts[1], parts[2]
        lat_len = 5 if len(coord) in (11, 12) and coord[5] in "+-" else 7
        lat, lon = coord[:lat_len], coord[lat_len:]
        la, las = deg(lat, 2)
        lo, los = deg(lon, 3)
        city = zone.split("/")[-1].replace("_", " ")
        yield (f"Where on the globe is the {zone} time zone's reference city {city}?",
               f"The time zone {zone} is centred on {city}, at latitude {la} {'north' if las == '+' else 'south'} "
               f"and longitude {lo} {'east' if los == '+' else 'west'}.")


def services():
    seen = set()
    for line in open("/etc/services", encoding="utf-8"):
        line = line.split("#")[0].strip()
        if not line:
            continue
        f = line.split()
        name, (port, proto) = f[0], f[1].split("/")
        if name in seen:
            continue
        seen.add(name)
        yield f"Which port number is assigned to the {name} service?", f"The {name} service uses port {port} over {proto}."


def main():
    out = sys.argv[1]
    n_distractors = int(sys.argv[sys.argv.index("--distractors") + 1]) if "--distractors" in sys.argv else 10000
    os.makedirs(out, exist_ok=True)
    held, train = [], []
    for q, f in [*countries(), *zones(), *services()]:
        h = int(hashlib.sha256(f.encode()).hexdigest(), 16)
        (held if h % 2 == 0 else train).append({"question": q, "fact": f})
    for name, rows in (("heldout", held), ("train", train)):
        with open(os.path.join(out, name + ".jsonl"), "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    lines, seen = [], set()
    for path in sorted(glob.glob("/usr/share/games/fortunes/*")):
        if path.endswith((".dat", ".u8")) or os.path.isdir(path):
            continue
        for line in open(path, encoding="utf-8", errors="replace"):
            t = " ".join(line.split())
            if 20 <= len(t) <= 200 and t not in seen:
                seen.add(t)
                lines.append(t)
    lines.sort(key=lambda t: hashlib.sha256(t.encode()).hexdigest())
    with open(os.path.join(out, "distractors.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines[:n_distractors]) + "\n")
    print(json.dumps({"heldout": len(held), "train": len(train), "distractors": min(n_distractors, len(lines))}))


if __name__ == "__main__":
    main()

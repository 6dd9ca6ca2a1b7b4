#!/usr/bin/env bash
# The Python trainer API as ranks of an MPI job: mpirun -np 2 python3 python_rank.py. Both
# ranks report rank/ranks and identical (all-reduced) losses; rank 0 alone saved. Then a C
# host that uses MPI itself trains in its own communicator (host_comm.c, built with mpicc).
# Then the failures that no rank can see alone (python_rank_fail.py): rank 1's data is missing
# (it fails at create; rank 0 must not wait for the 120 s collective timeout), and rank 1's data
# has the same size but other tokens (both stop at create, naming the data).
#   test_python_mpi.sh LIBHMST FIXTURES OUT
set -euo pipefail
LIB=$1; FX=$2; OUT=$3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
rm -rf "$OUT"; mkdir -p "$OUT"
MPIRUN=(mpirun --oversubscribe --bind-to none -np 2)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)
"${MPIRUN[@]}" -x HMST_LIBRARY="$LIB" -x PYTHONPATH="$ROOT/bindings/python" python3 "$HERE/python_rank.py" "$FX" "$OUT" >"$OUT/ranks.jsonl"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = sorted((json.loads(l) for l in open(f"{out}/ranks.jsonl")), key=lambda r: r["rank"])
assert [(r["rank"], r["ranks"]) for r in rows] == [(0, 2), (1, 2)], rows
assert rows[0]["losses"] == rows[1]["losses"], rows          # the mean over ranks, on every rank
assert os.path.exists(f"{out}/saved/checkpoint.json")
print("test_python_mpi: 2 ranks, losses", [round(x, 4) for x in rows[0]["losses"]], "ok")
PY

# rank 1's data: the fixture's with its first token changed (same size, same metadata)
cp -r "$FX/data" "$OUT/other-data"
python3 - "$OUT/other-data" <<'PY'
import os, sys
p = os.path.join(sys.argv[1], sorted(f for f in os.listdir(sys.argv[1]) if f.endswith(".bin"))[0])
b = bytearray(open(p, "rb").read())
i = 64 + (len(b) - 64) // 2 // 4 * 4 + 4 * 3   # a token between the sampled runs, near the middle
b[i] ^= 1
open(p, "wb").write(b)
PY
for mode in missing otherdata; do
    "${MPIRUN[@]}" -x HMST_LIBRARY="$LIB" -x PYTHONPATH="$ROOT/bindings/python" python3 "$HERE/python_rank_fail.py" $mode "$FX" "$OUT"
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def rows(mode):
    return [json.load(open(f"{out}/fail-{mode}-rank{r}.json")) for r in (0, 1)]
r0, r1 = rows("missing")
assert "no-such-data" in r1["error"], r1                          # the failed rank: its own error
assert "rank 1 failed during the trainer's creation" in r0["error"], r0
assert r0["seconds"] < 60 and r1["seconds"] < 60, (r0, r1)        # not the 120 s timeout
r0, r1 = rows("otherdata")
for r in (r0, r1):
    assert "training data (fingerprint)" in r["error"], r      # every token hashed: a change between the sampled runs shows
print("test_python_mpi: a rank failing at create stops the other in", r0["seconds"], "s; different data of one size refused: ok")
PY

mpicc -std=c11 -Wall -Werror -I"$ROOT/include" "$HERE/host_comm.c" -L"$(dirname "$LIB")" -l:"$(basename "$LIB")" \
    -Wl,-rpath,"$(dirname "$LIB")" -o "$OUT/host_comm"
"${MPIRUN[@]}" "$OUT/host_comm" "$FX/data" "$OUT/host"
rm -rf "$OUT"

#!/usr/bin/env bash
# The Python trainer API as ranks of an MPI job: mpirun -np 2 python3 python_rank.py. Both
# ranks report rank/ranks and identical (all-reduced) losses; rank 0 alone saved. Then a C
# host that uses MPI itself trains in its own communicator (host_comm.c, built with mpicc).
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

mpicc -std=c11 -Wall -Werror -I"$ROOT/include" "$HERE/host_comm.c" -L"$(dirname "$LIB")" -l:"$(basename "$LIB")" \
    -Wl,-rpath,"$(dirname "$LIB")" -o "$OUT/host_comm"
"${MPIRUN[@]}" "$OUT/host_comm" "$FX/data" "$OUT/host"
rm -rf "$OUT"

#!/usr/bin/env bash
# The pre-trained base that benchmarks/memory_finetune.sh's Stage 2 arms start from (issue 11):
# the micro preset, 3,500 steps of 8 x 256 tokens on the fortune files + reading documents (facts,
# then questions answered from them) + copy lists, learning rate 1e-3. The reading documents never
# name the fact benchmark's entities (--exclude), so held-out facts stay unknowable without memory.
# make demo runs the same mix, shorter (450 steps of 8 x 128).
# Usage: benchmarks/memory_base.sh OUT        (then: memory_finetune.sh OUT/best_model OUT STAGE2_OUT)
# Environment: STEPS (3500), THREADS (2), SEED (1), READING_DOCS (7000), COPY_DOCS (9000),
#   HMST (build/bin/hmst). About 25-40 minutes on 2 cores; prints the validation curve.
set -euo pipefail
HMST=${HMST:-build/bin/hmst}
OUT=$1
STEPS=${STEPS:-3500}
THREADS=${THREADS:-2}
SEED=${SEED:-1}
READING_DOCS=${READING_DOCS:-7000}
COPY_DOCS=${COPY_DOCS:-9000}
FORTUNES=$(ls /usr/share/games/fortunes/* 2>/dev/null | grep -v '\.' || true)
if [[ -z "$FORTUNES" ]]; then echo "memory_base.sh: no fortune files (apt-get install fortunes)" >&2; exit 1; fi
rm -rf "$OUT" && mkdir -p "$OUT"
"$HMST" facts generate --output "$OUT/facts" --seed 1 > /dev/null
"$HMST" facts reading --output "$OUT/reading.txt" --documents "$READING_DOCS" --copy-documents "$COPY_DOCS" \
    --exclude "$OUT/facts"
# shellcheck disable=SC2086
"$HMST" train "$OUT/reading.txt" $FORTUNES --doc-separator % --model-size micro --vocab-size 4096 --seq-len 256 \
    --batch-size 8 --steps-per-epoch "$STEPS" --eval-every 500 --val-split 0.05 --learning-rate 1e-3 \
    --seed "$SEED" --threads "$THREADS" --no-progress --output-dir "$OUT"
md5sum "$OUT/reading.txt" >&2
grep val_loss "$OUT/metrics.jsonl" | python3 -c "import sys, json
for d in map(json.loads, sys.stdin):
    print('step %5d  val loss %.4f nats/token, %.4f bits/byte' % (d['step'], d['val_loss'], d.get('val_bpb', float('nan'))))"

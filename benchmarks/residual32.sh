#!/usr/bin/env bash
# Residual diffusion against image-space diffusion, val split (256 crops), one `fastdec bench` run: the
# runs of scripts/train_residual32.sh ($OUT) beside the bundled one-pass decoder and the image-space S = 3
# teacher of scripts/train_photos32.sh ($BASE).
# Output: $DEST/residual.{json,md,png}. docs/results.md, "Residual diffusion", shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/r32}
BASE=${BASE:-runs/p32}
DEST=${DEST:-benchmarks/results/corpus32/val}
mkdir -p "$DEST"
rows=(--model "photos32-onepass:label=one-pass" --model "$BASE/ms3/export:steps=4/4/4,temperature=0.7,label=image S=3 4/4/4 t0.7")
for run in ms3 ms3-long ms3-white; do
  for t in 1 0.85 0.7; do
    rows+=(--model "$OUT/$run/export:steps=4/4/4,temperature=$t,label=$run 4/4/4 t$t")
  done
  rows+=(--model "$OUT/$run/export:steps=1,temperature=1,label=$run 1/1/1 t1")
done
rows+=(--model "$OUT/fullres/export:steps=50,temperature=1,label=fullres 50 t1")
rows+=(--model "$OUT/fullres/export:steps=50,temperature=0.7,label=fullres 50 t0.7")
OMP_NUM_THREADS=2 .venv/bin/fastdec bench --data photos-val --limit 256 --repeats 1 --threads 2 "${rows[@]}" "$@" \
  --json "$DEST/residual.json" --markdown "$DEST/residual.md" --grid "$DEST/residual.png" > "$DEST/residual.log" 2>&1
cat "$DEST/residual.md"

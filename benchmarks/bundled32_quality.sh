#!/usr/bin/env bash
# The quality rows of benchmarks/bundled32.sh (no 50-step teacher, no timing worth reading) on more test
# crops: LIMIT (2048) crops of the corpus's test split, rFID on the same LIMIT. The FID estimator's
# bias falls like 1/N and is much the same for every decoder, so at 512 crops it pulls rFID ratios
# towards 1; this run shows them at four times the N. Output: $DEST/quality$LIMIT.{json,md,log}.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-benchmarks/results/corpus32/bundled}
LIMIT=${LIMIT:-2048}
THREADS=${THREADS:-2}
mkdir -p "$DEST"
OMP_NUM_THREADS=$THREADS .venv/bin/fastdec bench --data photos-test --limit "$LIMIT" --repeats 1 --threads "$THREADS" \
  --model "photos32-ms3:label=S=3 teacher 4/4/4" \
  --model "photos32-ms3:steps=1,temperature=${STUDENT_TEMPERATURE:-0.85},label=S=3 teacher 1 step per stage (undistilled)" \
  --model "${STUDENT:-photos32-ms3-1step}:label=S=3 student (ADD + perceptual 2)" \
  --model "photos32-onepass:label=one-pass" \
  --model "photos32-prior:label=narrow one-pass (the S=3 prior)" \
  --model "pca-128:label=PCA 128" \
  --model "thumbnail-6:label=thumbnail 6x6" \
  --json "$DEST/quality$LIMIT.json" --markdown "$DEST/quality$LIMIT.md" > "$DEST/quality$LIMIT.log" 2>&1
cat "$DEST/quality$LIMIT.md"

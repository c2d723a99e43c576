#!/usr/bin/env bash
# The bundled photos32-* family on LIMIT (512) crops of the corpus's test split, in one `fastdec bench` run
# (quality, FLOPs and interleaved decode times, ratios against the guided single-scale teacher), beside
# the two reference codecs. Each model decodes with its shipped defaults (chosen on the val split)
# unless the row says otherwise. Output: $DEST/bench512.{json,md,log}.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-benchmarks/results/corpus32/bundled}
LIMIT=${LIMIT:-512}
THREADS=${THREADS:-2}
mkdir -p "$DEST"
OMP_NUM_THREADS=$THREADS .venv/bin/fastdec bench --data photos-test --limit "$LIMIT" --repeats 3 --threads "$THREADS" \
  --model "photos32-fullres:steps=50,guidance=1.5,label=single-scale teacher 50 steps w1.5" \
  --model "photos32-fullres:label=single-scale teacher 50 steps" \
  --model "photos32-ms3:label=S=3 teacher 4/4/4" \
  --model "photos32-ms3:steps=1,temperature=${STUDENT_TEMPERATURE:-0.85},label=S=3 teacher 1 step per stage (undistilled)" \
  --model "photos32-ms3-1step:label=S=3 student (ADD + perceptual 2)" \
  --model "photos32-onepass:label=one-pass" \
  --model "photos32-prior:label=narrow one-pass (the S=3 prior)" \
  --model "pca-128:label=PCA 128" \
  --model "thumbnail-6:label=thumbnail 6x6" \
  --json "$DEST/bench$LIMIT.json" --markdown "$DEST/bench$LIMIT.md" --grid "$DEST/reconstructions.png" \
  > "$DEST/bench$LIMIT.log" 2>&1
cat "$DEST/bench$LIMIT.md"

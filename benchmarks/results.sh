#!/usr/bin/env bash
# Regenerates the README's results table and figures from the cpu32 runs of scripts/train_bundled.sh
# (or OUT=<dir> holding runs of the same names). Extra arguments go to `fastdec bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${OUT:-runs/cpu32}
mkdir -p benchmarks/results
OMP_NUM_THREADS=${THREADS:-2} .venv/bin/fastdec bench --threads "${THREADS:-2}" --limit "${LIMIT:-64}" \
  --batch-size 32 --repeats 3 \
  --model "$R/fullres/export:steps=50,guidance=1.5,label=fullres 50 steps w1.5" \
  --model "$R/fullres/export:steps=50,label=fullres 50 steps" \
  --model "$R/fullres/export:steps=10,label=fullres 10 steps" \
  --model "$R/ms3/export:total_steps=50,label=ms3 T=50 split" \
  --model "$R/ms3/export:steps=4/4/4,label=ms3 4/4/4" \
  --model "$R/ms3-1step-regression/export:label=student regression" \
  --model "$R/ms3-1step-add/export:label=student ADD" \
  --model "thumbnail-6:label=thumbnail 6x6" \
  --json benchmarks/results/results.json --markdown benchmarks/results/results.md \
  --plot benchmarks/results/speed_quality.png --grid benchmarks/results/reconstructions.png "$@"

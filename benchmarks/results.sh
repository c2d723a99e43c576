#!/usr/bin/env bash
# Regenerates the results table and figures that docs/results.md shows ("The cpu32 family"; it writes
# benchmarks/results/, never README.md): the bundled photos32 models (default), or the runs of
# scripts/train_bundled.sh with OUT=<dir> (which adds the regression student). Extra arguments go to
# `fastdec bench`; RESULTS=<dir> writes somewhere else than benchmarks/results.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${RESULTS:-benchmarks/results}
if [ -n "${OUT:-}" ]; then
  full=$OUT/fullres/export ms3=$OUT/ms3/export student=$OUT/ms3-1step-add/export onepass=$OUT/onepass/export
  extra=(--model "$OUT/ms3-1step-regression/export:label=student regression (3 calls)")
else
  full=photos32-fullres ms3=photos32-ms3 student=photos32-ms3-1step onepass=photos32-onepass extra=()
fi
mkdir -p "$DEST"
OMP_NUM_THREADS=${THREADS:-2} .venv/bin/fastdec bench --threads "${THREADS:-2}" --limit "${LIMIT:-64}" \
  --batch-size 32 --repeats 3 \
  --model "$full:steps=50,guidance=1.5,label=fullres 50 steps w1.5" \
  --model "$full:steps=50,label=fullres 50 steps" \
  --model "$full:steps=10,label=fullres 10 steps" \
  --model "$ms3:total_steps=50,label=ms3 T=50 split" \
  --model "$ms3:steps=4/4/4,label=ms3 4/4/4" \
  --model "$ms3:steps=50,guidance=1.5,label=ms3 50/stage w1.5 (the students' teacher)" \
  "${extra[@]}" \
  --model "$student:label=student ADD (3 calls)" \
  --model "$onepass:label=one-pass (1 call)" \
  --model "thumbnail-6:label=thumbnail 6x6 (no network)" \
  --json "$DEST/results.json" --markdown "$DEST/results.md" \
  --plot "$DEST/speed_quality.png" --grid "$DEST/reconstructions.png" "$@"

#!/usr/bin/env bash
# The S = 3 teacher and student refining the narrow prior photos32-prior (scripts/train_bundled.sh, runs in
# $OUT): their decode settings on 256 val crops in one `fastdec bench` run, beside both one-pass decoders,
# to choose the shipped temperatures. Output: $DEST/val.{md,json,log,png}; docs/results.md shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/p32}
DEST=${DEST:-benchmarks/results/corpus32/narrow}
THREADS=${THREADS:-2}
mkdir -p "$DEST"
T=$OUT/ms3-detail/export
S=$OUT/ms3-detail-1step/export
rows=(--model "photos32-onepass:label=one-pass (width 48)" --model "photos32-prior:label=narrow one-pass (width 16)")
for t in 1 0.85 0.7; do rows+=(--model "$T:steps=4/4/4,temperature=$t,label=S=3 teacher 4/4/4 t$t"); done
for t in 1 0.7; do rows+=(--model "$T:steps=1,temperature=$t,label=S=3 teacher 1 step per stage t$t"); done
for t in 1 0.85 0.7; do rows+=(--model "$S:temperature=$t,label=student t$t"); done
OMP_NUM_THREADS=$THREADS .venv/bin/fastdec bench --data photos-val --limit 256 --repeats 1 --threads "$THREADS" \
  "${rows[@]}" --json "$DEST/val.json" --markdown "$DEST/val.md" --grid "$DEST/val.png" > "$DEST/val.log" 2>&1
cat "$DEST/val.md"
# The committed val.md was measured with an ADD-only student at $S (the distill command without
# distill.perceptual); $ADD_ONLY names such a run, to compare it with the shipped student (perceptual term).
if [ -n "${ADD_ONLY:-}" ]; then
  OMP_NUM_THREADS=$THREADS .venv/bin/fastdec bench --data photos-val --limit 256 --repeats 1 --threads "$THREADS" \
    --model "$ADD_ONLY:temperature=0.7,label=student t0.7" \
    --model "$S:temperature=0.7,label=student +perceptual 0.5 t0.7" \
    --model "$S:temperature=0.85,label=student +perceptual 0.5 t0.85" \
    --markdown "$DEST/val-student.md" --grid "$DEST/val-student.png" > "$DEST/val-student.log" 2>&1
  cat "$DEST/val-student.md"
fi

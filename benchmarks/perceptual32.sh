#!/usr/bin/env bash
# The perceptual and adversarial weights of the S = 3 student's distillation, chosen on 256 val crops in
# one `fastdec bench` run: the bundled student beside students distilled from the bundled teacher with
# other weights (the distill command of scripts/train_bundled.sh with PERCEPTUAL_WEIGHT / ADV_WEIGHT, or
# a student fine-tuned from one with train.init_from), CANDIDATES="label=export ...", each at the temperatures TEMPERATURES, with the one-pass decoder whose
# rFID the issues compare with. Output: $DEST/val-perceptual.{md,log,png}.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-benchmarks/results/corpus32/narrow}
THREADS=${THREADS:-2}
: "${CANDIDATES:?set CANDIDATES=\"label=export ...\"}"
mkdir -p "$DEST"
rows=(--model "photos32-onepass:label=one-pass")
for t in ${TEMPERATURES:-0.85 0.7}; do
  rows+=(--model "photos32-ms3-1step:temperature=$t,label=student (bundled) t$t")
  for c in $CANDIDATES; do rows+=(--model "${c#*=}:temperature=$t,label=student ${c%%=*} t$t"); done
done
OMP_NUM_THREADS=$THREADS .venv/bin/fastdec bench --data photos-val --limit 256 --repeats 1 --threads "$THREADS" \
  "${rows[@]}" --markdown "$DEST/val-perceptual.md" --grid "$DEST/val-perceptual.png" > "$DEST/val-perceptual.log" 2>&1
cat "$DEST/val-perceptual.md"

#!/usr/bin/env bash
# photos32-prior: the narrow one-pass decoder (U-Net width 16, two blocks per level; preset photos32-prior)
# that the bundled S = 3 teacher and its student refine (`--preset photos32 --set model.prior_width=16
# --set train.prior_from=photos32-prior`; scripts/train_bundled.sh): its call is the one cost per decode that
# neither the pyramid nor distillation shrinks, and at width 16 it costs a ninth of photos32-onepass's
# (docs/method.md §11.4; benchmarks/results/corpus32/flops_design.md). Photo corpus, train split; 4500
# steps x 32 crops, 2 threads, under 52 min here; then packed (float16) into src/fastdec/assets/models.
# Re-running resumes the run where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/p32}
F=.venv/bin/fastdec
mkdir -p "$OUT"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $F train --preset photos32-prior --set train.steps="${PRIOR_STEPS:-4500}" \
  --set train.eval_every=1500 --set train.max_minutes=52 --no-progress --run "$OUT/prior" > "$OUT/prior.out" 2>&1
$F pack --model "$OUT/prior/export" --output "${ASSETS:-src/fastdec/assets/models}/photos32-prior" \
  --note "scripts/train_prior32.sh: $OUT/prior"

#!/usr/bin/env bash
# The bundled photos32-* family, with every command and seed, so anyone can retrain and re-pack it.
# 1. scripts/train_photos32.sh: the one-pass decoder (~45 min, 2 threads), then the single-scale and
#    the S = 3 teachers side by side (~40 min, one thread each); all on the photo corpus's train split.
# 2. The one-step-per-stage student distils from the S = 3 teacher (ADD: stage-path targets that carry
#    the student's noise, adversarial term; ~60 min on one thread; docs/method.md §9).
# 3. The four models are packed (float16 parameters) into src/fastdec/assets/models. The teachers and
#    the student keep their frozen encoder and one-pass prior by reference to photos32-onepass, so those
#    weights ship once. Decode defaults (steps, temperature) are the ones chosen on the val split.
# Re-running resumes every run where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-runs/p32}
ASSETS=${ASSETS:-src/fastdec/assets/models}
F=.venv/bin/fastdec

bash scripts/train_photos32.sh

OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $F distill --teacher "$OUT/ms3/export" --run "$OUT/ms3-1step" --no-progress \
  --set train.steps="${DISTILL_STEPS:-500}" --set train.batch_size=16 --set train.lr=1e-4 \
  --set train.warmup_steps=20 --set train.ema_decay=0.99 --set distill.target=stage_path \
  --set distill.adversarial_weight="${ADV_WEIGHT:-0.5}" > "$OUT/ms3-1step.out" 2>&1

pack() {  # run, bundled name, then pack arguments
  local run=$1 name=$2
  shift 2
  $F pack --model "$OUT/$run/export" --output "$ASSETS/$name" --note "scripts/train_bundled.sh: $OUT/$run" "$@"
}
pack onepass photos32-onepass
SHARED=(--prior-export "$ASSETS/photos32-onepass")
pack fullres photos32-fullres "${SHARED[@]}" --set sample.steps=50 --set sample.temperature=0.7
pack ms3 photos32-ms3 "${SHARED[@]}" --set sample.steps=4/4/4 --set sample.temperature=0.7
pack ms3-1step photos32-ms3-1step "${SHARED[@]}" --set sample.temperature=0.7

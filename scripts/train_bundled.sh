#!/usr/bin/env bash
# The bundled photos32-* family, with every command and seed, so anyone can retrain and re-pack it.
# 1. scripts/train_photos32.sh: the one-pass decoder (~45 min, 2 threads), then the single-scale and
#    the S = 3 teachers side by side (~40 min, one thread each); all on the photo corpus's train split.
# 2. The S = 3 teacher fine-tuned with detail terms on its clean estimates (docs/method.md §6): the
#    Inception perceptual term and the hinge GAN term, each at weight 0.5, 2000 steps at lr 1e-4
#    (~55 min on one thread; docs/results.md, "Detail terms for the teacher"). This is photos32-ms3.
# 3. Its one-step-per-stage student (ADD: stage-path targets that carry the student's noise,
#    adversarial term; ~20 min on one thread; docs/method.md §9).
# 4. The four models are packed (float16 parameters) into src/fastdec/assets/models. The teachers and
#    the student keep their frozen encoder and one-pass prior by reference to photos32-onepass, so those
#    weights ship once. Decode defaults (steps, temperature) are the ones chosen on the val split.
# Steps 2-3 are the runs ms3-p0.5-g0.5 and ms3-g0.5-1step of scripts/train_detail32.sh, same commands.
# Re-running resumes every run where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-runs/p32}
ASSETS=${ASSETS:-src/fastdec/assets/models}
F=.venv/bin/fastdec

bash scripts/train_photos32.sh

OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $F train --preset photos32 --set model.num_stages=3 \
  --set train.prior_from="$OUT/onepass/export" --set train.init_from="$OUT/ms3/export" \
  --set train.perceptual=inception --set train.perceptual_weight=0.5 --set train.adversarial_weight=0.5 \
  --set train.lr=1e-4 --set train.warmup_steps=50 --set train.steps="${DETAIL_STEPS:-2000}" \
  --set train.eval_every=500 --set train.eval_images=128 --set train.eval_steps=8 --set train.log_every=10 \
  --no-progress --run "$OUT/ms3-detail" > "$OUT/ms3-detail.out" 2>&1

OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $F distill --teacher "$OUT/ms3-detail/export" --run "$OUT/ms3-detail-1step" \
  --no-progress --set train.steps="${DISTILL_STEPS:-500}" --set train.batch_size=16 --set train.lr=1e-4 \
  --set train.warmup_steps=20 --set train.ema_decay=0.99 --set distill.target=stage_path \
  --set distill.adversarial_weight="${ADV_WEIGHT:-0.5}" > "$OUT/ms3-detail-1step.out" 2>&1

pack() {  # run, bundled name, then pack arguments
  local run=$1 name=$2
  shift 2
  $F pack --model "$OUT/$run/export" --output "$ASSETS/$name" --note "scripts/train_bundled.sh: $OUT/$run" "$@"
}
pack onepass photos32-onepass
SHARED=(--prior-export "$ASSETS/photos32-onepass")
pack fullres photos32-fullres "${SHARED[@]}" --set sample.steps=50 --set sample.temperature=0.7
pack ms3-detail photos32-ms3 "${SHARED[@]}" --set sample.steps=4/4/4 --set sample.temperature=0.85
pack ms3-detail-1step photos32-ms3-1step "${SHARED[@]}" --set sample.temperature=0.7

#!/usr/bin/env bash
# The bundled photos32-* family, with every command and seed, so anyone can retrain and re-pack it.
# 1. scripts/train_prior32.sh: photos32-prior, the narrow one-pass decoder (U-Net width 16; ~45 min,
#    2 threads), packed first: the S = 3 teacher and its student refine its decode, and its call is the
#    one cost per decode that neither the pyramid nor the distillation shrinks (docs/method.md §11.4).
# 2. scripts/train_photos32.sh: the wide one-pass decoder (photos32-onepass, ~45 min, 2 threads), then
#    the single-scale teacher refining it and the S = 3 teacher refining photos32-prior, side by side
#    (~40 min, one thread each); all on the photo corpus's train split.
# 3. The S = 3 teacher fine-tuned with detail terms on its clean estimates (docs/method.md §6): the
#    Inception perceptual term and the hinge GAN term, each at weight 0.5, 2000 steps at lr 1e-4
#    (docs/results.md, "Detail terms for the teacher"). This is photos32-ms3.
# 4. Its one-step-per-stage student (ADD: stage-path targets that carry the student's noise,
#    adversarial term, Inception perceptual term at weight 2; docs/method.md §9; the weights chosen on
#    the val split by benchmarks/perceptual32.sh), then fine-tuned from itself (train.init_from, new
#    discriminator heads) on a 1000-step schedule at lr 5e-5 stopped at step 386 (train.stop_at): val
#    rFID 155.5 against 158.7 (benchmarks/results/corpus32/narrow/val-continue.md); then once more, a
#    full 600-step schedule at lr 5e-5: val rFID 154.2 (val-continue2.md). This is photos32-ms3-1step.
# 5. The models are packed (float16 parameters) into src/fastdec/assets/models. The diffusion decoders
#    keep their frozen encoder and one-pass prior by reference to the export they refine (photos32-onepass
#    for the single-scale teacher, photos32-prior for the S = 3 teacher and the student), so those weights
#    ship once. Decode defaults (steps, temperature) are the ones chosen on the val split.
# Re-running resumes every run where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-runs/p32}
ASSETS=${ASSETS:-src/fastdec/assets/models}
F=.venv/bin/fastdec

bash scripts/train_prior32.sh
MS_PRIOR="$ASSETS/photos32-prior" MS_PRIOR_WIDTH=16 bash scripts/train_photos32.sh

OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $F train --preset photos32 --set model.num_stages=3 \
  --set model.prior_width=16 --set train.prior_from="$ASSETS/photos32-prior" --set train.init_from="$OUT/ms3/export" \
  --set train.perceptual=inception --set train.perceptual_weight=0.5 --set train.adversarial_weight=0.5 \
  --set train.lr=1e-4 --set train.warmup_steps=50 --set train.steps="${DETAIL_STEPS:-2000}" \
  --set train.eval_every=500 --set train.eval_images=128 --set train.eval_steps=8 --set train.log_every=10 \
  --no-progress --run "$OUT/ms3-detail" > "$OUT/ms3-detail.out" 2>&1

distill() {  # run, then distill arguments; every round shares the teacher and the loss terms
  local run=$1
  shift
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $F distill --teacher "$OUT/ms3-detail/export" --run "$OUT/$run" \
    --no-progress --set train.batch_size=16 --set train.warmup_steps=20 --set train.ema_decay=0.99 \
    --set distill.target=stage_path --set distill.adversarial_weight="${ADV_WEIGHT:-0.5}" \
    --set distill.perceptual=inception --set distill.perceptual_weight="${PERCEPTUAL_WEIGHT:-2}" \
    "$@" > "$OUT/$run.out" 2>&1
}
distill ms3-detail-1step --set train.steps="${DISTILL_STEPS:-500}" --set train.lr=1e-4
distill ms3-detail-1step-ft --set train.init_from="$OUT/ms3-detail-1step/export" --set train.steps=1000 \
  --set train.stop_at="${FINETUNE_STOP:-386}" --set train.lr=5e-5
distill ms3-detail-1step-ft2 --set train.init_from="$OUT/ms3-detail-1step-ft/export" --set train.steps=600 \
  --set train.lr=5e-5

pack() {  # run, bundled name, then pack arguments
  local run=$1 name=$2
  shift 2
  $F pack --model "$OUT/$run/export" --output "$ASSETS/$name" --note "scripts/train_bundled.sh: $OUT/$run" "$@"
}
pack onepass photos32-onepass
pack fullres photos32-fullres --prior-export "$ASSETS/photos32-onepass" --set sample.steps=50 --set sample.temperature=0.7
NARROW=(--prior-export "$ASSETS/photos32-prior")
pack ms3-detail photos32-ms3 "${NARROW[@]}" --set sample.steps=4/4/4 --set sample.temperature="${MS_TEMPERATURE:-0.85}"
pack ms3-detail-1step-ft2 photos32-ms3-1step "${NARROW[@]}" --set sample.temperature="${STUDENT_TEMPERATURE:-0.85}"

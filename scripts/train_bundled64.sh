#!/usr/bin/env bash
# The bundled photos64-* family, with every command and seed (presets photos64-onepass, photos64-prior,
# photos64 in src/fastdec/presets.py; all on the photo corpus's train split, chosen on its val split):
# 1. the one-pass decoder (photos64-onepass: U-Net width 48, three blocks per level) and the narrow
#    one-pass decoder that the diffusion decoders refine (photos64-prior: width 16, two blocks; its
#    encoder is the family's), side by side with one thread each, each at most 2 h 10 min; both packed
#    at once, so that the teachers refine the prior exactly as it ships (float16 parameters).
# 2. the single-scale (S = 1) and the multi-scale (S = 3, 16 -> 32 -> 64 px) teachers, side by side with
#    one thread each: encoder and prior copied from the bundled photos64-prior and frozen
#    (train.prior_from), their own U-Net (width 48) learns by flow matching what the prior's decode
#    misses. The single-scale step costs about twice the multi-scale one, so at equal wall clock it
#    takes half the steps; max_minutes keeps each under 2.5 hours.
# 3. the multi-scale teacher's one-step-per-stage student (ADD: stage-path targets, adversarial term).
# 4. the teachers and the student packed (float16 parameters) into src/fastdec/assets/models; they keep
#    the frozen encoder and prior by reference to photos64-prior, so those weights ship once.
# STAGE=1..4 runs one step only (the family takes more than one sitting on a 2-core CPU); re-running a
# step resumes its runs where they stopped. *_STEPS scale the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/p64}
ASSETS=${ASSETS:-src/fastdec/assets/models}
F=.venv/bin/fastdec
STAGE=${STAGE:-all}
mkdir -p "$OUT"
COMMON=(--no-progress)
want() { [[ "$STAGE" == all || "$STAGE" == "$1" ]]; }
pack() {  # run, bundled name, then pack arguments
  local run=$1 name=$2
  shift 2
  [[ -f "$OUT/$run/export/config.json" ]] || { echo "no $OUT/$run/export: $name not packed" >&2; return 0; }
  $F pack --model "$OUT/$run/export" --output "$ASSETS/$name" --note "scripts/train_bundled64.sh: $OUT/$run" "$@"
}

if want 1; then
  OMP_NUM_THREADS=1 $F train --preset photos64-onepass --set train.steps="${ONEPASS_STEPS:-2000}" \
    --set train.eval_every=400 --set train.max_minutes=130 --run "$OUT/onepass" "${COMMON[@]}" \
    > "$OUT/onepass.out" 2>&1 &
  OMP_NUM_THREADS=1 $F train --preset photos64-prior --set train.steps="${PRIOR_STEPS:-8000}" \
    --set train.eval_every=1000 --set train.max_minutes=130 --run "$OUT/prior" "${COMMON[@]}" \
    > "$OUT/prior.out" 2>&1 &
  wait
  pack onepass photos64-onepass
  pack prior photos64-prior
fi

if want 2; then
  TEACHER=(--preset photos64 --set train.prior_from="$ASSETS/photos64-prior" --set train.max_minutes=145 "${COMMON[@]}")
  FULL_STEPS=${FULL_STEPS:-1300} MS_STEPS=${MS_STEPS:-2700}
  OMP_NUM_THREADS=1 $F train "${TEACHER[@]}" --set train.steps="$FULL_STEPS" \
    --set train.eval_every=$((FULL_STEPS / 2)) --run "$OUT/fullres" > "$OUT/fullres.out" 2>&1 &
  OMP_NUM_THREADS=1 $F train "${TEACHER[@]}" --set model.num_stages=3 --set train.steps="$MS_STEPS" \
    --set train.eval_every=$((MS_STEPS / 3)) --run "$OUT/ms3" > "$OUT/ms3.out" 2>&1 &
  wait
fi

if want 3; then
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} $F distill --teacher "$OUT/ms3/export" --run "$OUT/ms3-1step" \
    --no-progress --set train.steps="${DISTILL_STEPS:-500}" --set train.batch_size=16 --set train.lr=1e-4 \
    --set train.warmup_steps=20 --set train.ema_decay=0.99 --set distill.target=stage_path \
    --set distill.adversarial_weight="${ADV_WEIGHT:-0.5}" > "$OUT/ms3-1step.out" 2>&1
fi

if want 4; then
  SHARED=(--prior-export "$ASSETS/photos64-prior")
  pack fullres photos64-fullres "${SHARED[@]}" --set sample.steps=50
  pack ms3 photos64-ms "${SHARED[@]}" --set sample.steps=4/4/4
  pack ms3-1step photos64-ms-1step "${SHARED[@]}"
fi

#!/usr/bin/env bash
# The recipe of the cpu32 model family, with every command and seed, so anyone can retrain them.
# The two teachers train side by side with one thread each (same machine share, same wall clock);
# then the two students distil side by side from the multi-scale teacher. Re-running resumes.
# Times on the 2-core CPU this was written on: ~40 min for the teachers, ~25 min for the students.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/cpu32}
FULL_STEPS=${FULL_STEPS:-3450}      # single-scale teacher
MS_STEPS=${MS_STEPS:-4800}          # S = 3: cheaper steps, same wall clock
DISTILL_STEPS=${DISTILL_STEPS:-300}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
F=.venv/bin/fastdec

$F train --preset cpu32 --set train.steps="$FULL_STEPS" --set train.eval_every=1150 \
  --run "$OUT/fullres" --no-progress > "$OUT.fullres.out" 2>&1 &
$F train --preset cpu32 --set model.num_stages=3 --set train.steps="$MS_STEPS" --set train.eval_every=1600 \
  --run "$OUT/ms3" --no-progress > "$OUT.ms3.out" 2>&1 &
wait

COMMON=(--set train.steps="$DISTILL_STEPS" --set train.batch_size=16 --set train.lr=1e-4 --set train.warmup_steps=20
        --set distill.teacher_steps=8 --set distill.teacher_guidance=1.5 --no-progress)
$F distill --teacher "$OUT/ms3/export" --run "$OUT/ms3-1step-regression" "${COMMON[@]}" \
  > "$OUT.regression.out" 2>&1 &
# ADD runs a frozen Inception under the discriminator: about 4x slower per step, so fewer steps.
$F distill --teacher "$OUT/ms3/export" --run "$OUT/ms3-1step-add" "${COMMON[@]}" --set train.steps=100 \
  --set train.warmup_steps=10 --set distill.target=stage_path --set distill.adversarial_weight=0.5 \
  > "$OUT.add.out" 2>&1 &
wait

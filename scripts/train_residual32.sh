#!/usr/bin/env bash
# Residual diffusion at 32 px (docs/method.md §11.5; results in docs/results.md, "Residual diffusion"):
# S = 3 and S = 1 teachers that diffuse the frozen one-pass prior's residual instead of the image, the
# S = 3 one also in the residual's colour eigenbasis and for twice the steps, then a student. Needs the one-pass run of
# scripts/train_photos32.sh ($P32/onepass/export). One thread per run; re-running resumes. The 8000-step
# run is a copy of the 4000-step one trained on (train.steps may grow on resume; its cosine schedule is
# stretched to 8000 steps from step 4000 on).
set -euo pipefail
cd "$(dirname "$0")/.."
P32=${P32:-runs/p32}
OUT=${OUT:-runs/r32}
F=.venv/bin/fastdec
mkdir -p "$OUT"
T=(--preset photos32 --set train.prior_from="$P32/onepass/export" --no-progress)
R=(--set model.diffusion_space=residual)
OMP_NUM_THREADS=1 $F train "${T[@]}" "${R[@]}" --set model.num_stages=3 --set train.steps=4000 \
  --set train.eval_every=1000 --run "$OUT/ms3" > "$OUT/ms3.out" 2>&1 &
OMP_NUM_THREADS=1 $F train "${T[@]}" "${R[@]}" --set train.steps=2600 --set train.eval_every=650 \
  --run "$OUT/fullres" > "$OUT/fullres.out" 2>&1 &
wait
OMP_NUM_THREADS=1 $F train "${T[@]}" --set model.diffusion_space=residual-whitened --set model.num_stages=3 \
  --set train.steps=4000 --set train.eval_every=1000 --run "$OUT/ms3-white" > "$OUT/ms3-white.out" 2>&1 &
[ -d "$OUT/ms3-long" ] || cp -r "$OUT/ms3" "$OUT/ms3-long"  # then trained on to 8000 steps
OMP_NUM_THREADS=1 $F train "${T[@]}" "${R[@]}" --set model.num_stages=3 --set train.steps=8000 \
  --set train.eval_every=1000 --run "$OUT/ms3-long" > "$OUT/ms3-long.out" 2>&1 &
wait
# the one-step-per-stage student of the 8000-step teacher (ADD, as the bundled student; 2 threads)
OMP_NUM_THREADS=2 $F distill --teacher "$OUT/ms3-long/export" --run "$OUT/ms3-long-1step" --no-progress \
  --set train.steps=400 --set train.batch_size=16 --set train.lr=1e-4 --set train.warmup_steps=20 \
  --set train.ema_decay=0.99 --set distill.target=stage_path --set distill.adversarial_weight=0.5 \
  > "$OUT/ms3-long-1step.out" 2>&1

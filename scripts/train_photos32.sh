#!/usr/bin/env bash
# The 32 px recipe on the photo corpus (train split), every command and seed, chosen on the val split
# (docs/results.md, "Recipe on the photo corpus"):
# (presets photos32-onepass and photos32 in src/fastdec/presets.py):
# 1. the one-pass decoder: 1-D latent tokens (16 x 8 = 128 numbers) from the transformer encoder with
#    its global PCA skip; a U-Net decoder that reads the PCA decode of z (prior_cond) and z itself
#    (through its time embedding) and adds a correction to the PCA decode; MSE; 2 threads.
# 2. the two diffusion teachers, side by side with one thread each: the single-scale one (S = 1) and the
#    multi-scale one (S = 3, 8 -> 16 -> 32 px). Both refine the frozen one-pass decode of step 1
#    (model.prior=onepass): encoder and one-pass decoder are copied from it and frozen, and their own
#    U-Net learns, by flow matching, the detail that the deterministic decode cannot hold.
# Re-running resumes every run where it stopped. ONEPASS_STEPS / TEACHER_STEPS / MS_STEPS scale them;
# MS_PRIOR / MS_PRIOR_WIDTH give the S = 3 teacher another one-pass decoder (and its width) to refine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/p32}
F=.venv/bin/fastdec
mkdir -p "$OUT"
COMMON=(--no-progress)
OMP_NUM_THREADS=2 $F train --preset photos32-onepass --set train.steps="${ONEPASS_STEPS:-7000}" \
  --set train.eval_every=1000 --run "$OUT/onepass" "${COMMON[@]}" > "$OUT/onepass.out" 2>&1

OMP_NUM_THREADS=1 $F train --preset photos32 --set train.prior_from="$OUT/onepass/export" "${COMMON[@]}" \
  --set train.steps="${TEACHER_STEPS:-2600}" --set train.eval_every=650 --run "$OUT/fullres" > "$OUT/fullres.out" 2>&1 &
OMP_NUM_THREADS=1 $F train --preset photos32 --set train.prior_from="${MS_PRIOR:-$OUT/onepass/export}" "${COMMON[@]}" \
  --set model.prior_width="${MS_PRIOR_WIDTH:-0}" --set model.num_stages=3 --set train.steps="${MS_STEPS:-4000}" \
  --set train.eval_every=1000 --run "$OUT/ms3" > "$OUT/ms3.out" 2>&1 &
wait

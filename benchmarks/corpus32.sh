#!/usr/bin/env bash
# The acceptance table of the 32 px recipe on unseen photos: LIMIT (512) crops of the corpus's test split
# (photos never used for training or for choosing anything), every number from `fastdec eval`, one JSON
# per row in $DEST. The reference codecs first: thumbnail-6 and pca-128 (same number of values as the
# 16 x 8 latent). MODELS=<dir> holds the runs of scripts/train_photos32.sh (default runs/p32).
# MS_STEPS / MS_TEMPERATURE are the S = 3 teacher's defaults, chosen on the val split.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${MODELS:-runs/p32}
DEST=${DEST:-benchmarks/results/corpus32}
LIMIT=${LIMIT:-512}
DATA=${DATA:-photos-test}
export OMP_NUM_THREADS=${THREADS:-2}
mkdir -p "$DEST"
eval_row() {  # name, then fastdec eval arguments
  local name=$1
  shift
  .venv/bin/fastdec eval --data "$DATA" --limit "$LIMIT" --threads "$OMP_NUM_THREADS" --json "$DEST/$name.json" "$@" \
    > "$DEST/$name.log" 2>&1
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"{sys.argv[2]:28s} PSNR {r['psnr']:.2f}  SSIM {r['ssim']:.3f}  rFID {r.get('rfid', float('nan')):.1f} (n={r.get('rfid_n_images')})  NFE {r['nfe']}\")" \
    "$DEST/$name.json" "$name"
}
eval_row thumbnail-6 --model thumbnail-6
eval_row pca-128 --model pca-128
eval_row onepass --model "$RUNS/onepass/export"
eval_row fullres-50 --model "$RUNS/fullres/export" --steps 50
eval_row ms3-default --model "$RUNS/ms3/export" --steps "${MS_STEPS:-4/4/4}" --temperature "${MS_TEMPERATURE:-1}"
eval_row ms3-1step --model "$RUNS/ms3/export" --steps 1

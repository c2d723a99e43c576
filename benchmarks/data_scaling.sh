#!/usr/bin/env bash
# Data-scaling curve of the one-pass decoder: the photos32-onepass recipe trained on the first N train
# photos of the corpus (train.photos=N, a fixed order in which smaller sets are inside larger ones;
# 0 = all 961), the same STEPS for each, then PSNR/SSIM on LIMIT crops of the test split. Two runs at a
# time, one thread each. JSONs in $DEST.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-800}
LIMIT=${LIMIT:-512}
OUT=${OUT:-runs/scale}
DEST=${DEST:-benchmarks/results/corpus32/scaling}
export OMP_NUM_THREADS=1
mkdir -p "$OUT" "$DEST"
run() {
  .venv/bin/fastdec train --preset photos32-onepass --set train.steps="$STEPS" --set train.photos="$1" \
    --run "$OUT/p$1" --no-progress > "$OUT/p$1.log" 2>&1
  .venv/bin/fastdec eval --model "$OUT/p$1/export" --data photos-test --limit "$LIMIT" --no-rfid --threads 1 \
    --json "$DEST/photos-$1.json" > "$OUT/p$1.eval.log" 2>&1
}
(run 10; run 300) &
(run 100; run 0) &
wait
for n in 10 100 300 0; do
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"train photos {sys.argv[2]:>4s}: PSNR {r['psnr']:.2f}  SSIM {r['ssim']:.3f}\")" \
    "$DEST/photos-$n.json" "$([ "$n" = 0 ] && echo all || echo "$n")"
done

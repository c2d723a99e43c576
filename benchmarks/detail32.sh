#!/usr/bin/env bash
# The S = 3 teacher fine-tuned with detail terms (scripts/train_detail32.sh, runs in $OUT): each run's
# decode settings on 256 val crops (one `fastdec bench` run per teacher, beside the bundled one-pass
# decoder), then the settings chosen there on 512 test crops beside PCA, the one-pass decoder and the
# bundled S = 3 teacher. Output: $DEST/{val-*,test512}.{md,log} (+ grids, the test rows' json).
# docs/results.md, "Detail terms for the teacher", shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/pf}
BASE=${BASE:-runs/p32}  # the runs of scripts/train_photos32.sh and the first bundled student
DEST=${DEST:-benchmarks/results/corpus32/detail}
THREADS=${THREADS:-1}
mkdir -p "$DEST"
bench() {  # name, data, limit, rows...
  local name=$1 data=$2 limit=$3
  shift 3
  OMP_NUM_THREADS=$THREADS .venv/bin/fastdec bench --data "$data" --limit "$limit" --repeats 1 --threads "$THREADS" \
    "$@" --json "$DEST/$name.json" --markdown "$DEST/$name.md" --grid "$DEST/$name.png" > "$DEST/$name.log" 2>&1
  cat "$DEST/$name.md"
}
settings() {  # export, label prefix, temperatures...
  local export=$1 label=$2
  shift 2
  for t in "$@"; do echo "--model=$export:steps=4/4/4,temperature=$t,label=$label t$t"; done
}
mapfile -t p05 < <(settings "$OUT/ms3-p0.5/export" p0.5 1 0.7)
bench val-p05 photos-val 256 --model "photos32-onepass:label=one-pass" --model "$BASE/ms3/export:steps=4/4/4,temperature=0.7,label=bundled t0.7" \
  "${p05[@]}" --model "$OUT/ms3-p0.5/export:steps=1,temperature=1,label=p0.5 1step t1"
for run in g0.5 g2; do
  R=$OUT/ms3-p0.5-$run/export
  mapfile -t rows < <(settings "$R" "$run" 1 0.85 0.7 0.5)
  bench "val-${run/./}" photos-val 256 --model "photos32-onepass:label=one-pass" "${rows[@]}" \
    --model "$R:steps=1,temperature=1,label=$run 1step t1" --model "$R:steps=1,temperature=0.7,label=$run 1step t0.7"
done
R=$OUT/ms3-p0.5-g0.5/export
bench test512 photos-test 512 --model "pca-128:label=PCA 128" --model "photos32-onepass:label=one-pass" \
  --model "$BASE/ms3/export:steps=4/4/4,temperature=0.7,label=bundled S=3 4/4/4 t0.7" \
  --model "$R:steps=4/4/4,temperature=0.85,label=S=3 +perc+GAN 4/4/4 t0.85" \
  --model "$R:steps=4/4/4,temperature=0.7,label=S=3 +perc+GAN 4/4/4 t0.7" \
  --model "$R:steps=1,temperature=0.7,label=S=3 +perc+GAN 1 step/stage t0.7"
# The ADD student of the g0.5 teacher (scripts/train_detail32.sh) on the val crops, beside the first
# corpus student ($BASE/ms3-1step: `fastdec distill --teacher $BASE/ms3/export`, the settings of this one).
S=$OUT/ms3-g0.5-1step/export
bench val-student photos-val 256 --model "photos32-onepass:label=one-pass" \
  --model "$BASE/ms3-1step/export:temperature=0.7,label=bundled student t0.7" \
  --model "$R:steps=4/4/4,temperature=0.85,label=teacher g0.5 4/4/4 t0.85" \
  --model "$R:steps=1,temperature=0.7,label=teacher g0.5 1step t0.7" \
  --model "$S:temperature=1,label=student t1" --model "$S:temperature=0.85,label=student t0.85" \
  --model "$S:temperature=0.7,label=student t0.7"
# g0.5 trained on to 3500 steps: val settings, then the chosen ones on the test crops.
L=$OUT/ms3-p0.5-g0.5-long/export
mapfile -t rows < <(settings "$L" g0.5-3500 1 0.85 0.7)
bench val-g05-long photos-val 256 --model "photos32-onepass:label=one-pass" "${rows[@]}" \
  --model "$L:steps=1,temperature=1,label=g0.5-3500 1step t1" --model "$L:steps=1,temperature=0.7,label=g0.5-3500 1step t0.7"
bench test512-long photos-test 512 --model "photos32-onepass:label=one-pass" \
  --model "$L:steps=4/4/4,temperature=0.85,label=g0.5 3500 steps 4/4/4 t0.85" \
  --model "$L:steps=1,temperature=1,label=g0.5 3500 steps 1 step/stage t1"
# A faster-learning discriminator (disc_lr 4e-4) at GAN weights 0.5 and 1, 2000 steps each.
for run in g0.5-d4 g1-d4; do
  R=$OUT/ms3-p0.5-$run/export
  mapfile -t rows < <(settings "$R" "$run" 1 0.85 0.7)
  bench "val-${run/./}" photos-val 256 --model "photos32-onepass:label=one-pass" "${rows[@]}" \
    --model "$R:steps=1,temperature=1,label=$run 1step t1" --model "$R:steps=1,temperature=0.7,label=$run 1step t0.7"
done
# The single-scale teacher with the detail terms (500 steps) at 50 steps, beside the bundled one.
R=$OUT/fullres-p0.5-g0.5/export
bench val-fullres-g05 photos-val 256 --model "photos32-onepass:label=one-pass" \
  --model "photos32-fullres:label=bundled fullres 50 t0.7" \
  --model "$R:steps=50,temperature=1,label=fullres g0.5 50 t1" \
  --model "$R:steps=50,temperature=0.85,label=fullres g0.5 50 t0.85" \
  --model "$R:steps=50,temperature=0.7,label=fullres g0.5 50 t0.7"

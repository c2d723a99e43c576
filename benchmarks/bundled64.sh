#!/usr/bin/env bash
# The bundled photos64-* models on 64 px crops of the corpus's test split, in two `fastdec bench` runs:
# 1. quality: LIMIT (512) crops, rFID on the same crops, every bundled model at its defaults except the
#    single-scale teacher (50 steps; run 2), beside the two reference codecs with the latent's 512
#    numbers (PCA 512 fitted on training crops; a 13 x 13 x 3 = 507-number thumbnail);
#    output $DEST/bench$LIMIT.{json,md,log} and reconstructions.png;
# 2. speed: SPEED_LIMIT (64) crops, no rFID, the single-scale teacher at 50 steps with guidance 1.5 (the
#    reference of the speed-up and FLOPs ratio) beside the fast decoders, interleaved decode times;
#    output $DEST/speed$SPEED_LIMIT.{json,md,log}.
# Rows of models not bundled yet are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-benchmarks/results/corpus64/bundled}
LIMIT=${LIMIT:-512}
SPEED_LIMIT=${SPEED_LIMIT:-64}
THREADS=${THREADS:-2}
ASSETS=src/fastdec/assets/models
mkdir -p "$DEST"
FULLRES=(
  "photos64-fullres:steps=50,guidance=1.5,label=single-scale teacher 50 steps w1.5"
  "photos64-fullres:label=single-scale teacher 50 steps"
)
FAST=(
  "photos64-ms:label=S=3 teacher 4/4/4"
  "photos64-ms:steps=1,label=S=3 teacher 1 step per stage (undistilled)"
  "photos64-ms-1step:label=S=3 student (ADD)"
  "photos64-onepass:label=one-pass"
  "photos64-prior:label=narrow one-pass (the prior)"
)
bundled() {  # decode settings -> --model arguments for the bundled ones
  local row
  for row in "$@"; do
    [[ -f "$ASSETS/${row%%:*}/config.json" ]] && printf -- '--model\n%s\n' "$row"
  done
  return 0
}
bench() {  # output stem, limit, then bench arguments
  local stem=$1 limit=$2
  shift 2
  OMP_NUM_THREADS=$THREADS .venv/bin/fastdec bench --data photos-test --limit "$limit" --repeats 3 \
    --threads "$THREADS" --resolution 64 "$@" --json "$stem.json" --markdown "$stem.md" > "$stem.log" 2>&1
  cat "$stem.md"
}
mapfile -t QUALITY < <(bundled "${FAST[@]}")
bench "$DEST/bench$LIMIT" "$LIMIT" "${QUALITY[@]}" --model "pca-512:label=PCA 512" \
  --model "thumbnail-13:label=thumbnail 13x13" --grid "$DEST/reconstructions.png"
mapfile -t SPEED < <(bundled "${FULLRES[@]}" "${FAST[@]}")
if [[ -f "$ASSETS/photos64-fullres/config.json" ]]; then
  bench "$DEST/speed$SPEED_LIMIT" "$SPEED_LIMIT" "${SPEED[@]}" --no-rfid
fi

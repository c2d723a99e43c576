#!/usr/bin/env bash
# ONNX vs PyTorch decode time of a one-step student (README "ONNX export"): exports MODEL (default: the
# bundled photos32-ms3-1step) with `fastdec export-onnx`, then `fastdec bench` times the PyTorch decode
# and the onnxruntime decode round-robin (medians of REPEATS rounds) at batch 1 and batch 16, one
# thread each. Extra arguments go to `fastdec bench`; RESULTS=<dir> writes somewhere else than
# benchmarks/results. Usage: benchmarks/onnx.sh [MODEL] [bench arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-photos32-ms3-1step}
shift $(($# > 0 ? 1 : 0))
DEST=${RESULTS:-benchmarks/results}
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
.venv/bin/fastdec export-onnx --model "$MODEL" --output "$tmp/decode.onnx"
for batch in 1 16; do
  .venv/bin/fastdec bench --threads 1 --limit "$batch" --batch-size "$batch" --repeats "${REPEATS:-21}" \
    --no-rfid --model "$MODEL:label=pytorch b$batch" --model "$MODEL:onnx=$tmp/decode.onnx,label=onnxruntime b$batch" \
    --json "$DEST/onnx-b$batch.json" --markdown "$DEST/onnx-b$batch.md" "$@"
done

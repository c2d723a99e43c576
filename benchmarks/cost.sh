#!/usr/bin/env bash
# The O(log n) table of the README: FLOPs and decode time of full-resolution vs coarse-to-fine decoding.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
.venv/bin/fastdec bench --cost --resolutions 32,64,128,256 --total-steps 30 --threads 1 \
  --json benchmarks/results/cost.json --markdown benchmarks/results/cost.md "$@"

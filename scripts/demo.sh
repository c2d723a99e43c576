#!/usr/bin/env bash
# Until bundled models land: a short cpu32 training on the embedded photos, then an evaluation.
set -euo pipefail
run=${1:-runs/demo}
.venv/bin/fastdec train --preset cpu32 --set train.steps=300 --run "$run"
.venv/bin/fastdec eval --model "$run/export" --limit 32 --steps 25 --json "$run/eval.json"

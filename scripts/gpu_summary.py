"""The summary.txt of scripts/gpu_train.sh: what finished, in how long, how fast, and how well.

Usage: python scripts/gpu_summary.py WORK OUT ELAPSED_S BUDGET_S (standard library only: it must run
even where the set-up failed).
"""

import json
import statistics
import sys
from pathlib import Path

RUNS = {
    "onepass": ("photos64-onepass", "one-pass decoder (photos64-onepass)"),
    "prior": ("photos64-prior", "the teachers' narrow one-pass prior (photos64-prior)"),
    "fullres": ("photos64-fullres", "single-scale teacher (photos64, prior photos64-prior)"),
    "ms3": ("photos64-ms", "3-stage teacher (photos64 + model.num_stages=3, prior photos64-prior)"),
    "student": ("photos64-ms-1step", "the 3-stage teacher's one-step-per-stage student"),
}


def text(path: Path) -> str:
    return path.read_text().strip() if path.is_file() else ""


def log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_lines(work: Path, out: Path, run: str) -> list[str]:
    name, what = RUNS[run]
    status = work / "status"
    lines = [f"{name}: {what}"]
    for kind in ("smoke", run):
        key = f"smoke-{run}" if kind == "smoke" else run
        state = text(status / key) or "not run"
        wall = text(status / f"{key}.wall")
        lines.append(
            f"  {'smoke pass' if kind == 'smoke' else 'run':10s} {state}" + (f", {wall} s" if wall else "")
        )
    records = log(work / "runs" / run / "log.jsonl")
    config = work / "runs" / run / "config.json"
    if config.is_file():
        train = json.loads(config.read_text())["train"]
        steps = [r["step"] for r in records if "loss" in r]
        losses = [r["loss"] for r in records if "loss" in r]
        rates = [r["img_per_s"] for r in records if "img_per_s" in r]
        lines.append(
            f"  steps      {steps[-1] if steps else 0} of {train['steps']} planned, "
            f"batch {train['batch_size']}, max {train['max_minutes']} min"
            + (
                f"; {statistics.median(rates):.0f} img/s (median), last loss {losses[-1]:.4g}"
                if rates
                else ""
            )
        )
        stops = [r["event"] for r in records if "event" in r]
        if stops:
            lines.append(f"  stopped    {stops[-1]}")
        evals = [r["eval"] for r in records if "eval" in r]
        if evals:
            steps = f", {evals[-1]['steps']} Euler steps" if run in ("fullres", "ms3") else ""
            lines.append(f"  val PSNR   {evals[-1]['psnr']:.2f} dB (the training loop's check{steps})")
    tar = out / f"{name}.tar"
    packed = work / "packed" / name / "config.json"
    if tar.is_file() and packed.is_file():
        meta = json.loads(packed.read_text())["meta"]
        check = meta["check"]
        lines.append(
            f"  export     {tar.name}: {tar.stat().st_size / 2**20:.2f} MiB (float16 parameters); "
            f"PSNR {check['psnr']} on {check['images']}"
        )
        if "distill" in meta:
            d = meta["distill"]
            lines.append(
                f"  distill    target {d['target']}, adversarial weight {d['adversarial_weight']}, "
                f"teacher {d['teacher_steps']} steps per stage, guidance {d['teacher_guidance']}"
            )
    else:
        lines.append("  export     none")
    result = work / "logs" / f"eval-{run}.json"
    if result.is_file():
        r = json.loads(result.read_text())
        keys = ("psnr", "ssim", "rfid", "nfe", "decode_ms_per_image", "device")
        values = ", ".join(
            f"{k} {r[k]:.4g}" if isinstance(r[k], float) else f"{k} {r[k]}" for k in keys if k in r
        )
        lines.append(f"  eval       {values} ({r['n_images']} photos-val crops)")
    return lines


def gpu_usage(path: Path) -> str:
    rows = [line.split(",") for line in text(path).splitlines()]
    rows = [r for r in rows if len(r) == 3 and r[1].strip().isdigit()]
    if not rows:
        return ""
    util = [int(r[1]) for r in rows]
    memory = [int(r[2]) for r in rows if r[2].strip().isdigit()]
    return (
        f"GPU use (nvidia-smi every 5 s): utilisation mean {statistics.mean(util):.0f}%, max {max(util)}%; "
        f"memory max {max(memory, default=0)} MiB"
    )


def main(work: str, out: str, elapsed: str, budget: str) -> None:
    work, out = Path(work), Path(out)
    logs = work / "logs"
    parts = [
        f"scripts/gpu_train.sh: {elapsed} s of wall clock (budget {budget} s)",
        text(logs / "environment.txt"),
        gpu_usage(logs / "gpu-usage.csv"),
        text(logs / "setup.log"),
        "Plan (from the img/s of the smoke pass):\n" + (text(logs / "plan.txt") or "none"),
        *("\n".join(run_lines(work, out, run)) for run in RUNS),
    ]
    files = sorted({p.name for p in out.iterdir()} | {"summary.txt", "logs.tar.gz"})
    parts.append(f"Files: {', '.join(files)}; the runs (states, logs, exports) in {work}")
    print("\n\n".join(part for part in parts if part))


if __name__ == "__main__":
    main(*sys.argv[1:5])

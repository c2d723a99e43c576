"""Held-out PSNR against training time, read from the JSONL logs of `fastdec train` runs.

Each run must have been trained with ``--set train.eval_every=N`` (the log's ``eval`` rows). Minutes
are wall-clock from the run's first log row, so held-out evaluations are included in them.

    .venv/bin/python benchmarks/learning_curve.py runs/acc/c:cpu32 --png benchmarks/results/learning_curve.png
"""

import argparse
import json
from pathlib import Path

from fastdec.eval.plots import learning_curve_plot


def curve(log: Path) -> list[dict]:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{log}: empty log")
    start = rows[0]["time"]
    points = [
        {"step": r["step"], "minutes": (r["time"] - start) / 60, "psnr": r["eval"]["psnr"]}
        for r in rows
        if "eval" in r
    ]
    if not points:
        raise SystemExit(f"{log}: no held-out evaluations (train with --set train.eval_every=N)")
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="RUN_DIR or RUN_DIR:label")
    p.add_argument("--png", required=True)
    p.add_argument("--json", help="also write the points here")
    args = p.parse_args()
    curves = {}
    for spec in args.runs:
        run, _, label = spec.partition(":")
        curves[label or run] = curve(Path(run) / "log.jsonl")
    for label, points in curves.items():
        print(label)
        for q in points:
            print(f"  step {q['step']:>6}  {q['minutes']:6.1f} min  {q['psnr']:.2f} dB")
    learning_curve_plot({k: [(q["minutes"], q["psnr"]) for q in v] for k, v in curves.items()}, args.png)
    if args.json:
        Path(args.json).write_text(json.dumps(curves, indent=2) + "\n")


if __name__ == "__main__":
    main()

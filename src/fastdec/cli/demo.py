"""The main job on bundled models: held-out photos through every bundled decoder, measured and drawn.

Runs ``fastdec bench`` on fixed crops of the photo corpus's test split (photos never used in
training nor for model selection) with the single-scale teacher at 50 Euler steps, the multi-scale
teacher at 4 steps per stage, its one-step student, the deterministic one-pass decoder and the two
reference codecs with as many numbers as the latent (PCA, thumbnail), then prints where the table and
figures are.
"""

import argparse
from pathlib import Path

from fastdec.cli import bench
from fastdec.cli.common import positive_int

DEMO_SETTINGS = (  # speed-ups are against the first; the guided teacher is in benchmarks/results.sh
    "photos32-fullres:steps=50,label=fullres 50 steps",
    "photos32-ms3:steps=4/4/4,label=ms3 4/4/4",
    "photos32-ms3-1step:label=ms3 one-step student",
    "photos32-onepass:label=one-pass (deterministic)",
    "pca-128:label=PCA 128 (linear codec)",
    "thumbnail-6:label=thumbnail 6x6 (trivial codec)",
)


def add_parser(p):
    p.add_argument("--output", default="fastdec-demo", help="folder for the table, JSON and figures")
    p.add_argument("--limit", type=positive_int, default=64, help="test-split crops to reconstruct")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's)")


def run(args):
    from fastdec.hub import bundled_models

    needed = sorted({s.split(":")[0] for s in DEMO_SETTINGS if s.startswith("photos32")})
    missing = [name for name in needed if name not in bundled_models()]
    if missing:
        raise FileNotFoundError(f"bundled models missing from this install: {missing}")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    argv = [arg for s in DEMO_SETTINGS for arg in ("--model", s)]
    argv += ["--data", "photos-test", "--limit", str(args.limit), "--repeats", "3"]
    argv += ["--json", str(out / "results.json"), "--markdown", str(out / "results.md")]
    argv += ["--plot", str(out / "speed_quality.png"), "--grid", str(out / "reconstructions.png")]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    parser = argparse.ArgumentParser(prog="fastdec demo")
    bench.add_parser(parser)
    bench.run(parser.parse_args(argv))
    print(
        f"\nfastdec demo: {args.limit} held-out crops (32x32, from the photo corpus's test split) decoded "
        "by each bundled decoder.\nTable: {0}/results.md (JSON: {0}/results.json)\n"
        "Figures: {0}/reconstructions.png (rows: images; columns: original, then each decoder), "
        "{0}/speed_quality.png".format(out)
    )
    return 0

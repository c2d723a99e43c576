"""The main job on bundled models: held-out photos through every bundled decoder, measured and drawn.

Runs ``fastdec bench`` on fixed crops of the photo corpus's test split (photos never used in
training nor for model selection) with the single-scale teacher at 50 Euler steps, the multi-scale
teacher at 4 steps per stage, its one-step student, the deterministic one-pass decoder and the two
reference codecs with as many numbers as the latent (PCA, thumbnail), then prints where the table and
figures are. ``--resolution 64`` does the same with the bundled 64 px family (the models of it that
this install has).
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
DEMO_SETTINGS_64 = (  # the 64 px family: an 8 x 8 x 8 latent, so the references keep 512 numbers
    "photos64-fullres:steps=50,label=fullres 50 steps",
    "photos64-ms:steps=4/4/4,label=ms 4/4/4",
    "photos64-ms-1step:label=ms one-step student",
    "photos64-onepass:label=one-pass (deterministic)",
    "photos64-prior:label=narrow one-pass (the prior)",
    "pca-512:label=PCA 512 (linear codec)",
    "thumbnail-13:label=thumbnail 13x13 (trivial codec)",
)


def add_parser(p):
    p.add_argument("--output", default="fastdec-demo", help="folder for the table, JSON and figures")
    p.add_argument("--limit", type=positive_int, default=48, help="test-split crops to reconstruct")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's)")
    p.add_argument(
        "--resolution", type=int, choices=(32, 64), default=32, help="the bundled family to show (default 32)"
    )


def run(args):
    from fastdec.hub import bundled_models

    family = f"photos{args.resolution}"
    settings = DEMO_SETTINGS if args.resolution == 32 else DEMO_SETTINGS_64
    needed = sorted({s.split(":")[0] for s in settings if s.startswith(family)})
    missing = [name for name in needed if name not in bundled_models()]
    if args.resolution == 32 and missing:
        raise FileNotFoundError(f"bundled models missing from this install: {missing}")
    if len(missing) == len(needed):
        raise FileNotFoundError(
            f"no bundled {args.resolution} px model in this install (looked for: {needed})"
        )
    settings = [s for s in settings if s.split(":")[0] not in missing]
    if missing:
        print(f"fastdec demo: not bundled yet, left out: {', '.join(missing)}")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    argv = [arg for s in settings for arg in ("--model", s)]
    # times on batches of 16: the 50-step teacher's three timed passes dominate the demo's wall time
    argv += ["--data", "photos-test", "--limit", str(args.limit), "--repeats", "3", "--batch-size", "16"]
    argv += ["--resolution", str(args.resolution)]
    argv += ["--json", str(out / "results.json"), "--markdown", str(out / "results.md")]
    argv += ["--plot", str(out / "speed_quality.png"), "--grid", str(out / "reconstructions.png")]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    parser = argparse.ArgumentParser(prog="fastdec demo")
    bench.add_parser(parser)
    bench.run(parser.parse_args(argv))
    r = args.resolution
    print(
        f"\nfastdec demo: {args.limit} held-out crops ({r}x{r}, from the photo corpus's test split) decoded "
        f"by each bundled decoder.\nTable: {out}/results.md (JSON: {out}/results.json)\n"
        f"Figures: {out}/reconstructions.png (rows: images; columns: original, then each decoder), "
        f"{out}/speed_quality.png"
    )
    return 0

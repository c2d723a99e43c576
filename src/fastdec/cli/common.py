"""Argument groups shared by subcommands."""

import argparse
import json
import sys
from pathlib import Path

from fastdec.io import atomic_write_text


def add_run_args(parser: argparse.ArgumentParser, example: str) -> None:
    """--set overrides, --run, --dry-run, --no-progress: shared by train and distill."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")  # fmt: skip
    parser.add_argument("--run", help="run directory (states, log, export)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true")


def add_decode_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steps", type=lambda s: tuple(int(v) for v in s.split(",")), default=None,
        help="Euler steps per stage: one number for every stage, or one per stage (e.g. 4,2,1)",
    )  # fmt: skip
    parser.add_argument("--total-steps", type=int, default=None, help="split T steps over stages")
    parser.add_argument("--guidance", type=float, default=None, help="CFG weight (1 = off)")
    parser.add_argument("--seed", type=int, default=0, help="image i decodes with seed + i")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=32, help="for baseline codecs only")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (default: fp32)")


def autocast_dtype(args):
    import torch

    return torch.bfloat16 if args.bf16 else None


def decode_settings(args) -> dict:
    out = {}
    if args.steps is not None:
        out["steps"] = args.steps
    if args.total_steps is not None:
        out["total_steps"] = args.total_steps
    if args.guidance is not None:
        out["guidance"] = args.guidance
    return out


def model_resolution(model) -> int:
    return int(model.resolution)


def write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)

"""Argument groups shared by subcommands."""

import argparse
import json
import os
import sys
from pathlib import Path

from fastdec.io import atomic_write_text
from fastdec.sampling.settings import OPTIONS, DecodeSettings


def add_run_args(parser: argparse.ArgumentParser, example: str) -> None:
    """--set overrides, --run, --dry-run, --no-progress: shared by train and distill."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")  # fmt: skip
    parser.add_argument("--run", "--run-dir", dest="run", metavar="DIR",
                        help="run directory (states, log, export); --run-dir under torchrun")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)  # ValueError: argparse reports "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_ints(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers >= 1, e.g. ``32,64,128``."""
    return tuple(positive_int(v) for v in text.split(","))


def seed(text: str) -> int:
    """argparse type: a seed in [0, 2**63) (image i decodes with seed + i)."""
    value = int(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {text:.40}")
    return value


def torch_device(text: str) -> str:
    """argparse type: a torch device string that exists on this machine."""
    import torch

    try:
        kind = torch.device(text).type
    except RuntimeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine")
    return text


def check_config(config) -> None:
    """Fail before any work: the resolved config was checked field by field (:func:`fastdec.config.
    validate`); building the tokenizer on the meta device (no memory, no time) reports a model section
    it refuses now."""
    import torch

    from fastdec.tokenizer import Tokenizer

    with torch.device("meta"):
        Tokenizer(config)


def add_decode_args(parser: argparse.ArgumentParser) -> None:
    """Decode settings (:func:`add_decode_settings`) plus baseline resolution and bf16 autocast."""
    add_decode_settings(parser)
    parser.add_argument("--resolution", type=positive_int, default=32, help="for baseline codecs only")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (default: fp32)")


def add_decode_settings(parser: argparse.ArgumentParser) -> None:
    """Steps, guidance, seed, batch size and device of a decode."""
    parser.add_argument(
        "--steps", default=None,
        help="Euler steps per stage: one number for every stage, or one per stage (e.g. 4/2/1)",
    )  # fmt: skip
    parser.add_argument("--total-steps", default=None, help="split T steps over stages")
    parser.add_argument("--guidance", default=None, help="CFG weight (1 = off)")
    parser.add_argument(
        "--temperature", default=None,
        help="scale of the sampler's noise: 1 = the trained distribution, 0 = deterministic",
    )  # fmt: skip
    parser.add_argument("--seed", type=seed, default=0, help="image i decodes with seed + i")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--device", type=torch_device, default="cpu", help="cpu (default) or cuda")


def autocast_dtype(args):
    import torch

    return torch.bfloat16 if args.bf16 else None


def decode_settings(args) -> dict:
    """The decode keywords that the options ask for, parsed and checked as one
    :class:`fastdec.sampling.settings.DecodeSettings` before any work."""
    options = {key: getattr(args, key) for key in OPTIONS if getattr(args, key) is not None}
    return DecodeSettings.parse(options).keywords()


def model_resolution(model) -> int:
    return int(model.resolution)


def print_skipped(bad) -> None:
    """List unusable inputs ``(path, reason)`` on stdout; what the terminal's encoding cannot show (a
    file name that is not UTF-8) is printed as backslash escapes of its bytes."""
    encoding = sys.stdout.encoding or "utf-8"
    for path, reason in bad:
        print(os.fsencode(f"  skipped {path}: {reason}").decode(encoding, "backslashreplace"))


def write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)

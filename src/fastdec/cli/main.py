"""``fastdec`` command line: one thin module per subcommand."""

import argparse
import sys

from fastdec.cli import bench, decode, demo, distill, encode, pack, reconstruct, shard, train
from fastdec.cli import eval as eval_cmd
from fastdec.cli import export_onnx as export_onnx_cmd

COMMANDS = {
    "demo": demo,
    "train": train,
    "distill": distill,
    "eval": eval_cmd,
    "reconstruct": reconstruct,
    "bench": bench,
    "encode": encode,
    "decode": decode,
    "pack": pack,
    "shard": shard,
    "export-onnx": export_onnx_cmd,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastdec", description="Fast diffusion decoders for image tokenizers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_parser(sub.add_parser(name, help=module.__doc__.splitlines()[0]))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args) or 0
    except (ValueError, OSError) as err:  # user errors (bad input, files): one line, no traceback
        print(f"fastdec {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

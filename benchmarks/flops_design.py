"""Decoder FLOPs of a family's designs before any is trained: how the one-pass prior's size sets the
one-step student's saving against 50 guided full-resolution steps.

FLOPs do not depend on the weights, so each design is an untrained tokenizer of its preset; every row
counts a whole ``Tokenizer.decode`` of one latent (the prior's one call, the PCA decode, every network
call) with :func:`fastdec.eval.flops.count_flops`. The ideal saving ignores the prior and every per-call
cost that does not shrink with the image: ``2 * 50 / sum(4 ** -s for s < S)``.

    .venv/bin/python benchmarks/flops_design.py --preset photos64 \\
        --markdown benchmarks/results/corpus64/flops_design.md
"""

import argparse
from pathlib import Path

import torch

from fastdec.eval.flops import count_flops
from fastdec.presets import resolve
from fastdec.tokenizer import Tokenizer


def decode_flops(preset: str, overrides: list[str], **settings) -> float:
    """FLOPs per image of one decode of an untrained ``preset`` + ``overrides`` with ``settings``."""
    torch.manual_seed(0)
    model = Tokenizer(resolve(preset, overrides)).eval()
    z = torch.zeros(1, model.config.model.num_latents, model.config.model.latent_dim)
    return count_flops(lambda: model.decode(z, seeds=[0], **settings))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="photos64", help="a diffusion preset with a one-pass prior")
    parser.add_argument("--stages", default="3,4", help="multi-scale S to count")
    parser.add_argument(
        "--priors", default="48x3,32x2,24x2,16x3,16x2,16x1", help="prior WIDTHxBLOCKS to count"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    rows = [
        "| prior (width, blocks) | prior GFLOPs | S | student GFLOPs | reference GFLOPs | saving | ideal |"
    ]
    rows.append("|---|---|---|---|---|---|---|")
    for width, depth in (map(int, p.split("x")) for p in args.priors.split(",")):
        shape = [f"model.prior_width={width}", f"model.prior_depth={depth}", "model.cfg_dropout=0.1"]
        reference = decode_flops(args.preset, shape, steps=(50,), guidance=1.5)
        linear = ["model.prior=linear", "model.prior_width=0", "model.prior_depth=0"]  # the PCA decode only
        prior = decode_flops(args.preset, shape, steps=(1,)) - decode_flops(args.preset, linear, steps=(1,))
        for stages in map(int, args.stages.split(",")):
            student = decode_flops(args.preset, [*shape, f"model.num_stages={stages}"], steps=(1,) * stages)
            ideal = 100 / sum(4.0**-s for s in range(stages))
            rows.append(
                f"| {width}, {depth} | {prior / 1e9:.3f} | {stages} | {student / 1e9:.3f} | "
                f"{reference / 1e9:.2f} | {reference / student:.1f}x | {ideal:.1f}x |"
            )
            print(rows[-1], flush=True)
    table = "\n".join(rows) + "\n"
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    print(table)


if __name__ == "__main__":
    main()

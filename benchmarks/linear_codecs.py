"""The linear codecs a 32 px tokenizer must beat, measured by the `fastdec eval` code path.

- block PCA: ``latent_kind=grid`` — one PCA of each 8x8 region into 8 numbers (16 x 8 = 128 numbers).
  An untrained ``latent_skip`` tokenizer decodes exactly as its PCA codec (the networks' last layers
  start at zero), so evaluating it measures the codec the transformers start from; it is fitted on
  the training crops a `cpu32` run fits it on (``train.augment``, ``crop_min_frac`` as in the preset);
- global PCA: ``pca-128`` (``fastdec eval --model pca-128``) — one PCA of the whole 32x32x3 crop into
  128 numbers, fitted on 8192 default training crops of ``"photos"`` and kept in the user cache;
- thumbnail-6: a 6x6x3 thumbnail upsampled bicubically (108 numbers).

Quality is measured on the held-out crops of ``fastdec eval``.

    .venv/bin/python benchmarks/linear_codecs.py --limit 64 --json benchmarks/results/linear_codecs.json
"""

import argparse
import json

import torch

from fastdec.data import validation_crops
from fastdec.eval.evaluate import evaluate
from fastdec.hub import load_model
from fastdec.presets import resolve
from fastdec.tokenizer import Tokenizer
from fastdec.training.train import initial_tokenizer

BLOCK_PCA = ["model.latent_kind=grid", "model.spatial_cond=true"]


def pca_tokenizer(overrides: list[str]) -> Tokenizer:
    return initial_tokenizer(resolve("cpu32", overrides))[0].eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=64, help="held-out crops")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    images = validation_crops(32, args.limit)
    rows = []
    with torch.no_grad():
        metrics, _ = evaluate(pca_tokenizer(BLOCK_PCA), images, steps=1)
        rows.append({"codec": "block PCA (grid latents)", **metrics})
        for name in ("pca-128", "thumbnail-6"):
            metrics, _ = evaluate(load_model(name, resolution=32), images)
            rows.append({"codec": name, **metrics})
    print("| codec | PSNR | SSIM | rFID |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['codec']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['rfid']:.1f} |")
    print(f"({args.limit} held-out crops; rFID on {args.limit} images)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

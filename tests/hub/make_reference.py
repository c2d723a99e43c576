"""Writes tests/hub/reference/decodes.safetensors: the bundled models' decodes of 4 test crops at their
resolution (default settings, seeds 0..3), which tests/hub/test_bundled.py compares against. Re-run it only
when the bundled models are retrained on purpose: `.venv/bin/python -m tests.hub.make_reference`."""

from pathlib import Path

import torch
from safetensors.torch import save_file

from fastdec.data import validation_crops
from fastdec.hub import bundled_models
from fastdec.tokenizer import Tokenizer

REFERENCE = Path(__file__).parent / "reference" / "decodes.safetensors"


def reference_crops(resolution: int) -> torch.Tensor:
    return validation_crops(resolution, 4, seed=0, split="test")


@torch.no_grad()
def decodes() -> dict[str, torch.Tensor]:
    """``images`` (the 32 px crops), ``images-<R>`` (other resolutions) and each bundled model's decodes."""
    out = {}
    for name in bundled_models():
        model = Tokenizer.from_pretrained(name)
        r = model.resolution
        key = "images" if r == 32 else f"images-{r}"
        x = out.setdefault(key, reference_crops(r))
        out[name] = model.decode(model.encode(x), seeds=range(len(x)))
    return out


if __name__ == "__main__":
    REFERENCE.parent.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in decodes().items()}, REFERENCE)
    print(f"wrote {REFERENCE}")

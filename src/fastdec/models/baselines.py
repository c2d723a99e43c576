"""Trivial codecs that a tokenizer must beat, behind the tokenizer's encode/decode interface."""

import torch
import torch.nn.functional as F
from torch import nn


class ThumbnailCodec(nn.Module):
    """Stores a side x side x 3 thumbnail (area downsampling); decodes by bicubic upsampling.

    A 6 x 6 x 3 thumbnail holds 108 numbers, about the 128 of a 16 x 8 latent. It has no weights and
    one "network call" of negligible cost; its decode is deterministic.
    """

    def __init__(self, resolution: int, side: int):
        super().__init__()
        if not 1 <= side <= resolution:
            raise ValueError(f"thumbnail side must be in [1, {resolution}], got {side}")
        self.res = resolution
        self.side = side

    @property
    def resolution(self) -> int:
        return self.res

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return F.interpolate(images, size=(self.side, self.side), mode="area")  # (B, 3, s, s)

    def decode(self, z: torch.Tensor, **_settings) -> torch.Tensor:
        size = (self.res, self.res)
        return F.interpolate(z, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)

    def nfe(self, **_settings) -> int:
        return 0


def parse_baseline(spec: str, resolution: int) -> ThumbnailCodec | None:
    """``"thumbnail-6"`` -> ThumbnailCodec(resolution, 6); anything else -> None."""
    kind, sep, arg = spec.partition("-")
    if kind == "thumbnail" and sep and arg.isdigit():
        return ThumbnailCodec(resolution, int(arg))
    return None

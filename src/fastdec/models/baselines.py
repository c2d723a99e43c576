"""Trivial codecs that a tokenizer must beat, behind the tokenizer's encode/decode interface."""

import torch
import torch.nn.functional as F
from torch import nn

from fastdec.checks import check_images


class ThumbnailCodec(nn.Module):
    """Stores a side x side x 3 thumbnail (area downsampling); decodes by bicubic upsampling.

    A 6 x 6 x 3 thumbnail holds 108 numbers, about the 128 of a 16 x 8 latent. It has no weights and
    one "network call" of negligible cost; its decode is deterministic. Its inputs are checked like a
    tokenizer's: images as :func:`fastdec.checks.check_images`, thumbnails as finite float (B, 3, s, s).
    """

    def __init__(self, resolution: int, side: int):
        super().__init__()
        for name, value in (("resolution", resolution), ("thumbnail side", side)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        if not 1 <= side <= resolution:
            raise ValueError(f"thumbnail side must be in [1, {resolution}], got {side}")
        self.res = resolution
        self.side = side

    @property
    def resolution(self) -> int:
        return self.res

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, R, R) in [-1, 1] -> thumbnails (B, 3, s, s)."""
        check_images(images, self.res)
        return F.interpolate(images, size=(self.side, self.side), mode="area")  # (B, 3, s, s)

    def decode(self, z: torch.Tensor, **settings) -> torch.Tensor:
        """Thumbnails (B, 3, s, s) -> images (B, 3, R, R) in [-1, 1]; ``settings`` (steps, guidance,
        seeds, ...) have nothing to act on and are accepted only so that callers can treat every codec
        alike."""
        s = self.side
        if not torch.is_tensor(z) or not z.is_floating_point():
            found = z.dtype if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"thumbnails must be a float tensor, got {found}")
        if z.ndim != 4 or tuple(z.shape[1:]) != (3, s, s) or z.shape[0] == 0:
            raise ValueError(
                f"thumbnails must have shape (B, 3, {s}, {s}) for this codec, got {tuple(z.shape)}: "
                "latents of another codec?"
            )
        if not torch.isfinite(z).all():
            raise ValueError("thumbnails contain NaN or inf")
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

"""Checks of the images handed to the public API (tokenizers and baseline codecs): errors name the bad
dtype, shape or value range instead of failing deep inside a network."""

from collections.abc import Callable

import torch

# How far past [-1, 1] an image may reach: rounding slack, far below the 1.0 that [0, 255] pixels or
# doubled-up conversions overshoot by.
RANGE_TOLERANCE = 1e-2


def check_images(
    images: torch.Tensor, resolution: int, placement: Callable[[torch.Tensor], None] | None = None
) -> None:
    """Refuse anything but finite float images (B, 3, R, R) with values in [-1, 1].

    Images in [0, 1] cannot be told apart from dark images in [-1, 1] and are accepted as they are
    (convert with ``2 * x - 1``); values past [-1, 1] by more than :data:`RANGE_TOLERANCE`, e.g.
    pixels in [0, 255] or unclamped decoder outputs, are refused with the observed range.

    Args:
        images: the tensor to check.
        resolution: R.
        placement: ``placement(images)`` raises if their dtype or device is unusable; it runs before
            any value is read.

    Raises:
        ValueError: naming the dtype, shape or range found.
    """
    if not torch.is_tensor(images) or not images.is_floating_point():
        found = images.dtype if torch.is_tensor(images) else type(images).__name__
        raise ValueError(
            f"images must be a float tensor in [-1, 1] (uint8 pixels: see fastdec.data.from_uint8), "
            f"got {found}"
        )
    r = resolution
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (r, r):
        raise ValueError(
            f"images must have shape (B, 3, {r}, {r}) (RGB at the model's resolution), "
            f"got {tuple(images.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"images must hold at least one image, got {tuple(images.shape)}")
    if placement is not None:
        placement(images)
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or inf")
    low, high = (v.item() for v in images.aminmax())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        hint = "clamp them" if high <= 2 else "pixels in [0, 255]? use from_uint8 or x / 127.5 - 1"
        raise ValueError(f"images must be in [-1, 1], got values in [{low:.4g}, {high:.4g}] ({hint})")

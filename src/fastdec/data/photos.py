"""The embedded default data: real RGB photos shipped inside scikit-image and scikit-learn.

Only photos stored in the installed wheels are used, so nothing is ever downloaded (scikit-image
fetches ``eagle``, ``lily``, ``kidney``, ``skin``, ... through pooch: excluded). Choices:

- real colour photographs only: synthetic images (``colorwheel``, ``logo``, ``checkerboard``) are
  out; grayscale photos (``camera``, ``coins``, ``moon``, ``brick``, ...) are out too, because
  replicating one channel would teach the decoder that colour is often absent;
- ``cat`` is the same file as ``chelsea`` and ``stereo_motorcycle`` gives two near-identical
  views, so only ``chelsea`` and the left motorcycle view are kept;
- scientific photographs (telescope, microscope, fundus camera) stay in the training split for
  variety; the validation split holds two everyday scenes.
"""

from functools import cache
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fastdec.data.folder import from_uint8

# name -> where it comes from and what it shows (H x W).
PHOTO_SOURCES = {
    "astronaut": "skimage.data.astronaut: portrait of Eileen Collins, 512x512",
    "chelsea": "skimage.data.chelsea: a cat, 300x451",
    "coffee": "skimage.data.coffee: a cup of coffee, 400x600",
    "rocket": "skimage.data.rocket: SpaceX rocket on its launch pad, 427x640",
    "motorcycle": "skimage.data.stereo_motorcycle (left view): motorcycle in a workshop, 500x741",
    "hubble_deep_field": "skimage.data.hubble_deep_field: galaxies, 872x1000",
    "immunohistochemistry": "skimage.data.immunohistochemistry: stained tissue, 512x512",
    "retina": "skimage.data.retina: fundus photograph, 1411x1411",
    "china": "sklearn.datasets.load_sample_image('china.jpg'): a temple, 427x640",
    "flower": "sklearn.datasets.load_sample_image('flower.jpg'): a flower, 427x640",
}
VAL_PHOTOS = ("coffee", "flower")
TRAIN_PHOTOS = tuple(name for name in PHOTO_SOURCES if name not in VAL_PHOTOS)


def _read(name: str) -> np.ndarray:
    if name == "motorcycle":
        from skimage.data import stereo_motorcycle

        return stereo_motorcycle()[0]
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    return getattr(skimage.data, name)()


@cache
def load_photo(name: str) -> np.ndarray:
    """Decode one embedded photo (cached; the returned array is read-only).

    Args:
        name: a key of ``PHOTO_SOURCES``.

    Returns:
        uint8 array of shape (H, W, 3).
    """
    if name not in PHOTO_SOURCES:
        raise ValueError(f"unknown photo {name!r}; available: {sorted(PHOTO_SOURCES)}")
    photo = np.ascontiguousarray(_read(name))
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(
            f"photo {name!r} ({PHOTO_SOURCES[name]}) decoded to {photo.dtype} "
            f"{photo.shape}, expected uint8 (H, W, 3)"
        )
    photo.flags.writeable = False
    return photo


@cache
def _photo_image(name: str) -> Image.Image:
    return Image.fromarray(load_photo(name))


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
    """Random square crops of embedded photos, resized to (3, R, R) in [-1, 1].

    Item ``i`` draws, from a generator seeded with ``(seed, i)``: a photo uniformly among
    ``names``; a crop side uniform in ``[lo, s]`` with ``s`` the photo's short side and
    ``lo = min(s, max(min_frac * s, R))`` (the crop is never smaller than R unless the photo
    is, so crops are downsampled views rather than blurry upsampled texture); a uniform
    position; a horizontal flip with probability 1/2. The crop is resized with Lanczos
    antialiasing. The same ``(seed, i)`` always gives the same image, in any worker.

    Eight photos are few: a tokenizer trained on their crops learns them well and generalises
    poorly. ``augment`` widens them: ``"flip"`` (horizontal flips only), ``"dihedral"`` (also a
    uniform number of quarter turns: the 8 symmetries of the square) and ``"dihedral-rgb"`` (also a
    uniform permutation of the colour channels). The extra draws come after the flip's, so the
    crops themselves do not depend on ``augment``.

    Args:
        names: photo names (keys of ``PHOTO_SOURCES``).
        resolution: output side R.
        length: virtual epoch length returned by ``len``.
        seed: non-negative base seed.
        min_frac: smallest crop side as a fraction of the short side, in (0, 1].
        augment: one of ``AUGMENTS``.
    """

    def __init__(
        self,
        names: tuple[str, ...] = TRAIN_PHOTOS,
        resolution: int = 64,
        length: int = 100_000,
        seed: int = 0,
        min_frac: float = 0.5,
        augment: str = "flip",
    ):
        unknown = [n for n in names if n not in PHOTO_SOURCES]
        if not names or unknown:
            raise ValueError(f"names must be a non-empty subset of {sorted(PHOTO_SOURCES)}, got {names!r}")
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not 0.0 < min_frac <= 1.0:
            raise ValueError(f"min_frac must be in (0, 1], got {min_frac!r}")
        self.names, self.resolution, self.length = tuple(names), resolution, length
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
        self.seed, self.min_frac, self.augment = seed, min_frac, augment

    def __len__(self) -> int:
        return self.length

    def crop_params(self, index: int) -> CropParams:
        """The photo, square and flip that item ``index`` is made of."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for PhotoCrops of length {self.length}")
        rng = np.random.default_rng([self.seed, index])
        name = self.names[rng.integers(len(self.names))]
        height, width, _ = load_photo(name).shape
        short = min(height, width)
        lo = min(short, max(round(self.min_frac * short), self.resolution))
        side = int(rng.integers(lo, short + 1))
        top = int(rng.integers(height - side + 1))
        left = int(rng.integers(width - side + 1))
        flip = bool(rng.random() < 0.5)
        if self.augment == "flip":
            return CropParams(name, top, left, side, flip)
        rotations = int(rng.integers(4))
        channels = _PERMUTATIONS[rng.integers(6)] if self.augment == "dihedral-rgb" else (0, 1, 2)
        return CropParams(name, top, left, side, flip, rotations, channels)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Crop ``index`` as a float32 tensor of shape (3, R, R) in [-1, 1]."""
        p = self.crop_params(index)
        box = (p.left, p.top, p.left + p.side, p.top + p.side)
        r = self.resolution
        crop = _photo_image(p.name).resize(
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
    names: tuple[str, ...] = VAL_PHOTOS,
    min_frac: float = 0.5,
) -> torch.Tensor:
    """A fixed set of held-out crops: items 0..n-1 of ``PhotoCrops(names, resolution, n, seed)``.

    Args:
        resolution: output side R.
        n: number of crops.
        seed: base seed; the same arguments always give the same tensor.
        names: photos to crop from (default: the validation split).
        min_frac: as in ``PhotoCrops``.

    Returns:
        Float32 tensor of shape (n, 3, R, R) in [-1, 1].
    """
    crops = PhotoCrops(names, resolution, length=n, seed=seed, min_frac=min_frac)
    return torch.stack([crops[i] for i in range(n)])  # (n, 3, R, R)

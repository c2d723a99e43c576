"""Data: the bundled photo corpus, image folders, and the two entry points training and eval use.

A ``source`` string names the data: ``"photos"`` is the bundled photo corpus (1,236 real photos
shipped with the package, split by near-duplicate group into train / val / test: see ``corpus.py``
and ``photos.py``); ``"photos-val"`` and ``"photos-test"`` are fixed crops of its held-out splits;
a set of tar shards (``shards.py``: a brace pattern such as ``shards/train-{000000..000009}.tar``, a
glob, a ``.tar`` file or a folder holding ``.tar`` files); anything else is a folder of images
(ImageNet's class sub-folders included).
"""

import hashlib
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fastdec.data.corpus import (
    SPLITS,
    CorpusPhoto,
    CorpusWarning,
    photo_ids,
    read_manifest,
    skipped_files,
    split_photos,
)
from fastdec.data.folder import (
    IMAGE_EXTENSIONS,
    ImageFolder,
    from_uint8,
    save_images,
    to_uint8,
)
from fastdec.data.photos import CropParams, PhotoCrops, load_photo, validation_crops
from fastdec.data.shards import ShardDataset, shard_paths, write_shards

__all__ = [
    "EVAL_SOURCES",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "CorpusPhoto",
    "CorpusWarning",
    "CropParams",
    "ImageFolder",
    "PhotoCrops",
    "ShardDataset",
    "build_dataset",
    "from_uint8",
    "load_eval_images",
    "load_photo",
    "photo_ids",
    "subset_order",
    "read_manifest",
    "save_images",
    "skipped_files",
    "split_photos",
    "to_uint8",
    "validation_crops",
    "write_shards",
]

DEFAULT_TRAIN_LENGTH = 100_000
DEFAULT_VAL_LENGTH = 64
EVAL_SOURCES = {"photos-val": "val", "photos-test": "test", "photos": "val"}  # fixed corpus crops


def _folder(source: str, resolution: int, verify: bool = True) -> ImageFolder | ShardDataset:
    """The shards or the image folder that ``source`` names."""
    shards = shard_paths(source) if source else None
    if shards is not None:
        return ShardDataset(shards, resolution, verify=verify)
    if not source or not Path(source).exists():  # Path("") would be the working directory
        raise FileNotFoundError(
            f"data source {source!r} is neither an embedded set (the photo corpus: 'photos', "
            "'photos-val', 'photos-test'), nor tar shards, nor an existing folder"
        )
    return ImageFolder(source, resolution, verify=verify)


def subset_order(split: str) -> tuple[str, ...]:
    """The photo ids of a corpus split in a fixed pseudo-random order (by the SHA-256 of the id), so that
    the first N are a uniform sample and the first N are inside the first M > N."""
    return tuple(sorted(photo_ids(split), key=lambda i: hashlib.sha256(i.encode()).hexdigest()))


def build_dataset(
    source: str,
    resolution: int,
    *,
    split: str = "train",
    seed: int = 0,
    length: int | None = None,
    augment: str = "flip",
    min_frac: float = 0.5,
    verify: bool = True,
    photos: int = 0,
) -> Dataset:
    """The dataset a training run reads; every item is a float32 (3, R, R) tensor in [-1, 1].

    Args:
        source: ``"photos"`` for the bundled photo corpus, tar shards (see the module docstring),
            or a folder path.
        resolution: output side R.
        split: ``"train"`` (random crops of the corpus's train photos) or ``"val"`` (the fixed
            crops of ``validation_crops`` of the val photos, items 0..length-1). A folder is its
            own split: both values give the whole folder; name a different folder for validation.
        seed: crop seed for ``"photos"`` (a folder has no randomness).
        length: number of items for ``"photos"`` (default 100_000 for train, 64 for val);
            must be left ``None`` for a folder, whose length is its image count.
        augment, min_frac: training crops of ``"photos"`` (see ``PhotoCrops``); the validation
            crops are always the fixed default ones.
        verify: for a folder or shards: decode every image at construction (bad ones excluded);
            False lists them only and reports a bad image when it is read.
        photos: train on the first ``photos`` train photos of :func:`subset_order` only (0 = all):
            the data-scaling experiment.

    Returns:
        A ``PhotoCrops``, an ``ImageFolder`` or a ``ShardDataset``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if source == "photos":
        if split == "val":
            return PhotoCrops("val", resolution, DEFAULT_VAL_LENGTH if length is None else length, seed)
        length = DEFAULT_TRAIN_LENGTH if length is None else length
        names = subset_order("train")[:photos] if photos else "train"
        return PhotoCrops(names, resolution, length, seed, min_frac=min_frac, augment=augment)
    if photos:
        raise ValueError(f"photos applies to source='photos' only, got photos={photos} for {source!r}")
    if length is not None:
        raise ValueError(
            f"length applies to source='photos' only; the folder {source!r} "
            f"has as many items as images, got length={length}"
        )
    return _folder(source, resolution, verify)


def load_eval_images(
    source: str, resolution: int, limit: int = DEFAULT_VAL_LENGTH
) -> tuple[torch.Tensor, list[str], dict]:
    """Load the images ``fastdec eval --data`` reconstructs.

    Args:
        source: ``"photos-test"`` or ``"photos-val"`` (``"photos"``: the same as ``"photos-val"``)
            for ``limit`` fixed crops of that corpus split (``validation_crops(resolution, limit,
            seed=0, split=...)``); otherwise a folder, of which the first ``limit`` images in
            sorted order are used.
        resolution: output side R.
        limit: maximum number of images.

    Returns:
        images: float32 tensor of shape (N, 3, R, R) in [-1, 1].
        names: N names (relative paths for a folder) usable with ``save_images``.
        report: ``n_images`` (found), ``n_used``, ``n_bad``, ``bad`` (path, reason) and the
            source; for the corpus, also ``split``, ``photos`` (ids of the photos cropped) and
            ``n_photos`` (intact photos in the split; ``bad`` lists the corrupt or missing ones);
            for a folder, also the fields of ``ImageFolder.report()``.
    """
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    if source in EVAL_SOURCES:
        split = EVAL_SOURCES[source]
        crops = PhotoCrops(split, resolution, length=limit, seed=0)
        images = torch.stack([crops[i] for i in range(limit)])  # = validation_crops(R, limit, 0, split)
        bad = skipped_files(split)
        report = {
            "source": f"photos-{split}",
            "split": split,
            "photos": sorted({crops.crop_params(i).name for i in range(limit)}),
            "n_photos": len(crops.names),
            "n_images": limit,
            "n_used": limit,
            "n_bad": len(bad),
            "bad": bad,
        }
        return images, [f"photos-{split}-{i:04d}" for i in range(limit)], report
    folder = _folder(source, resolution)
    n = min(limit, len(folder))
    images = torch.stack([folder[i] for i in range(n)])  # (N, 3, R, R)
    report = {"source": str(source), **folder.report(), "n_used": n}
    return images, folder.names[:n], report

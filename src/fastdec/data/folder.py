"""Any folder of images as a dataset, plus the uint8 <-> [-1, 1] conversions used at I/O.

Every candidate file is fully decoded once at construction. Files that fail (corrupt, truncated,
not an image, over the pixel limit, unsupported mode) are kept in ``bad_files`` with the reason
and announced in one warning; they are never silently dropped and never crash a DataLoader later.
The cost is one decode per file at start-up, which is fine for evaluation sets and small training
folders. At scale (ImageNet: 1.28 M files, on every process) ``verify=False`` lists the files only;
a file that fails when read is then reported (a warning naming it, ``bad_files``) and the next
readable item stands in for it, so training goes on.
"""

import os
import stat
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from fastdec.io import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024  # decompression-bomb guard; below PIL's own 89 MP warning
MAX_DEPTH = 64  # folder levels scanned below a data folder


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """Convert uint8 channels-last pixels to float32 channels-first images in [-1, 1].

    Args:
        array: uint8 array of shape (H, W, 3) or (B, H, W, 3).

    Returns:
        Float32 tensor of shape (3, H, W) or (B, 3, H, W); ``x = u / 127.5 - 1``.
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise ValueError(
            f"from_uint8 expects a uint8 numpy array, got {type(array).__name__} "
            f"of dtype {getattr(array, 'dtype', None)}"
        )
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"from_uint8 expects shape (H, W, 3) or (B, H, W, 3), got {array.shape}")
    x = torch.from_numpy(np.array(array, copy=True))  # copy: input may be read-only
    x = x.movedim(-1, -3).contiguous()  # (..., 3, H, W)
    return x.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Quantise images in [-1, 1] to uint8 channels-last pixels.

    Values outside [-1, 1] (a decoder's overshoot) are clipped: that is what quantisation to
    [0, 255] means. Non-finite values raise instead.

    Args:
        images: float tensor of shape (3, H, W) or (B, 3, H, W).

    Returns:
        uint8 array of shape (H, W, 3) or (B, H, W, 3); ``u = round((x + 1) * 127.5)``.
    """
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"to_uint8 expects shape (3, H, W) or (B, 3, H, W), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("to_uint8 got non-finite values (NaN or inf) in the images")
    u = ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return u.movedim(-3, -1).contiguous().numpy()  # (..., H, W, 3)


def _rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparency is composited on white."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode.startswith("I"):  # 16-bit grayscale PNG/TIFF opens as I;16* or I
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(
                f"integer image with values in [{values.min()}, {values.max()}], expected 16-bit [0, 65535]"
            )
        gray = np.round(values / 257.0).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "F":
        raise ValueError("unsupported floating-point image mode 'F'")
    return image.convert("RGB")


def load_rgb(path, max_pixels: int) -> Image.Image:
    """Fully decode one file (a path or a binary file object) to RGB (first frame, EXIF orientation
    applied); raises on failure, and for a path that is not a regular file (a FIFO or a device is
    never read)."""
    if isinstance(path, str | Path):
        with _open_regular(path) as file:
            return load_rgb(file, max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(
                    f"{width}x{height} = {width * height} pixels exceeds the "
                    f"limit of {max_pixels} (possible decompression bomb)"
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            return _rgb(image)


def _open_regular(path):
    """``path`` opened for binary reading if it is a regular file (checked on the open descriptor,
    which ``O_NONBLOCK`` keeps from waiting on a FIFO)."""
    file = open(path, "rb", opener=lambda name, flags: os.open(name, flags | getattr(os, "O_NONBLOCK", 0)))
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        raise ValueError(f"{path} is not a regular file")
    return file


def centre_square(image: Image.Image, resolution: int) -> Image.Image:
    """Centre square crop resized to (resolution, resolution) with Lanczos antialiasing.

    Equivalent to resizing the short side to ``resolution`` and centre cropping; done as one
    resample so the crop is exact when the short side already equals ``resolution``.
    """
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if side == resolution:
        return image.crop(box)
    return image.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)


def list_images(root: Path) -> tuple[list[Path], dict[str, int], list[tuple[Path, str]]]:
    """Walk ``root`` (no recursion, symbolic links to files followed, to folders not).

    Returns the regular files with an extension in ``IMAGE_EXTENSIONS`` (any case), sorted by relative
    POSIX path; the count of every other extension among regular files; and every entry that is
    neither, with the reason: a folder named like an image (its contents are scanned), a FIFO, a
    device, a socket, a dangling link, a link to a folder, a folder that cannot be listed. None of
    them is opened.

    Raises:
        ValueError: a folder lies more than :data:`MAX_DEPTH` levels below ``root``.
    """
    files, skipped, bad = [], Counter(), []
    todo = [(root, 0)]
    while todo:
        folder, depth = todo.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as error:
            bad.append((folder, f"cannot list this folder: {error.strerror or error}"))
            continue
        for entry in entries:
            path, ext = Path(entry.path), os.path.splitext(entry.name)[1].lower()
            if entry.is_dir(follow_symlinks=False):
                if depth >= MAX_DEPTH:
                    raise ValueError(f"{path} is more than {MAX_DEPTH} folders below {root}: too deep")
                todo.append((path, depth + 1))
                if ext in IMAGE_EXTENSIONS:
                    bad.append((path, "a folder, not an image file (its contents are scanned)"))
                continue
            try:
                mode = os.stat(path).st_mode  # follows a symbolic link
            except OSError as error:
                dangling = entry.is_symlink() and isinstance(error, FileNotFoundError)
                reason = "a dangling symbolic link" if dangling else f"cannot stat: {error.strerror}"
                bad.append((path, reason))
                continue
            if stat.S_ISREG(mode):
                files.append(path) if ext in IMAGE_EXTENSIONS else skipped.update([ext or "<none>"])
            else:
                bad.append((path, f"not a regular file ({_kind(mode)}): not read"))
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    bad.sort(key=lambda item: item[0].as_posix())
    return files, dict(skipped), bad


def _kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a symbolic link to a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")]  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "a special file")


def read_or_next(n: int, index: int, read: Callable[[int], torch.Tensor], on_bad: Callable) -> torch.Tensor:
    """Item ``index``, or the next item that reads (wrapping around) if it does not: deterministic,
    so every process and every resumed run sees the same stand-in. ``on_bad(j, error)`` reports."""
    for k in range(n):
        j = (index + k) % n
        try:
            return read(j)
        except Exception as error:  # any decoder failure on an untrusted file = bad file
            on_bad(j, error)
    raise ValueError(f"none of the {n} images could be read")


class ImageFolder(Dataset):
    """Every image under a folder (recursive), centre-cropped and resized to a square.

    Files with extensions in ``IMAGE_EXTENSIONS`` (any case) are candidates, in sorted order of
    their relative path. Grayscale, palette, CMYK and 16-bit images are converted to RGB;
    transparent images are composited on white (dropping alpha would expose arbitrary colours
    stored under transparent pixels). Images whose short side is below ``resolution`` are
    upsampled and counted in ``report()["n_upsampled"]``.

    Args:
        folder: directory to scan (ImageNet's class sub-folders included).
        resolution: output side R.
        max_pixels: larger images are recorded as bad (decompression-bomb guard).
        verify: decode every file now (bad ones excluded, see the module docstring); False lists them
            only and reports bad files when read (then ``n_upsampled`` counts what was read).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is not a directory.
        ValueError: no readable image under ``folder``.
    """

    def __init__(
        self,
        folder: str | Path,
        resolution: int,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        verify: bool = True,
    ):
        root = Path(folder)
        if not root.exists():
            raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
        if not root.is_dir():
            raise NotADirectoryError(f"image folder {str(root)!r} is not a directory")
        if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
        self.root, self.resolution, self.max_pixels, self.verify = root, resolution, max_pixels, verify

        candidates, self.skipped_extensions, unusable = list_images(root)
        self.paths: list[Path] = [] if verify else candidates
        self.bad_files: list[tuple[Path, str]] = list(unusable)
        self.n_upsampled = 0
        for path in candidates if verify else ():
            try:
                image = load_rgb(path, max_pixels)
            except Exception as error:  # any decoder failure on an untrusted file = bad file
                self.bad_files.append((path, f"{type(error).__name__}: {error}"))
                continue
            self.paths.append(path)
            self.n_upsampled += min(image.size) < resolution

        if self.bad_files:
            listed = "; ".join(f"{p}: {r}" for p, r in self.bad_files[:10])
            more = f" (and {len(self.bad_files) - 10} more)" if len(self.bad_files) > 10 else ""
            warnings.warn(
                f"{len(self.bad_files)} unreadable image file(s) under {root} were excluded: {listed}{more}",
                stacklevel=2,
            )
        if not self.paths:
            first = f" (first: {self.bad_files[0][0]}: {self.bad_files[0][1]})" if self.bad_files else ""
            raise ValueError(
                f"no readable image in {str(root)!r}: {len(candidates)} candidate "
                f"file(s) with extensions {IMAGE_EXTENSIONS}, "
                f"{len(self.bad_files)} bad{first}"
            )

    @property
    def names(self) -> list[str]:
        """Relative POSIX paths of the good images, in dataset order."""
        return [p.relative_to(self.root).as_posix() for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Image ``index`` as a float32 tensor of shape (3, R, R) in [-1, 1] (unverified: or the next
        readable one, if this one fails)."""
        if not self.verify:
            return read_or_next(len(self), index, self._read, self._report_bad)
        try:
            return self._read(index)
        except Exception as error:  # the file decoded at construction: it changed on disk
            raise RuntimeError(
                f"image {self.paths[index]} decoded at construction but now fails: "
                f"{type(error).__name__}: {error}"
            ) from error

    def _read(self, index: int) -> torch.Tensor:
        image = load_rgb(self.paths[index], self.max_pixels)
        self.n_upsampled += not self.verify and min(image.size) < self.resolution
        return from_uint8(np.asarray(centre_square(image, self.resolution)))  # (3, R, R)

    def _report_bad(self, index: int, error: Exception) -> None:
        path = self.paths[index]
        if all(p != path for p, _ in self.bad_files):
            self.bad_files.append((path, f"{type(error).__name__}: {error}"))
            warnings.warn(f"unreadable image file {path} skipped: {self.bad_files[-1][1]}", stacklevel=3)

    def report(self) -> dict:
        """Summary of the scan: counts, bad files with reasons, skipped non-image extensions."""
        return {
            "folder": str(self.root),
            "n_images": len(self.paths),
            "n_bad": len(self.bad_files),
            "bad": [(str(p), reason) for p, reason in self.bad_files],
            "n_upsampled": self.n_upsampled,
            "skipped_extensions": dict(self.skipped_extensions),
            "verified": self.verify,
        }


def png_paths(folder: str | Path, names: list[str]) -> list[Path]:
    """Where :func:`save_images` writes each name: an image extension is replaced by ``.png``, anything
    else gets ``.png`` appended. Call it before the work whose results are saved: two names that map
    to one file (``dup.png`` and ``dup.jpg``) are a ``ValueError`` naming both."""
    root, paths = Path(folder), {}
    for name in names:
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.name:
            raise ValueError(f"image name must be a relative path inside {root}, got {name!r}")
        if relative.suffix.lower() in IMAGE_EXTENSIONS:
            relative = relative.with_suffix(".png")
        else:
            relative = relative.with_name(relative.name + ".png")
        if root / relative in paths:
            raise ValueError(
                f"{paths[root / relative]!r} and {name!r} would both be written to {root / relative}: "
                "rename one"
            )
        paths[root / relative] = name
    return list(paths)


def save_images(images: torch.Tensor, folder: str | Path, names: list[str]) -> list[Path]:
    """Write images in [-1, 1] as 8-bit PNGs, creating folders as needed.

    A name keeps its sub-folders; an image extension is replaced by ``.png``, anything else gets
    ``.png`` appended (``"a/b.jpg"`` -> ``folder/a/b.png``).

    Args:
        images: float tensor of shape (B, 3, H, W) in [-1, 1] (clipped when quantised).
        folder: output directory.
        names: B distinct relative file names.

    Returns:
        The B written paths (:func:`png_paths`), each written atomically.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"save_images expects shape (B, 3, H, W), got {tuple(images.shape)}")
    if len(names) != images.shape[0]:
        raise ValueError(f"save_images got {images.shape[0]} images but {len(names)} names")
    paths = png_paths(folder, names)
    for path, pixels in zip(paths, to_uint8(images), strict=True):
        atomic_write(path, lambda tmp, pixels=pixels: Image.fromarray(pixels).save(tmp, format="PNG"))
    return paths

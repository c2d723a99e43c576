"""Files on disk: atomic writes, and exports (``config.json`` + ``model.safetensors``, no pickle)."""

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load, save_file

EXPORT_FORMAT = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _write_temp(path: Path, write: Callable[[str], None]) -> str:
    """``write(tmp)`` to a fresh hidden ``.<name>.*.tmp`` beside ``path`` and fsync it; returns tmp."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _commit(renames: dict[Path, str]) -> None:
    """Rename each written temporary file over its target, then fsync the directory (durable rename)."""
    try:
        for path, tmp in renames.items():
            os.replace(tmp, path)
    finally:
        for tmp in renames.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
    for directory in {path.parent for path in renames}:
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:  # platforms without directory fds: the rename itself is still atomic
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn one; a kill during
    ``write`` may leave the hidden temporary file (``.<name>.*.tmp``) behind, never a file named ``path``.
    """
    path = Path(path)
    _commit({path: _write_temp(path, write)})


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    atomic_write(path, write)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_export(directory: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> None:
    """Write an export directory: ``config.json`` (with ``format``) and ``model.safetensors``.

    ``config.json`` records the SHA-256 of ``model.safetensors``, which binds the two files together:
    both are written to temporary files first and renamed back to back, and a pair torn by a kill
    between the two renames (or a weights file corrupted later) is refused by :func:`load_export`.
    """
    directory = Path(directory)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    weights_path, config_path = directory / WEIGHTS_NAME, directory / CONFIG_NAME
    weights_tmp = _write_temp(weights_path, lambda tmp: save_file(tensors, tmp))
    try:
        checksum = _sha256(Path(weights_tmp).read_bytes())
        payload = {"format": EXPORT_FORMAT, **config, "weights_sha256": checksum}
        text = json.dumps(payload, indent=2, sort_keys=True)
        config_tmp = _write_temp(config_path, lambda tmp: Path(tmp).write_text(text))
    except BaseException:
        os.unlink(weights_tmp)
        raise
    _commit({weights_path: weights_tmp, config_path: config_tmp})


def load_export(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an export directory written by :func:`save_export`; errors name the bad file.

    Raises:
        FileNotFoundError: the directory or one of its two files is missing.
        ValueError: unreadable or foreign ``config.json``, another export format, a weights file that
            is not valid safetensors or does not match the checksum in ``config.json``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory not found: {directory}")
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (config_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"export is missing {p.name}: {p}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt export config {config_path}: {err}") from None
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(
            f"{config_path} has export format {found!r}; this fastdec reads format {EXPORT_FORMAT}"
        )
    data = weights_path.read_bytes()  # one read: the checksum and the tensors see the same bytes
    expected = config.get("weights_sha256")  # absent in exports written before checksums
    if expected is not None and expected != _sha256(data):
        raise ValueError(
            f"{weights_path} does not match the checksum recorded in {config_path}: the file is "
            "corrupt, or the two files come from different saves (an interrupted export?)"
        )
    try:
        tensors = load(data)
    except Exception as err:  # the safetensors parser raises several types for a torn or foreign file
        raise ValueError(f"corrupt weights file {weights_path}: {type(err).__name__}: {err}") from None
    return tensors, config

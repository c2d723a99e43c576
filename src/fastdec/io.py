"""Files on disk: atomic writes, and exports (``config.json`` + ``model.safetensors``, no pickle)."""

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

EXPORT_FORMAT = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    atomic_write(path, write)


def save_export(directory: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> None:
    """Write an export directory: ``config.json`` (with ``format``) and ``model.safetensors``."""
    directory = Path(directory)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp))
    payload = {"format": EXPORT_FORMAT, **config}
    atomic_write_text(directory / CONFIG_NAME, json.dumps(payload, indent=2, sort_keys=True))


def load_export(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an export directory written by :func:`save_export`; errors name the bad file."""
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
    try:
        tensors = load_file(weights_path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"corrupt weights file {weights_path}: {err}") from None
    return tensors, config

"""Files on disk: atomic writes, and exports (``config.json`` + ``model.safetensors``, no pickle).

Every write goes to a hidden temporary beside its target, named ``.<target name>.<8 random>.tmp``
(a file, or a directory for an export), and is renamed into place once complete and fsynced. A kill
can leave such a temporary behind; the next save to the same target removes it, and removes nothing
else.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load, save_file

EXPORT_FORMAT = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_RANDOM = r"[a-z0-9_]{8}"  # the random part of tempfile.mkstemp / mkdtemp names


def temp_pattern(name_pattern: str) -> re.Pattern:
    """Names of the temporaries of targets whose name matches the regex ``name_pattern``."""
    return re.compile(rf"\.(?:{name_pattern})\.{_RANDOM}\.tmp")


def remove_stale_temps(directory: str | Path, name_pattern: str) -> list[Path]:
    """Delete the temporaries (files or directories) that writes of targets matching ``name_pattern``
    in ``directory`` left behind when killed; returns what was removed. Nothing else is touched.

    Two writers of the same target at once are not supported: one would remove the other's temporary.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = temp_pattern(name_pattern)
    removed = []
    for path in directory.iterdir():
        if not pattern.fullmatch(path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed


def _fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory fds: the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str | Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn one; a kill during
    ``write`` may leave the hidden temporary file (``.<name>.*.tmp``) behind, never a file named
    ``path``. Such leftovers of earlier writes of ``path`` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, re.escape(path.name))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text)

    atomic_write(path, write)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def backup_path(directory: str | Path) -> Path:
    """Where :func:`save_export` parks the previous export while it swaps in the new one."""
    directory = Path(os.path.abspath(directory))
    return directory.parent / f".{directory.name}.old"


def restore_interrupted_export(directory: str | Path) -> bool:
    """Undo an export overwrite that was killed between its two renames.

    If ``directory`` is missing but its backup (:func:`backup_path`) exists, the previous export is
    renamed back into place, as if the interrupted save had never started. Returns True if it did.

    Raises:
        OSError: the backup exists but cannot be renamed back (e.g. a read-only file system); the
            message names the backup to restore by hand.
    """
    directory = Path(os.path.abspath(directory))
    backup = backup_path(directory)
    if directory.exists() or not backup.is_dir():
        return False
    try:
        os.rename(backup, directory)
    except OSError as err:
        if directory.is_dir():  # restored by another process meanwhile
            return False
        raise OSError(
            f"{directory} is missing after an interrupted save; its previous export is {backup} "
            f"and cannot be moved back ({err}): rename it to {directory.name} by hand"
        ) from None
    _fsync_dir(directory.parent)
    warnings.warn(
        f"restored the previous export {directory} (an overwrite of it had been interrupted)", stacklevel=2
    )
    return True


def _check_replaceable(directory: Path) -> None:
    """Refuse to overwrite anything that is not an export: save_export replaces the whole directory."""
    if not directory.exists():
        return
    if not directory.is_dir() or directory.is_symlink():
        raise ValueError(f"cannot write an export to {directory}: it exists and is not a plain directory")
    foreign = sorted(
        p.name
        for p in directory.iterdir()
        if p.name not in (CONFIG_NAME, WEIGHTS_NAME) and not temp_pattern(".+").fullmatch(p.name)
    )
    if foreign:
        raise ValueError(
            f"refusing to replace {directory}: it holds files that are not part of an export "
            f"{foreign[:5]}; save the export to a new or empty directory"
        )


def _discard(path: Path, target: Path) -> None:
    """Delete the directory ``path`` by first renaming it to a temporary of ``target``, so a kill
    during the deletion leaves a leftover that the next save removes, never a half-deleted directory
    under a name that means something."""
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.rename(path, trash)  # onto the fresh empty directory: allowed by POSIX rename
    shutil.rmtree(trash)


def save_export(directory: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> None:
    """Write an export directory: ``config.json`` (with ``format``) and ``model.safetensors``.

    The new export is written and fsynced in a hidden sibling directory, then swapped in: the old
    directory is renamed to its backup (:func:`backup_path`), the new one to ``directory``, and the
    backup deleted. A kill at any moment leaves the old export or the new one loadable under
    ``directory`` (:func:`load_export` moves the backup back if the kill fell between the two
    renames). ``config.json`` records the SHA-256 of ``model.safetensors``, so a weights file
    corrupted later, or a pair of files mixed by hand, is refused on load.

    Raises:
        ValueError: ``directory`` exists and holds anything but an export.
    """
    directory = Path(os.path.abspath(directory))
    if not directory.name:
        raise ValueError(f"cannot write an export to the file-system root {directory}")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    restore_interrupted_export(directory)
    _check_replaceable(directory)
    remove_stale_temps(directory.parent, re.escape(directory.name))
    backup = backup_path(directory)
    if backup.exists():  # left by a kill after the swap: the export in place is the newer one
        _discard(backup, directory)
    new = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        save_file(tensors, new / WEIGHTS_NAME)
        checksum = _sha256((new / WEIGHTS_NAME).read_bytes())
        payload = {"format": EXPORT_FORMAT, **config, "weights_sha256": checksum}
        (new / CONFIG_NAME).write_text(json.dumps(payload, indent=2, sort_keys=True))
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            _fsync_file(new / name)
        _fsync_dir(new)
    except BaseException:
        shutil.rmtree(new)
        raise
    if directory.exists():
        os.rename(directory, backup)
    os.rename(new, directory)
    _fsync_dir(directory.parent)
    if backup.exists():
        _discard(backup, directory)


def load_export(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an export directory written by :func:`save_export`; errors name the bad file.

    An export whose overwrite was killed between its two renames is first restored from its backup
    (:func:`restore_interrupted_export`, with a warning).

    Raises:
        FileNotFoundError: the directory or one of its two files is missing.
        ValueError: unreadable or foreign ``config.json``, another export format, a weights file that
            is not valid safetensors or does not match the checksum in ``config.json``.
    """
    directory = Path(directory)
    restore_interrupted_export(directory)
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
            "corrupt, or the two files come from different saves"
        )
    try:
        tensors = load(data)
    except Exception as err:  # the safetensors parser raises several types for a torn or foreign file
        raise ValueError(f"corrupt weights file {weights_path}: {type(err).__name__}: {err}") from None
    return tensors, config

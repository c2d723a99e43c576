"""Files on disk: atomic writes, exports (``config.json`` + ``model.safetensors``, no pickle), JSON
read with bounds, and an exclusive lock file.

Every write goes to a hidden temporary beside its target, named ``.<target name>.<8 random>.tmp``
(a file, or a directory for an export), and is renamed into place once complete and fsynced. A kill
can leave such a temporary behind; the next save to the same target removes it, and removes nothing
else. A write that fails (a full disk, a file-size limit) removes its temporary and raises an
``OSError`` naming the target; the previous file is untouched. What is written gets the permissions
the umask allows (as ``open`` would give), not the private ones of ``tempfile``.
"""

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors.torch import load, save

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, see exclusive_lock
    fcntl = None

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


def _umask() -> int:
    try:  # Linux reports it without changing it (safe with other threads creating files)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _mode_as_open(path: str | Path, directory: bool = False) -> None:
    """Give a ``tempfile`` file (0600) or directory (0700) the mode ``open``/``mkdir`` would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_error(err: OSError, path: str | Path) -> OSError:
    """``err``, raised while writing ``path``, as an error naming ``path``; a full disk, a quota and a
    file-size limit say so in words."""
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "no space left (disk quota exceeded)",
        errno.EFBIG: "file size limit exceeded",
    }
    named = OSError(f"cannot write {path}: {reasons.get(err.errno, err.strerror or str(err))}")
    named.errno = err.errno  # one argument keeps the message free of an "[Errno N]" prefix
    return named


@contextlib.contextmanager
def naming_write_errors(path: str | Path) -> Iterator[None]:
    """Re-raise an ``OSError`` of the block as :func:`write_error` naming ``path``."""
    try:
        yield
    except OSError as err:
        raise write_error(err, path) from None


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn one; a kill during
    ``write`` may leave the hidden temporary file (``.<name>.*.tmp``) behind, never a file named
    ``path``. Such leftovers of earlier writes of ``path`` are removed first. ``write`` must report a
    failed write as an ``OSError`` (write through a Python file object), which is re-raised naming
    ``path`` (:func:`write_error`) once the temporary is gone.
    """
    path = Path(path)
    with naming_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent, re.escape(path.name))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            _mode_as_open(tmp)
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


def save_safetensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata=None) -> bytes:
    """Write ``tensors`` as a safetensors file through Python (so a full disk is an ``OSError``, not a
    parser-specific error); returns the bytes written."""
    data = save(tensors, metadata=metadata)
    with open(path, "wb") as f:
        f.write(data)
    return data


MAX_JSON_BYTES = 1 << 20  # a config.json is a few kB
MAX_JSON_DEPTH = 16  # a config is two levels deep; an export's meta a few more


def parse_json(text: str | bytes, source: str | Path) -> object:
    """Parse untrusted JSON of at most :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH` levels;
    anything else is a ``ValueError`` naming ``source``."""
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f"{source} is {len(text)} bytes, more than the {MAX_JSON_BYTES} a config may have")
    try:
        value = json.loads(text)
    except ValueError as err:  # also numbers with more digits than int() converts, and bad UTF-8
        raise ValueError(f"{source} is not valid JSON: {err}") from None
    except RecursionError:
        raise ValueError(f"{source} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"{source} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _depth(value) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: str | Path) -> object:
    """:func:`parse_json` of a file, refusing a file over the size bound before reading it."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{path} is {size} bytes, more than the {MAX_JSON_BYTES} a config may have")
    return parse_json(path.read_bytes(), path)


class LockedError(OSError):
    """Another process holds the lock: the message names its pid."""


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, wait: bool = True, what: str = "") -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on the file ``path`` for the block.

    The file is created holding the holder's pid and deleted on release; a process that dies keeps no
    lock (the kernel drops it), so the file it leaves is recognisably stale and the next caller takes
    it over. ``wait=False`` refuses at once with :class:`LockedError` naming ``what`` (default: the
    file) and the holder's pid. Where the platform or file system offers no ``flock``, the block runs
    unlocked.
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{what or path} is in use by process {holder} (lock file {path})") from None
        except OSError:  # e.g. a network file system without flock
            break
        try:  # the holder we waited for may have deleted the file: lock the one at ``path`` now
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still locked: a waiter re-checks the inode and starts over
        os.close(fd)


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
        OSError: the write failed (e.g. no space left), naming ``directory``; the previous export and
            no temporary remain.
    """
    directory = Path(os.path.abspath(directory))
    if not directory.name:
        raise ValueError(f"cannot write an export to the file-system root {directory}")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with naming_write_errors(directory):
        directory.parent.mkdir(parents=True, exist_ok=True)
        restore_interrupted_export(directory)
        _check_replaceable(directory)
        remove_stale_temps(directory.parent, re.escape(directory.name))
        backup = backup_path(directory)
        if backup.exists():  # left by a kill after the swap: the export in place is the newer one
            _discard(backup, directory)
        new = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        try:
            _mode_as_open(new, directory=True)
            checksum = _sha256(save_safetensors(new / WEIGHTS_NAME, tensors))
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


def check_payload(payload: dict, keys=("config", "meta")) -> None:
    """Refuse top-level keys of an export's ``config.json`` other than ``keys`` and the fields
    :func:`save_export` adds, naming them."""
    unknown = sorted(set(payload) - {*keys, "format", "weights_sha256"})
    if unknown:
        raise ValueError(f"unknown top-level keys {unknown[:5]}")


def load_export(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an export directory written by :func:`save_export`; errors name the bad file.

    An export whose overwrite was killed between its two renames is first restored from its backup
    (:func:`restore_interrupted_export`, with a warning).

    Raises:
        FileNotFoundError: the directory or one of its two files is missing.
        ValueError: unreadable, oversized, too deeply nested or foreign ``config.json``, another
            export format, a weights file that is not valid safetensors or does not match the
            checksum in ``config.json``.
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
        config = read_json(config_path)
    except ValueError as err:
        raise ValueError(f"corrupt export config: {err}") from None
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

"""The user cache directory: results that are costly to compute and safe to recompute.

``$FASTDEC_CACHE`` if set, else ``$XDG_CACHE_HOME/fastdec``, else ``~/.cache/fastdec``. Entries are
keyed by the content they were computed from and written with :func:`fastdec.io.atomic_write`, so
concurrent writers of one entry each leave a complete file and the last rename wins; deleting the
directory at any time is safe. Hold :func:`write_lock` around such a write: ``atomic_write`` clears
stale temporaries of its target, so two unlocked writers of one entry can remove each other's.
"""

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from fastdec.io import exclusive_lock


def cache_dir(kind: str) -> Path:
    """The folder for one kind of cached entry (e.g. ``"fid"``), created if missing."""
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"cache kind must be a plain folder name, got {kind!r}")
    root = os.environ.get("FASTDEC_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = Path(xdg) / "fastdec" if xdg else Path.home() / ".cache" / "fastdec"
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(*parts: bytes | str) -> str:
    """A hex sha256 over ``parts`` (each length-prefixed, so ("ab", "c") and ("a", "bc") differ)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


@contextlib.contextmanager
def write_lock(kind: str) -> Iterator[None]:
    """Hold an exclusive lock on one kind of cache while writing an entry of it.

    :func:`fastdec.io.atomic_write` first deletes leftover temporaries of its target, which would
    include the live temporary of a second writer of the same entry; writing under this lock makes
    writers take turns, so each rename installs a complete file. Readers need no lock (a rename is
    atomic). The lock is :func:`fastdec.io.exclusive_lock` on ``<kind>/.lock``; where the platform or
    file system offers none, the write goes ahead unlocked.
    """
    with exclusive_lock(cache_dir(kind) / ".lock"):
        yield

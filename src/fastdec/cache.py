"""The user cache directory: results that are costly to compute and safe to recompute.

``$FASTDEC_CACHE`` if set, else ``$XDG_CACHE_HOME/fastdec``, else ``~/.cache/fastdec``. Entries are
keyed by the content they were computed from and written with :func:`fastdec.io.atomic_write`, so
concurrent writers of one entry each leave a complete file and the last rename wins; deleting the
directory at any time is safe.
"""

import hashlib
import os
from pathlib import Path


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

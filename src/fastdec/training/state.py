"""Training state: everything needed to resume (weights, EMA, optimiser, counters, config).

Written atomically (temporary file + rename) as ``state-<step>.pt``; the last K are kept. Read with
``torch.load(weights_only=True)``: a state file can hold tensors and plain containers only. A kill
while writing leaves at most a hidden ``.state-<step>.pt.*.tmp`` file, which :func:`list_states` ignores.
"""

import json
import re
import zipfile
from pathlib import Path

import torch

from fastdec.io import atomic_write

STATE_FORMAT = 1
_PATTERN = re.compile(r"^state-(\d{8})\.pt$")


def state_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"state-{step:08d}.pt"


def list_states(run_dir: str | Path) -> list[Path]:
    """State files of a run, oldest first (temporary files of interrupted writes are not states)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if _PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(_PATTERN.match(p.name).group(1)))


def save_state(run_dir: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` for ``step`` atomically, then delete all but the newest ``keep`` states."""
    path = state_path(run_dir, step)
    atomic_write(path, lambda tmp: torch.save({"format": STATE_FORMAT, "step": step, **state}, tmp))
    for old in list_states(run_dir)[:-keep]:
        old.unlink()
    return path


def _read(path: Path):
    with zipfile.ZipFile(path) as archive:  # torch.load does not check the archive's CRCs
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"checksum mismatch in {bad}")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(path: str | Path) -> dict:
    """Load a state file (tensors only, no code); a corrupt or foreign file gets an error naming it."""
    try:
        state = _read(Path(path))
    except Exception as err:  # zipfile and torch raise many types for a torn or foreign file
        raise ValueError(f"cannot read training state {path}: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise ValueError(f"{path} is not a fastdec training state (no step counter)")
    if state.get("format", STATE_FORMAT) != STATE_FORMAT:  # states before the format field are format 1
        raise ValueError(
            f"{path} has training-state format {state['format']!r}; this fastdec reads format {STATE_FORMAT}"
        )
    return state


def latest_state(run_dir: str | Path) -> dict | None:
    """The newest state of a run, or None for a fresh run; a corrupt newest state is an error naming
    it (never skipped silently: delete it by hand to resume from the one before)."""
    states = list_states(run_dir)
    return load_state(states[-1]) if states else None


def check_run_config(run_dir: str | Path, config_json: str) -> None:
    """Refuse to resume a run directory that was started with a different config (or whose config is
    gone or unreadable while states remain)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        if list_states(run_dir):
            raise ValueError(
                f"{run_dir} holds training states but no config.json to check them against; "
                "restore it or start a new run directory"
            )
        return
    try:
        old = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the run config {path}: {err}") from None
    new = json.loads(config_json)
    if old != new:
        old = old if isinstance(old, dict) else {"<config>": old}
        diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if old.get(k) != new.get(k)}
        raise ValueError(f"{run_dir} holds a run with another config; differences: {diff}")

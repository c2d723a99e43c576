"""Training state: everything needed to resume (weights, EMA, optimiser, counters, config).

Written atomically (temporary file + rename) as ``state-<step>.pt``; the last K are kept. Read with
``torch.load(weights_only=True)``: a state file can hold tensors and plain containers only.
"""

import json
import re
from pathlib import Path

import torch

from fastdec.io import atomic_write

_PATTERN = re.compile(r"^state-(\d{8})\.pt$")


def state_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"state-{step:08d}.pt"


def list_states(run_dir: str | Path) -> list[Path]:
    """State files of a run, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if _PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(_PATTERN.match(p.name).group(1)))


def save_state(run_dir: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` for ``step`` atomically, then delete all but the newest ``keep`` states."""
    path = state_path(run_dir, step)
    atomic_write(path, lambda tmp: torch.save({"step": step, **state}, tmp))
    for old in list_states(run_dir)[:-keep]:
        old.unlink()
    return path


def load_state(path: str | Path) -> dict:
    """Load a state file (tensors only, no code); a corrupt file gets an error naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a torn or foreign file
        raise ValueError(f"cannot read training state {path}: {type(err).__name__}: {err}") from None


def latest_state(run_dir: str | Path) -> dict | None:
    """The newest readable state of a run, or None for a fresh run."""
    states = list_states(run_dir)
    return load_state(states[-1]) if states else None


def check_run_config(run_dir: str | Path, config_json: str) -> None:
    """Refuse to resume a run directory that was started with a different config."""
    path = Path(run_dir) / "config.json"
    if path.is_file():
        old = json.loads(path.read_text())
        new = json.loads(config_json)
        if old != new:
            diff = {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if old.get(k) != new.get(k)}
            raise ValueError(f"{run_dir} holds a run with another config; differences: {diff}")

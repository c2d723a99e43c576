"""Training state: everything needed to resume (weights, EMA, optimiser, counters, config).

Written atomically (temporary file + rename) as ``state-<step>.pt``; the last K are kept. Read with
``torch.load(weights_only=True)``: a state file can hold tensors and plain containers only. A kill
while writing leaves at most a hidden ``.state-<step>.pt.*.tmp`` file, which :func:`list_states` ignores
and the next :func:`save_state` removes.
"""

import json
import re
import zipfile
from pathlib import Path

import torch

from fastdec.io import atomic_write, parse_json, read_json, remove_stale_temps

STATE_FORMAT = 1
# How a run executes, not what it computes: these train settings may change when a run resumes
# (e.g. on another number of processes or another machine).
EXECUTION_KEYS = ("grad_accum", "compile", "device", "workers", "max_minutes", "stop_at")
# train.steps may grow on resume: the run trains on to the new count, its learning-rate schedule
# stretched to the new length (a smaller count than a saved step is refused when the state loads)
EXTENDABLE_KEYS = ("steps",)
_NAME = r"state-(\d{8})\.pt"
_PATTERN = re.compile(rf"^{_NAME}$")


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
    """Write ``state`` for ``step`` atomically, then delete all but the newest ``keep`` states.

    Temporary files that killed writes of earlier states left in ``run_dir`` are removed first.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an integer >= 1 (the states to keep), got {keep!r}")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 10**8:
        raise ValueError(f"step must be an integer in [0, 1e8), got {step!r}")
    remove_stale_temps(run_dir, _NAME)
    path = state_path(run_dir, step)
    config_path = Path(run_dir) / "config.json"
    if config_path.is_file():  # binds the state to its run: :func:`latest_state` refuses it elsewhere
        state = {**state, "run_config": config_path.read_text()}
    atomic_write(path, lambda tmp: _torch_save({"format": STATE_FORMAT, "step": step, **state}, tmp))
    for old in list_states(run_dir)[:-keep]:
        old.unlink()
    return path


class _Writer:
    """The file ``torch.save`` writes to, keeping the ``OSError`` of a failed write: torch reports it
    as a ``RuntimeError`` without the reason (no space left, a file-size limit)."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(obj, path: str) -> None:
    with open(path, "wb") as f:
        writer = _Writer(f)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            raise writer.error from None


def _read(path: Path):
    with zipfile.ZipFile(path) as archive:  # torch.load does not check the archive's CRCs
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"checksum mismatch in {bad}")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(path: str | Path) -> dict:
    """Load a state file (tensors only, no code); a corrupt or foreign file, or one whose step counter
    is not the step in its name, gets an error naming it."""
    path = Path(path)
    return _check_name(path, _load(path))


def _check_name(path: Path, state: dict) -> dict:
    named = _PATTERN.match(path.name)
    if named and state["step"] != int(named.group(1)):
        step = f"{state['step']!r:.40}"
        raise ValueError(f"{path} holds step {step}, not the step {int(named.group(1))} of its name")
    return state


def _load(path: Path) -> dict:
    try:
        state = _read(path)
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
    """The newest state of a run, or None for a fresh run; a corrupt newest state, or one written by a
    run with another config (copied in from elsewhere), is an error naming it (never skipped silently:
    move it away by hand to resume from the one before)."""
    states = list_states(run_dir)
    if not states:
        return None
    state = _load(states[-1])
    config_path = Path(run_dir) / "config.json"
    recorded = state.get("run_config")  # absent in states written before states recorded it
    if isinstance(recorded, str) and config_path.is_file():
        try:
            theirs = parse_json(recorded, f"the config recorded in {states[-1]}")
            ours = read_json(config_path)
        except ValueError as err:
            raise ValueError(f"cannot compare {states[-1]} with {config_path}: {err}") from None
        diff = _differences(_comparable(theirs), _comparable(ours))
        if diff:
            raise ValueError(
                f"{states[-1]} was written by a run with another config than {config_path} "
                f"(differences: {diff}); it belongs to another run"
            )
    return _check_name(states[-1], state)


def check_run_config(run_dir: str | Path, config_json: str) -> None:
    """Refuse to resume a run directory that was started with a different config (or whose config is
    gone or unreadable while states remain). A run that saved no state yet (a start that failed) has
    nothing to resume: its config may change."""
    path = Path(run_dir) / "config.json"
    if not list_states(run_dir):
        return
    if not path.is_file():
        raise ValueError(
            f"{run_dir} holds training states but no config.json to check them against; "
            "restore it or start a new run directory"
        )
    try:
        old = read_json(path)
    except ValueError as err:
        raise ValueError(f"cannot read the run config: {err}") from None
    diff = _differences(_comparable(old), _comparable(json.loads(config_json)))
    if diff:
        raise ValueError(f"{run_dir} holds a run with another config; differences: {diff}")


def _differences(old, new) -> dict:
    """``{section: (old, new)}`` where two configs differ; empty if they are equal."""
    if old == new:
        return {}
    old = old if isinstance(old, dict) else {"<config>": old}
    new = new if isinstance(new, dict) else {"<config>": new}
    return {k: (old.get(k), new.get(k)) for k in set(old) | set(new) if old.get(k) != new.get(k)}


def _comparable(config):
    """A run config as compared on resume: keys a later fastdec added take their defaults, and the
    :data:`EXECUTION_KEYS` and :data:`EXTENDABLE_KEYS` are left out. Anything that is not a config is
    compared as it is."""
    from fastdec.config import Config

    try:
        config = Config.from_dict(config).to_dict()
    except (ValueError, TypeError, AttributeError):
        return config
    config["train"] = {k: v for k, v in config["train"].items() if k not in EXECUTION_KEYS + EXTENDABLE_KEYS}
    return config

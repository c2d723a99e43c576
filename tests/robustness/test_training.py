"""Training faults and bad training arguments: non-finite losses, SIGINT, the last K states, and
configs refused by ``train_tokenizer`` before anything is written."""

import dataclasses
import json
import math
import os
import signal

import pytest
import torch

import fastdec.training.loop
import fastdec.training.train as train_module
from fastdec.presets import resolve
from fastdec.training.state import list_states, load_state, save_state


def nan_from_call(n: int):
    """A TokenizerStep whose loss turns NaN from its n-th call on (calls count from 1)."""

    class NaNStep(train_module.TokenizerStep):
        calls = 0

        def __call__(self, *args):
            NaNStep.calls += 1
            loss, terms = super().__call__(*args)
            return (loss * math.nan, terms) if NaNStep.calls >= n else (loss, terms)

    return NaNStep


def events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("max_nonfinite", [1, 3])
def test_nonfinite_losses_are_logged_by_step_and_stop_the_run(tmp_path, monkeypatch, max_nonfinite):
    """Steps 0-1 are good (state at 2 written); from step 2 the loss is NaN: each bad step is skipped and
    logged with its number, the max_nonfinite-th stops the run, the state of step 2 is untouched."""
    config = resolve("tiny", ["train.steps=8", "train.ckpt_every=2", f"train.max_nonfinite={max_nonfinite}"])
    monkeypatch.setattr(train_module, "TokenizerStep", nan_from_call(3))
    written = {}

    def recording_save(run_dir, step, state, keep=2):
        path = save_state(run_dir, step, state, keep=keep)
        written[path.name] = path.read_bytes()
        return path

    monkeypatch.setattr(fastdec.training.loop, "save_state", recording_save)
    last = 2 + max_nonfinite - 1
    with pytest.raises(RuntimeError, match=f"not finite {max_nonfinite} times \\(last at step {last}\\)"):
        train_module.train_tokenizer(config, tmp_path, progress=False)
    bad = [e["step"] for e in events(tmp_path) if e.get("event") == "nonfinite_loss"]
    assert bad == list(range(2, last + 1))
    assert [p.name for p in list_states(tmp_path)] == ["state-00000002.pt"]
    assert (tmp_path / "state-00000002.pt").read_bytes() == written["state-00000002.pt"]
    state = load_state(tmp_path / "state-00000002.pt")
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "export").exists()


def test_the_last_k_states_are_kept(tmp_path):
    config = resolve("tiny", ["train.steps=5", "train.ckpt_every=1", "train.keep_states=3"])
    train_module.train_tokenizer(config, tmp_path, progress=False)
    assert [load_state(p)["step"] for p in list_states(tmp_path)] == [3, 4, 5]
    for keep in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="keep must be an integer >= 1"):
            save_state(tmp_path, 9, {}, keep=keep)
    assert [load_state(p)["step"] for p in list_states(tmp_path)] == [3, 4, 5]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_saves_a_state_and_the_resumed_run_ends_identical(tmp_path, monkeypatch, signum):
    """The signal arrives during step 3: that step finishes, a state of step 4 is saved, the run exits
    (SystemExit naming the signal). Re-running the same call resumes and ends with the export an
    uninterrupted run writes, bit for bit."""
    config = resolve("tiny", ["train.steps=6", "train.ckpt_every=100"])
    train_module.train_tokenizer(config, tmp_path / "whole", progress=False)

    class SignalledStep(train_module.TokenizerStep):
        calls = 0

        def __call__(self, *args):
            SignalledStep.calls += 1
            if SignalledStep.calls == 4:
                os.kill(os.getpid(), signum)
            return super().__call__(*args)

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "TokenizerStep", SignalledStep)
        with pytest.raises(SystemExit, match=f"stopped by signal {int(signum)}"):
            train_module.train_tokenizer(config, tmp_path / "run", progress=False)
    (state,) = [load_state(p) for p in list_states(tmp_path / "run")]
    assert state["step"] == 4 and not (tmp_path / "run" / "export").exists()
    assert events(tmp_path / "run")[-1]["event"] == f"signal {int(signum)}"
    leftovers = [".state-00000005.pt.abcd_123.tmp", ".export.x1y2z3w4.tmp", ".config.json.00000000.tmp"]
    for name in leftovers + [".notes.abcd_123.tmp"]:  # as kills leave them, and one file not ours
        (tmp_path / "run" / name).write_text("stale")
    train_module.train_tokenizer(config, tmp_path / "run", progress=False)
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == [".notes.abcd_123.tmp"]
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "run" / "export" / name).read_bytes() == (
            tmp_path / "whole" / "export" / name
        ).read_bytes()


def test_a_state_copied_from_another_run_is_refused_by_name(tmp_path):
    """The config check of a run directory compares config.json only; each state also records the
    config it was saved under, so a state file moved between runs is named, not loaded into
    mismatched weights."""
    mine = resolve("tiny", ["train.steps=2"])
    other = resolve("tiny", ["train.steps=2", "model.latent_dim=8"])
    train_module.train_tokenizer(mine, tmp_path / "mine", progress=False)
    train_module.train_tokenizer(other, tmp_path / "other", progress=False)
    foreign = (tmp_path / "other" / "state-00000002.pt").read_bytes()
    (tmp_path / "mine" / "state-00000003.pt").write_bytes(foreign)
    with pytest.raises(ValueError, match="state-00000003.pt was written by a run with another config"):
        train_module.train_tokenizer(mine, tmp_path / "mine", progress=False)
    (tmp_path / "mine" / "state-00000003.pt").unlink()  # moved away: the run resumes from its own
    train_module.train_tokenizer(mine, tmp_path / "mine", progress=False)


BAD_TRAINING = {
    "zero steps": ({"steps": 0}, "train.steps must be >= 1, got 0"),
    "negative batch": ({"batch_size": -2}, "train.batch_size must be >= 1, got -2"),
    "NaN learning rate": ({"lr": math.nan}, "train.lr must be finite"),
    "keep no states": ({"keep_states": 0}, "train.keep_states must be >= 1, got 0"),
    "never give up": ({"max_nonfinite": 0}, "train.max_nonfinite must be >= 1, got 0"),
    "never checkpoint": ({"ckpt_every": 0}, "train.ckpt_every must be >= 1, got 0"),
    "steps as text": ({"steps": "10"}, "train.steps must be of type int, got '10'"),
    "fractional batch": ({"batch_size": 2.5}, "train.batch_size must be of type int, got 2.5"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAINING))
def test_train_tokenizer_refuses_bad_counts_before_writing(tmp_path, case):
    """At the Python API, not only in the CLI: a config built in code is checked too."""
    values, message = BAD_TRAINING[case]
    config = resolve("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, **values))
    with pytest.raises(ValueError, match=message):
        train_module.train_tokenizer(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()

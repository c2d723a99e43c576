import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastdec.presets import resolve
from fastdec.training.state import latest_state, list_states, load_state, save_state
from fastdec.training.train import train_tokenizer

SRC = Path(__file__).resolve().parents[2] / "src"


def test_no_unsafe_deserialisation_on_any_load_path():
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if re.search(r"\bimport pickle\b|\bpickle\.load", text):
            offenders.append(f"{path}: pickle")
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=True" not in call:
                offenders.append(f"{path}: {call}")
    assert not offenders


def test_sigterm_saves_a_state_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "fastdec", "train", "--preset", "tiny", "--set", "train.steps=400",
           "--set", "train.ckpt_every=1000", "--run", str(run), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = run / "log.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.is_file() and log.read_text().count("\n") >= 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "stopped by signal" in err
    states = list_states(run)
    assert len(states) == 1
    step = load_state(states[0])["step"]
    assert 3 <= step < 400
    assert not (run / "export").exists()


def test_nonfinite_loss_stops_the_run_with_the_last_state_intact(tmp_path, monkeypatch):
    import fastdec.training.train as train_module

    config = resolve("tiny", ["train.steps=6", "train.ckpt_every=2", "train.max_nonfinite=3"])

    class NaNAfterTwo(train_module.TokenizerStep):
        calls = 0

        def __call__(self, *args):
            NaNAfterTwo.calls += 1
            loss, terms = super().__call__(*args)
            return (loss * float("nan"), terms) if NaNAfterTwo.calls > 2 else (loss, terms)

    monkeypatch.setattr(train_module, "TokenizerStep", NaNAfterTwo)
    with pytest.raises(RuntimeError, match="not finite 3 times"):
        train_module.train_tokenizer(config, tmp_path, progress=False)
    assert [p.name for p in list_states(tmp_path)] == ["state-00000002.pt"]
    assert "nonfinite_loss" in (tmp_path / "log.jsonl").read_text()


def test_states_are_kept_and_a_torn_file_is_named(tmp_path):
    for step in (1, 2, 3):
        save_state(tmp_path, step, {"w": torch.ones(2) * step}, keep=2)
    assert [p.name for p in list_states(tmp_path)] == ["state-00000002.pt", "state-00000003.pt"]
    assert torch.equal(latest_state(tmp_path)["w"], torch.ones(2) * 3)
    torn = tmp_path / "state-00000004.pt"
    torn.write_bytes((tmp_path / "state-00000003.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match="state-00000004.pt"):
        latest_state(tmp_path)


def test_run_directory_with_foreign_config_is_refused(tmp_path):
    train_tokenizer(resolve("tiny", ["train.steps=1"]), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another config"):
        train_tokenizer(resolve("tiny", ["train.steps=1", "train.lr=1e-3"]), tmp_path, progress=False)


def test_a_finished_run_trains_on_to_more_steps(tmp_path):
    train_tokenizer(resolve("tiny", ["train.steps=2", "train.ckpt_every=1"]), tmp_path, progress=False)
    train_tokenizer(resolve("tiny", ["train.steps=4", "train.ckpt_every=1"]), tmp_path, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4] and latest_state(tmp_path)["step"] == 4
    with pytest.raises(ValueError, match="step"):  # fewer steps than the run has done
        train_tokenizer(resolve("tiny", ["train.steps=3", "train.ckpt_every=1"]), tmp_path, progress=False)

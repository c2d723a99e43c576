"""Multi-process training: 2 CPU processes under torchrun (gloo) compute what 1 process computes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastdec.cli.main import main
from fastdec.diffusion.pyramid import Pyramid
from fastdec.losses.draws import SampleDraws
from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.presets import resolve
from fastdec.training.loop import StepSampler, batch_indices
from fastdec.training.state import check_run_config, list_states, load_state, save_state
from fastdec.training.steps import TokenizerStep
from fastdec.training.train import train_tokenizer
from tests.conftest import images, tiny_tokenizer

WORKER = Path(__file__).with_name("torchrun_worker.py")
OVERRIDES = ["model.num_stages=2", "train.steps=4", "train.batch_size=4", "train.ckpt_every=2"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(args):
    """torchrun in its own process group: on a timeout the whole group (its workers too) is killed, so a
    stuck rank never outlives the test."""
    proc = subprocess.Popen(
        [*TORCHRUN, *args], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun {args[:3]} timed out after 300 s; stderr tail:\n{stderr[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _worker(run_dir, out_dir, kill_at=0):
    out_dir.mkdir(parents=True, exist_ok=True)
    return _torchrun([str(WORKER), str(run_dir), str(out_dir), str(kill_at), *OVERRIDES])


def _final(run_dir) -> dict:
    state = load_state(list_states(run_dir)[-1])
    return {"model": state["model"], "ema": state["ema"]["model"], "step": state["step"]}


def _assert_close(a: dict, b: dict, atol: float) -> None:
    for part in ("model", "ema"):
        for name, value in a[part].items():
            err = (value.double() - b[part][name].double()).abs().max().item()
            assert err <= atol, f"{part}.{name} differs by {err}"


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """An uninterrupted 2-process run of the tiny tokenizer (4 steps, global batch 4)."""
    root = tmp_path_factory.mktemp("ddp")
    done = _worker(root / "run", root / "weights")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_two_processes_match_one_process(two_process_run, tmp_path):
    rank0 = torch.load(two_process_run / "weights" / "rank0.pt", weights_only=True)
    rank1 = torch.load(two_process_run / "weights" / "rank1.pt", weights_only=True)
    for part in ("model", "ema"):
        for name, value in rank0[part].items():
            assert torch.equal(value, rank1[part][name]), f"{part}.{name} differs between the ranks"
    two = _final(two_process_run / "run")
    assert two["step"] == 4 and (two_process_run / "run" / "export" / "model.safetensors").is_file()
    train_tokenizer(resolve("tiny", OVERRIDES), tmp_path / "one", progress=False)
    _assert_close(two, _final(tmp_path / "one"), atol=1e-6)
    log = [json.loads(line) for line in (two_process_run / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # rank 0 alone writes the log


def test_killed_two_process_run_resumes_to_the_same_weights(two_process_run, tmp_path):
    killed = _worker(tmp_path / "run", tmp_path / "weights", kill_at=3)  # rank 1 dies in step 3
    assert killed.returncode != 0
    assert [p.name for p in list_states(tmp_path / "run")] == ["state-00000002.pt"]
    shutil.copytree(tmp_path / "run", tmp_path / "run1")
    resumed = _worker(tmp_path / "run", tmp_path / "weights")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    uninterrupted = _final(two_process_run / "run")
    _assert_close(_final(tmp_path / "run"), uninterrupted, atol=0.0)
    # the 2-process state resumed by a single process
    train_tokenizer(resolve("tiny", OVERRIDES), tmp_path / "run1", progress=False)
    _assert_close(_final(tmp_path / "run1"), uninterrupted, atol=1e-6)


def test_sigterm_stops_every_rank_with_a_saved_state(tmp_path):
    run = tmp_path / "run"
    cmd = [*TORCHRUN, "-m", "fastdec", "train", "--preset", "tiny", "--set", "train.steps=2000",
           "--set", "train.ckpt_every=5000", "--run-dir", str(run), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = run / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and log.read_text().count("\n") >= 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and err.count("stopped by signal") == 2  # both ranks
    (state,) = list_states(run)
    assert 3 <= load_state(state)["step"] < 2000
    assert not (run / "export").exists()


def test_distillation_two_processes_match_one_process(tmp_path):
    teacher = tmp_path / "teacher"
    tiny_tokenizer("model.num_stages=2").save_pretrained(teacher)
    args = ["distill", "--teacher", str(teacher), "--no-progress", "--set", "train.steps=2",
            "--set", "train.batch_size=4", "--set", "distill.target=stage_path"]  # fmt: skip
    done = _torchrun(["-m", "fastdec", *args, "--run-dir", str(tmp_path / "two")])
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*args, "--run", str(tmp_path / "one")]) == 0
    _assert_close(_final(tmp_path / "two"), _final(tmp_path / "one"), atol=1e-6)


def test_gradient_accumulation_matches_one_batch(tmp_path):
    train_tokenizer(resolve("tiny", OVERRIDES), tmp_path / "whole", progress=False)
    train_tokenizer(resolve("tiny", [*OVERRIDES, "train.grad_accum=2"]), tmp_path / "accum", progress=False)
    _assert_close(_final(tmp_path / "accum"), _final(tmp_path / "whole"), atol=1e-6)
    with pytest.raises(ValueError, match="multiple of"):
        train_tokenizer(resolve("tiny", [*OVERRIDES, "train.grad_accum=3"]), tmp_path / "bad", progress=False)


def test_a_split_batch_draws_and_loses_what_the_whole_batch_does():
    model = tiny_tokenizer("model.num_stages=2").train()
    step = TokenizerStep(FlowMatchingLoss(model.pyramid), cfg_dropout=0.5)
    x = images(6)
    whole, _ = step(model, x, SampleDraws.for_step(3, 7, range(6)))
    parts = [step(model, x[i : i + 2], SampleDraws.for_step(3, 7, range(i, i + 2)))[0] for i in (0, 2, 4)]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=1e-6)
    other_step, _ = step(model, x, SampleDraws.for_step(3, 8, range(6)))
    assert not torch.allclose(other_step, whole)


def test_stages_follow_the_global_index():
    seen = []

    class Recorder:  # a decoder without a prior that diffuses the image (the loss's view)
        def prior_image(self, z):
            return None

        def to_target(self, images, prior):
            return images

        def predict(self, x_t, t_loc, z, stage, prior_image=None):
            seen.append((stage.index, x_t.shape[0]))
            return torch.zeros_like(x_t), torch.zeros_like(x_t)

    loss = FlowMatchingLoss(Pyramid(16, 3))
    loss(Recorder(), images(2), torch.zeros(2, 4, 4), SampleDraws.for_step(0, 0, [4, 5]))
    assert seen == [(1, 1), (2, 1)]  # global samples 4 and 5 of any batch: stages 4 % 3 and 5 % 3


def test_step_sampler_splits_the_global_batch():
    kw = dict(start=1, steps=3, batch_size=8, n=20, seed=5, world_size=2, grad_accum=2)
    per_rank = [list(StepSampler(rank=r, **kw)) for r in range(2)]
    assert len(per_rank[0]) == 4 and all(len(b) == 2 for b in per_rank[0])
    for k, step in enumerate((1, 2)):
        rank0, rank1 = per_rank[0][2 * k : 2 * k + 2], per_rank[1][2 * k : 2 * k + 2]
        assert sum(rank0 + rank1, []) == batch_indices(step, 8, 20, 5)


def test_execution_settings_may_change_on_resume(tmp_path):
    config = resolve("tiny")
    (tmp_path / "config.json").write_text(config.to_json())
    save_state(tmp_path, 2, {})  # a run that saved a state: its config is checked (not a failed start)
    check_run_config(tmp_path, resolve("tiny", ["train.grad_accum=2", "train.workers=3"]).to_json())
    legacy = json.loads(config.to_json())
    del legacy["train"]["grad_accum"]  # a run from before the key existed
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    check_run_config(tmp_path, config.to_json())
    with pytest.raises(ValueError, match="another config"):
        check_run_config(tmp_path, resolve("tiny", ["train.lr=1e-3"]).to_json())


def test_dataloader_workers_change_nothing(tmp_path):
    train_tokenizer(resolve("tiny", OVERRIDES), tmp_path / "main", progress=False)
    train_tokenizer(resolve("tiny", [*OVERRIDES, "train.workers=2"]), tmp_path / "workers", progress=False)
    _assert_close(_final(tmp_path / "workers"), _final(tmp_path / "main"), atol=0.0)

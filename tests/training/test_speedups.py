"""The opt-in speed-ups of the training loop (torch.compile, bf16 autocast) against the plain path."""

import json

import torch

from fastdec.presets import resolve
from fastdec.training.state import list_states, load_state
from fastdec.training.train import train_tokenizer

OVERRIDES = ["model.num_stages=2", "train.steps=2", "train.batch_size=4"]


def _model(run_dir):
    return load_state(list_states(run_dir)[-1])["model"]


def test_compile_flag_compiles_the_networks_after_the_ema_copy(tmp_path, monkeypatch):
    compiled = []
    real = torch.nn.Module.compile

    def compile_eagerly(module, *args, **kwargs):
        # Inductor needs minutes on this CPU (measured: 3.5 min for 2 tiny steps, weights within
        # 1e-7 of the plain run); dynamo's eager backend checks the same wiring in seconds.
        compiled.append(type(module).__name__)
        real(module, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eagerly)
    config = resolve("tiny", [*OVERRIDES, "train.compile=true"])
    train_tokenizer(config, tmp_path / "compiled", progress=False)
    train_tokenizer(resolve("tiny", OVERRIDES), tmp_path / "plain", progress=False)
    assert compiled == ["Encoder", "DecoderNet"]
    plain, fast = _model(tmp_path / "plain"), _model(tmp_path / "compiled")
    assert list(plain) == list(fast)  # no "_orig_mod." prefixes: states and exports load either way
    for name, value in plain.items():
        torch.testing.assert_close(fast[name], value, rtol=0, atol=1e-6)


def test_bf16_training_stays_close_to_fp32(tmp_path):
    losses = {}
    for name, flag in (("fp32", "false"), ("bf16", "true")):
        train_tokenizer(resolve("tiny", [*OVERRIDES, f"train.bf16={flag}"]), tmp_path / name, progress=False)
        log = (tmp_path / name / "log.jsonl").read_text().splitlines()
        losses[name] = [json.loads(line)["loss"] for line in log]
    # stated tolerance: the logged loss within 5% (bf16 keeps 8 mantissa bits)
    for a, b in zip(losses["bf16"], losses["fp32"], strict=True):
        assert abs(a - b) <= 0.05 * abs(b)

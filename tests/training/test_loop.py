import json

import pytest
import torch

from fastdec.presets import resolve
from fastdec.training.loop import batch_indices, lr_at
from fastdec.training.state import list_states
from fastdec.training.train import train_tokenizer


def _weights(run_dir):
    states = list_states(run_dir)
    return torch.load(states[-1], weights_only=True)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch):
    config = resolve("tiny", ["train.steps=4", "train.ckpt_every=2", "model.num_stages=2"])
    train_tokenizer(config, tmp_path / "full", progress=False)

    import fastdec.training.train as train_module

    real_step = train_module.TokenizerStep

    class Crash(Exception):
        pass

    class CrashingStep(real_step):
        calls = 0

        def __call__(self, *args):
            CrashingStep.calls += 1
            if CrashingStep.calls == 3:
                raise Crash
            return super().__call__(*args)

    monkeypatch.setattr(train_module, "TokenizerStep", CrashingStep)
    with pytest.raises(Crash):
        train_tokenizer(config, tmp_path / "resumed", progress=False)
    assert [p.name for p in list_states(tmp_path / "resumed")] == ["state-00000002.pt"]
    monkeypatch.setattr(train_module, "TokenizerStep", real_step)
    train_tokenizer(config, tmp_path / "resumed", progress=False)

    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert full["ema"]["updates"] == resumed["ema"]["updates"] == 4
    for name, (a, b) in {
        **{f"model.{k}": (v, resumed["model"][k]) for k, v in full["model"].items()},
        **{f"ema.{k}": (v, resumed["ema"]["model"][k]) for k, v in full["ema"]["model"].items()},
    }.items():
        assert torch.equal(a, b), f"{name} differs"


def test_run_writes_log_export_and_refuses_other_config(tmp_path):
    config = resolve("tiny")
    export = train_tokenizer(config, tmp_path, progress=False)
    assert (export / "model.safetensors").is_file() and (export / "config.json").is_file()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "img_per_s", "grad_norm"} <= set(records[0])
    with pytest.raises(ValueError, match="another config"):
        train_tokenizer(resolve("tiny", ["train.lr=1e-3"]), tmp_path, progress=False)


def test_schedule_and_batches():
    kw = dict(lr=1.0, steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(100, **kw) == pytest.approx(0.1)
    seen = [i for step in range(5) for i in batch_indices(step, 4, 20, seed=0)]
    assert sorted(seen) == list(range(20))
    assert batch_indices(3, 4, 20, 0) == batch_indices(3, 4, 20, 0)


def test_max_minutes_stops_at_a_step_saves_exports_and_the_run_trains_on(tmp_path):
    config = resolve("tiny", ["train.steps=4", "train.ckpt_every=100", "train.max_minutes=1e-9"])
    export = train_tokenizer(config, tmp_path, progress=False)  # the cap is crossed by the first step
    assert [p.name for p in list_states(tmp_path)] == ["state-00000001.pt"]
    assert json.loads((export / "config.json").read_text())["meta"]["steps"] == 1
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "max_minutes 1e-09" and "loss" in events[-2]
    uncapped = resolve("tiny", ["train.steps=4", "train.ckpt_every=100"])  # max_minutes may change
    train_tokenizer(uncapped, tmp_path, progress=False)
    assert json.loads((export / "config.json").read_text())["meta"]["steps"] == 4
    assert _weights(tmp_path)["ema"]["updates"] == 4
    with pytest.raises(ValueError, match="max_minutes must be >= 0"):
        train_tokenizer(resolve("tiny", ["train.max_minutes=-1"]), tmp_path / "bad", progress=False)


def test_stop_at_ends_early_on_the_full_schedule_and_the_run_trains_on(tmp_path):
    base = ["train.steps=4", "train.ckpt_every=100", "train.log_every=1", "train.warmup_steps=1"]
    export = train_tokenizer(resolve("tiny", [*base, "train.stop_at=2"]), tmp_path / "run", progress=False)
    assert [p.name for p in list_states(tmp_path / "run")] == ["state-00000002.pt"]
    assert json.loads((export / "config.json").read_text())["meta"]["steps"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    t = resolve("tiny", base).train
    assert records[-1]["lr"] == pytest.approx(
        lr_at(1, lr=t.lr, steps=4, warmup_steps=1, min_lr_ratio=t.min_lr_ratio)
    )
    train_tokenizer(resolve("tiny", base), tmp_path / "run", progress=False)  # stop_at may change
    train_tokenizer(resolve("tiny", base), tmp_path / "full", progress=False)
    resumed, full = _weights(tmp_path / "run"), _weights(tmp_path / "full")
    assert resumed["ema"]["updates"] == 4
    assert all(torch.equal(v, resumed["model"][k]) for k, v in full["model"].items())


def test_init_from_starts_from_the_exports_weights_and_refuses_another_model(tmp_path):
    from fastdec.tokenizer import Tokenizer
    from fastdec.training.train import initial_tokenizer

    export = train_tokenizer(resolve("tiny", ["train.steps=2"]), tmp_path / "base", progress=False)
    trained = Tokenizer.from_pretrained(export).state_dict()
    tuned, _ = initial_tokenizer(resolve("tiny", [f"train.init_from={export}", "train.seed=7"]))
    fresh, _ = initial_tokenizer(resolve("tiny", ["train.seed=7"]))
    assert all(torch.equal(v, trained[k]) for k, v in tuned.state_dict().items())
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match="is another model.*num_stages"):
        initial_tokenizer(resolve("tiny", [f"train.init_from={export}", "model.num_stages=2"]))


def test_a_teachers_gan_term_trains_the_heads_and_the_decoder_and_not_a_onepass_decoder(tmp_path):
    from fastdec.losses.flow_matching import FlowMatchingLoss
    from fastdec.models.discriminator import Discriminator
    from fastdec.training.steps import TokenizerStep
    from tests.conftest import images, tiny_tokenizer

    model = tiny_tokenizer("model.num_stages=2").train()
    disc = Discriminator()
    step = TokenizerStep(FlowMatchingLoss(model.pyramid, adversarial_weight=0.5), 0.0, disc, disc_lr=1e-3)
    heads_before = [p.clone() for p in disc.heads.parameters()]
    loss, terms = step(model, images(4), torch.Generator().manual_seed(0))
    loss.mean().backward()
    assert {"mse", "gan", "d_loss", "adaptive_weight"} <= set(terms)
    assert any(not torch.equal(a, b) for a, b in zip(heads_before, disc.heads.parameters(), strict=True))
    assert model.decoder.net.last_layer.weight.grad.abs().sum() > 0
    assert set(step.state_dict()) == {"heads", "opt"}
    with pytest.raises(ValueError, match="needed exactly when"):
        TokenizerStep(FlowMatchingLoss(model.pyramid), 0.0, disc)
    with pytest.raises(ValueError, match="not model.decoder='onepass'"):
        train_tokenizer(
            resolve("tiny", ["model.decoder=onepass", "model.cfg_dropout=0", "train.adversarial_weight=0.1"]),
            tmp_path,
        )

import pytest
import torch

from fastdec.diffusion.timesteps import euler_schedule
from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.presets import resolve
from fastdec.sampling.sampler import stage_noises
from fastdec.tokenizer import Tokenizer
from fastdec.training.steps import TokenizerStep
from tests.conftest import images, tiny_tokenizer

VARIANTS = [
    (),
    ("model.num_stages=2", "model.parameterization=x"),
    (
        "model.latent_kind=grid",
        "model.enc_patch=8",
        "model.spatial_cond=true",
        "model.enc_stem=conv",
        "model.dec_stem=conv",
    ),
]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_gradient_reaches_every_parameter(overrides):
    model = tiny_tokenizer(*overrides).train()
    step = TokenizerStep(FlowMatchingLoss(model.pyramid), cfg_dropout=0.5)
    loss, _ = step(model, images(8), torch.Generator().manual_seed(1))
    loss.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("overrides", VARIANTS)
def test_decode_shapes_and_per_sample_seeds(overrides):
    model = tiny_tokenizer(*overrides)
    z = model.encode(images(3))
    assert z.shape == (3, 4, 4)
    batch = model.decode(z, steps=3, guidance=1.5, seeds=[5, 6, 7])
    alone = model.decode(z[1:2], steps=3, guidance=1.5, seeds=[6])
    assert batch.shape == (3, 3, 16, 16)
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=1e-5)


def test_save_load_gives_identical_decode(tmp_path):
    model = tiny_tokenizer("model.num_stages=2")
    model.save_pretrained(tmp_path / "m", meta={"weights": "test"})
    loaded = Tokenizer.from_pretrained(tmp_path / "m")
    assert loaded.meta == {"weights": "test"}
    z = model.encode(images(2))
    assert torch.equal(loaded.encode(images(2)), z)
    assert torch.equal(loaded.decode(z, steps=2), model.decode(z, steps=2))


def test_exports_keep_the_model_and_sample_sections_only(tmp_path):
    """Training settings stay in the run directory; an export of an older version that still holds them
    loads as before (the bundled models are such exports)."""
    import dataclasses
    import json

    from fastdec.hub import pack

    overrides = ("sample.steps=3/2", "train.lr=0.01", "train.data=my-folder", "distill.teacher_steps=5")
    model = tiny_tokenizer("model.num_stages=2", *overrides)
    model.save_pretrained(tmp_path / "m")
    stored = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert stored == {"model": dataclasses.asdict(model.config.model), "sample": {"guidance": 1.0,
                      "steps": [3, 2], "temperature": model.config.sample.temperature}}  # fmt: skip
    loaded = Tokenizer.from_pretrained(tmp_path / "m")
    assert (loaded.config.model, loaded.config.sample) == (model.config.model, model.config.sample)
    assert loaded.config.train.lr != 0.01 and loaded.config.distill.teacher_steps == 8  # defaults
    old = tmp_path / "old"  # the same export as an older version wrote it: every section
    old.mkdir()
    for name in ("model.safetensors", "config.json"):
        (old / name).write_bytes((tmp_path / "m" / name).read_bytes())
    payload = json.loads((old / "config.json").read_text())
    payload["config"] = model.config.to_dict()
    (old / "config.json").write_text(json.dumps(payload))
    legacy = Tokenizer.from_pretrained(old)
    assert legacy.config == model.config and legacy.config.train.lr == 0.01
    z = model.encode(images(2))
    assert torch.equal(legacy.decode(z), model.decode(z))
    pack(old, tmp_path / "packed", half=False)  # packing drops the training sections, keeps the data
    packed = json.loads((tmp_path / "packed" / "config.json").read_text())
    assert set(packed["config"]) == {"model", "sample"} and packed["meta"]["data"] == "my-folder"


def test_nfe_counts_guidance_and_stages():
    model = tiny_tokenizer("model.num_stages=2")
    assert model.nfe(steps=3, guidance=1.0) == 6
    assert model.nfe(steps=(3, 1), guidance=2.0) == 8
    assert model.nfe(total_steps=5, guidance=1.0) == 5


def test_bad_inputs_are_named():
    model = tiny_tokenizer()
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        model.encode(torch.zeros(1, 3, 15, 16))
    with pytest.raises(ValueError, match="float"):
        model.encode(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        model.decode(torch.zeros(1, 5, 4))
    with pytest.raises(ValueError, match="NaN"):
        model.decode(torch.full((1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="at least one step"):
        model.decode(torch.zeros(1, 4, 4), steps=0)


@pytest.mark.parametrize(
    "kind", [("model.latent_kind=tokens",), ("model.latent_kind=grid", "model.enc_patch=8")]
)
def test_latent_skip_starts_as_the_pca_codec(kind):
    from fastdec.models.linear_skip import regions

    torch.manual_seed(0)
    model = Tokenizer(resolve("tiny", ["model.latent_skip=true", "model.parameterization=x", *kind]))
    data = images(64) * 0.3 + images(64, seed=1).mean(dim=(2, 3), keepdim=True)
    explained = model.init_linear_skip(data)
    assert 0 < explained <= 1
    x = data[:4]
    z = model.encode(x)
    # whitened coefficients: unit variance over the fitting set
    coeffs = model.encode(data).reshape(64 * (1 if kind[0].endswith("tokens") else 4), -1)
    torch.testing.assert_close(coeffs.var(0, unbiased=False), torch.ones(coeffs.shape[1]), atol=1e-3, rtol=0)
    # one step of an untrained x-predicting decoder (t = 1: pure noise in) is the linear reconstruction
    out = model.decode(z, steps=1)
    region = model.decoder.prior.region
    r = regions(x, region) - model.decoder.prior.mean
    basis = model.decoder.prior.weight / model.decoder.prior.weight.norm(dim=0)
    projected = (r @ basis) @ basis.T + model.decoder.prior.mean  # orthogonal projection onto the PCs
    from fastdec.models.linear_skip import from_regions

    torch.testing.assert_close(out, from_regions(projected, region, 16, 16), atol=1e-4, rtol=0)


def test_onepass_decoder_is_one_deterministic_call(tmp_path):
    from fastdec.training.train import train_tokenizer

    overrides = ["model.decoder=onepass", "model.cfg_dropout=0", "model.parameterization=x", "train.steps=2"]
    export = train_tokenizer(resolve("tiny", overrides), tmp_path, progress=False)
    model = Tokenizer.from_pretrained(export)
    assert model.meta["data"] == "photos"  # the training data, for `fastdec distill` (no train section)
    z = model.encode(images(2))
    assert model.nfe() == 1 and model.settings(temperature=1.0).steps == (1,)
    out = model.decode(z, seeds=[1, 2])
    assert torch.equal(out, model.decode(z, seeds=[3, 4], steps=1, guidance=1.0, temperature=1.0))
    # one sampler step from zero at t = 1 is the network's clean estimate there (docs/method.md §10)
    with torch.no_grad():
        clean = model.decoder.predict(torch.zeros(2, 3, 16, 16), torch.ones(2), z, model.stages[0])[1]
    assert torch.equal(out, clean)
    for setting in ({"steps": 4}, {"guidance": 2.0}, {"temperature": 0.5}, {"total_steps": 2}):
        with pytest.raises(ValueError, match="no steps"):
            model.decode(z, **setting)
    with pytest.raises(ValueError, match="one stage"):
        Tokenizer(resolve("tiny", ["model.decoder=onepass", "model.num_stages=2"]))


def test_prior_cond_feeds_the_pca_decode_to_the_decoder():
    overrides = (
        "model.latent_skip=true",
        "model.parameterization=x",
        "model.prior_cond=true",
        "model.num_stages=2",
    )
    with pytest.raises(ValueError, match="needs latent_skip=True"):
        Tokenizer(resolve("tiny", ["model.prior_cond=true"]))
    model = tiny_tokenizer(*overrides).train()
    model.init_linear_skip(images(64, seed=1))
    step = TokenizerStep(FlowMatchingLoss(model.pyramid), cfg_dropout=0.5)
    loss, _ = step(model, images(8), torch.Generator().manual_seed(1))
    loss.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing  # includes the prior's patch embedding, so the prior reaches the network
    model.eval()
    z = model.encode(images(3))
    with torch.no_grad():
        batch = model.decode(z, steps=2, seeds=[5, 6, 7])
        alone = model.decode(z[2:], steps=2, seeds=[7])
        assert batch.shape == (3, 3, 16, 16)
        torch.testing.assert_close(batch[2:], alone, rtol=0, atol=1e-5)
        # the decoder's output depends on the prior image beyond the additive skip
        stage = model.stages[-1]
        x_t, t = images(3), torch.full((3,), 0.5)
        before = model.decoder.predict(x_t, t, z, stage)[1] - model.decoder.prior(z, 16, 16)
        model.decoder.net.prior_in.proj.weight.mul_(2)
        after = model.decoder.predict(x_t, t, z, stage)[1] - model.decoder.prior(z, 16, 16)
        assert not torch.allclose(before, after)


def test_temperature_scales_every_noise_draw():
    model = tiny_tokenizer("model.num_stages=2")
    z = model.encode(images(2))
    assert torch.equal(model.decode(z, steps=2, temperature=1.0), model.decode(z, steps=2))
    frozen = model.decode(z, steps=2, temperature=0.0, seeds=[1, 2])
    assert torch.equal(frozen, model.decode(z, steps=2, temperature=0.0, seeds=[3, 4]))

    # tau scales the seeded draws: the same decode as the sampler fed tau * noise by hand.
    noises = [0.5 * n for n in stage_noises([0, 1], model.stages)]
    by_hand = model.decode_noises(z, noises, euler_schedule((2, 2)))
    assert torch.equal(model.decode(z, steps=2, temperature=0.5), by_hand)
    assert model.nfe(steps=2, temperature=0.5) == model.nfe(steps=2)
    with pytest.raises(ValueError, match="temperature"):
        model.decode(z, steps=2, temperature=-0.1)
    with pytest.raises(ValueError, match="sample.temperature"):
        resolve("tiny", ["sample.temperature=-1"])

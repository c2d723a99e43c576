"""The one-pass prior (model.prior="onepass") and the U-Net decoder backbone."""

import pytest
import torch

from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.presets import resolve
from fastdec.tokenizer import Tokenizer
from fastdec.training.steps import TokenizerStep
from fastdec.training.train import load_onepass_prior
from tests.conftest import images, tiny_tokenizer

GRID = ("model.latent_kind=grid", "model.num_latents=16", "model.spatial_cond=true")
SKIP = ("model.latent_skip=true", "model.parameterization=x", "model.cfg_dropout=0", *GRID)


def _onepass(tmp_path, *extra):
    model = tiny_tokenizer(*SKIP, "model.decoder=onepass", *extra)
    model.init_linear_skip(images(64))
    model.save_pretrained(tmp_path / "onepass")
    return model


def _teacher(tmp_path, *extra, stages=2):
    onepass = _onepass(tmp_path, *extra)
    teacher = tiny_tokenizer(*SKIP, "model.prior=onepass", f"model.num_stages={stages}", *extra, seed=1)
    load_onepass_prior(teacher, str(tmp_path / "onepass"))
    return onepass, teacher


@pytest.mark.parametrize(
    "backbone", [(), ("model.prior_cond=true",), ("model.dec_backbone=unet", "model.dec_width=16")]
)
def test_prior_is_the_onepass_decode(tmp_path, backbone):
    onepass, teacher = _teacher(tmp_path, *backbone)
    x = images(3)
    z = teacher.encode(x)
    assert torch.equal(z, onepass.encode(x))
    expected = onepass.decode(z)
    assert torch.allclose(teacher.decoder.prior_image(z), expected, atol=1e-6)
    # the diffusion net starts at zero output: a deterministic decode is the prior itself
    last = teacher.decoder.net.out if hasattr(teacher.decoder.net, "out") else teacher.decoder.net.final
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    out = teacher.decode(z, steps=1, temperature=0)
    assert torch.allclose(out, expected, atol=1e-5)


def test_prior_computed_once_per_decode_changes_nothing(tmp_path):
    _, teacher = _teacher(tmp_path)
    z = teacher.encode(images(2))
    calls = []
    handle = teacher.decoder.prior.register_forward_hook(lambda *a: calls.append(1))
    out = teacher.decode(z, steps=(2, 3), seeds=[5, 6])
    assert len(calls) == 1
    teacher.decoder.prior_image = lambda z: None  # every network call recomputes the prior
    again = teacher.decode(z, steps=(2, 3), seeds=[5, 6])
    handle.remove()
    assert len(calls) == 1 + 5
    assert torch.equal(out, again)


def test_training_moves_only_the_diffusion_net(tmp_path):
    _, teacher = _teacher(tmp_path)
    teacher.train()
    step = TokenizerStep(FlowMatchingLoss(teacher.pyramid, loss_space="x"), cfg_dropout=0.0)
    loss, _ = step(teacher, images(8), torch.Generator().manual_seed(0))
    loss.mean().backward()
    for name, p in teacher.named_parameters():
        frozen = name.startswith(("encoder.", "decoder.prior."))
        assert p.requires_grad != frozen, name
        if frozen:
            assert p.grad is None, name
    trained = [n for n, p in teacher.named_parameters() if n.startswith("decoder.net.")]
    assert trained and all(teacher.get_parameter(n).grad is not None for n in trained)


def test_prior_from_must_match(tmp_path):
    _onepass(tmp_path)
    other = tiny_tokenizer(*SKIP, "model.prior=onepass", "model.dec_width=48")
    with pytest.raises(ValueError, match="another shape"):
        load_onepass_prior(other, str(tmp_path / "onepass"))
    flow = tiny_tokenizer(*SKIP)
    flow.save_pretrained(tmp_path / "flow")
    teacher = tiny_tokenizer(*SKIP, "model.prior=onepass")
    with pytest.raises(ValueError, match="not a one-pass export"):
        load_onepass_prior(teacher, str(tmp_path / "flow"))
    with pytest.raises(ValueError, match="needs latent_skip"):
        Tokenizer(resolve("tiny", ["model.prior=onepass"]))


def test_a_narrower_prior_is_its_own_onepass_export(tmp_path):
    unet = ("model.dec_backbone=unet", "model.dec_depth=2")
    onepass = _onepass(tmp_path, *unet, "model.dec_width=16", "model.dec_depth=1")
    shape = ("model.prior=onepass", "model.dec_width=32", "model.num_stages=2")
    teacher = tiny_tokenizer(*SKIP, *unet, *shape, "model.prior_width=16", "model.prior_depth=1", seed=1)
    load_onepass_prior(teacher, str(tmp_path / "onepass"))
    z = teacher.encode(images(3))
    assert torch.allclose(teacher.decoder.prior_image(z), onepass.decode(z), atol=1e-6)
    prior_params = sum(p.numel() for p in teacher.decoder.prior.net.parameters())
    assert prior_params < sum(p.numel() for p in teacher.decoder.net.parameters()) / 3
    same_width = tiny_tokenizer(*SKIP, *unet, *shape)
    with pytest.raises(ValueError, match="another shape.*dec_width"):
        load_onepass_prior(same_width, str(tmp_path / "onepass"))
    with pytest.raises(ValueError, match="prior_width=16.*need prior='onepass'"):
        Tokenizer(resolve("tiny", [*SKIP, "model.prior_width=16"]))


@pytest.mark.parametrize("latents", [GRID, ("model.latent_kind=tokens",)])
@pytest.mark.parametrize("side", [4, 8, 16])
def test_unet_keeps_shape_at_every_stage(side, latents):
    model = tiny_tokenizer(*latents, "model.dec_backbone=unet", "model.dec_width=16", "model.num_stages=3")
    z = model.encode(images(2))
    x = torch.randn(2, 3, side, side)
    tau = torch.rand(2)
    out = model.decoder.net(x, tau, z)
    assert out.shape == (2, 3, side, side)
    z2 = z.clone()
    z2[1] += 1.0  # image 1 reads its latent; image 0 does not see image 1's
    out2 = model.decoder.net(x, tau, z2)
    assert torch.allclose(out2[0], out[0], atol=1e-6) and not torch.allclose(out2[1], out[1])


def test_nfe_counts_the_prior_call(tmp_path):
    _, teacher = _teacher(tmp_path, stages=2)
    assert teacher.nfe(steps=(2, 3)) == 6
    assert teacher.nfe(steps=1) == 3


def test_student_keeps_the_prior_frozen(tmp_path):
    from fastdec.training.distill import build_student

    _, teacher = _teacher(tmp_path)
    student = build_student(teacher, teacher.config)
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("decoder.net.") for n in trainable)
    assert student.decoder.net.last_layer is student.decoder.net.final


def test_pack_keeps_the_prior_by_reference(tmp_path):
    import json

    from fastdec.hub import pack

    _, teacher = _teacher(tmp_path)
    teacher.save_pretrained(tmp_path / "teacher")
    shipped = tmp_path / "shipped"
    pack(tmp_path / "onepass", shipped / "onepass")
    full = pack(tmp_path / "teacher", shipped / "full")
    slim = pack(tmp_path / "teacher", shipped / "slim", prior_export=shipped / "onepass")
    assert slim["bytes"] < full["bytes"] and slim["check"] == full["check"]
    reference = json.loads((shipped / "slim" / "config.json").read_text())["prior_export"]
    assert reference["name"] == "onepass"
    a, b = Tokenizer.from_pretrained(shipped / "full"), Tokenizer.from_pretrained(shipped / "slim")
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    z = a.encode(images(2))
    assert torch.equal(a.decode(z), b.decode(z))
    with pytest.raises(ValueError, match="beside the output"):
        pack(tmp_path / "teacher", tmp_path / "elsewhere" / "x", prior_export=shipped / "onepass")
    with pytest.raises(ValueError, match="does not hold the weights"):
        pack(tmp_path / "teacher", shipped / "wrong", prior_export=shipped / "full")
    pack(tmp_path / "onepass", shipped / "onepass", meta={"training": "again"})  # same weights: still fine
    assert torch.equal(Tokenizer.from_pretrained(shipped / "slim").decode(z), a.decode(z))
    retrained = Tokenizer.from_pretrained(tmp_path / "onepass")
    with torch.no_grad():
        next(retrained.parameters()).add_(0.1)
    retrained.save_pretrained(tmp_path / "retrained")
    pack(tmp_path / "retrained", shipped / "onepass")
    with pytest.raises(ValueError, match="changed since packing"):
        Tokenizer.from_pretrained(shipped / "slim")
    config = json.loads((shipped / "slim" / "config.json").read_text())
    config["prior_export"]["name"] = "../onepass"
    (shipped / "slim" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="sibling"):
        Tokenizer.from_pretrained(shipped / "slim")

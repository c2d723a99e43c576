import pytest
import torch

from fastdec.diffusion import path
from fastdec.diffusion.pyramid import Pyramid, downsample
from fastdec.losses.flow_matching import FlowMatchingLoss


class ImageSpace:
    """A decoder with no prior, diffusing the image itself (the loss's view of VelocityModel)."""

    def prior_image(self, z):
        return None

    def to_target(self, images, prior):
        return images

    def to_image(self, sample, prior):
        return sample


class OracleDecoder(ImageSpace):
    """Knows the clean image (passed as z) and returns the exact stage velocity."""

    def __init__(self, num_stages):
        self.num_stages = num_stages

    def predict(self, x_t, t_loc, z, stage, prior_image=None):
        x_end = downsample(z, 2 ** (self.num_stages - 1 - stage.index))
        v = path.velocity_from_clean(
            x_t, x_end, t_loc, stage.start, stage.end, stage.projection, min_noise=0.0
        )
        return v, x_end


@pytest.mark.parametrize("num_stages", [1, 3])
@pytest.mark.parametrize("bias", [None, -3.0])
def test_loss_is_zero_for_true_velocity(num_stages, bias):
    x = torch.rand(12, 3, 16, 16, dtype=torch.float64) * 2 - 1
    loss_fn = FlowMatchingLoss(Pyramid(16, num_stages), sigmoid_bias=bias)
    loss, terms = loss_fn(OracleDecoder(num_stages), x, x, torch.Generator().manual_seed(0))
    assert loss.shape == (12,)
    assert loss.abs().max() < 1e-12


def test_loss_positive_and_finite_for_wrong_velocity():
    x = torch.rand(6, 3, 16, 16) * 2 - 1

    class Zero(ImageSpace):
        def predict(self, x_t, t_loc, z, stage, prior_image=None):
            return torch.zeros_like(x_t), torch.zeros_like(x_t)

    loss_fn = FlowMatchingLoss(Pyramid(16, 3), sigmoid_bias=-3.0, t_sampling="uniform")
    loss, _ = loss_fn(Zero(), x, x, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss).all() and (loss > 0).all()


def test_perceptual_start_stage_selects_samples():
    calls = []

    def perceptual(a, b):
        calls.append(a.shape[-1])
        return torch.ones(a.shape[0])

    x = torch.rand(6, 3, 16, 16) * 2 - 1
    loss_fn = FlowMatchingLoss(Pyramid(16, 3), perceptual=perceptual, perceptual_start_stage=1)
    loss_fn(OracleDecoder(3), x, x, torch.Generator().manual_seed(0))
    assert calls == [8, 16]
    calls.clear()
    FlowMatchingLoss(Pyramid(16, 3), perceptual=perceptual)(
        OracleDecoder(3), x, x, torch.Generator().manual_seed(0)
    )
    assert calls == [16]


@pytest.mark.parametrize("t_value", [0.0, 1.0])
@pytest.mark.parametrize("parameterization", ["v", "x"])
def test_no_nan_at_the_ends_of_every_stage(monkeypatch, t_value, parameterization):
    import fastdec.losses.flow_matching as fm
    from tests.conftest import tiny_tokenizer

    monkeypatch.setattr(fm, "sample_times", lambda kind, n, generator: torch.full((n,), t_value))
    model = tiny_tokenizer("model.num_stages=2", f"model.parameterization={parameterization}")
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    for space in ("v", "x"):
        loss_fn = FlowMatchingLoss(model.pyramid, sigmoid_bias=-3.0, loss_space=space)
        loss, _ = loss_fn(model.decoder, x, model.encode(x), torch.Generator().manual_seed(0))
        assert torch.isfinite(loss).all()


class RecordingCritic(torch.nn.Module):
    """A discriminator whose logits are the images' means; it keeps every batch it judges."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, images):
        self.seen.append(images.detach().clone())
        return [images.mean(dim=(1, 2, 3))[:, None]]


def test_adversarial_term_judges_the_estimates_the_discriminator_trains_on():
    from fastdec.losses.draws import SampleDraws
    from tests.conftest import images, tiny_tokenizer

    model = tiny_tokenizer("model.num_stages=2")
    x = images(6)
    z = model.encoder(x)
    draws = SampleDraws.for_step(0, 5, range(6))
    loss_fn = FlowMatchingLoss(model.pyramid, adversarial_weight=0.5)
    real, fake = loss_fn.detail_images(model.decoder, x, z, draws)  # must not consume the draws
    critic = RecordingCritic()
    loss, terms = loss_fn(model.decoder, x, z, draws, critic)
    last = torch.arange(6) % 2 == 1  # samples of the last stage
    assert real.shape == fake.shape == (3, 3, 16, 16) and torch.equal(real, x[last])
    assert len(critic.seen) == 1 and torch.allclose(critic.seen[0], fake, atol=1e-6)
    assert torch.equal(terms["gan"] != 0, last)
    _, plain = FlowMatchingLoss(model.pyramid)(model.decoder, x, z, SampleDraws.for_step(0, 5, range(6)))
    assert torch.equal(terms["mse"], plain["mse"])
    loss.mean().backward()
    assert model.decoder.net.last_layer.weight.grad.abs().sum() > 0

"""Residual diffusion (``model.diffusion_space="residual"``, docs/method.md §11.5): the sampler, the
training loss and the distillation loss all run on ``residual_whitening (x - prior(z))``, and every image
that leaves them is ``prior(z) + residual_basis sample``."""

import pytest
import torch
from torch import nn

from fastdec.diffusion.pyramid import downsample
from fastdec.losses.distillation import DistillationLoss
from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.presets import resolve
from tests.conftest import images, tiny_tokenizer

RESIDUAL = (
    "model.latent_skip=true", "model.prior=onepass", "model.parameterization=x", "model.resolution=32",
    "model.cfg_dropout=0",
)  # fmt: skip
SPACES = ("residual", "residual-whitened")


class ResidualOracle(nn.Module):
    """x-prediction network that returns the true scaled residual at the resolution it is asked for,
    for whichever of its images (recognised by their latents) it is called on."""

    def __init__(self, residual: torch.Tensor, z: torch.Tensor):
        super().__init__()
        self.residual, self.z = residual, z

    def forward(self, x_t, tau, z):
        rows = [int((self.z == one).flatten(1).all(1).nonzero()) for one in z]
        residual = self.residual[rows]
        return downsample(residual, residual.shape[-1] // x_t.shape[-1])


def _residual_tokenizer(num_stages: int, space: str = "residual"):
    tok = tiny_tokenizer(*RESIDUAL, f"model.num_stages={num_stages}", f"model.diffusion_space={space}")
    truth = images(3, resolution=32)
    with torch.no_grad():
        basis = torch.tensor([[0.3, 0.1, 0.0], [0.1, 0.2, -0.05], [0.0, 0.1, 0.25]])  # any invertible map
        tok.decoder.residual_basis.copy_(basis)
        tok.decoder.residual_whitening.copy_(torch.linalg.inv(basis))
        z = tok.encode(truth)
        prior = tok.decoder.prior_image(z)
        tok.decoder.net = ResidualOracle(tok.decoder.to_target(truth, prior), z)
    return tok, truth, z, prior


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("num_stages", [1, 3])
def test_an_oracle_of_the_residual_decodes_the_true_image(num_stages, space):
    tok, truth, z, prior = _residual_tokenizer(num_stages, space)
    with torch.no_grad():
        out = tok.decode(z, steps=2, seeds=range(3))
    assert float((prior - truth).abs().max()) > 0.5  # the prior alone is far from the answer
    torch.testing.assert_close(out, truth, atol=1e-5, rtol=0)


@pytest.mark.parametrize("space", SPACES)
def test_the_flow_loss_targets_the_scaled_residual(space):
    tok, truth, z, _ = _residual_tokenizer(3, space)
    loss = FlowMatchingLoss(
        tok.pyramid, loss_space="x", perceptual=lambda a, b: (a - b).pow(2).mean((1, 2, 3))
    )
    with torch.no_grad():
        value, terms = loss(tok.decoder, truth, z, torch.Generator().manual_seed(0))
    assert float(value.abs().max()) < 1e-10 and float(terms["perceptual"].abs().max()) < 1e-10
    tok.decoder.residual_whitening.mul_(0.5)  # the oracle now misses: the target is mapped, not the image
    with torch.no_grad():
        assert float(loss(tok.decoder, truth, z, torch.Generator().manual_seed(0))[0].min()) > 1e-3


@pytest.mark.parametrize("space", SPACES)
def test_distillation_judges_images_not_residuals(space):
    tok, truth, z, _ = _residual_tokenizer(3, space)
    seen = []

    def perceptual(a, b):
        seen.append(a)
        return (a - b).pow(2).mean((1, 2, 3))

    loss = DistillationLoss(
        tok, target="stage_path", teacher_steps=2, perceptual=perceptual, perceptual_weight=1.0
    )
    noises = [torch.randn(3, 3, s.resolution, s.resolution) for s in tok.stages]
    with torch.no_grad():
        value, terms = loss(tok, truth, z, noises, torch.Generator().manual_seed(1))
    torch.testing.assert_close(seen[0], truth, atol=1e-5, rtol=0)
    assert float(terms["regression"].abs().max()) < 1e-8 and float(value.abs().max()) < 1e-8


def test_one_scale_is_the_rms_of_the_residual():
    tok = tiny_tokenizer(*RESIDUAL, "model.diffusion_space=residual")
    x = images(6, resolution=32)
    with torch.no_grad():
        z = tok.encode(x)
        rms = tok.decoder.fit_residual_scale(x, z)
        expected = float((x - tok.decoder.prior_image(z)).pow(2).mean().sqrt())
    torch.testing.assert_close(rms, torch.full((3,), expected))
    torch.testing.assert_close(tok.decoder.residual_basis, expected * torch.eye(3))
    torch.testing.assert_close(tok.decoder.residual_whitening, torch.eye(3) / expected)


def test_the_whitened_residual_has_unit_colour_covariance():
    tok = tiny_tokenizer(*RESIDUAL, "model.diffusion_space=residual-whitened")
    x = images(6, resolution=32)
    with torch.no_grad():
        z = tok.encode(x)
        tok.decoder.fit_residual_scale(x, z)
        prior = tok.decoder.prior_image(z)
        r = tok.decoder.to_target(x, prior).transpose(0, 1).flatten(1)  # (3, N R R)
        torch.testing.assert_close(r @ r.T / r.shape[1], torch.eye(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            tok.decoder.to_image(tok.decoder.to_target(x, prior), prior), x, atol=1e-5, rtol=0
        )


def test_residual_diffusion_needs_the_one_pass_prior():
    with pytest.raises(ValueError, match="diffusion_space='residual' needs prior='onepass'"):
        from fastdec.config import validate

        validate(
            resolve(
                "tiny",
                ["model.latent_skip=true", "model.parameterization=x", "model.diffusion_space=residual"],
            )
        )

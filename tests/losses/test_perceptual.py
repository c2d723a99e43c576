import importlib.util

import pytest
import torch

from fastdec.losses.perceptual import (
    InceptionPerceptual,
    LPIPSPerceptual,
    PerceptualLoss,
    build_perceptual,
)
from fastdec.models.inception import load_inception


def _images(b, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def test_identical_images_have_zero_distance():
    x = _images(2)
    d = InceptionPerceptual()(x, x.clone())
    assert d.shape == (2,)
    torch.testing.assert_close(d, torch.zeros(2), rtol=0, atol=1e-6)


def test_distance_positive_and_grows_with_noise():
    x = _images(2)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    loss = InceptionPerceptual()
    small, large = loss(x + 0.05 * noise, x), loss(x + 0.5 * noise, x)
    assert (small > 0).all() and (large > small).all()


def test_gradient_reaches_input_and_backbone_stays_frozen():
    loss = build_perceptual("inception")
    assert isinstance(loss, PerceptualLoss)
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    x = _images(2, seed=2).requires_grad_(True)
    loss(x, _images(2, seed=3)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    backbone = list(load_inception().parameters())
    assert backbone and all(not p.requires_grad and p.grad is None for p in backbone)


def test_native_size_input_is_not_upsampled():
    loss = InceptionPerceptual(min_size=75)
    assert loss.features.upsample_factor(80, 96) == 1
    d = loss(_images(1, 80, 96, seed=4), _images(1, 80, 96, seed=5))
    assert d.shape == (1,) and d.item() > 0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="got"):
        InceptionPerceptual()(_images(2), _images(1))


def test_factory_names():
    assert build_perceptual("none") is None
    assert isinstance(build_perceptual("inception"), InceptionPerceptual)
    with pytest.raises(ValueError, match="vgg16"):
        build_perceptual("vgg16")


@pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed")
def test_lpips_without_package_raises_clear_import_error():
    with pytest.raises(ImportError, match="pip install lpips"):
        build_perceptual("lpips")
    with pytest.raises(ValueError, match="resnet"):
        LPIPSPerceptual(net="resnet")

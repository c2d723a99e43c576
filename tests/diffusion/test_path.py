import torch

from fastdec.diffusion import path
from fastdec.diffusion.pyramid import downsample, upsample


def _x_eps(shape=(3, 3, 8, 8)):
    g = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(
        shape, generator=g, dtype=torch.float64
    )


def test_plain_path_endpoints_and_clean_round_trip():
    x, eps = _x_eps()
    assert torch.equal(path.interpolate(x, eps, 0.0), x)
    assert torch.equal(path.interpolate(x, eps, 1.0), eps)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    x_t = path.interpolate(x, eps, t)
    v = path.velocity_target(x, eps)
    x_hat = path.clean_from_velocity(x_t, v, t)
    torch.testing.assert_close(x_hat, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(x_hat, x_t - t[:, None, None, None] * v, rtol=0, atol=1e-12)


def _project(x):
    return upsample(downsample(x, 2), 2)


def test_stage_path_velocity_and_clean_are_inverse():
    x_end, eps = _x_eps()
    x_start = _project(x_end)
    start, end = 0.8, 1 / 3
    t = torch.tensor([0.2, 0.6, 1.0], dtype=torch.float64)
    a, c, d = (v[:, None, None, None] for v in path.coefficients(t, start, end))
    x_t = a * x_end + c * x_start + d * eps
    v_true = ((1 - start) * x_start + start * eps) - ((1 - end) * x_end + end * eps)
    v = path.velocity_from_clean(x_t, x_end, t, start, end, project=_project)
    torch.testing.assert_close(v, v_true, rtol=0, atol=1e-10)
    back = path.clean_from_velocity(x_t, v_true, t, start, end, project=_project)
    torch.testing.assert_close(back, x_end, rtol=0, atol=1e-10)


def test_plain_x_prediction_one_step_lands_on_prediction():
    x, eps = _x_eps()
    t = torch.full((3,), 0.7, dtype=torch.float64)
    x_t = path.interpolate(x, eps, t)
    v = path.velocity_from_clean(x_t, x, t)
    torch.testing.assert_close(x_t - 0.7 * v, x, rtol=0, atol=1e-12)


def test_sigmoid_weight_finite_at_ends():
    w = path.sigmoid_weight(torch.tensor([0.0, 1e-9, 0.5, 1.0 - 1e-9, 1.0]))
    assert torch.isfinite(w).all() and (w > 0).all()
    t = torch.tensor(0.3)
    lam = 2 * torch.log((1 - t) / t)
    expected = torch.exp(torch.tensor(-3.0)) * torch.sigmoid(lam + 3) / (t * (1 - t))
    torch.testing.assert_close(path.sigmoid_weight(t, -3.0), expected)

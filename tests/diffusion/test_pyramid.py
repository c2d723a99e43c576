"""Tests for the stage pyramid (docs/method.md §3, §4): noise levels, time partition, renoising, targets."""

import math

import pytest
import torch

from fastdec.diffusion.pyramid import Pyramid, Stage, assign_stages, block_noise, downsample, upsample

F64 = torch.float64


def _smooth_image(size: int, channels: int = 1) -> torch.Tensor:
    coords = torch.linspace(-1.0, 1.0, size, dtype=F64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    planes = [torch.sin(2.0 * xx + k) * torch.cos(1.5 * yy - k) for k in range(channels)]
    return torch.stack(planes)[None]  # (1, C, size, size)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).mean() / (a.square().mean() * b.square().mean()).sqrt())


def _pixels_of_blocks(x: torch.Tensor) -> list[torch.Tensor]:
    # (N, 1, H, W) -> the four pixels of every 2x2 block, each (N, H/2, W/2)
    return [x[:, 0, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]


# ---- stage specs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_stages", "expected"),
    [
        (3, [(1.0, 0.667), (0.8, 0.333), (0.5, 0.0)]),
        (4, [(1.0, 0.75), (0.857, 0.5), (0.667, 0.25), (0.4, 0.0)]),
    ],
)
def test_stage_noise_levels_match_method(num_stages, expected):
    stages = Pyramid(64, num_stages).stages
    got = [(st.start, st.end) for st in stages]
    for (b, e), (b_ref, e_ref) in zip(got, expected, strict=True):
        assert b == pytest.approx(b_ref, abs=1e-3)
        assert e == pytest.approx(e_ref, abs=1e-3)
    assert [st.index for st in stages] == list(range(num_stages))


def test_stage_resolutions():
    assert [st.resolution for st in Pyramid(64, 3)] == [16, 32, 64]
    assert [st.resolution for st in Pyramid(24, 4)] == [3, 6, 12, 24]
    pyramid = Pyramid(24, 4)
    assert len(pyramid) == 4 and pyramid[1] == pyramid.stages[1] and pyramid[1].resolution == 6


@pytest.mark.parametrize("num_stages", [2, 3, 4, 5, 6])
def test_gamma_third_closed_forms(num_stages):
    stages = Pyramid(2**num_stages, num_stages).stages
    assert (stages[0].start, stages[0].renoise_alpha, stages[0].renoise_beta) == (1.0, 1.0, 0.0)
    for prev, st in zip(stages[:-1], stages[1:], strict=True):
        e = prev.end
        assert st.start == pytest.approx(2 * e / (1 + e), abs=1e-12)
        assert st.renoise_alpha == pytest.approx(1 / (1 + e), abs=1e-12)
        assert st.renoise_beta == pytest.approx(math.sqrt(3) * e / (1 + e), abs=1e-12)


def test_single_stage_is_plain_flow():
    (st,) = Pyramid(32, 1)
    assert st == Stage(0, 32, start=1.0, end=0.0, tau_lo=0.0, tau_hi=1.0,
                       renoise_alpha=1.0, renoise_beta=0.0)  # fmt: skip
    t = torch.linspace(0, 1, 11, dtype=F64)
    torch.testing.assert_close(st.global_time(t), t, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("num_stages", [1, 2, 3, 4, 5, 7])
def test_time_ranges_partition_unit_interval(num_stages, dtype):
    stages = Pyramid(2 ** (num_stages - 1) * 3, num_stages).stages
    assert stages[0].tau_hi == 1.0
    assert stages[-1].tau_lo == 0.0
    for st in stages:
        assert st.tau_hi > st.tau_lo
    lengths = [st.start - st.end for st in stages]
    for st, length in zip(stages, lengths, strict=True):
        assert st.tau_hi - st.tau_lo == pytest.approx(length / sum(lengths), abs=1e-12)
    one, zero = torch.ones(1, dtype=dtype), torch.zeros(1, dtype=dtype)
    for prev, st in zip(stages[:-1], stages[1:], strict=True):
        assert st.tau_hi == prev.tau_lo
        assert torch.equal(st.global_time(one), prev.global_time(zero))
    assert float(stages[0].global_time(one)) == 1.0
    assert float(stages[-1].global_time(zero)) == 0.0


def test_pyramid_errors():
    with pytest.raises(ValueError, match="resolution"):
        Pyramid(20, 4)
    with pytest.raises(ValueError, match="num_stages"):
        Pyramid(16, 0)
    with pytest.raises(ValueError, match="gamma"):
        Pyramid(16, 3, gamma=0.5)  # (1 + g) I - g 11^T is not a covariance for g > 1/3


# ---- down / up sampling ------------------------------------------------------------------------


def test_upsample_then_downsample_is_identity():
    x = torch.randn(2, 3, 5, 7, dtype=F64, generator=torch.Generator().manual_seed(0))
    for factor in (1, 2, 4):
        torch.testing.assert_close(downsample(upsample(x, factor), factor), x, rtol=0, atol=1e-15)
    assert upsample(x).shape == (2, 3, 10, 14)


def test_downsample_averages_blocks():
    const = torch.full((1, 2, 8, 12), 0.3, dtype=F64)
    torch.testing.assert_close(downsample(const, 4), torch.full((1, 2, 2, 3), 0.3, dtype=F64))
    x = torch.arange(16, dtype=F64).reshape(1, 1, 4, 4)
    expected = torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]], dtype=F64)
    torch.testing.assert_close(downsample(x, 2), expected)


def test_upsample_is_nearest():
    x = torch.tensor([[[[1.0, 2.0]]]])
    assert torch.equal(upsample(x), torch.tensor([[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]]]))


def test_sampling_errors():
    with pytest.raises(ValueError, match="divisible"):
        downsample(torch.zeros(1, 1, 6, 6), 4)
    with pytest.raises(ValueError, match="power of 2"):
        downsample(torch.zeros(1, 1, 6, 6), 3)
    with pytest.raises(ValueError, match="power of 2"):
        upsample(torch.zeros(1, 1, 2, 2), 0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        downsample(torch.zeros(4, 4), 2)


# ---- block noise -------------------------------------------------------------------------------


def _exact_block_cov(gamma: float, published_sign: bool) -> torch.Tensor:
    # block_noise is linear: feeding the 4 basis vectors of one block gives its factor L exactly.
    basis = torch.eye(4, dtype=F64).reshape(4, 1, 2, 2)
    cols = block_noise(basis, gamma, published_sign).reshape(4, 4)  # row i = L e_i
    return cols.T @ cols  # L L^T


@pytest.mark.parametrize("gamma", [1 / 3, 0.25, 0.1])
@pytest.mark.parametrize("published_sign", [False, True])
def test_block_noise_exact_covariance(gamma, published_sign):
    sign = 1.0 if published_sign else -1.0
    expected = (1 - sign * gamma) * torch.eye(4, dtype=F64) + sign * gamma * torch.ones(4, 4, dtype=F64)
    torch.testing.assert_close(_exact_block_cov(gamma, published_sign), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("gamma", "published_sign"), [(1 / 3, False), (0.25, False), (1 / 3, True)])
def test_block_noise_statistics(gamma, published_sign):
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(5000, 3, 4, 6, dtype=F64, generator=gen)  # non-square, several channels
    n = block_noise(noise, gamma, published_sign)
    assert n.shape == noise.shape
    assert n.var().item() == pytest.approx(1.0, abs=0.01)
    torch.testing.assert_close(n.var(dim=0), torch.ones(3, 4, 6, dtype=F64), rtol=0, atol=0.06)
    p = [n[:, :, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1)]
    target = gamma if published_sign else -gamma
    for i in range(4):
        for j in range(i + 1, 4):
            assert _corr(p[i], p[j]) == pytest.approx(target, abs=0.01)
    # different blocks are independent: right column of a block vs left column of the next one
    assert abs(_corr(n[..., 1::2][..., :-1], n[..., 2::2])) < 0.01
    assert abs(_corr(n[:, :, 1::2][:, :, :-1], n[:, :, 2::2])) < 0.01


def test_block_noise_errors():
    with pytest.raises(ValueError, match="even"):
        block_noise(torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="gamma"):
        block_noise(torch.zeros(1, 1, 2, 2), gamma=0.5)


# ---- renoising ---------------------------------------------------------------------------------


def _renoised_start(num_stages, s, gamma, published_sign, draws, seed=0):
    """Previous stage's end state, renoised into stage s (8x8); returns (start, signal, b_s)."""
    full = 8 * 2 ** (num_stages - 1 - s)
    pyramid = Pyramid(full, num_stages, gamma, published_sign)
    prev, st = pyramid[s - 1], pyramid[s]
    x = _smooth_image(full)
    x_end_prev, _ = pyramid.targets(x, prev)  # (1, 1, 4, 4)
    _, x_start = pyramid.targets(x, st)  # (1, 1, 8, 8)
    signal_in = (1 - prev.end) * x_end_prev
    # signal exactly: renoise with zero noise
    signal = pyramid.renoise(signal_in, st, torch.zeros_like(x_start))
    torch.testing.assert_close(signal, (1 - st.start) * x_start, rtol=0, atol=1e-14)
    gen = torch.Generator().manual_seed(seed)
    eps_prev = torch.randn(draws, 1, 4, 4, dtype=F64, generator=gen)
    noise = torch.randn(draws, 1, 8, 8, dtype=F64, generator=gen)
    start = pyramid.renoise(signal_in + prev.end * eps_prev, st, noise)
    return start, signal, st.start


@pytest.mark.parametrize(
    ("num_stages", "s", "gamma"), [(3, 1, 1 / 3), (3, 2, 1 / 3), (4, 2, 1 / 3), (3, 1, 0.25)]
)
def test_renoised_start_is_white_noise_at_stage_start_level(num_stages, s, gamma):
    start, signal, b = _renoised_start(num_stages, s, gamma, False, draws=20000)
    resid = (start - signal) / b  # should be iid N(0, 1)
    assert resid.mean(dim=0).abs().max().item() < 0.04
    torch.testing.assert_close(start.std(dim=0) / b, torch.ones(1, 8, 8, dtype=F64), rtol=0.02, atol=0)
    p = _pixels_of_blocks(resid)
    for i in range(4):
        for j in range(i + 1, 4):
            assert abs(_corr(p[i], p[j])) < 0.02
    assert abs(_corr(resid[..., 1::2][..., :-1], resid[..., 2::2])) < 0.02
    assert abs(_corr(resid[:, :, 1::2][:, :, :-1], resid[:, :, 2::2])) < 0.02


def test_renoised_start_with_published_sign_is_correlated():
    start, signal, b = _renoised_start(3, 1, 1 / 3, True, draws=20000)
    resid = (start - signal) / b
    torch.testing.assert_close(start.std(dim=0) / b, torch.ones(1, 8, 8, dtype=F64), rtol=0.02, atol=0)
    p = _pixels_of_blocks(resid)
    for i in range(4):
        for j in range(i + 1, 4):
            assert _corr(p[i], p[j]) == pytest.approx(0.5, abs=0.02)  # 2 g / (1 + g)
    assert abs(_corr(resid[..., 1::2][..., :-1], resid[..., 2::2])) < 0.02


@pytest.mark.parametrize("gamma", [1 / 3, 0.25, 0.05])
@pytest.mark.parametrize("published_sign", [False, True])
def test_renoise_exact_covariance(gamma, published_sign):
    # renoise is affine in (eps_prev, noise): its Jacobian J gives the exact noise covariance J J^T.
    pyramid = Pyramid(8, 3, gamma, published_sign)
    st, e = pyramid[2], pyramid[1].end
    basis = torch.eye(4 * 4 + 8 * 8, dtype=F64)
    eps_prev = basis[:, :16].reshape(-1, 1, 4, 4)
    noise = basis[:, 16:].reshape(-1, 1, 8, 8)
    jac = pyramid.renoise(e * eps_prev, st, noise).reshape(80, 64)
    cov = jac.T @ jac  # (64, 64), pixels in row-major order
    block = (torch.arange(8)[:, None] // 2 * 4 + torch.arange(8)[None, :] // 2).flatten()
    same_block = (block[:, None] == block[None, :]).to(F64)
    eye = torch.eye(64, dtype=F64)
    corr = 2 * gamma / (1 + gamma) if published_sign else 0.0
    expected = st.start**2 * (eye + corr * (same_block - eye))
    torch.testing.assert_close(cov, expected, rtol=0, atol=1e-12)


def test_renoise_errors():
    pyramid = Pyramid(8, 3)
    with pytest.raises(ValueError, match="index > 0"):
        pyramid.renoise(torch.zeros(1, 1, 1, 1), pyramid[0], torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        pyramid.renoise(torch.zeros(1, 1, 4, 4), pyramid[2], torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="not a stage of this pyramid"):  # built with another gamma
        pyramid.renoise(torch.zeros(1, 1, 4, 4), Pyramid(8, 3, gamma=0.25)[2], torch.zeros(1, 1, 8, 8))


# ---- training targets and path -----------------------------------------------------------------


def test_stage_targets():
    x = _smooth_image(16, channels=3)
    pyramid = Pyramid(16, 3)
    shapes = []
    for st in pyramid:
        x_end, x_start = pyramid.targets(x, st)
        shapes.append(tuple(x_end.shape))
        assert x_start.shape == x_end.shape
        if st.index == 0:
            assert torch.equal(x_start, x_end)
        else:
            torch.testing.assert_close(x_start, upsample(downsample(x_end, 2)))
            assert not torch.allclose(x_start, x_end)
    assert shapes == [(1, 3, 4, 4), (1, 3, 8, 8), (1, 3, 16, 16)]
    torch.testing.assert_close(pyramid.targets(x, pyramid[2])[0], x)
    # the previous stage's end is the downsampled current end: x_start = up(prev x_end)
    prev_end = pyramid.targets(x, pyramid[1])[0]
    torch.testing.assert_close(pyramid.targets(x, pyramid[2])[1], upsample(prev_end))
    torch.testing.assert_close(pyramid[2].projection(upsample(prev_end)), upsample(prev_end))  # P P = P
    assert pyramid[0].projection is None
    with pytest.raises(ValueError, match="not a stage of this pyramid"):
        Pyramid(16, 2).targets(x, pyramid[2])


def _pair_inputs(stage_index=1):
    gen = torch.Generator().manual_seed(3)
    pyramid = Pyramid(16, 3)
    st = pyramid[stage_index]
    x = torch.randn(4, 3, 16, 16, dtype=F64, generator=gen)
    x_end, x_start = pyramid.targets(x, st)
    noise = torch.randn(x_end.shape, dtype=F64, generator=gen)
    return st, x_end, x_start, noise


@pytest.mark.parametrize("stage_index", [0, 1, 2])
def test_training_pair_endpoints(stage_index):
    st, x_end, x_start, noise = _pair_inputs(stage_index)
    y_end = (1 - st.end) * x_end + st.end * noise
    y_start = (1 - st.start) * x_start + st.start * noise
    x0, v = st.training_pair(x_end, x_start, torch.zeros(4, dtype=F64), noise)
    x1, _ = st.training_pair(x_end, x_start, torch.ones(4, dtype=F64), noise)
    torch.testing.assert_close(x0, y_end, rtol=0, atol=1e-14)
    torch.testing.assert_close(x1, y_start, rtol=0, atol=1e-14)
    torch.testing.assert_close(v, y_start - y_end, rtol=0, atol=1e-14)


def test_training_pair_per_sample_time_and_constant_velocity():
    st, x_end, x_start, noise = _pair_inputs()
    t = torch.tensor([0.0, 0.2, 0.7, 1.0], dtype=F64)
    x_t, v = st.training_pair(x_end, x_start, t, noise)
    for i in range(4):  # each sample uses its own time
        xi, _ = st.training_pair(x_end[i : i + 1], x_start[i : i + 1], t[i : i + 1], noise[i : i + 1])
        torch.testing.assert_close(x_t[i : i + 1], xi, rtol=0, atol=1e-14)
    h = 1e-4
    for t_mid in (0.1, 0.5, 0.9):
        tm = torch.full((4,), t_mid, dtype=F64)
        plus, _ = st.training_pair(x_end, x_start, tm + h, noise)
        minus, v_mid = st.training_pair(x_end, x_start, tm - h, noise)
        torch.testing.assert_close((plus - minus) / (2 * h), v, rtol=0, atol=1e-9)
        torch.testing.assert_close(v_mid, v)


def test_training_pair_errors():
    st, x_end, x_start, noise = _pair_inputs()
    with pytest.raises(ValueError, match="t_loc"):
        st.training_pair(x_end, x_start, torch.zeros(3, dtype=F64), noise)
    with pytest.raises(ValueError, match="share a shape"):
        st.training_pair(x_end, x_start[..., :4], torch.zeros(4, dtype=F64), noise)


def test_path_coefficients_reproduce_training_pair():
    st, x_end, x_start, noise = _pair_inputs(2)
    t = torch.tensor([0.0, 0.3, 0.65, 1.0], dtype=F64)
    a, c, d = st.coefficients(t)
    assert a.shape == c.shape == d.shape == (4,)
    x_t, _ = st.training_pair(x_end, x_start, t, noise)
    rebuilt = a.view(-1, 1, 1, 1) * x_end + c.view(-1, 1, 1, 1) * x_start + d.view(-1, 1, 1, 1) * noise
    torch.testing.assert_close(rebuilt, x_t, rtol=0, atol=1e-14)


@pytest.mark.parametrize(("batch_size", "num_stages"), [(8, 3), (3, 3), (2, 4), (17, 1)])
def test_assign_stages_is_even(batch_size, num_stages):
    idx = assign_stages(batch_size, num_stages)
    assert idx.dtype == torch.long and idx.shape == (batch_size,)
    counts = torch.bincount(idx, minlength=num_stages)
    assert counts.sum() == batch_size
    assert counts.max() - counts.min() <= 1
    assert int(counts.min()) == batch_size // num_stages
    with pytest.raises(ValueError):
        assign_stages(0, 3)

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import structural_similarity

from fastdec.eval.flops import count_flops
from fastdec.eval.metrics import (
    FIDAccumulator,
    frechet_distance,
    frechet_distance_from_features,
    psnr,
    ssim,
    summarize_psnr,
)
from fastdec.eval.timing import (
    cuda_sync_if_needed,
    fixed_threads,
    interleaved_timings,
    measure_ms,
)
from fastdec.models.inception import InceptionFeatures


def _unit_images(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)


def _skimage_ssim(x, y):
    a = ((x + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    b = ((y + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return np.array(
        [
            structural_similarity(
                ai,
                bi,
                channel_axis=-1,
                data_range=1.0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for ai, bi in zip(a, b, strict=True)
        ]
    )


# ---------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf_and_summary_caps():
    x = _unit_images(3, 8, 8) * 2 - 1
    values = psnr(x, x.clone())
    assert values.shape == (3,) and torch.isinf(values).all()
    assert summarize_psnr(values) == 100.0
    assert summarize_psnr(torch.tensor([30.0, math.inf]), cap_db=50.0) == 40.0


@pytest.mark.parametrize("delta", [0.01, 0.1, 0.25])
def test_psnr_constant_offset_matches_closed_form(delta):
    u = 0.2 + 0.5 * _unit_images(2, 16, 12)  # stays in [0, 1] after the offset
    values = psnr(u * 2 - 1, (u + delta) * 2 - 1)
    expected = 10 * math.log10(1 / delta**2)
    torch.testing.assert_close(values, torch.full((2,), expected, dtype=torch.float64))


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="got"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


# ---------------------------------------------------------------- SSIM


def test_ssim_matches_skimage_on_random_images():
    x = _unit_images(3, 24, 31, seed=1) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    np.testing.assert_allclose(ssim(x, y).numpy(), _skimage_ssim(x, y), atol=1e-3)


def test_ssim_matches_skimage_on_structured_images():
    h, w = 32, 40
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    rgb = torch.stack([xx, yy, (xx + yy) / 2]).double()  # (3, H, W) gradients
    x = torch.stack([rgb, torch.sin(6 * rgb) ** 2]) * 2 - 1  # (2, 3, H, W)
    y = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    np.testing.assert_allclose(ssim(x, y).numpy(), _skimage_ssim(x, y), atol=1e-3)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64))


def test_ssim_rejects_small_images():
    with pytest.raises(ValueError, match="10x10"):
        ssim(torch.zeros(1, 3, 10, 10), torch.zeros(1, 3, 10, 10))


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_distance_gaussian_closed_form():
    # Commuting (diagonal) covariances: FD = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)


def test_frechet_distance_matches_sqrtm_reference():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 16)), rng.normal(size=(30, 16)) * 1.5 + 0.2
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance_from_features(a, b) == pytest.approx(expected, rel=1e-8)


def test_low_rank_route_equals_covariance_route():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 40)), rng.normal(size=(7, 40)) + 0.1  # N < D: nuclear-norm route
    full = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    # The (D, D) route sums square roots of ~1e-15 round-off eigenvalues in the null space.
    assert frechet_distance_from_features(a, b) == pytest.approx(full, rel=1e-6)
    assert frechet_distance_from_features(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_inputs_validated():
    with pytest.raises(ValueError, match="got"):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="2 samples"):
        frechet_distance_from_features(np.zeros((1, 4)), np.zeros((3, 4)))


def test_inception_fid_zero_for_same_set_and_grows_with_noise():
    # 9 images at ~0.2 s each on one core: the whole Inception budget of this file.
    clean = _unit_images(3, 32, 32, seed=3).float() * 2 - 1
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(4))
    batch = torch.cat([clean, clean + 0.1 * noise, clean + 0.5 * noise]).clamp(-1, 1)
    f_clean, f_small, f_large = InceptionFeatures()(batch).split(3)
    assert frechet_distance_from_features(f_clean, f_clean) == pytest.approx(0.0, abs=1e-6)
    small = frechet_distance_from_features(f_clean, f_small)
    large = frechet_distance_from_features(f_clean, f_large)
    assert 0 < small < large


def test_fid_accumulator_counts_and_compute():
    proj = torch.randn(3 * 8 * 8, 16, generator=torch.Generator().manual_seed(5))
    acc = FIDAccumulator(features=lambda images: images.flatten(1) @ proj)
    real = _unit_images(6, 8, 8, seed=6).float() * 2 - 1
    acc.update_real(real[:1])
    with pytest.raises(ValueError, match="1 real, 0 fake"):
        acc.compute()
    acc.update_real(real[1:])
    acc.update_fake(real[:4])
    acc.update_fake(real[4:])
    assert (acc.n_real, acc.n_fake) == (6, 6)
    assert acc.compute() == pytest.approx(0.0, abs=1e-6)
    acc.update_fake(real[:2] * 0.5)
    assert acc.compute() > 0


# ---------------------------------------------------------------- FLOPs and timing


def test_count_flops_of_linear_is_two_macs_per_weight_per_sample():
    batch, d_in, d_out = 5, 7, 3
    layer = torch.nn.Linear(d_in, d_out)
    assert count_flops(layer, torch.randn(batch, d_in)) == 2 * batch * d_in * d_out


def test_measure_ms_counts_calls_and_summarises():
    calls, syncs = [], []
    result = measure_ms(lambda: calls.append(1), warmup=3, repeats=4, sync=lambda: syncs.append(1))
    assert len(calls) == 7 and len(syncs) == 8 and len(result["all_ms"]) == 4
    assert result["min_ms"] <= result["median_ms"] and result["min_ms"] >= 0
    with pytest.raises(ValueError, match="repeats"):
        measure_ms(lambda: None, repeats=0)


def test_interleaved_timings_round_robin_with_rotation():
    order = []
    fns = {name: (lambda n=name: order.append(n)) for name in "abc"}
    result = interleaved_timings(fns, warmup=1, repeats=2)
    assert order == list("abcbcacab")
    assert set(result) == set("abc") and all(len(r["all_ms"]) == 2 for r in result.values())


def test_fixed_threads_restores_and_cpu_needs_no_sync():
    before = torch.get_num_threads()
    with fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert cuda_sync_if_needed("cpu") is None

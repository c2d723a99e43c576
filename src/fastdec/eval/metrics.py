"""Reconstruction metrics: PSNR and SSIM on [0, 1] images, and the Fréchet Inception distance.

All functions take images in [-1, 1] (the project convention) and evaluate on `(x + 1) / 2` clamped
to [0, 1] with data range 1 (the published code used data range 2 for SSIM on [0, 1] images).

The Inception features of the real images are cached on disk (`fastdec.eval.fid_cache`), so
evaluating several models on one image set runs Inception on the real images once.
"""

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fastdec.eval.fid_cache import real_features
from fastdec.models.inception import InceptionFeatures

PSNR_CAP_DB = 100.0
# SSIM constants of Wang et al. (2004), as in skimage with gaussian_weights=True.
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): scipy's truncate=3.5 -> an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.double() + 1) / 2).clamp(0, 1)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(
            f"expected two (B, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, `10 log10(1 / MSE)` on [0, 1] images.

    Args:
        x: (B, C, H, W) in [-1, 1].
        y: (B, C, H, W) in [-1, 1].

    Returns:
        (B,) float64; `+inf` where the two images are identical after clamping. Aggregate a set
        with `summarize_psnr`, which caps each value at `PSNR_CAP_DB`.
    """
    _check_pair(x, y)
    mse = (_to_unit(x) - _to_unit(y)).square().flatten(1).mean(1)  # (B,)
    return 10 * torch.log10(1 / mse)


def summarize_psnr(values: torch.Tensor, cap_db: float = PSNR_CAP_DB) -> float:
    """Mean PSNR of a set, each value capped at `cap_db` so identical images stay finite.

    Args:
        values: (N,) per-image PSNR from `psnr`.
        cap_db: per-image cap in dB.
    """
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(f"expected a non-empty (N,) tensor, got {tuple(values.shape)}")
    return float(values.double().clamp(max=cap_db).mean())


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (t / SSIM_SIGMA) ** 2)
    return g / g.sum()  # (11,)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM with an 11-tap Gaussian window (sigma 1.5), mean over channels.

    Matches `skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=1.0,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`: skimage filters with
    reflect padding and then crops the 5 border pixels that padding touches before averaging,
    which is exactly a valid (unpadded) convolution. Computed in float64.

    Args:
        x: (B, C, H, W) in [-1, 1], H and W at least 11.
        y: (B, C, H, W) in [-1, 1].

    Returns:
        (B,) float64 in [-1, 1]; 1 for identical images.
    """
    _check_pair(x, y)
    b, c, h, w = x.shape
    size = 2 * SSIM_RADIUS + 1
    if h < size or w < size:
        raise ValueError(f"SSIM needs images of at least {size}x{size}, got {h}x{w}")
    a, t = _to_unit(x), _to_unit(y)
    g = _gaussian_window(a.dtype, a.device)
    stack = torch.stack([a, t, a * a, t * t, a * t], dim=1)  # (B, 5, C, H, W)
    stack = stack.reshape(b * 5 * c, 1, h, w)
    stack = F.conv2d(stack, g.view(1, 1, size, 1))  # (5BC, 1, H-10, W)
    stack = F.conv2d(stack, g.view(1, 1, 1, size))  # (5BC, 1, H-10, W-10)
    mu_x, mu_y, e_xx, e_yy, e_xy = stack.reshape(b, 5, c, h - size + 1, w - size + 1).unbind(1)
    var_x, var_y = e_xx - mu_x**2, e_yy - mu_y**2  # population (co)variances, (B, C, h', w')
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data_range)^2 with data_range = 1
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(1)  # (B,)


def _as_float64(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2): AB and BA share eigenvalues, and the right-hand
    # matrix is symmetric PSD, so eigvalsh gives real eigenvalues (no imaginary residue to drop).
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # (D, D)
    m = root1 @ sigma2 @ root1  # (D, D)
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def frechet_distance(
    mu1: np.ndarray | torch.Tensor,
    sigma1: np.ndarray | torch.Tensor,
    mu2: np.ndarray | torch.Tensor,
    sigma2: np.ndarray | torch.Tensor,
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    `||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))` (Heusel et al. 2017). The trace of the matrix
    square root comes from two symmetric eigendecompositions instead of `scipy.linalg.sqrtm`:
    exact for PSD inputs, about 4 s for D = 2048 on one CPU core, and free of complex output.

    Args:
        mu1: (D,) mean.
        sigma1: (D, D) covariance.
        mu2: (D,) mean.
        sigma2: (D, D) covariance.
    """
    mu1, sigma1, mu2, sigma2 = (_as_float64(a) for a in (mu1, sigma1, mu2, sigma2))
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"expected means (D,) and covariances (D, D), got {mu1.shape}, {sigma1.shape}, "
            f"{mu2.shape}, {sigma2.shape}"
        )
    diff = mu1 - mu2
    trace = np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + trace)


def frechet_distance_from_features(
    feats1: np.ndarray | torch.Tensor, feats2: np.ndarray | torch.Tensor
) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (sample covariances).

    With fewer samples than dimensions, S1 = A^T A and S2 = B^T B with A = centred feats1 /
    sqrt(N1 - 1); the non-zero eigenvalues of S1 S2 are those of (A B^T)(A B^T)^T, so
    tr (S1 S2)^(1/2) is the nuclear norm of the (N1, N2) matrix A B^T: exact, and far cheaper than
    a (D, D) decomposition. Otherwise the covariances go to `frechet_distance`.

    Args:
        feats1: (N1, D) features, N1 >= 2.
        feats2: (N2, D) features, N2 >= 2.
    """
    f1, f2 = _as_float64(feats1), _as_float64(feats2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"expected (N1, D) and (N2, D) features, got {f1.shape}, {f2.shape}")
    if min(len(f1), len(f2)) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(f1)} and {len(f2)}")
    if max(len(f1), len(f2)) > f1.shape[1]:
        return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    a = (f1 - mu1) / np.sqrt(len(f1) - 1)  # (N1, D)
    b = (f2 - mu2) / np.sqrt(len(f2) - 1)  # (N2, D)
    tr_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * tr_sqrt)


class FIDAccumulator:
    """Collects Inception features of real and reconstructed images, then computes FID.

    The FID estimator is biased upward, by roughly a constant over N (Chong and Forsyth, 2020), so
    rFID on a few images is large even for good reconstructions: report it with `n_real` and
    `n_fake`, and compare only numbers computed on the same N. Features are kept in memory
    (8 KB per image as float32).

    Args:
        features: maps (B, 3, H, W) images in [-1, 1] to (B, D) features; defaults to
            `InceptionFeatures()`.
    """

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.features = InceptionFeatures() if features is None else features
        self._real: list[torch.Tensor] = []
        self._fake: list[torch.Tensor] = []

    @property
    def n_real(self) -> int:
        return sum(len(f) for f in self._real)

    @property
    def n_fake(self) -> int:
        return sum(len(f) for f in self._fake)

    def update_real(self, images: torch.Tensor) -> None:
        """Add a (B, 3, H, W) batch of reference images in [-1, 1]."""
        self._real.append(self.features(images).detach().float().cpu())

    def update_real_features(self, features: torch.Tensor) -> None:
        """Add precomputed (B, D) features of reference images (e.g. from `real_features`)."""
        if features.ndim != 2:
            raise ValueError(f"expected (B, D) features, got {tuple(features.shape)}")
        self._real.append(features.detach().float().cpu())

    def update_real_cached(self, images: torch.Tensor, *, cache: bool = True, batch_size: int = 64) -> None:
        """Add (N, 3, H, W) reference images in [-1, 1] through the disk cache (`real_features`):
        Inception runs on them only the first time this set is seen."""
        self.update_real_features(real_features(images, self.features, cache=cache, batch_size=batch_size))

    def update_fake(self, images: torch.Tensor) -> None:
        """Add a (B, 3, H, W) batch of reconstructions in [-1, 1]."""
        self._fake.append(self.features(images).detach().float().cpu())

    def compute(self) -> float:
        """FID between everything added so far; raises ValueError with fewer than 2 per side."""
        if self.n_real < 2 or self.n_fake < 2:
            raise ValueError(f"FID needs >= 2 images per set, got {self.n_real} real, {self.n_fake} fake")
        return frechet_distance_from_features(torch.cat(self._real), torch.cat(self._fake))

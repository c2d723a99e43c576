"""The stage pyramid of multi-stage (pyramidal) flow matching.

Pyramidal Flow Matching (Jin et al., arXiv 2410.05954) in pixel space, as described in docs/method.md §3.
S stages run coarse to fine; stage ``s`` (0 = coarsest) works at resolution ``H / 2**(S-1-s)`` and
moves along its own straight path from a noisy, blocky start to a less noisy end::

    y_end   = (1 - e_s) x_end   + e_s eps        x_end   = down^(S-1-s)(x)
    y_start = (1 - b_s) x_start + b_s eps        x_start = up(down(x_end))
    x_t     = (1 - t_loc) y_end + t_loc y_start  (t_loc = 0 at the stage end, 1 at its start)

Between stages the sampler upsamples (nearest) and renoises with 2x2 block noise so that a stage
starts from exactly the distribution it was trained on. Time runs as everywhere in fastdec: t = 0 is
data, t = 1 is noise. All randomness comes in as tensors of standard normal noise.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fastdec.diffusion import path

__all__ = ["Pyramid", "Stage", "assign_stages", "block_noise", "downsample", "upsample"]


@dataclass(frozen=True)
class Stage:
    """One stage of the pyramid and its path (docs/method.md §3.4); build stages with :class:`Pyramid`.

    Attributes:
        index: Stage index, 0 = coarsest.
        resolution: Side length in pixels at which the stage works.
        start: Noise level ``b_s`` at the stage start (``t_loc = 1``).
        end: Noise level ``e_s`` at the stage end (``t_loc = 0``).
        tau_lo: Global time at the stage end.
        tau_hi: Global time at the stage start; ``tau = tau_lo + (tau_hi - tau_lo) * t_loc``.
        renoise_alpha: ``alpha_s`` in ``x <- alpha_s up(x_prev) + beta_s n_block``; 1 for stage 0.
        renoise_beta: ``beta_s`` in the same transition; 0 for stage 0.
    """

    index: int
    resolution: int
    start: float
    end: float
    tau_lo: float
    tau_hi: float
    renoise_alpha: float
    renoise_beta: float

    def global_time(self, t_loc: Tensor) -> Tensor:
        """Global time ``tau = tau_lo + (tau_hi - tau_lo) t_loc`` that the network sees (docs/method.md
        §3.5), any shape and dtype of ``t_loc``.

        Evaluated so that ``t_loc = 0`` gives ``tau_lo`` and ``t_loc = 1`` gives ``tau_hi`` exactly, so
        neighbouring stages agree bit for bit at their shared boundary.
        """
        width = self.tau_hi - self.tau_lo
        from_lo = self.tau_lo + width * t_loc
        from_hi = self.tau_hi - width * (1 - t_loc)
        return torch.where(t_loc < 0.5, from_lo, from_hi)

    def coefficients(self, t_loc):
        """``(a, c, d)`` of ``x_t = a x_end + c x_start + d eps``, each shaped like ``t_loc`` (a float
        or a tensor): ``a = (1 - t)(1 - e)``, ``c = t (1 - b)``, ``d = (1 - t) e + t b``."""
        return path.coefficients(t_loc, self.start, self.end)

    @property
    def projection(self) -> Callable[[Tensor], Tensor] | None:
        """``P``: x_end -> x_start (down then nearest up by 2); None for stage 0, which starts from pure
        noise (so its resolution need not be even)."""
        if self.index == 0:
            return None
        return lambda x: upsample(downsample(x, 2), 2)

    def point(self, x_end: Tensor, x_start: Tensor, noise: Tensor, t_loc) -> Tensor:
        """``x_t = a x_end + c x_start + d eps`` at local time ``t_loc`` (a float or (B,))."""
        return path.point(x_end, x_start, noise, t_loc, self.start, self.end)

    def noise(self, x_t: Tensor, x_end: Tensor, x_start: Tensor, t_loc) -> Tensor:
        """The eps of :meth:`point`: the noise of a state x_t on this path at ``t_loc``."""
        return path.noise(x_t, x_end, x_start, t_loc, self.start, self.end)

    def training_pair(
        self, x_end: Tensor, x_start: Tensor, t_loc: Tensor, noise: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Network input and target velocity (docs/method.md §3.4, §3.6): ``(x_t, v)`` with x_t from
        :meth:`point` and ``v = (1 - b) x_start - (1 - e) x_end + (b - e) eps = dx_t / dt``.

        Args:
            x_end: Clean stage-end images, shape (B, C, h, w).
            x_start: Clean stage-start images, same shape.
            t_loc: Local times in [0, 1], shape (B,).
            noise: eps, iid N(0, 1), same shape as ``x_end``.
        """
        _check_image(x_end, "x_end")
        if x_start.shape != x_end.shape or noise.shape != x_end.shape:
            raise ValueError(
                f"x_end, x_start, noise must share a shape, got {tuple(x_end.shape)}, "
                f"{tuple(x_start.shape)}, {tuple(noise.shape)}"
            )
        if t_loc.shape != (x_end.shape[0],):
            raise ValueError(f"t_loc must have shape ({x_end.shape[0]},), got {tuple(t_loc.shape)}")
        t_loc = t_loc.to(x_end.dtype)
        return self.point(x_end, x_start, noise, t_loc), path.velocity(
            x_end, x_start, noise, self.start, self.end
        )

    def velocity_from_clean(self, x_t: Tensor, x_end: Tensor, t_loc: Tensor) -> Tensor:
        """The velocity that a clean stage-end estimate implies (docs/method.md §5)."""
        return path.velocity_from_clean(x_t, x_end, t_loc, self.start, self.end, self.projection)

    def clean_from_velocity(self, x_t: Tensor, v: Tensor, t_loc: Tensor) -> Tensor:
        """The clean stage end that a velocity implies (docs/method.md §5)."""
        return path.clean_from_velocity(x_t, v, t_loc, self.start, self.end, self.projection)


def _check_gamma(gamma: float) -> None:
    # (1 + g) I - g 11^T has eigenvalue 1 - 3g along 11^T: a covariance only for g <= 1/3.
    if not 0.0 < gamma <= 1.0 / 3.0 + 1e-12:
        raise ValueError(f"gamma must lie in (0, 1/3] for a valid block covariance, got {gamma}")


def _stages(resolution: int, num_stages: int, gamma: float) -> tuple[Stage, ...]:
    """Noise levels, global time ranges and renoise coefficients of S stages (see :class:`Pyramid`)."""
    ends = [1.0 - (s + 1) / num_stages for s in range(num_stages)]  # e_{S-1} = 0 exactly
    starts, alphas, betas = [1.0], [1.0], [0.0]
    for s in range(1, num_stages):
        e = ends[s - 1]
        r = 1.0 / (math.sqrt(1.0 + 1.0 / gamma) * e + (1.0 - e))  # docs/method.md §4.2
        starts.append(1.0 - r * (1.0 - e))
        alphas.append(r)
        betas.append(r * e / math.sqrt(gamma))

    lengths = [b - e for b, e in zip(starts, ends, strict=True)]
    total = sum(lengths)
    bounds = [1.0]  # tau at each stage start, then the last stage's end
    for length in lengths[:-1]:
        bounds.append(bounds[-1] - length / total)
    bounds.append(0.0)

    return tuple(
        Stage(
            index=s,
            resolution=resolution // 2 ** (num_stages - 1 - s),
            start=starts[s],
            end=ends[s],
            tau_lo=bounds[s + 1],
            tau_hi=bounds[s],
            renoise_alpha=alphas[s],
            renoise_beta=betas[s],
        )
        for s in range(num_stages)
    )


@dataclass(frozen=True)
class Pyramid:
    """The S stages of a decoder, with the block noise of the transitions between them.

    Noise levels (docs/method.md §3.3; Pyramid Flow arXiv 2410.05954): ``e_s = 1 - (s+1)/S``,
    ``b_0 = 1`` and for ``s > 0``, with ``e = e_{s-1}``::

        r = 1 / (sqrt(1 + 1/gamma) e + (1 - e)),   b_s = 1 - r (1 - e)   (= 2e / (1+e) at gamma=1/3)

    Renoising (derivation): the previous stage ends at ``(1-e) x_end_prev + e eps``; after nearest
    upsampling its noise has per-pixel variance ``e^2`` and within-block covariance ``e^2 11^T``.
    Adding ``(e / sqrt(gamma)) n_block`` with ``Cov(n_block) = (1+gamma) I - gamma 11^T`` cancels
    the ``11^T`` part and leaves white noise of variance ``e^2 (1 + 1/gamma)``. Rescaling by
    ``alpha`` so that signal and noise coefficients sum to one gives ``alpha = r`` (signal
    ``1 - b_s``, noise std ``b_s``) and ``beta = r e / sqrt(gamma)``; at gamma = 1/3,
    ``alpha = 1/(1+e)`` and ``beta = sqrt(3) e / (1+e)``. This needs gamma <= 1/3: the block
    covariance has eigenvalue ``1 - 3 gamma`` along ``11^T`` (docs/method.md §4.2, §4.3).

    Global time: the flow lengths ``b_s - e_s`` are normalised to a partition of [0, 1]; stage 0
    owns the top piece ``[tau_lo_0, 1]``, the last stage ends at tau = 0, and neighbouring stages
    share their boundary exactly.

    Iterating a pyramid (``for stage in pyramid``, ``len``, ``pyramid[s]``) goes over its stages.

    Args:
        resolution: Full (last-stage) resolution in pixels; divisible by ``2**(S-1)``.
        num_stages: S >= 1. S = 1 is the plain single-resolution flow.
        gamma: Within-block anti-correlation of the renoising noise, in (0, 1/3].
        published_sign: Renoise with the published code's block-noise sign (see :func:`block_noise`).

    Raises:
        ValueError: If ``num_stages < 1``, ``resolution`` is not divisible by ``2**(S-1)``, or gamma
            is outside (0, 1/3].
    """

    resolution: int
    num_stages: int
    gamma: float = 1 / 3
    published_sign: bool = False
    stages: tuple[Stage, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {self.num_stages}")
        if self.resolution < 1 or self.resolution % 2 ** (self.num_stages - 1):
            raise ValueError(
                f"resolution must be a positive multiple of 2**(num_stages-1) = "
                f"{2 ** (self.num_stages - 1)}, got {self.resolution}"
            )
        _check_gamma(self.gamma)
        object.__setattr__(self, "stages", _stages(self.resolution, self.num_stages, self.gamma))

    def __len__(self) -> int:
        return self.num_stages

    def __iter__(self):
        return iter(self.stages)

    def __getitem__(self, index):
        return self.stages[index]

    def _check_member(self, stage: Stage) -> None:
        if not 0 <= stage.index < self.num_stages or self.stages[stage.index] != stage:
            raise ValueError(f"stage {stage.index} ({stage.resolution} px) is not a stage of this pyramid")

    def renoise(self, x_prev: Tensor, stage: Stage, noise: Tensor) -> Tensor:
        """Stage transition into ``stage``: ``alpha_s up(x_prev) + beta_s n_block`` (docs/method.md §4).

        If ``x_prev`` is the previous stage's end state ``(1 - e_{s-1}) x_end_prev + e_{s-1} eps``, the
        result is ``(1 - b_s) up(x_end_prev) + b_s eps'`` with white ``eps'``: the stage's training
        start.

        Args:
            x_prev: Previous-stage state, shape (B, C, H/2, W/2).
            stage: The stage being entered, one of this pyramid's with ``stage.index > 0``.
            noise: iid N(0, 1) at the new stage's shape (B, C, H, W).

        Returns:
            Stage-start state, shape (B, C, H, W).
        """
        if stage.index < 1:
            raise ValueError(f"renoise enters a stage with index > 0, got index {stage.index}")
        self._check_member(stage)
        up = upsample(x_prev)  # (B, C, H, W)
        if noise.shape != up.shape:
            raise ValueError(f"noise must have shape {tuple(up.shape)}, got {tuple(noise.shape)}")
        return stage.renoise_alpha * up + stage.renoise_beta * block_noise(
            noise, self.gamma, self.published_sign
        )

    def targets(self, x: Tensor, stage: Stage) -> tuple[Tensor, Tensor]:
        """Clean end and start images of a stage (docs/method.md §3.4).

        ``x_end = down^(S-1-s)(x)`` and ``x_start = up(down(x_end))``. Stage 0 starts from pure noise
        (``b_0 = 1``), so its ``x_start`` is multiplied by zero everywhere; it is returned as ``x_end``
        so that the coarsest resolution need not be even.

        Args:
            x: Clean full-resolution images, shape (B, C, H, W).
            stage: One of this pyramid's stages.

        Returns:
            ``(x_end, x_start)``, each (B, C, H / 2**(S-1-s), W / 2**(S-1-s)).
        """
        self._check_member(stage)
        x_end = downsample(x, 2 ** (self.num_stages - 1 - stage.index))  # (B, C, h, w)
        project = stage.projection
        return x_end, x_end if project is None else project(x_end)


def _check_image(x: Tensor, name: str = "x") -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")


def _check_factor(factor: int) -> None:
    if not isinstance(factor, int) or factor < 1 or factor & (factor - 1):
        raise ValueError(f"factor must be a positive power of 2, got {factor}")


def downsample(x: Tensor, factor: int) -> Tensor:
    """Average-pools ``factor x factor`` blocks.

    Args:
        x: Images, shape (B, C, H, W), H and W divisible by ``factor``.
        factor: Power of 2; 1 returns ``x`` itself.

    Returns:
        Shape (B, C, H/factor, W/factor).

    Raises:
        ValueError: For a non-4-D ``x``, a factor that is not a power of 2, or H, W not divisible.
    """
    _check_image(x)
    _check_factor(factor)
    b, c, h, w = x.shape
    if h % factor or w % factor:
        raise ValueError(f"H and W must be divisible by {factor}, got {tuple(x.shape)}")
    if factor == 1:
        return x
    blocks = x.reshape(b, c, h // factor, factor, w // factor, factor)
    return blocks.mean(dim=(3, 5))  # (B, C, H/f, W/f)


def upsample(x: Tensor, factor: int = 2) -> Tensor:
    """Nearest-neighbour upsampling: every pixel becomes a ``factor x factor`` block.

    Args:
        x: Images, shape (B, C, H, W).
        factor: Power of 2.

    Returns:
        Shape (B, C, H*factor, W*factor); ``downsample(upsample(x, f), f) == x``.
    """
    _check_image(x)
    _check_factor(factor)
    b, c, h, w = x.shape
    blocks = x[:, :, :, None, :, None].expand(b, c, h, factor, w, factor)
    return blocks.reshape(b, c, h * factor, w * factor)  # (B, C, H*f, W*f)


def _block_factor(gamma: float, published_sign: bool, dtype: torch.dtype, device) -> Tensor:
    # Symmetric square root L (L L^T = Sigma) of Sigma = lam_perp (I - P) + lam_one P, P = 11^T / 4.
    # Closed form, not torch.linalg.cholesky: at gamma = 1/3 Sigma is singular (lam_one = 0).
    if published_sign:  # docs/method.md §14.1: Sigma = (1 - g) I + g 11^T
        lam_perp, lam_one = 1.0 - gamma, 1.0 + 3.0 * gamma
    else:  # docs/method.md §4.1: Sigma = (1 + g) I - g 11^T
        lam_perp, lam_one = 1.0 + gamma, max(1.0 - 3.0 * gamma, 0.0)
    proj = torch.full((4, 4), 0.25, dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    root = math.sqrt(lam_perp) * (eye - proj) + math.sqrt(lam_one) * proj
    return root.to(dtype=dtype, device=device)


def block_noise(noise: Tensor, gamma: float = 1 / 3, published_sign: bool = False) -> Tensor:
    """Turns white noise into 2x2-block-correlated noise.

    Blocks are independent; inside each 2x2 block the four pixels have covariance
    ``(1 + gamma) I - gamma 11^T`` (variance 1, correlation ``-gamma``; docs/method.md §4, Pyramid Flow
    arXiv 2410.05954). With ``published_sign=True`` the off-diagonal sign is flipped, as in the
    published research code (docs/method.md §14.1): covariance ``(1 - gamma) I + gamma 11^T`` (variance 1,
    correlation ``+gamma``). After ``renoise`` that leaves the stage-start noise with the right
    per-pixel std ``b_s`` but within-block correlation ``2 gamma / (1 + gamma)`` (0.5 at
    gamma = 1/3), which training never sees. Kept only to reproduce the published behaviour.

    Args:
        noise: iid N(0, 1), shape (B, C, H, W), H and W even.
        gamma: Correlation magnitude, in (0, 1/3].
        published_sign: Use the published (wrong) sign.

    Returns:
        Block noise with the shape of ``noise``.
    """
    _check_image(noise, "noise")
    _check_gamma(gamma)
    b, c, h, w = noise.shape
    if h % 2 or w % 2:
        raise ValueError(f"noise H and W must be even, got {tuple(noise.shape)}")
    root = _block_factor(gamma, published_sign, noise.dtype, noise.device)
    z = noise.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)  # (B, C, h, w, 2, 2)
    n = z.reshape(b, c, h // 2, w // 2, 4) @ root.T  # (B, C, h, w, 4), h = H/2; Cov = L L^T
    n = n.reshape(b, c, h // 2, w // 2, 2, 2).permute(0, 1, 2, 4, 3, 5)  # (B, C, h, 2, w, 2)
    return n.reshape(b, c, h, w)


def assign_stages(batch_size: int, num_stages: int) -> Tensor:
    """Spreads a batch evenly over the stages: sample ``i`` goes to stage ``i % S``.

    Every stage gets ``floor(B/S)`` or ``ceil(B/S)`` samples; the caller processes each stage's
    group separately (their resolutions differ).

    Returns:
        Stage indices, LongTensor of shape (B,).
    """
    if batch_size < 1 or num_stages < 1:
        raise ValueError(f"need batch_size, num_stages >= 1, got {batch_size}, {num_stages}")
    return torch.arange(batch_size) % num_stages

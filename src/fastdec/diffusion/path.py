"""THE flow convention of fastdec (docs/method.md §1), for a plain path and for a pyramid stage path.

t = 0 is data, t = 1 is noise. The plain path is ``x_t = (1 - t) x + t eps`` with velocity
``v = eps - x`` and clean estimate ``x_hat = x_t - t v``.

A pyramid stage (docs/method.md §3.4) runs from a start level b (t = 1) to an end level e (t = 0):
``y_end = (1 - e) x_end + e eps``, ``y_start = (1 - b) x_start + b eps``,
``x_t = (1 - t) y_end + t y_start = a x_end + c x_start + d eps`` with
``a = (1 - t)(1 - e)``, ``c = t (1 - b)``, ``d = (1 - t) e + t b`` (d is the noise level of x_t), and
velocity ``v = y_start - y_end``. ``x_start = P x_end`` where ``P`` (down then up-sample) is a
projection. The plain path is the stage with b = 1, e = 0. The conversions between a velocity and a
clean estimate are derived in docs/method.md §5.
"""

from collections.abc import Callable

import torch


def _bcast(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.ndim - 1))) if t.ndim else t


def coefficients(t, start: float = 1.0, end: float = 0.0):
    """Stage path coefficients (a, c, d) with ``x_t = a x_end + c x_start + d eps``; t a float or a tensor."""
    a = (1 - t) * (1 - end)
    c = t * (1 - start)
    d = (1 - t) * end + t * start
    return a, c, d


def _coefficients(t, start: float, end: float, like: torch.Tensor):
    """(a, c, d) broadcastable against ``like``: Python floats for a float t, else tensors computed in
    t's dtype and cast to ``like``'s, one value per sample for a (B,) t."""
    if not torch.is_tensor(t):
        return coefficients(t, start, end)
    return tuple(_bcast(v, like) for v in coefficients(t, start, end))


def point(x_end, x_start, eps, t, start: float = 1.0, end: float = 0.0) -> torch.Tensor:
    """``x_t = a x_end + c x_start + d eps``: the point at time t (a float or (B,)) of a stage path."""
    a, c, d = _coefficients(t, start, end, x_end)
    return a * x_end + c * x_start + d * eps


def velocity(x_end, x_start, eps, start: float = 1.0, end: float = 0.0) -> torch.Tensor:
    """The constant velocity of a stage path, ``v = (1 - b) x_start - (1 - e) x_end + (b - e) eps``."""
    return (1 - start) * x_start - (1 - end) * x_end + (start - end) * eps


def noise(x_t, x_end, x_start, t, start: float = 1.0, end: float = 0.0, min_noise: float = 0.0):
    """The eps of :func:`point` given x_t and both clean ends: ``(x_t - a x_end - c x_start) / d``, d
    floored at ``min_noise``."""
    a, c, d = _coefficients(t, start, end, x_t)
    d = d.clamp_min(min_noise) if torch.is_tensor(d) else max(d, min_noise)
    return (x_t - a * x_end - c * x_start) / d


def interpolate(x: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    """The plain path: ``x_t = (1 - t) x + t eps``; t a float or (B,)."""
    return point(x, x, eps, t)


def velocity_target(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The plain path's velocity ``v = eps - x``."""
    return velocity(x, x, eps)


def velocity_from_clean(
    x_t: torch.Tensor,
    x_end: torch.Tensor,
    t,
    start: float = 1.0,
    end: float = 0.0,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    min_noise: float = 0.05,
) -> torch.Tensor:
    """The velocity implied by a clean estimate of the stage end (x-prediction read as velocity).

    ``eps_hat = (x_t - a x_end - c P x_end) / d`` then ``v = (1 - b) P x_end - (1 - e) x_end +
    (b - e) eps_hat``. d is floored at ``min_noise`` (as JiT does for x-prediction) so the velocity
    stays finite at the data end; on the plain path, one Euler step from t to 0 then returns x_end
    exactly whenever t >= min_noise.
    """
    x_start = project(x_end) if project is not None else x_end
    eps = noise(x_t, x_end, x_start, t, start, end, min_noise)
    return velocity(x_end, x_start, eps, start, end)


def clean_from_velocity(
    x_t: torch.Tensor,
    v: torch.Tensor,
    t,
    start: float = 1.0,
    end: float = 0.0,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The clean stage end x_end implied by a velocity (inverse of :func:`velocity_from_clean`).

    Eliminating eps gives ``(b - e) x_t - d v = b (1 - e) x_end - e (1 - b) P x_end``. Split
    ``x_end = P x_end + (I - P) x_end``: ``P x_end = P r / (b - e)`` and
    ``(I - P) x_end = (I - P) r / (b (1 - e))`` with r the left side. ``project=None`` means
    ``x_start = x_end``. On the plain path this is ``x_t - t v``.
    """
    _, _, d = _coefficients(t, start, end, x_t)
    r = (start - end) * x_t - d * v
    if project is None:  # x_start = x_end
        return r / (start - end)
    if start == 1.0:  # x_start does not enter the path
        return r / (1 - end)
    pr = project(r)
    return pr / (start - end) + (r - pr) / (start * (1 - end))


def sigmoid_weight(noise: torch.Tensor, bias: float = -3.0, clamp: float = 1e-4) -> torch.Tensor:
    """Sigmoid loss weighting (Kingma & Gao 2023; docs/method.md §6) at noise level ``noise``.

    ``w = exp(b) sigmoid(lam - b) / (t (1 - t))`` with log-SNR ``lam = 2 log((1 - t) / t)``; t is
    clamped to [clamp, 1 - clamp] so the weight is finite at both ends (the published code is NaN at
    t = 1, docs/method.md §14.2).
    """
    t = noise.clamp(clamp, 1 - clamp)
    lam = 2 * (torch.log1p(-t) - torch.log(t))
    return torch.exp(torch.as_tensor(bias)) * torch.sigmoid(lam - bias) / (t * (1 - t))

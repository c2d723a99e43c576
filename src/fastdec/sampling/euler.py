"""Euler ODE solver: a pure function of (velocity function, initial state, time grid)."""

from collections.abc import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euler_solve(velocity: VelocityFn, x: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` along ``times`` (descending, e.g. 1 -> 0).

    Args:
        velocity: ``velocity(x, t) -> (B, ...)`` with t a (B,) tensor; conditioning is bound by the caller.
        x: the state at ``times[0]``, (B, ...).
        times: (K + 1,) time grid; K network calls.

    Returns:
        The state at ``times[-1]``.
    """
    for t_cur, t_next in zip(times[:-1], times[1:], strict=True):
        t = torch.full((x.shape[0],), float(t_cur), device=x.device, dtype=x.dtype)
        x = x + (t_next - t_cur).item() * velocity(x, t)
    return x

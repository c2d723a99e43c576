"""Euler ODE solver: a pure function of (velocity function, initial state, Euler steps)."""

from collections.abc import Callable, Sequence

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euler_solve(velocity: VelocityFn, x: torch.Tensor, steps: Sequence[tuple[float, float]]) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` with ``x <- x + dt velocity(x, t)`` for each step.

    Args:
        velocity: ``velocity(x, t) -> (B, ...)`` with t a (B,) tensor; conditioning is bound by the caller.
        x: the state at the first step's time, (B, ...).
        steps: ``(t, dt)`` per step, e.g. :func:`fastdec.diffusion.timesteps.euler_steps` (descending
            time, dt < 0); K steps are K network calls.

    Returns:
        The state at the time after the last step.
    """
    for t_cur, dt in steps:
        t = torch.full((x.shape[0],), t_cur, device=x.device, dtype=x.dtype)
        x = x + dt * velocity(x, t)
    return x

"""Training-time sampling of flow times and sampling-time grids (docs/method.md §6, §7)."""

import torch


def sample_times(kind: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n training times in (0, 1): ``"logit_normal"`` (t = sigmoid(N(0, 1)), SD3) or ``"uniform"``."""
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    if kind == "uniform":
        return torch.rand(n, generator=generator)
    raise ValueError(f"unknown t_sampling {kind!r}; expected 'logit_normal' or 'uniform'")


def euler_grid(steps: int, start: float = 1.0) -> torch.Tensor:
    """Uniform time grid from ``start`` (1: noise) to 0 (data): ``steps + 1`` points. A start below 1
    continues a path from its middle (the distillation teacher on a stage path)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start must be in (0, 1], got {start}")
    return torch.linspace(start, 0.0, steps + 1)


EulerSteps = tuple[tuple[float, float], ...]  # (t, dt) of each Euler step of one stage


def euler_steps(steps: int, start: float = 1.0) -> EulerSteps:
    """The Euler steps of :func:`euler_grid` as plain numbers: ``(t_cur, t_next - t_cur)`` per step, the
    float32 values of the grid. Plain numbers, so that a traced graph (ONNX export) takes them as
    constants."""
    grid = euler_grid(steps, start)
    return tuple(zip(grid[:-1].tolist(), (grid[1:] - grid[:-1]).tolist(), strict=True))


def euler_schedule(steps_per_stage, start: float = 1.0) -> tuple[EulerSteps, ...]:
    """Per-stage Euler steps for the sampler: ``steps_per_stage[i]`` uniform steps over stage i's local
    time, the first stage from ``start`` (below 1: continuing from the middle of its path), every later
    stage from 1."""
    return tuple(euler_steps(k, start if i == 0 else 1.0) for i, k in enumerate(steps_per_stage))

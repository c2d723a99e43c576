"""Training-time sampling of flow times and sampling-time grids."""

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


def steps_per_stage(steps, num_stages: int) -> tuple[int, ...]:
    """Normalise a step setting to one count per stage: an int or a 1-tuple repeats for every stage."""
    steps = (steps,) if isinstance(steps, int) else tuple(steps)
    if len(steps) == 1:
        steps = steps * num_stages
    if len(steps) != num_stages:
        raise ValueError(f"got {len(steps)} step counts for {num_stages} stages: {steps}")
    if any(k < 1 for k in steps):
        raise ValueError(f"every stage needs at least one step, got {steps}")
    return steps


def split_total_steps(total: int, num_stages: int) -> tuple[int, ...]:
    """Split a total of T steps over S stages as evenly as possible, extra steps to the coarse stages."""
    if total < num_stages:
        raise ValueError(f"total steps {total} is fewer than the {num_stages} stages")
    base, extra = divmod(total, num_stages)
    return tuple(base + (1 if s < extra else 0) for s in range(num_stages))

"""The coarse-to-fine sampler (docs/method.md §7): the one place where stages, transitions and Euler
steps are put together::

    x = the first stage's start state            (noise n_0 when decoding starts at stage 0)
    for each stage s from the first on:
        x = alpha_s up(x) + beta_s block(n_s)    (every stage after the first, docs/method.md §4)
        x = Euler steps of stage s on v_s        (its part of the schedule)

``Tokenizer.decode`` (K steps per stage; a one-pass decoder is one step from zero), the ONNX graph of a
one-step student, the distillation teacher (which starts at a local time u on the path of a stage k)
and the student's rollout (one step per stage) differ only in the velocity, the schedule and where
they start. With one stage this is plain Euler sampling from noise.
"""

from collections.abc import Callable, Sequence

import torch

from fastdec.diffusion.pyramid import Pyramid, Stage
from fastdec.diffusion.timesteps import EulerSteps
from fastdec.sampling.euler import VelocityFn, euler_solve


def sample(
    velocity: Callable[[Stage], VelocityFn],
    pyramid: Pyramid,
    x: torch.Tensor,
    noises: Sequence[torch.Tensor],
    schedule: Sequence[EulerSteps],
    *,
    first: int = 0,
    inputs: list | None = None,
    outputs: list | None = None,
) -> torch.Tensor:
    """Run stages ``first .. S-1`` of ``pyramid`` from ``x``.

    Args:
        velocity: ``velocity(stage)`` -> ``v(x, t_loc)`` on that stage, with z, guidance and prior bound.
        pyramid: the stages and the transitions between them.
        x: the first stage's start state (B, C, r, r) at the first time of its schedule: pure noise at
            the start of stage 0, else a state on the stage's path (the distillation teacher).
        noises: the standard-normal noise of each later stage's transition, (B, C, r_s, r_s) each.
        schedule: each stage's Euler steps, from :func:`fastdec.diffusion.timesteps.euler_schedule`.
        first: index of the first stage to run.
        inputs, outputs: if given, every stage's start state (after its transition) and end state are
            appended to them.

    Returns:
        The last stage's end state, (B, C, R, R).
    """
    stages = pyramid.stages[first:]
    if not stages or len(schedule) != len(stages) or len(noises) != len(stages) - 1:
        raise ValueError(
            f"stages {first}..{len(pyramid) - 1} need a schedule for each ({len(schedule)} given) and a "
            f"transition noise for each after the first ({len(noises)} given)"
        )
    for i, (stage, steps) in enumerate(zip(stages, schedule, strict=True)):
        if i > 0:
            x = pyramid.renoise(x, stage, noises[i - 1])
        if inputs is not None:
            inputs.append(x)
        x = euler_solve(velocity(stage), x, steps)
        if outputs is not None:
            outputs.append(x)
    return x


def stage_noises(
    seeds: Sequence[int], stages: Sequence[Stage], channels: int = 3, device=None, dtype=None
) -> list[torch.Tensor]:
    """Per-sample seeded noise for every stage: sample i draws from its own generator, so an image
    decoded alone equals the same image decoded inside a batch (EDM2's StackedRandomGenerator)."""
    per_sample = []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        per_sample.append([torch.randn(channels, s.resolution, s.resolution, generator=g) for s in stages])
    return [
        torch.stack([sample[i] for sample in per_sample]).to(device=device, dtype=dtype)
        for i in range(len(stages))
    ]

"""Coarse-to-fine decoding: a driver that composes stage transitions and a per-stage solver.

``x <- solve(stage, renoise(up(x)))`` for each stage (docs/method.md §7). The multi-step teacher, the one-step
student and mixed decoding differ only in the ``solve`` passed in; with one stage this is plain
sampling from noise.
"""

from collections.abc import Callable, Sequence

import torch

from fastdec.diffusion.pyramid import Stage, renoise

StageSolver = Callable[[Stage, torch.Tensor], torch.Tensor]


def multiscale_sample(
    stages: Sequence[Stage],
    solve: StageSolver,
    noises: Sequence[torch.Tensor],
    *,
    previous: torch.Tensor | None = None,
    gamma: float = 1 / 3,
    published_sign: bool = False,
    trace: list | None = None,
) -> torch.Tensor:
    """Decode coarse to fine.

    Args:
        stages: the stage specs to run, in order (usually all of them, coarsest first).
        solve: ``solve(stage, x_start) -> x_end`` at that stage's resolution.
        noises: one standard-normal tensor per stage at its resolution, (B, C, h_s, w_s): the
            initial state of stage 0, else the block-noise source of the transition into the stage.
        previous: the output of the stage before ``stages[0]`` when decoding starts mid-pyramid.
        gamma, published_sign: block-noise settings (see :func:`fastdec.diffusion.pyramid.renoise`).
        trace: if given, every stage's output is appended to it.

    Returns:
        The last stage's output, (B, C, H, W).
    """
    if len(noises) != len(stages):
        raise ValueError(f"need one noise tensor per stage: {len(stages)} stages, {len(noises)}")
    if (previous is None) != (stages[0].index == 0):
        raise ValueError("decoding from stage 0 starts from noise; a later stage needs `previous`")
    x = previous
    for stage, noise in zip(stages, noises, strict=True):
        x = noise if x is None else renoise(x, stage, noise, gamma=gamma, published_sign=published_sign)
        x = solve(stage, x)
        if trace is not None:
            trace.append(x)
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

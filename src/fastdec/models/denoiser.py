"""Parameterisation: how a backbone's output is read on a stage path (EDM2's Precond split).

The backbone maps (x_t, tau, z) to a tensor. :class:`VelocityModel` reads it as the stage velocity
(``"v"``, the paper) or as the clean stage end (``"x"``, converted to a velocity through
:func:`fastdec.diffusion.path.velocity_from_clean`), so samplers and losses only ever see velocities.
"""

import torch
from torch import nn

from fastdec.diffusion import path
from fastdec.diffusion.pyramid import Stage, downsample, global_time, upsample


def stage_projection(stage: Stage):
    """``P``: x_end -> x_start (down then nearest up by 2) for a stage after the first, else None."""
    if stage.index == 0:
        return None
    return lambda x: upsample(downsample(x, 2), 2)


class VelocityModel(nn.Module):
    """Wraps a backbone as a velocity field on each stage's local time.

    Args:
        net: backbone ``net(x, tau, z) -> (B, C, H, W)``.
        parameterization: ``"v"`` or ``"x"``.
        prior: optional ``prior(z, R, R) -> (B, C, R, R)`` added to an x-prediction (downsampled to
            the stage): the linear decoder of ``latent_skip``.
    """

    resolution: int = 0  # full resolution; set by the owner when a prior is used

    def __init__(self, net: nn.Module, parameterization: str = "v", prior: nn.Module | None = None):
        super().__init__()
        if parameterization not in ("v", "x"):
            raise ValueError(f"unknown parameterization {parameterization!r}; expected 'v' or 'x'")
        if prior is not None and parameterization != "x":
            raise ValueError("a linear prior (latent_skip) needs parameterization 'x'")
        self.net = net
        self.parameterization = parameterization
        self.prior = prior

    def predict(self, x_t: torch.Tensor, t_loc: torch.Tensor, z: torch.Tensor, stage: Stage):
        """(velocity, clean stage-end estimate), both (B, C, h, w), at local time ``t_loc`` (B,)."""
        out = self.net(x_t, global_time(stage, t_loc), z)  # (B, C, h, w)
        project = stage_projection(stage)
        if self.parameterization == "v":
            clean = path.clean_from_velocity(x_t, out, t_loc, stage.start, stage.end, project)
            return out, clean
        if self.prior is not None:  # the network predicts the residual over the linear decode of z
            full = self.prior(z, self.resolution, self.resolution)  # (B, C, R, R)
            out = out + downsample(full, self.resolution // x_t.shape[-1])
        velocity = path.velocity_from_clean(x_t, out, t_loc, stage.start, stage.end, project)
        return velocity, out

    def forward(self, x_t: torch.Tensor, t_loc: torch.Tensor, z: torch.Tensor, stage: Stage) -> torch.Tensor:
        """Velocity at local time ``t_loc`` (B,) of ``stage`` for x_t (B, C, h, w) and z (B, L, d)."""
        return self.predict(x_t, t_loc, z, stage)[0]

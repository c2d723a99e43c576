"""Parameterisation: how a backbone's output is read on a stage path (EDM2's Precond split).

The backbone maps (x_t, tau, z) to a tensor. :class:`VelocityModel` reads it as the stage velocity
(``"v"``, the paper) or as the clean stage end (``"x"``, converted to a velocity through
:meth:`fastdec.diffusion.pyramid.Stage.velocity_from_clean`), so samplers and losses only ever see velocities.
"""

import torch
from torch import nn

from fastdec.diffusion.pyramid import Stage, downsample


class VelocityModel(nn.Module):
    """Wraps a backbone as a velocity field on each stage's local time.

    Args:
        net: backbone ``net(x, tau, z) -> (B, C, H, W)``, or ``net(x, tau, z, prior=p)`` with
            ``prior_input``.
        parameterization: ``"v"`` or ``"x"``.
        prior: optional ``prior(z, R, R) -> (B, C, R, R)`` (:mod:`fastdec.models.prior`: the linear
            decoder of ``latent_skip`` or a one-pass decoder): the x-prediction becomes a residual over
            it (downsampled to the stage).
        blend: with a prior, precondition as in :meth:`_precondition` rather than adding ``out`` to it.
        prior_input: also give the net the prior's decode at the stage resolution (``prior_cond``).
        space: what the diffusion runs on (``model.diffusion_space``, docs/method.md §11.5):
            ``"image"``, or the prior's residual mapped to unit variance per pixel by a fixed 3 x 3
            colour map, ``r = residual_whitening (x - prior(z))`` and back ``x = prior(z) +
            residual_basis r``: one scale for all colours (``"residual"``) or each axis of the
            residual's colour eigenbasis scaled on its own (``"residual-whitened"``). The network then
            predicts the residual directly.
    """

    resolution: int = 0  # full resolution; set by the owner when a prior is used

    def __init__(
        self,
        net: nn.Module,
        parameterization: str = "v",
        prior: nn.Module | None = None,
        blend: bool = False,
        prior_input: bool = False,
        space: str = "image",
    ):
        super().__init__()
        if parameterization not in ("v", "x"):
            raise ValueError(f"unknown parameterization {parameterization!r}; expected 'v' or 'x'")
        if prior is not None and parameterization != "x":
            raise ValueError("a linear prior (latent_skip) needs parameterization 'x'")
        if prior_input and prior is None:
            raise ValueError("prior_input needs a prior")
        if space not in ("image", "residual", "residual-whitened"):
            raise ValueError(f"unknown diffusion space {space!r}")
        if space != "image" and prior is None:
            raise ValueError("residual diffusion needs a prior")
        self.net = net
        self.parameterization = parameterization
        self.prior = prior
        self.blend = blend
        self.prior_input = prior_input
        self.space = space
        if space != "image":  # fitted on training crops by fit_residual_scale
            self.register_buffer("residual_basis", torch.eye(3))
            self.register_buffer("residual_whitening", torch.eye(3))

    @torch.no_grad()
    def fit_residual_scale(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Fit the colour map on training crops (N, 3, R, R) and their latents so that the diffused
        residual has unit variance: its RMS times the identity (``"residual"``), or its colour
        eigenbasis times the square roots of the eigenvalues (``"residual-whitened"``). Returns the
        RMS along each axis of the map (3,)."""
        residual = (images - self.prior_image(z)).float().transpose(0, 1).flatten(1)  # (3, N R R)
        if self.space == "residual":
            vectors, rms = torch.eye(3), residual.pow(2).mean().sqrt().expand(3)
        else:
            values, vectors = torch.linalg.eigh(residual @ residual.T / residual.shape[1])  # second moment
            rms = values.clamp_min(1e-8).sqrt()
        self.residual_basis.copy_(vectors * rms)
        self.residual_whitening.copy_(vectors.T / rms[:, None])
        return rms

    def to_target(self, images: torch.Tensor, prior_image: torch.Tensor | None) -> torch.Tensor:
        """Images (B, C, R, R) -> what the diffusion runs on: the images, or the mapped residual."""
        if self.space == "image":
            return images
        return torch.einsum("ij,bjhw->bihw", self.residual_whitening, images - prior_image)

    def to_image(self, sample: torch.Tensor, prior_image: torch.Tensor | None) -> torch.Tensor:
        """Inverse of :meth:`to_target`: a sample (B, C, h, w) at any stage resolution -> images (the
        full-resolution prior is average-pooled to h)."""
        if self.space == "image":
            return sample
        prior = downsample(prior_image, prior_image.shape[-1] // sample.shape[-1])
        return prior + torch.einsum("ij,bjhw->bihw", self.residual_basis, sample)

    def prior_image(self, z: torch.Tensor) -> torch.Tensor | None:
        """The prior's decode of z at full resolution (B, C, R, R), or None without a prior. It depends on
        z only: a sampler computes it once per decode and passes it to every call as ``prior_image``."""
        return None if self.prior is None else self.prior(z, self.resolution, self.resolution)

    def predict(
        self,
        x_t: torch.Tensor,
        t_loc: torch.Tensor,
        z: torch.Tensor,
        stage: Stage,
        prior_image: torch.Tensor | None = None,
    ):
        """(velocity, clean stage-end estimate), both (B, C, h, w), at local time ``t_loc`` (B,).
        ``prior_image``: :meth:`prior_image` of z if already computed."""
        p = None
        if self.prior is not None:
            full = self.prior(z, self.resolution, self.resolution) if prior_image is None else prior_image
            p = downsample(full, self.resolution // x_t.shape[-1])  # (B, C, h, w)
        cond = {"prior": p} if self.prior_input else {}
        out = self.net(x_t, stage.global_time(t_loc), z, **cond)  # (B, C, h, w)
        if self.parameterization == "v":
            return out, stage.clean_from_velocity(x_t, out, t_loc)
        if p is not None and self.space == "image":
            out = self._precondition(out, p, x_t, t_loc, stage)
        return stage.velocity_from_clean(x_t, out, t_loc), out

    def _precondition(self, out, p, x_t, t_loc, stage: Stage):
        """x-prediction around two noisy views of x_end: the linear decode p of z (error variance
        s2 = the PCA residual) and x_t ~ alpha x_end + d eps (alpha = a + c, ignoring that c
        multiplies the 2x2 block mean). Their least-squares blend is
        ``x_lin = (s2 alpha x_t + d^2 p) / (s2 alpha^2 + d^2)`` with error variance
        ``s2 d^2 / (s2 alpha^2 + d^2)``; the network adds a residual scaled to that error
        (EDM-style c_skip / c_out), so it starts as the best linear denoiser."""
        if not self.blend:
            return p + out
        a, c, d = (v.reshape(-1, 1, 1, 1) for v in stage.coefficients(t_loc))
        alpha, s2 = a + c, self.prior.residual_var
        denom = s2 * alpha**2 + d**2
        x_lin = (s2 * alpha * x_t + d**2 * p) / denom
        return x_lin + (d / denom.sqrt()) * out

    def forward(
        self, x_t: torch.Tensor, t_loc: torch.Tensor, z: torch.Tensor, stage: Stage, prior_image=None
    ) -> torch.Tensor:
        """Velocity at local time ``t_loc`` (B,) of ``stage`` for x_t (B, C, h, w) and z (B, L, d)."""
        return self.predict(x_t, t_loc, z, stage, prior_image)[0]

"""Flow-matching loss on the stage paths of a (possibly single-stage) pyramid.

With one stage this is the plain loss of docs/method.md §6: ``|v_hat - (eps - x)|^2`` at t ~ logit-normal.
With S stages (docs/method.md §3.6) each sample of the batch is assigned a stage (evenly), its stage pair
(x_end, x_start) is built from the image, and the target is the stage velocity ``y_start - y_end``.
Stage, time and noise of a sample depend only on its global index and its own generator
(:mod:`fastdec.losses.draws`), so a batch split over processes draws what it draws whole.
"""

import torch

from fastdec.diffusion import path
from fastdec.diffusion.pyramid import Pyramid
from fastdec.diffusion.timesteps import sample_times
from fastdec.losses.draws import SampleDraws, as_draws


class FlowMatchingLoss:
    """Per-sample flow-matching loss with an optional perceptual term on the clean estimate.

    Args:
        pyramid: the decoder's stages (one stage = single resolution).
        t_sampling: ``"logit_normal"`` or ``"uniform"`` over each stage's local time.
        sigmoid_bias: if set, weight the velocity error by :func:`fastdec.diffusion.path.sigmoid_weight`
            at the noise level d of x_t (well defined on every stage; equals t for one stage).
        perceptual: a per-sample distance ``(x, y) -> (B,)`` or None.
        perceptual_weight: its weight.
        perceptual_start_stage: first stage whose samples get the perceptual term (-1 = last only).
        loss_space: ``"v"`` (docs/method.md §6: velocity error) or ``"x"`` (error of the clean stage-end
            estimate; for x-prediction this drops the 1/d^2 weight that v-space puts on low noise).
    """

    def __init__(
        self,
        pyramid: Pyramid,
        *,
        t_sampling: str = "logit_normal",
        sigmoid_bias: float | None = None,
        perceptual=None,
        perceptual_weight: float = 0.1,
        perceptual_start_stage: int = -1,
        loss_space: str = "v",
    ):
        if loss_space not in ("v", "x"):
            raise ValueError(f"loss_space must be 'v' or 'x', got {loss_space!r}")
        self.loss_space = loss_space
        self.pyramid = pyramid
        self.t_sampling = t_sampling
        self.sigmoid_bias = sigmoid_bias
        self.perceptual = perceptual
        self.perceptual_weight = perceptual_weight
        start = perceptual_start_stage % len(pyramid)
        if not -len(pyramid) <= perceptual_start_stage < len(pyramid):
            raise ValueError(
                f"perceptual_start_stage {perceptual_start_stage} out of range for {len(pyramid)} stages"
            )
        self.perceptual_start_stage = start

    def __call__(self, decoder, x: torch.Tensor, z: torch.Tensor, generator: torch.Generator | SampleDraws):
        """Loss for images x (B, 3, H, W) and latents z (B, L, d).

        ``generator``: the batch's :class:`SampleDraws` (or a plain generator standing for its seed).

        Returns:
            (loss (B,), terms): per-sample loss, and named per-sample terms for logging.
        """
        num_stages = len(self.pyramid)
        draws = as_draws(generator, x.shape[0])
        assigned = draws.indices % num_stages  # (B,) assign_stages's rule (i % S) on the global index
        loss = x.new_zeros(x.shape[0])
        mse_all = x.new_zeros(x.shape[0])
        perc_all = x.new_zeros(x.shape[0])
        prior = decoder.prior_image(z)  # (B, 3, R, R) or None: depends on z only
        data = decoder.to_target(x, prior)  # the image, or the prior's scaled residual
        for stage in self.pyramid:
            members = (assigned == stage.index).nonzero().squeeze(1)  # (b,) on the CPU, like the draws
            if members.numel() == 0:
                continue
            idx = members.to(x.device)
            x_end, x_start = self.pyramid.targets(data[idx], stage)
            group = draws.subset(members)
            t_loc = torch.cat([sample_times(self.t_sampling, 1, g) for g in group.sample_generators]).to(x)
            eps = group.randn(*x_end.shape[1:]).to(x)  # (b, 3, r, r)
            x_t, target = stage.training_pair(x_end, x_start, t_loc, eps)
            p = None if prior is None else prior[idx]
            v_hat, clean = decoder.predict(x_t, t_loc, z[idx], stage, p)
            if self.loss_space == "v":
                mse = (v_hat.float() - target).pow(2).mean(dim=(1, 2, 3))  # (b,)
            else:  # error of the clean stage end: every noise level counts alike
                mse = (clean.float() - x_end).pow(2).mean(dim=(1, 2, 3))  # (b,)
            if self.sigmoid_bias is not None:
                level = stage.coefficients(t_loc)[2]  # d, the noise level of x_t
                mse = mse * path.sigmoid_weight(level, self.sigmoid_bias)
            stage_loss = mse
            if self.perceptual is not None and stage.index >= self.perceptual_start_stage:
                perc = self.perceptual(decoder.to_image(clean.float(), p), decoder.to_image(x_end, p))  # (b,)
                perc_all = perc_all.index_copy(0, idx, perc)
                stage_loss = stage_loss + self.perceptual_weight * perc
            loss = loss.index_copy(0, idx, stage_loss)
            mse_all = mse_all.index_copy(0, idx, mse)
        terms = {"mse": mse_all}
        if self.perceptual is not None:
            terms["perceptual"] = perc_all
        return loss, terms

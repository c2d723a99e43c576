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
from fastdec.losses.adversarial import add_generator_term, generator_hinge
from fastdec.losses.draws import SampleDraws, as_draws


class FlowMatchingLoss:
    """Per-sample flow-matching loss with optional perceptual and adversarial terms on the clean estimate.

    Args:
        pyramid: the decoder's stages (one stage = single resolution).
        t_sampling: ``"logit_normal"`` or ``"uniform"`` over each stage's local time.
        sigmoid_bias: if set, weight the velocity error by :func:`fastdec.diffusion.path.sigmoid_weight`
            at the noise level d of x_t (well defined on every stage; equals t for one stage).
        perceptual: a per-sample distance ``(x, y) -> (B,)`` or None.
        perceptual_weight: its weight.
        perceptual_start_stage: first stage whose samples get the detail terms (perceptual and
            adversarial) on their clean estimate, as an image (-1 = last stage only).
        adversarial_weight: weight of the hinge generator loss of a discriminator on those images,
            scaled by the VQGAN adaptive weight on the decoder's last layer (0 = none; as in
            diffusion decoders trained with a GAN term on their one-step estimate, e.g. epsilon-VAE).
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
        adversarial_weight: float = 0.0,
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
        self.adversarial_weight = adversarial_weight
        if not -len(pyramid) <= perceptual_start_stage < len(pyramid):
            raise ValueError(
                f"perceptual_start_stage {perceptual_start_stage} out of range for {len(pyramid)} stages"
            )
        self.perceptual_start_stage = perceptual_start_stage % len(pyramid)

    def _stage_batches(self, decoder, x, z, draws: SampleDraws, stages):
        """For each stage in ``stages`` with samples: (stage, idx, x_end, target, t_loc, prior, v_hat,
        clean); a sample's stage, time and noise depend only on its draws."""
        assigned = draws.indices % len(self.pyramid)  # (B,) assign_stages's rule (i % S) on the global index
        prior = decoder.prior_image(z)  # (B, 3, R, R) or None: depends on z only
        data = decoder.to_target(x, prior)  # the image, or the prior's scaled residual
        for stage in stages:
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
            yield stage, idx, x_end, target, t_loc, p, v_hat, clean

    def _detail_stages(self):
        return [s for s in self.pyramid if s.index >= self.perceptual_start_stage]

    def detail_images(self, decoder, x: torch.Tensor, z: torch.Tensor, generator) -> tuple:
        """The images the adversarial term judges, for a discriminator update: (real, fake), each
        (n, 3, r, r) -- the stage-end images and the decoder's clean estimates of them, for the samples
        of the detail stages (one resolution: the last stage unless ``perceptual_start_stage`` says
        otherwise, then they are stacked only if their sizes agree)."""
        draws = as_draws(generator, x.shape[0]).fork()  # the loss's own call then draws the same
        real, fake = [], []
        for _, _, x_end, _, _, p, _, clean in self._stage_batches(
            decoder, x, z, draws, self._detail_stages()
        ):
            real.append(decoder.to_image(x_end, p))
            fake.append(decoder.to_image(clean.float(), p))
        if len({r.shape[-1] for r in real}) > 1:
            raise ValueError("an adversarial term on stages of several sizes is not supported")
        return torch.cat(real), torch.cat(fake)

    def __call__(self, decoder, x: torch.Tensor, z: torch.Tensor, generator, discriminator=None):
        """Loss for images x (B, 3, H, W) and latents z (B, L, d).

        ``generator``: the batch's :class:`SampleDraws` (or a plain generator standing for its seed);
        ``discriminator``: needed iff the adversarial weight is > 0.

        Returns:
            (loss (B,), terms): per-sample loss, and named per-sample terms for logging.
        """
        draws = as_draws(generator, x.shape[0])
        loss = x.new_zeros(x.shape[0])
        mse_all = x.new_zeros(x.shape[0])
        perc_all = x.new_zeros(x.shape[0])
        gan_all = x.new_zeros(x.shape[0])
        for stage, idx, x_end, target, t_loc, p, v_hat, clean in self._stage_batches(
            decoder, x, z, draws, self.pyramid
        ):
            if self.loss_space == "v":
                mse = (v_hat.float() - target).pow(2).mean(dim=(1, 2, 3))  # (b,)
            else:  # error of the clean stage end: every noise level counts alike
                mse = (clean.float() - x_end).pow(2).mean(dim=(1, 2, 3))  # (b,)
            if self.sigmoid_bias is not None:
                level = stage.coefficients(t_loc)[2]  # d, the noise level of x_t
                mse = mse * path.sigmoid_weight(level, self.sigmoid_bias)
            stage_loss = mse
            detail = self.perceptual is not None or self.adversarial_weight > 0
            if detail and stage.index >= self.perceptual_start_stage:
                image = decoder.to_image(clean.float(), p)
                if self.perceptual is not None:
                    perc = self.perceptual(image, decoder.to_image(x_end, p))  # (b,)
                    perc_all = perc_all.index_copy(0, idx, perc)
                    stage_loss = stage_loss + self.perceptual_weight * perc
                if self.adversarial_weight > 0:
                    gan_all = gan_all.index_copy(0, idx, generator_hinge(discriminator(image)))
            loss = loss.index_copy(0, idx, stage_loss)
            mse_all = mse_all.index_copy(0, idx, mse)
        terms = {"mse": mse_all}
        if self.perceptual is not None:
            terms["perceptual"] = perc_all
        if self.adversarial_weight > 0:
            last = decoder.net.last_layer.weight
            loss, more = add_generator_term(loss, gan_all, last, self.adversarial_weight)
            terms.update(more)
        return loss, terms

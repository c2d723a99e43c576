"""Step functions: what one optimiser step computes, handed to :func:`fastdec.training.loop.train_loop`."""

import torch

from fastdec.losses.adversarial import discriminator_hinge
from fastdec.losses.draws import SampleDraws, as_draws
from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.training.distributed import average_gradients


class TokenizerStep:
    """End-to-end tokenizer training: encode, drop z to the null latent with probability
    ``cfg_dropout`` (classifier-free guidance), flow-matching loss on the decoder (+ the VQ loss)."""

    def __init__(self, loss: FlowMatchingLoss, cfg_dropout: float = 0.1):
        if not 0.0 <= cfg_dropout < 1.0:
            raise ValueError(f"cfg_dropout must be in [0, 1), got {cfg_dropout}")
        self.loss = loss
        self.cfg_dropout = cfg_dropout

    def __call__(self, model, images: torch.Tensor, generator: torch.Generator | SampleDraws):
        draws = as_draws(generator, images.shape[0])
        z, vq = model.encoder.bottleneck(images)  # (B, L, d); the VQ output or None
        if self.cfg_dropout > 0:
            drop = draws.rand() < self.cfg_dropout  # (B,) per sample, so any split of the batch agrees
            z = torch.where(drop[:, None, None].to(z.device), model.z_null.to(z.dtype), z)
        loss, terms = self.loss(model.decoder, images, z, draws)
        if vq is not None:  # codebook + commitment loss; codebook usage and perplexity are logged
            loss, terms = loss + vq.loss, {**terms, **vq.terms}
        return loss, terms

    def to(self, device) -> "TokenizerStep":
        """Move the loss's perceptual network (if any) to ``device``."""
        if isinstance(getattr(self.loss, "perceptual", None), torch.nn.Module):
            self.loss.perceptual.to(device)
        return self


class DistillStep:
    """One-step-per-stage distillation: with a discriminator, first one hinge update of its heads on
    real images vs. a fresh no-grad student decode, then the student loss (alternating updates)."""

    def __init__(self, loss, discriminator=None, disc_lr: float = 1e-4):
        if (discriminator is None) != (loss.adversarial_weight == 0):
            raise ValueError("a discriminator is needed exactly when the adversarial weight is > 0")
        self.loss = loss
        self.discriminator = discriminator
        self.disc_opt = None
        if discriminator is not None:
            discriminator.requires_grad_(False)
            self.disc_opt = torch.optim.Adam(discriminator.heads.parameters(), lr=disc_lr, betas=(0.0, 0.99))

    def _noises(self, student, draws: SampleDraws, device) -> list[torch.Tensor]:
        """Per-stage starting noise, each (B, 3, r, r), drawn per sample."""
        return [draws.randn(3, s.resolution, s.resolution).to(device) for s in student.stages]

    def _discriminator_update(self, student, images, z, draws) -> torch.Tensor:
        with torch.no_grad():
            fake = self.loss.student_images(student, z, self._noises(student, draws, images.device))
        heads = self.discriminator.heads
        heads.requires_grad_(True)
        d_loss = discriminator_hinge(self.discriminator(images), self.discriminator(fake)).mean()
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        average_gradients(heads.parameters())  # the heads are not in DDP: keep them equal on every rank
        self.disc_opt.step()
        heads.requires_grad_(False)
        return d_loss.detach()

    def __call__(self, student, images: torch.Tensor, generator: torch.Generator | SampleDraws):
        draws = as_draws(generator, images.shape[0])
        with torch.set_grad_enabled(any(p.requires_grad for p in student.encoder.parameters())):
            z = student.encoder(images)  # (B, L, d)
        terms = {}
        if self.discriminator is not None:
            terms["d_loss"] = self._discriminator_update(student, images, z.detach(), draws).expand(
                images.shape[0]
            )
        noises = self._noises(student, draws, images.device)
        loss, more = self.loss(student, images, z, noises, draws, self.discriminator)
        return loss, {**terms, **more}

    def to(self, device) -> "DistillStep":
        """Move the teacher, the perceptual network and the discriminator to ``device``."""
        self.loss.teacher.to(device)
        if isinstance(self.loss.perceptual, torch.nn.Module):
            self.loss.perceptual.to(device)
        if self.discriminator is not None:
            self.discriminator.to(device)
        return self

    def state_dict(self) -> dict:
        if self.discriminator is None:
            return {}
        return {"heads": self.discriminator.heads.state_dict(), "opt": self.disc_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.discriminator is not None:
            self.discriminator.heads.load_state_dict(state["heads"])
            self.disc_opt.load_state_dict(state["opt"])

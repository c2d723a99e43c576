"""Step functions: what one optimiser step computes, handed to :func:`fastdec.training.loop.train_loop`."""

import torch

from fastdec.losses.adversarial import discriminator_hinge
from fastdec.losses.draws import SampleDraws, as_draws
from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.training.distributed import average_gradients


class DiscriminatorTrainer:
    """The discriminator's side of a GAN term: one hinge update of its heads (the feature network stays
    frozen) per training step, on real vs. generated images; its state is saved with the run's."""

    def __init__(self, discriminator, lr: float = 1e-4):
        self.discriminator = discriminator.requires_grad_(False)
        self.opt = torch.optim.Adam(discriminator.heads.parameters(), lr=lr, betas=(0.0, 0.99))

    def update(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One step on real and (detached) fake (B, 3, H, W) images; returns the hinge loss."""
        heads = self.discriminator.heads
        heads.requires_grad_(True)
        d_loss = discriminator_hinge(self.discriminator(real), self.discriminator(fake.detach())).mean()
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        average_gradients(heads.parameters())  # the heads are not in DDP: keep them equal on every rank
        self.opt.step()
        heads.requires_grad_(False)
        return d_loss.detach()

    def state_dict(self) -> dict:
        return {"heads": self.discriminator.heads.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.heads.load_state_dict(state["heads"])
        self.opt.load_state_dict(state["opt"])


class _WithDiscriminator:
    """A step function's optional :class:`DiscriminatorTrainer`: required exactly when its loss has an
    adversarial weight, moved and saved with the step."""

    def _set_critic(self, loss, discriminator, disc_lr: float) -> None:
        if (discriminator is None) != (getattr(loss, "adversarial_weight", 0.0) == 0):  # one-pass: none
            raise ValueError("a discriminator is needed exactly when the adversarial weight is > 0")
        self.discriminator = discriminator
        self.critic = None if discriminator is None else DiscriminatorTrainer(discriminator, disc_lr)

    def to(self, device):
        """Move the perceptual network and the discriminator (and, in subclasses, more) to ``device``."""
        if isinstance(getattr(self.loss, "perceptual", None), torch.nn.Module):
            self.loss.perceptual.to(device)
        if self.discriminator is not None:
            self.discriminator.to(device)
        return self

    def state_dict(self) -> dict:
        return {} if self.critic is None else self.critic.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.critic is not None:
            self.critic.load_state_dict(state)


class TokenizerStep(_WithDiscriminator):
    """End-to-end tokenizer training: encode, drop z to the null latent with probability
    ``cfg_dropout`` (classifier-free guidance), flow-matching loss on the decoder (+ the VQ loss).
    With a discriminator (the loss's adversarial weight > 0), first one update of its heads on the
    real stage images vs. the decoder's clean estimates of this very batch (computed without grad)."""

    def __init__(self, loss: FlowMatchingLoss, cfg_dropout: float = 0.1, discriminator=None, disc_lr=1e-4):
        if not 0.0 <= cfg_dropout < 1.0:
            raise ValueError(f"cfg_dropout must be in [0, 1), got {cfg_dropout}")
        self.loss = loss
        self.cfg_dropout = cfg_dropout
        self._set_critic(loss, discriminator, disc_lr)

    def __call__(self, model, images: torch.Tensor, generator: torch.Generator | SampleDraws):
        draws = as_draws(generator, images.shape[0])
        z, vq = model.encoder.bottleneck(images)  # (B, L, d); the VQ output or None
        if self.cfg_dropout > 0:
            drop = draws.rand() < self.cfg_dropout  # (B,) per sample, so any split of the batch agrees
            z = torch.where(drop[:, None, None].to(z.device), model.z_null.to(z.dtype), z)
        d_terms = {}
        if self.critic is not None:
            with torch.no_grad():
                real, fake = self.loss.detail_images(model.decoder, images, z, draws)
            d_terms["d_loss"] = self.critic.update(real, fake).expand(images.shape[0])
        if self.critic is None:  # (a one-pass decoder's loss takes no discriminator)
            loss, terms = self.loss(model.decoder, images, z, draws)
        else:
            loss, terms = self.loss(model.decoder, images, z, draws, self.discriminator)
        if vq is not None:  # codebook + commitment loss; codebook usage and perplexity are logged
            loss, terms = loss + vq.loss, {**terms, **vq.terms}
        return loss, {**d_terms, **terms}


class DistillStep(_WithDiscriminator):
    """One-step-per-stage distillation: with a discriminator, first one hinge update of its heads on
    real images vs. a fresh no-grad student decode, then the student loss (alternating updates)."""

    def __init__(self, loss, discriminator=None, disc_lr: float = 1e-4):
        self.loss = loss
        self._set_critic(loss, discriminator, disc_lr)

    def _noises(self, student, draws: SampleDraws, device) -> list[torch.Tensor]:
        """Per-stage starting noise, each (B, 3, r, r), drawn per sample."""
        return [draws.randn(3, s.resolution, s.resolution).to(device) for s in student.stages]

    def __call__(self, student, images: torch.Tensor, generator: torch.Generator | SampleDraws):
        draws = as_draws(generator, images.shape[0])
        with torch.set_grad_enabled(any(p.requires_grad for p in student.encoder.parameters())):
            z = student.encoder(images)  # (B, L, d)
        terms = {}
        if self.critic is not None:
            with torch.no_grad():
                fake = self.loss.student_images(
                    student, z.detach(), self._noises(student, draws, images.device)
                )
            terms["d_loss"] = self.critic.update(images, fake).expand(images.shape[0])
        noises = self._noises(student, draws, images.device)
        loss, more = self.loss(student, images, z, noises, draws, self.discriminator)
        return loss, {**terms, **more}

    def to(self, device) -> "DistillStep":
        """Move the teacher, the perceptual network and the discriminator to ``device``."""
        self.loss.teacher.to(device)
        return super().to(device)

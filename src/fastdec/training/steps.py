"""Step functions: what one optimiser step computes, handed to :func:`fastdec.training.loop.train_loop`."""

import torch

from fastdec.losses.adversarial import discriminator_hinge
from fastdec.losses.flow_matching import FlowMatchingLoss


class TokenizerStep:
    """End-to-end tokenizer training: encode, drop z to the null latent with probability
    ``cfg_dropout`` (classifier-free guidance), flow-matching loss on the decoder."""

    def __init__(self, loss: FlowMatchingLoss, cfg_dropout: float = 0.1):
        if not 0.0 <= cfg_dropout < 1.0:
            raise ValueError(f"cfg_dropout must be in [0, 1), got {cfg_dropout}")
        self.loss = loss
        self.cfg_dropout = cfg_dropout

    def __call__(self, model, images: torch.Tensor, generator: torch.Generator):
        z = model.encoder(images)  # (B, L, d)
        if self.cfg_dropout > 0:
            drop = torch.rand(images.shape[0], generator=generator) < self.cfg_dropout  # (B,)
            z = torch.where(drop[:, None, None].to(z.device), model.z_null.to(z.dtype), z)
        return self.loss(model.decoder, images, z, generator)


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

    def _noises(self, student, batch: int, generator):
        return [
            torch.randn(batch, 3, s.resolution, s.resolution, generator=generator) for s in student.stages
        ]

    def _discriminator_update(self, student, images, z, generator) -> torch.Tensor:
        with torch.no_grad():
            fake = self.loss.student_rollout(student, z, self._noises(student, images.shape[0], generator))[
                -1
            ]
        heads = self.discriminator.heads
        heads.requires_grad_(True)
        d_loss = discriminator_hinge(self.discriminator(images), self.discriminator(fake)).mean()
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.disc_opt.step()
        heads.requires_grad_(False)
        return d_loss.detach()

    def __call__(self, student, images: torch.Tensor, generator: torch.Generator):
        with torch.set_grad_enabled(any(p.requires_grad for p in student.encoder.parameters())):
            z = student.encoder(images)  # (B, L, d)
        terms = {}
        if self.discriminator is not None:
            terms["d_loss"] = self._discriminator_update(student, images, z.detach(), generator).expand(
                images.shape[0]
            )
        noises = self._noises(student, images.shape[0], generator)
        loss, more = self.loss(student, images, z, noises, generator, self.discriminator)
        return loss, {**terms, **more}

    def state_dict(self) -> dict:
        if self.discriminator is None:
            return {}
        return {"heads": self.discriminator.heads.state_dict(), "opt": self.disc_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.discriminator is not None:
            self.discriminator.heads.load_state_dict(state["heads"])
            self.disc_opt.load_state_dict(state["opt"])

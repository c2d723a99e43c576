"""Hinge GAN losses and the VQGAN adaptive weight."""

import torch


def discriminator_hinge(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """``mean relu(1 - D(real)) + mean relu(1 + D(fake))`` averaged over heads; per sample (B,)."""
    terms = [
        torch.relu(1 - r).mean(dim=1) + torch.relu(1 + f).mean(dim=1)
        for r, f in zip(real_logits, fake_logits, strict=True)
    ]
    return torch.stack(terms).mean(0)


def generator_hinge(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """``-mean D(fake)`` averaged over heads; per sample (B,)."""
    return torch.stack([-f.mean(dim=1) for f in fake_logits]).mean(0)


def adaptive_weight(
    rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """VQGAN (Esser et al. 2021): ``|grad_W rec| / (|grad_W gan| + 1e-4)`` on the decoder's last layer,
    so the adversarial term never swamps reconstruction. Returned detached."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def add_generator_term(
    loss: torch.Tensor, gan: torch.Tensor, last_layer: torch.Tensor, weight: float
) -> tuple[torch.Tensor, dict]:
    """``loss + weight * adaptive_weight * gan``: a per-sample (B,) reconstruction loss plus the
    generator hinge ``gan`` (B,), scaled so that its gradient on ``last_layer`` matches the loss's.

    Returns:
        (loss (B,), {"gan", "adaptive_weight"} per-sample terms for logging).
    """
    scale = adaptive_weight(loss.mean(), gan.mean(), last_layer)
    return loss + weight * scale * gan, {"gan": gan.detach(), "adaptive_weight": scale.expand_as(gan)}

"""Loss of the deterministic one-pass decoder: MSE + perceptual on its single prediction."""

import torch

from fastdec.diffusion.pyramid import Stage


class ReconstructionLoss:
    """``|x_hat - x|^2 + w * perceptual(x_hat, x)`` per sample, x_hat = one decoder call at t = 1 on zeros.

    The generator argument of the loss interface is unused: nothing here is random.

    Args:
        stage: the decoder's single stage.
        perceptual: per-sample distance or None.
        perceptual_weight: its weight.
    """

    def __init__(self, stage: Stage, perceptual=None, perceptual_weight: float = 0.1):
        self.stage = stage
        self.perceptual = perceptual
        self.perceptual_weight = perceptual_weight

    def __call__(self, decoder, x: torch.Tensor, z: torch.Tensor, generator: torch.Generator):
        x_in, t = torch.zeros_like(x), x.new_ones(x.shape[0])
        clean = decoder.predict(x_in, t, z, self.stage)[1]  # (B, 3, H, W)
        mse = (clean.float() - x).pow(2).mean(dim=(1, 2, 3))  # (B,)
        terms = {"mse": mse}
        loss = mse
        if self.perceptual is not None:
            perc = self.perceptual(clean.float(), x)
            terms["perceptual"] = perc
            loss = loss + self.perceptual_weight * perc
        return loss, terms

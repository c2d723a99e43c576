"""Step functions: what one optimiser step computes, handed to :func:`fastdec.training.loop.train_loop`."""

import torch

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

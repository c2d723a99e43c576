"""Discriminator: small trainable heads on the token features of a frozen pretrained network.

As in ADD (Sauer et al. 2023): the feature network (here the early layers of the bundled Inception-v3;
DINO/DINOv2 plug in through the same ``features(images) -> list of maps`` interface) stays frozen, and
each tapped layer gets a head of spectral-normalised 1-D convolutions over its tokens.
"""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from fastdec.models.inception import InceptionEarlyLayers


class TokenHead(nn.Module):
    """(B, C, N) token features -> (B, N) logits: 1x1 conv, 3-wide conv, 1x1 conv, spectral norm."""

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv1d(channels, hidden, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv1d(hidden, hidden, 3, padding=1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv1d(hidden, 1, 1)),
        )

    def forward(self, tokens):
        return self.net(tokens).squeeze(1)  # (B, N)


class Discriminator(nn.Module):
    """Frozen feature network + one :class:`TokenHead` per tapped layer.

    Args:
        features: frozen ``images (B, 3, H, W) -> list of (B, C_i, H_i, W_i)`` with a ``channels``
            attribute; default the Inception-v3 early layers (offline).
        hidden: width of each head.
    """

    def __init__(self, features: nn.Module | None = None, hidden: int = 64):
        super().__init__()
        self.features = features if features is not None else InceptionEarlyLayers(min_size=96)
        self.heads = nn.ModuleList(TokenHead(c, hidden) for c in self.features.channels)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (B, 3, H, W) in [-1, 1] -> per-layer logits, each (B, N_i)."""
        maps = self.features(images)
        return [head(m.flatten(2)) for head, m in zip(self.heads, maps, strict=True)]

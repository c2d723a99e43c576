"""Image <-> token conversions: patch embedding (linear or convolutional stem) and unpatchify."""

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Images (B, C, H, W) -> tokens (B, H/p * W/p, width), row-major.

    ``stem="linear"`` is the ViT patch projection. ``stem="conv"`` replaces it with log2(p) stride-2
    3x3 convolutions (GELU between), which sees across patch borders and learns faster at small scale.
    """

    def __init__(self, patch_size: int, width: int, in_channels: int = 3, stem: str = "linear"):
        super().__init__()
        if patch_size < 1 or patch_size & (patch_size - 1):
            raise ValueError(f"patch_size must be a power of two, got {patch_size}")
        self.patch_size = patch_size
        if stem == "linear":
            self.proj = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        elif stem == "conv":
            layers, channels = [], in_channels
            n_down = patch_size.bit_length() - 1
            for i in range(n_down):
                out = width // 2 ** (n_down - 1 - i)
                layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GELU()]
                channels = out
            layers = layers[:-1] if layers else [nn.Conv2d(in_channels, width, 1)]
            self.proj = nn.Sequential(*layers)
        else:
            raise ValueError(f"unknown stem {stem!r}; expected 'linear' or 'conv'")

    def forward(self, images):
        b, _, h, w = images.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, N, D)


def unpatchify(tokens: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """Tokens (B, N, p*p*C) row-major -> images (B, C, height, width)."""
    b, n, _ = tokens.shape
    gh, gw = height // patch_size, width // patch_size
    x = tokens.view(b, gh, gw, patch_size, patch_size, -1)  # (B, gh, gw, p, p, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, -1, height, width)  # (B, C, H, W)

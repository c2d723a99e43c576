"""Convolutional decoder backbone: a small U-Net D(x, tau, z) -> (B, 3, H, W).

The transformer of :mod:`fastdec.models.decoder` is the paper's backbone; this one is the convolutional
alternative (``model.dec_backbone="unet"``), with the same contract: it knows nothing about diffusion,
``tau`` is a scalar per sample, the output has the input's shape, and one network serves every pyramid
stage resolution. A latent grid (B, L, d) -> (B, d, s, s) is resampled to every level of the U-Net and
added through a 1x1 convolution (the convolutional form of ``spatial_cond``); 1-D latent tokens join the
time embedding instead. Time enters each residual block as a per-channel scale and shift of its
normalisation (the convolutional form of adaLN).
"""

import torch
import torch.nn.functional as F
from torch import nn

from fastdec.nn.layers import TimestepEmbedding


def _resample(grid: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, s, s) -> (B, C, size, size): nearest up, or area down."""
    if grid.shape[-1] == size:
        return grid
    if size > grid.shape[-1]:
        return F.interpolate(grid, size=(size, size), mode="nearest")
    return F.adaptive_avg_pool2d(grid, (size, size))


class ResBlock(nn.Module):
    """GroupNorm -> (1 + scale) * . + shift from the time embedding -> SiLU -> 3x3 conv, twice; plus the
    latent grid through a 1x1 conv (grid latents); residual. The second conv starts at zero, so a block
    starts as the identity."""

    def __init__(self, channels: int, emb_dim: int, latent_dim: int | None):
        super().__init__()
        groups = min(32, channels // 4)
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.latent = nn.Conv2d(latent_dim, channels, 1) if latent_dim else None
        self.norm2 = nn.GroupNorm(groups, channels)
        self.ada = nn.Linear(emb_dim, 2 * channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        for layer in (self.conv2, self.ada):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, z_grid: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C, H, W)
        if self.latent is not None:
            h = h + self.latent(_resample(z_grid, x.shape[-1]))
        scale, shift = self.ada(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


class UNetNet(nn.Module):
    """A U-Net over ``len(mults)`` levels (each halves the side), ``blocks`` residual blocks per level on
    the way down and up, skip connections by addition.

    Args:
        width: channels of the first level; level i has ``width * mults[i]``.
        mults: channel multipliers per level.
        blocks: residual blocks per level and direction.
        latent_kind: ``"grid"`` (L a square number: z is added by location at every level) or
            ``"tokens"`` (z, flattened, joins the time embedding: a global condition, best with
            ``prior_cond``, which gives the network the image the latents decode to linearly).
        num_latents: L.
        latent_dim: d.
        prior_cond: also read an image ``prior`` (B, 3, H, W), concatenated to the input.
    """

    def __init__(
        self,
        *,
        width: int,
        mults: tuple[int, ...] = (1, 2, 2),
        blocks: int = 2,
        latent_kind: str = "grid",
        num_latents: int,
        latent_dim: int,
        prior_cond: bool = False,
        channels: int = 3,
    ):
        super().__init__()
        side = int(round(num_latents**0.5))
        if latent_kind == "grid" and side * side != num_latents:
            raise ValueError(f"grid latents need a square num_latents, got {num_latents}")
        self.side = side if latent_kind == "grid" else None
        self.prior_cond = prior_cond
        emb = 4 * width
        self.time = TimestepEmbedding(emb)
        self.latent_vec = None if self.side else nn.Linear(num_latents * latent_dim, emb)
        latent_dim = latent_dim if self.side else None  # tokens: no per-location injection
        self.stem = nn.Conv2d(channels * (2 if prior_cond else 1), width, 3, padding=1)
        chans = [width * m for m in mults]
        pairs = list(zip(chans[:-1], chans[1:], strict=True))  # (level l, level l + 1) channels
        self.down = nn.ModuleList(
            nn.ModuleList(ResBlock(c, emb, latent_dim) for _ in range(blocks)) for c in chans
        )
        self.downsample = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in pairs)
        self.up = nn.ModuleList(
            nn.ModuleList(ResBlock(c, emb, latent_dim) for _ in range(blocks)) for c in chans
        )
        self.upsample = nn.ModuleList(nn.Conv2d(b, a, 3, padding=1) for a, b in pairs)
        self.out_norm = nn.GroupNorm(min(32, width // 4), width)
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.min_side = 2 ** (len(mults) - 1)

    @property
    def last_layer(self) -> nn.Module:
        """The output layer (the adaptive GAN weight of distillation balances gradients there)."""
        return self.out

    def forward(
        self, x: torch.Tensor, tau: torch.Tensor, z: torch.Tensor, prior: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, 3, H, W), tau (B,), z (B, L, d) -> (B, 3, H, W); H a multiple of 2^(levels-1)."""
        if x.shape[-1] % self.min_side:
            raise ValueError(f"the U-Net needs sides divisible by {self.min_side}, got {tuple(x.shape[2:])}")
        emb = self.time(tau)  # (B, E)
        z_grid = None
        if self.side:
            z_grid = z.transpose(1, 2).reshape(z.shape[0], -1, self.side, self.side)  # (B, d, s, s)
        else:
            emb = emb + self.latent_vec(z.flatten(1))  # (B, E)
        h = self.stem(torch.cat([x, prior], dim=1) if self.prior_cond else x)  # (B, C0, H, W)
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb, z_grid)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)  # (B, C_{l+1}, H/2^{l+1}, W/2^{l+1})
        for level in reversed(range(len(self.up))):
            if level < len(self.upsample):
                h = self.upsample[level](F.interpolate(h, scale_factor=2, mode="nearest"))
            h = h + skips[level]
            for block in self.up[level]:
                h = block(h, emb, z_grid)
        return self.out(F.silu(self.out_norm(h)))  # (B, 3, H, W)

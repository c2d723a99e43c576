"""Encoder: images -> latent tokens z (B, L, d).

Two latent layouts share one class:
- ``latent_kind="tokens"`` (the paper): L learned register tokens attend jointly with the image
  patches (two streams, SD3 MMDiT style); the register outputs become z. The tokens are 1-D: no
  position ties a latent to a region.
- ``latent_kind="grid"``: z is the patch grid itself (L = (H/p)^2 tokens, each tied to its region),
  the layout of convolutional autoencoders. It learns much faster at small compute.
Either way the outputs go through LayerNorm + Linear down to d dims, plus an optional linear skip
(:mod:`fastdec.models.linear_skip`), then an optional VQ bottleneck (:mod:`fastdec.models.quantizer`).
"""

import torch
from torch import nn

from fastdec.models.quantizer import Quantized, VectorQuantizer
from fastdec.nn.layers import JointBlock
from fastdec.nn.patch import PatchEmbed
from fastdec.nn.rope import grid_positions, rope_angles


def latent_positions(kind: str, num_latents: int, grid_h: int, grid_w: int, device=None):
    """Where latent tokens sit on the image token plane of a (grid_h x grid_w) patch grid.

    Register tokens go on an extra row past the image grid, spread over its width (the paper's "cross
    RoPE"); grid latents sit at the centres of the image regions they summarise.

    Returns:
        Tensor (num_latents, 2).
    """
    if kind == "tokens":
        cols = torch.arange(num_latents, device=device, dtype=torch.float32)
        cols = cols * (grid_w / num_latents)
        rows = torch.full_like(cols, float(grid_h))
        return torch.stack([rows, cols], dim=-1)
    side = int(round(num_latents**0.5))
    return grid_positions(side, side, stride=grid_h / side, device=device)


class Encoder(nn.Module):
    def __init__(
        self,
        *,
        patch_size: int,
        width: int,
        depth: int,
        heads: int,
        latent_kind: str,
        num_latents: int,
        latent_dim: int,
        mlp_ratio: float = 4.0,
        stem: str = "linear",
        rope_base: float = 100.0,
        skip: nn.Module | None = None,
        quantizer: VectorQuantizer | None = None,
    ):
        super().__init__()
        if latent_kind not in ("tokens", "grid"):
            raise ValueError(f"unknown latent_kind {latent_kind!r}; expected 'tokens' or 'grid'")
        self.latent_kind = latent_kind
        self.num_latents = num_latents
        self.head_dim = width // heads
        self.rope_base = rope_base
        self.patch = PatchEmbed(patch_size, width, stem=stem)
        with_context = latent_kind == "tokens"
        if with_context:
            self.registers = nn.Parameter(torch.randn(num_latents, width) * 0.02)
        # With register tokens the last block's image stream only feeds the attention.
        self.blocks = nn.ModuleList(
            JointBlock(
                width,
                heads,
                mlp_ratio,
                conditioned=False,
                with_context=with_context,
                image_pre_only=with_context and i == depth - 1,
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, latent_dim)
        self.skip = skip
        self.quantizer = quantizer
        if skip is not None:  # start as the linear codec: the transformer adds a learned correction
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1] -> z (B, L, d), quantised if the encoder has a quantizer."""
        return self.bottleneck(images)[0]

    def bottleneck(self, images: torch.Tensor) -> tuple[torch.Tensor, Quantized | None]:
        """images (B, 3, H, W) -> (z (B, L, d), the quantizer's output or None when continuous)."""
        z = self.features(images)
        if self.quantizer is None:
            return z, None
        quantized = self.quantizer(z)
        return quantized.latents, quantized

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1] -> continuous z (B, L, d), before any quantizer."""
        x = self.patch(images)  # (B, N, D)
        p = self.patch.patch_size
        gh, gw = images.shape[2] // p, images.shape[3] // p
        if self.latent_kind == "grid" and gh * gw != self.num_latents:
            raise ValueError(
                f"grid latents expect {self.num_latents} patches, got {gh}x{gw} for image size "
                f"{tuple(images.shape[2:])}"
            )
        angles_x = rope_angles(grid_positions(gh, gw, device=x.device), self.head_dim, self.rope_base)
        c, angles_c = None, None
        if self.latent_kind == "tokens":
            c = self.registers.expand(x.shape[0], -1, -1)  # (B, L, D)
            pos = latent_positions("tokens", self.num_latents, gh, gw, x.device)
            angles_c = rope_angles(pos, self.head_dim, self.rope_base)
        for block in self.blocks:
            x, c = block(x, c, None, angles_x, angles_c)
        z = self.out(self.norm(c if c is not None else x))  # (B, L, d)
        return z if self.skip is None else z + self.skip(images)

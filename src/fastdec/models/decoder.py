"""Decoder backbone: a two-stream joint-attention transformer D(x, tau, z) -> (B, 3, H, W).

It knows nothing about diffusion: ``tau`` is a scalar per sample, the output a tensor of the input's
shape; :mod:`fastdec.diffusion.denoiser` decides what the output means. Image tokens get 2-D RoPE on their
own grid, so one network serves every pyramid stage resolution; latent tokens get positions on the same
plane (see :func:`fastdec.models.encoder.latent_positions`).
"""

import torch
import torch.nn.functional as F
from torch import nn

from fastdec.models.encoder import latent_positions
from fastdec.nn.layers import JointBlock, TimestepEmbedding, modulate
from fastdec.nn.patch import PatchEmbed, unpatchify
from fastdec.nn.rope import grid_positions, rope_angles


class DecoderNet(nn.Module):
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
        spatial_cond: bool = False,
        prior_cond: bool = False,
        rope_base: float = 100.0,
        channels: int = 3,
    ):
        super().__init__()
        if spatial_cond and latent_kind != "grid":
            raise ValueError("spatial_cond needs latent_kind='grid' (1-D tokens have no location)")
        self.patch_size = patch_size
        self.latent_kind = latent_kind
        self.num_latents = num_latents
        self.head_dim = width // heads
        self.rope_base = rope_base
        self.rope_tables: dict = {}  # (grid h, grid w, device) -> angles: they depend on the grid only
        self.patch = PatchEmbed(patch_size, width, in_channels=channels, stem=stem)
        self.time = TimestepEmbedding(width)
        self.context_in = nn.Linear(latent_dim, width)
        self.spatial_in = nn.Linear(latent_dim, width) if spatial_cond else None
        self.prior_in = PatchEmbed(patch_size, width, in_channels=channels, stem=stem) if prior_cond else None
        self.blocks = nn.ModuleList(
            JointBlock(width, heads, mlp_ratio, conditioned=True, context_pre_only=i == depth - 1)
            for i in range(depth)
        )
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.final = nn.Linear(width, patch_size * patch_size * channels)
        for layer in (self.final_ada[1], self.final):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def last_layer(self) -> nn.Module:
        """The output layer (the adaptive GAN weight of distillation balances gradients there)."""
        return self.final

    def _spatial(self, z: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        """Grid latents resampled onto the image token grid and added to the image stream."""
        side = int(round(self.num_latents**0.5))
        grid = self.spatial_in(z).transpose(1, 2).reshape(z.shape[0], -1, side, side)  # (B, D, s, s)
        if gh >= side:
            grid = F.interpolate(grid, size=(gh, gw), mode="nearest")
        else:
            grid = F.adaptive_avg_pool2d(grid, (gh, gw))
        return grid.flatten(2).transpose(1, 2)  # (B, N, D)

    def _rope(self, gh: int, gw: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE angles of the image tokens and of the latent tokens on a (gh x gw) token grid, computed
        once per grid and device (not while torch.compile or an export traces the network)."""
        key = (gh, gw, str(device))
        if key in self.rope_tables and not torch.compiler.is_compiling():
            return self.rope_tables[key]
        angles_x = rope_angles(grid_positions(gh, gw, device=device), self.head_dim, self.rope_base)
        pos_c = latent_positions(self.latent_kind, self.num_latents, gh, gw, device)
        angles = angles_x, rope_angles(pos_c, self.head_dim, self.rope_base)
        if not torch.compiler.is_compiling():
            self.rope_tables[key] = angles
        return angles

    def forward(
        self, x: torch.Tensor, tau: torch.Tensor, z: torch.Tensor, prior: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, 3, H, W), tau (B,) global time, z (B, L, d) -> (B, 3, H, W). ``prior`` (B, 3, H, W):
        the linear decode of z at x's resolution, required with ``prior_cond`` (its patches are
        embedded and added to the image tokens, as a super-resolution model reads its low-res input)."""
        b, _, h, w = x.shape
        if z.shape[1] != self.num_latents:
            raise ValueError(f"expected {self.num_latents} latent tokens, got z of shape {z.shape}")
        gh, gw = h // self.patch_size, w // self.patch_size
        tokens = self.patch(x)  # (B, N, D)
        if self.spatial_in is not None:
            tokens = tokens + self._spatial(z, gh, gw)
        if self.prior_in is not None:
            if prior is None or prior.shape != x.shape:
                raise ValueError(f"prior_cond needs a prior image of shape {tuple(x.shape)}")
            tokens = tokens + self.prior_in(prior)
        context = self.context_in(z)  # (B, L, D)
        cond = self.time(tau)  # (B, D)
        angles_x, angles_c = self._rope(gh, gw, x.device)
        for block in self.blocks:
            tokens, context = block(tokens, context, cond, angles_x, angles_c)
        shift, scale = self.final_ada(cond).chunk(2, dim=-1)
        out = self.final(modulate(self.final_norm(tokens), shift, scale))  # (B, N, p*p*3)
        return unpatchify(out, self.patch_size, h, w)

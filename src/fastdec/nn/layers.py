"""Plain transformer building blocks: MLP, attention with RoPE, adaLN modulation, joint two-stream block.

Nothing here knows about diffusion; time conditioning arrives as a vector ``cond`` (B, width).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastdec.nn.rope import apply_rope


class MLP(nn.Module):
    def __init__(self, width: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(width * ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def modulate(x, shift, scale):
    """adaLN: ``x * (1 + scale) + shift`` with per-sample (B, D) shift and scale."""
    return x * (1 + scale[:, None]) + shift[:, None]


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of a scalar time in [0, 1], then an MLP (DiT)."""

    def __init__(self, width: int, freq_dim: int = 128, max_period: float = 10_000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t):
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, F/2): t in [0, 1] spread like DiT steps
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1))  # (B, D)


class StreamWeights(nn.Module):
    """One stream's own weights inside a joint block (SD3 MMDiT): norms, qkv, out-proj, MLP, adaLN.

    ``pre_only`` keeps just what the stream contributes to the others' attention (keys and values):
    the last block of a network whose output ignores that stream, so no weight lacks a gradient.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float, conditioned: bool, pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(width, elementwise_affine=not conditioned, eps=1e-6)
        self.qkv = nn.Linear(width, (2 if pre_only else 3) * width)  # a pre-only stream asks nothing
        self.k_norm = RMSNorm(width // heads)
        if not pre_only:
            self.q_norm = RMSNorm(width // heads)
            self.norm2 = nn.LayerNorm(width, elementwise_affine=not conditioned, eps=1e-6)
            self.proj = nn.Linear(width, width)
            self.mlp = MLP(width, mlp_ratio)
        self.ada = None
        if conditioned:
            # shift/scale/gate for attention and MLP; zero init makes each block start as identity.
            self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, (2 if pre_only else 6) * width))
            nn.init.zeros_(self.ada[1].weight)
            nn.init.zeros_(self.ada[1].bias)

    def modulation(self, cond, batch: int, width: int, device):
        if self.ada is None:
            ones = torch.ones(batch, width, device=device)
            zeros = torch.zeros(batch, width, device=device)
            return zeros, zeros, ones, zeros, zeros, ones
        return self.ada(cond).chunk(2 if self.pre_only else 6, dim=-1)

    def update(self, x, attn_out, mod):
        """Residual attention and MLP updates of this stream; None for a pre-only stream."""
        if self.pre_only:
            return None
        x = x + mod[2][:, None] * self.proj(attn_out)
        return x + mod[5][:, None] * self.mlp(modulate(self.norm2(x), mod[3], mod[4]))


class JointBlock(nn.Module):
    """Two streams with separate weights and one attention over their concatenation.

    The first stream is the image (patch tokens), the second the context (latent or register tokens).
    With ``conditioned=True`` both streams are modulated by ``cond`` through zero-initialised adaLN
    (DiT's adaLN-Zero); otherwise plain pre-norm residual blocks. ``with_context=False`` makes it a
    plain single-stream block.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: float = 4.0,
        conditioned: bool = True,
        with_context: bool = True,
        image_pre_only: bool = False,
        context_pre_only: bool = False,
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.image = StreamWeights(width, heads, mlp_ratio, conditioned, image_pre_only)
        self.context = None
        if with_context:
            self.context = StreamWeights(width, heads, mlp_ratio, conditioned, context_pre_only)

    def _qkv(self, stream: StreamWeights, x, shift, scale):
        """Queries (None for a pre-only stream), keys and values, each (B, h, N, Dh)."""
        b, n, d = x.shape
        parts = stream.qkv(modulate(stream.norm1(x), shift, scale))  # (B, N, 2D or 3D)
        parts = parts.view(b, n, -1, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if stream.pre_only:
            return None, stream.k_norm(parts[0]), parts[1]
        return stream.q_norm(parts[0]), stream.k_norm(parts[1]), parts[2]

    def forward(self, x, c, cond, angles_x, angles_c):
        """x (B, N, D) image tokens, c (B, M, D) context tokens or None (single stream), cond (B, D)
        or None, angles_* RoPE angles (N, Dh/2) and (M, Dh/2). Returns the updated (x, c); a
        pre-only stream comes back as None."""
        b, n, d = x.shape
        streams = [(self.image, x, angles_x)]
        if c is not None:
            streams.append((self.context, c, angles_c))
        mods = [stream.modulation(cond, b, d, x.device) for stream, _, _ in streams]
        qs, ks, vs = [], [], []
        for (stream, tokens, angles), mod in zip(streams, mods, strict=True):
            q, k, v = self._qkv(stream, tokens, mod[0], mod[1])
            ks.append(apply_rope(k, angles))
            vs.append(v)
            if q is not None:
                qs.append(apply_rope(q, angles))
        q = torch.cat(qs, dim=2)  # (B, h, queries, Dh)
        out = F.scaled_dot_product_attention(q, torch.cat(ks, dim=2), torch.cat(vs, dim=2))
        out = out.transpose(1, 2).reshape(b, -1, d)  # (B, queries, D)
        results, offset = [], 0
        for (stream, tokens, _), mod in zip(streams, mods, strict=True):
            if stream.pre_only:
                results.append(None)
                continue
            results.append(stream.update(tokens, out[:, offset : offset + tokens.shape[1]], mod))
            offset += tokens.shape[1]
        return results[0], (results[1] if c is not None else None)

"""Vector quantisation bottleneck: continuous latents -> discrete tokens for autoregressive generators.

The codebook and the latent vectors are both l2-normalised, so the nearest code is the one of largest
cosine similarity and every code lies on the unit sphere (ViT-VQGAN, Yu et al. 2021, §3.2: this keeps
codes from dying far from the data). The encoder receives gradients through the straight-through
estimator ``z_q = z + sg(q - z)`` (van den Oord et al. 2017); the codebook learns through the codebook
loss ``|q - sg(z)|^2`` and the encoder is pulled towards its code by the commitment loss
``beta |z - sg(q)|^2``.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    """What :class:`VectorQuantizer` returns.

    Attributes:
        latents: (B, L, d) unit-norm codes, carrying the straight-through gradient to the encoder.
        indices: (B, L) int64 code indices.
        loss: (B,) codebook + commitment loss per sample.
        terms: scalars for logging: ``vq_loss`` (batch mean), ``codebook_usage`` (fraction of codes used
            in the batch) and ``perplexity`` (exp of the entropy of the batch's code histogram).
    """

    latents: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


def code_statistics(indices: torch.Tensor, codebook_size: int) -> dict[str, torch.Tensor]:
    """Codebook usage (fraction of the K codes that occur) and perplexity ``exp(-sum_k p_k log p_k)`` of
    the histogram p of ``indices`` (any shape): 1 when one code is used, K when all are used equally."""
    counts = torch.bincount(indices.flatten(), minlength=codebook_size).double()  # (K,)
    p = counts / counts.sum()
    entropy = -(p * p.clamp_min(1e-30).log()).sum()  # 0 log 0 = 0
    return {"codebook_usage": (counts > 0).double().mean(), "perplexity": entropy.exp()}


class VectorQuantizer(nn.Module):
    """l2-normalised codebook with straight-through gradients.

    Args:
        codebook_size: number of codes K.
        dim: latent dimension d.
        beta: commitment loss weight.
    """

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25):
        super().__init__()
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
        if dim < 2:  # on the unit sphere of one dimension there are only two points
            raise ValueError(f"a VQ bottleneck needs latent_dim >= 2, got {dim}")
        if not beta >= 0:
            raise ValueError(f"vq_beta must be >= 0, got {beta}")
        self.codebook_size = codebook_size
        self.beta = beta
        # Unit-norm start (as LlamaGen's l2-normalised codebook): Adam moves every coordinate by about the
        # learning rate per step, so a code's direction turns at about lr / |code| radians per step.
        self.codebook = nn.Parameter(F.normalize(torch.randn(codebook_size, dim), dim=-1))

    @torch.no_grad()
    def init_codes(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Start the codebook at distinct vectors drawn from encoder outputs z (..., d): a fresh encoder's
        outputs fill a narrow cone of the sphere, where few random codes lie (VQ warm start). With fewer
        than K vectors, codes past the N-th keep their random start."""
        flat = F.normalize(z.reshape(-1, z.shape[-1]).float(), dim=-1)  # (N, d)
        n = min(flat.shape[0], self.codebook_size)
        pick = torch.randperm(flat.shape[0], generator=generator)[:n]
        self.codebook[:n] = flat[pick]

    def codes(self) -> torch.Tensor:
        """The unit-norm codebook (K, d), float32."""
        return F.normalize(self.codebook.float(), dim=-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Integer indices (...) in [0, K) -> unit-norm codes (..., d), float32."""
        if not torch.is_tensor(indices) or indices.is_floating_point() or indices.is_complex():
            raise ValueError(
                f"token indices must be an integer tensor, got "
                f"{indices.dtype if torch.is_tensor(indices) else type(indices).__name__}"
            )
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(
                f"token indices must be in [0, {self.codebook_size}) for this codebook, "
                f"got values in [{int(indices.min())}, {int(indices.max())}]"
            )
        return self.codes()[indices.long()]

    def forward(self, z: torch.Tensor) -> Quantized:
        """Continuous latents z (B, L, d) -> :class:`Quantized` (distances in float32, also under
        autocast, so that near-ties resolve the same way in every precision)."""
        z_n = F.normalize(z.float(), dim=-1)  # (B, L, d)
        codes = self.codes()  # (K, d)
        indices = (z_n.detach() @ codes.T).argmax(-1)  # cosine similarity of unit vectors, (B, L)
        q = codes[indices]  # (B, L, d)
        codebook = (q - z_n.detach()).pow(2).mean((1, 2))  # (B,)
        commitment = (z_n - q.detach()).pow(2).mean((1, 2))  # (B,)
        loss = codebook + self.beta * commitment
        latents = z_n + (q - z_n).detach()  # straight-through: forward q, backward identity to z_n
        with torch.no_grad():
            terms = {"vq_loss": loss.mean(), **code_statistics(indices, self.codebook_size)}
        return Quantized(latents.to(z.dtype), indices, loss, terms)

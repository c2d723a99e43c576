"""A diffusers-shaped autoencoder over a :class:`~fastdec.tokenizer.Tokenizer`.

Code written for diffusers' ``AutoencoderKL`` runs unchanged:
``ae.encode(x).latent_dist.sample()`` gives latents, ``ae.decode(z).sample`` gives images, both images
in [-1, 1]. The encoder is deterministic, so the latent distribution is a point mass (for a VQ
tokenizer: at the quantised latents, with the token indices beside it). Latents come in the public
layout of :class:`fastdec.latents.LatentContract`: (B, d, h, w) for grid latents, (B, L, d) for 1-D
register tokens. Like ``AutoencoderKL``, encode and decode work on raw latents: the caller normalises,
``(z - ae.config.shift_factor) * ae.config.scaling_factor``, before a generative model, and undoes it
before :meth:`FlowAutoencoder.decode`.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fastdec.latents import LatentContract
from fastdec.tokenizer import Tokenizer


class PointMass:
    """The latent distribution of a deterministic encoder: all mass at ``mean`` (B, *latent_shape).

    It has the methods pipelines call on diffusers' ``DiagonalGaussianDistribution``.
    """

    def __init__(self, mean: torch.Tensor):
        self.mean = mean

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The mean: a point mass draws no noise, so ``generator`` (the diffusers signature) is unused."""
        return self.mean


@dataclass
class EncoderOutput:
    """What :meth:`FlowAutoencoder.encode` returns.

    Attributes:
        latent_dist: a :class:`PointMass` at the (quantised, for VQ) latents (B, *latent_shape).
        indices: VQ token indices (B, L), int64; None for a continuous bottleneck.
    """

    latent_dist: PointMass
    indices: torch.Tensor | None = None

    @property
    def latents(self) -> torch.Tensor:
        return self.latent_dist.mode()


@dataclass
class DecoderOutput:
    """What :meth:`FlowAutoencoder.decode` returns: ``sample`` (B, 3, R, R), images in [-1, 1] (not
    clamped: a decoder may overshoot slightly)."""

    sample: torch.Tensor


class FlowAutoencoder(nn.Module):
    """Encoder + flow-matching decoder with the ``AutoencoderKL`` calling convention.

    Args:
        tokenizer: the wrapped :class:`~fastdec.tokenizer.Tokenizer` (its weights are this module's).
    """

    def __init__(self, tokenizer: Tokenizer):
        super().__init__()
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"FlowAutoencoder wraps a fastdec Tokenizer, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer

    @property
    def config(self) -> LatentContract:
        """The latent contract: ``latent_shape``, ``scaling_factor``, ``shift_factor``, ``bottleneck``..."""
        return LatentContract.from_model_config(self.tokenizer.config.model)

    def encode(self, x: torch.Tensor) -> EncoderOutput:
        """Images (B, 3, R, R) in [-1, 1] -> :class:`EncoderOutput` with raw latents (B, *latent_shape)."""
        self.tokenizer.check_images(x)
        z, quantized = self.tokenizer.encoder.bottleneck(x)  # (B, L, d)
        indices = None if quantized is None else quantized.indices
        return EncoderOutput(PointMass(self.config.to_public(z)), indices)

    def decode(
        self,
        z: torch.Tensor,
        *,
        steps=None,
        total_steps: int | None = None,
        guidance: float | None = None,
        seeds=None,
        temperature: float | None = None,
    ) -> DecoderOutput:
        """Raw latents (B, *latent_shape) -> :class:`DecoderOutput`; the keywords are those of
        :meth:`fastdec.tokenizer.Tokenizer.decode` (image i's noise comes from ``seeds[i]``, default i).

        Raises:
            ValueError: latents that break the contract; the message names the expected shape.
        """
        self.config.check_latents(z)
        images = self.tokenizer.decode(
            self.config.to_tokens(z),
            steps=steps,
            total_steps=total_steps,
            guidance=guidance,
            seeds=seeds,
            temperature=temperature,
        )
        return DecoderOutput(images)

    def decode_indices(self, indices: torch.Tensor, **decode) -> DecoderOutput:
        """VQ token indices (B, L) -> :class:`DecoderOutput`; ``decode`` as in :meth:`decode`."""
        self.config.check_indices(indices)
        z = self.tokenizer.latents_from_indices(indices)  # (B, L, d)
        return self.decode(self.config.to_public(z), **decode)

    @torch.no_grad()
    def fit_latent_scaling(self, images: torch.Tensor, batch_size: int = 64) -> tuple[float, float]:
        """Set ``shift_factor`` to the mean and ``scaling_factor`` to 1 / standard deviation of the raw
        latents of ``images`` (N, 3, R, R), so a generative model sees zero-mean, unit-variance
        latents; :meth:`save_pretrained` then records them. Returns (scaling_factor, shift_factor)."""
        z = torch.cat(
            [self.encode(images[i : i + batch_size]).latents for i in range(0, len(images), batch_size)]
        )
        shift = float(z.double().mean())
        std = float(z.double().std())
        if not std > 0:
            raise ValueError(f"the latents of these {len(images)} images are constant: no scale to fit")
        config = self.tokenizer.config
        model = dataclasses.replace(config.model, latent_scaling=1.0 / std, latent_shift=shift)
        self.tokenizer.config = dataclasses.replace(config, model=model)
        return 1.0 / std, shift

    def save_pretrained(self, directory: str | Path, meta: dict | None = None) -> None:
        """Write the tokenizer export (``config.json`` + ``model.safetensors``), contract included."""
        self.tokenizer.save_pretrained(directory, meta=meta)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path, device="cpu") -> "FlowAutoencoder":
        """Load an export directory or a bundled model name (see :meth:`Tokenizer.from_pretrained`)."""
        return cls(Tokenizer.from_pretrained(name_or_dir, device=device)).eval()


@torch.no_grad()
def encode_batches(
    ae: FlowAutoencoder, images: torch.Tensor, *, indices: bool = False, batch_size: int = 32, progress=None
) -> torch.Tensor:
    """Images (N, 3, R, R) -> raw latents (N, *latent_shape) float32 or VQ tokens (N, L) int64, on CPU."""
    if indices and ae.config.bottleneck != "vq":
        raise ValueError(f"token indices need a VQ tokenizer; this one is {ae.config.bottleneck!r}")
    device = ae.tokenizer.z_null.device
    outs = []
    for i in range(0, images.shape[0], batch_size):
        out = ae.encode(images[i : i + batch_size].to(device))
        outs.append((out.indices if indices else out.latents.float()).cpu())
        if progress is not None:
            progress(outs[-1].shape[0])
    return torch.cat(outs)


@torch.no_grad()
def decode_batches(
    ae: FlowAutoencoder,
    codes: torch.Tensor,
    *,
    indices: bool = False,
    batch_size: int = 32,
    seed: int = 0,
    progress=None,
    **decode,
) -> torch.Tensor:
    """Raw latents (N, *latent_shape) or VQ tokens (N, L) -> images (N, 3, R, R) float32 on the CPU, not
    clamped; image i decodes from seed ``seed + i`` whatever the batch size."""
    device = ae.tokenizer.z_null.device
    outs = []
    for i in range(0, codes.shape[0], batch_size):
        x = codes[i : i + batch_size].to(device)
        seeds = range(seed + i, seed + i + x.shape[0])
        out = ae.decode_indices(x, seeds=seeds, **decode) if indices else ae.decode(x, seeds=seeds, **decode)
        outs.append(out.sample.float().cpu())
        if progress is not None:
            progress(x.shape[0])
    return torch.cat(outs)

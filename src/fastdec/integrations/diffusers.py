"""A fastdec decoder as a diffusers VAE: ``FastdecVAE`` plugs into a diffusers pipeline's ``vae`` slot.

Pipelines call ``vae.decode(latents / vae.config.scaling_factor).sample`` (and ``vae.encode(x)
.latent_dist.sample() * vae.config.scaling_factor`` for image-to-image); both work, with images in
[-1, 1] and latents in the public layout of :class:`fastdec.latents.LatentContract` ((B, d, h, w) for
grid latents, the layout of diffusers' image latents). The encoder is deterministic: its latent
distribution is diffusers' ``DiagonalGaussianDistribution`` with ``deterministic=True`` (zero variance).
Needs ``pip install diffusers``; the rest of fastdec does not.
"""

import dataclasses

import torch

try:
    from diffusers import ConfigMixin, ModelMixin
    from diffusers.configuration_utils import register_to_config
    from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
    from diffusers.models.modeling_outputs import AutoencoderKLOutput
except ImportError as err:  # an optional integration: say what to install
    raise ImportError(
        f"fastdec.integrations.diffusers needs the diffusers package (pip install diffusers): {err}"
    ) from err

from fastdec.autoencoder import FlowAutoencoder
from fastdec.config import Config
from fastdec.tokenizer import Tokenizer


class FastdecVAE(ModelMixin, ConfigMixin):
    """A fastdec tokenizer behind diffusers' ``AutoencoderKL`` interface.

    ``save_pretrained`` / ``from_pretrained`` are diffusers' own (``config.json`` holding the fastdec
    config, plus ``diffusion_pytorch_model.safetensors``); :meth:`from_fastdec` wraps a fastdec export.

    Args:
        fastdec_config: a fastdec config as a dict (``Config.to_dict()``).
        scaling_factor, shift_factor: the latent normalisation pipelines read from ``vae.config``; they
            become the wrapped tokenizer's ``latent_scaling`` / ``latent_shift``.
    """

    @register_to_config
    def __init__(self, fastdec_config: dict, scaling_factor: float = 1.0, shift_factor: float = 0.0):
        super().__init__()
        config = Config.from_dict(fastdec_config)
        model = dataclasses.replace(config.model, latent_scaling=scaling_factor, latent_shift=shift_factor)
        self.autoencoder = FlowAutoencoder(Tokenizer(dataclasses.replace(config, model=model)))

    @classmethod
    def from_fastdec(cls, name_or_dir, device="cpu") -> "FastdecVAE":
        """Wrap a fastdec export directory or bundled model name (its weights are copied)."""
        tokenizer = Tokenizer.from_pretrained(name_or_dir, device=device)
        m = tokenizer.config.model
        vae = cls(tokenizer.config.to_dict(), scaling_factor=m.latent_scaling, shift_factor=m.latent_shift)
        vae.autoencoder.tokenizer.load_state_dict(tokenizer.state_dict())
        return vae.to(device).eval()

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """Images (B, 3, R, R) in [-1, 1] -> ``AutoencoderKLOutput`` (a zero-variance latent distribution)."""
        z = self.autoencoder.encode(x).latents
        dist = DiagonalGaussianDistribution(torch.cat([z, torch.zeros_like(z)], dim=1), deterministic=True)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(
        self, z: torch.Tensor, return_dict: bool = True, generator: torch.Generator | None = None, **decode
    ):
        """Raw latents -> ``DecoderOutput`` (``.sample``: images in [-1, 1]).

        Args:
            generator: draws the per-image noise seeds; None decodes image i from seed i.
            decode: keywords of :meth:`fastdec.tokenizer.Tokenizer.decode` (``steps``, ``guidance``...).
        """
        if generator is not None:
            draw = torch.randint(0, 2**62, (z.shape[0],), generator=generator, device=generator.device)
            decode["seeds"] = draw.tolist()
        images = self.autoencoder.decode(z, **decode).sample
        return DecoderOutput(sample=images) if return_dict else (images,)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ):
        """Encode and decode images, as ``AutoencoderKL.forward`` (the posterior is a point mass, so
        ``sample_posterior`` changes nothing)."""
        dist = self.encode(sample).latent_dist
        z = dist.sample(generator) if sample_posterior else dist.mode()
        return self.decode(z, return_dict=return_dict, generator=generator)

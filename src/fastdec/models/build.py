"""The networks a model config describes: the encoder and the decoder (with its prior), untrained.

One place turns :class:`fastdec.config.ModelConfig` into modules; :class:`fastdec.tokenizer.Tokenizer`
holds them and decodes with them.
"""

import dataclasses

from torch import nn

from fastdec.config import ModelConfig
from fastdec.diffusion.denoiser import VelocityModel
from fastdec.models.decoder import DecoderNet
from fastdec.models.encoder import Encoder
from fastdec.models.linear_skip import LinearSkip
from fastdec.models.prior import OnePassPrior
from fastdec.models.quantizer import VectorQuantizer
from fastdec.models.unet import UNetNet


def decoder_backbone(m: ModelConfig, prior_cond: bool) -> nn.Module:
    """The decoder network ``net(x, tau, z[, prior]) -> (B, 3, H, W)``: a U-Net or a transformer."""
    if m.dec_backbone == "unet":
        return UNetNet(
            width=m.dec_width, blocks=m.dec_depth, latent_kind=m.latent_kind, num_latents=m.num_latents,
            latent_dim=m.latent_dim, prior_cond=prior_cond,
        )  # fmt: skip
    return DecoderNet(
        patch_size=m.dec_patch, width=m.dec_width, depth=m.dec_depth, heads=m.dec_heads,
        latent_kind=m.latent_kind, num_latents=m.num_latents, latent_dim=m.latent_dim,
        mlp_ratio=m.mlp_ratio, stem=m.dec_stem, spatial_cond=m.spatial_cond, prior_cond=prior_cond,
    )  # fmt: skip


def prior_model(m: ModelConfig) -> ModelConfig:
    """The model config of the one-pass decoder that a ``prior="onepass"`` decoder refines: ``m`` with
    the prior's width and depth (``prior_width``, ``prior_depth``; 0 keeps the decoder's) and one pass."""
    return dataclasses.replace(
        m, dec_width=m.prior_width or m.dec_width, dec_depth=m.prior_depth or m.dec_depth, decoder="onepass",
        prior="linear", prior_width=0, prior_depth=0, num_stages=1, cfg_dropout=0.0, diffusion_space="image",
    )  # fmt: skip


def build_networks(m: ModelConfig) -> tuple[Encoder, VelocityModel]:
    """(encoder, decoder) for a validated model config. With ``latent_skip`` both share the PCA codec's
    two directions; with ``prior="onepass"`` the decoder refines a one-pass decoder of the same shape."""
    skips = [None, None]
    if m.latent_skip:
        region = m.enc_patch if m.latent_kind == "grid" else m.resolution
        per_region = m.latent_dim if m.latent_kind == "grid" else m.num_latents * m.latent_dim
        skips = [
            LinearSkip(direction, region, per_region, m.num_latents, m.latent_dim)
            for direction in ("encode", "decode")
        ]
    vq = m.bottleneck == "vq"
    encoder = Encoder(
        patch_size=m.enc_patch, width=m.enc_width, depth=m.enc_depth, heads=m.enc_heads,
        latent_kind=m.latent_kind, num_latents=m.num_latents, latent_dim=m.latent_dim,
        mlp_ratio=m.mlp_ratio, stem=m.enc_stem, skip=skips[0],
        quantizer=VectorQuantizer(m.codebook_size, m.latent_dim, m.vq_beta) if vq else None,
    )  # fmt: skip
    net = decoder_backbone(m, m.prior_cond)  # built before the prior's: the seed's draws stay in order
    prior = skips[1]
    if m.prior == "onepass":
        # the one-pass decoder this refines was trained with the same prior_cond (train.prior_from)
        prior = OnePassPrior(
            skips[1], decoder_backbone(prior_model(m), m.prior_cond), prior_input=m.prior_cond
        )
    decoder = VelocityModel(
        net, m.parameterization, prior=prior, blend=m.skip_blend, prior_input=m.prior_cond,
        space=m.diffusion_space,
    )  # fmt: skip
    decoder.resolution = m.resolution
    return encoder, decoder

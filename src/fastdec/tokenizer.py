"""The user-facing tokenizer: images -> latent tokens z -> images with a flow-matching decoder."""

from pathlib import Path

import torch
from torch import nn

from fastdec.config import Config
from fastdec.diffusion.pyramid import stage_specs
from fastdec.diffusion.timesteps import euler_grid, split_total_steps, steps_per_stage
from fastdec.io import load_export, save_export
from fastdec.models.decoder import DecoderNet
from fastdec.models.denoiser import VelocityModel
from fastdec.models.encoder import Encoder
from fastdec.models.linear_skip import LinearSkip
from fastdec.sampling.euler import euler_solve
from fastdec.sampling.multiscale import multiscale_sample, stage_noises


class Tokenizer(nn.Module):
    """Encoder + flow-matching decoder (single- or multi-resolution) + learned null latent.

    Args:
        config: the resolved :class:`fastdec.config.Config`; its model part sizes the networks, its
            sample part gives the default decode settings.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        m = config.model
        if m.latent_kind == "grid" and m.num_latents != (m.resolution // m.enc_patch) ** 2:
            raise ValueError(
                f"grid latents need num_latents = (resolution / enc_patch)^2 = "
                f"{(m.resolution // m.enc_patch) ** 2}, got {m.num_latents}"
            )
        if m.decoder not in ("flow", "onepass"):
            raise ValueError(f"unknown decoder {m.decoder!r}; expected 'flow' or 'onepass'")
        if m.decoder == "onepass" and (m.num_stages != 1 or m.cfg_dropout != 0):
            raise ValueError("a one-pass decoder has one stage and no guidance (num_stages=1, cfg_dropout=0)")
        self.stages = stage_specs(m.resolution, m.num_stages, m.gamma)
        coarsest = self.stages[0].resolution
        if coarsest % m.dec_patch:
            raise ValueError(
                f"the coarsest stage ({coarsest} px) is not a multiple of dec_patch {m.dec_patch}"
            )
        skips = [None, None]
        if m.latent_skip:
            region = m.enc_patch if m.latent_kind == "grid" else m.resolution
            per_region = m.latent_dim if m.latent_kind == "grid" else m.num_latents * m.latent_dim
            skips = [
                LinearSkip(direction, region, per_region, m.num_latents, m.latent_dim)
                for direction in ("encode", "decode")
            ]
        self.encoder = Encoder(
            patch_size=m.enc_patch, width=m.enc_width, depth=m.enc_depth, heads=m.enc_heads,
            latent_kind=m.latent_kind, num_latents=m.num_latents, latent_dim=m.latent_dim,
            mlp_ratio=m.mlp_ratio, stem=m.enc_stem, skip=skips[0],
        )  # fmt: skip
        net = DecoderNet(
            patch_size=m.dec_patch, width=m.dec_width, depth=m.dec_depth, heads=m.dec_heads,
            latent_kind=m.latent_kind, num_latents=m.num_latents, latent_dim=m.latent_dim,
            mlp_ratio=m.mlp_ratio, stem=m.dec_stem, spatial_cond=m.spatial_cond,
        )  # fmt: skip
        self.decoder = VelocityModel(net, m.parameterization, prior=skips[1], blend=m.skip_blend)
        self.decoder.resolution = m.resolution
        self.z_null = nn.Parameter(torch.zeros(1, m.num_latents, m.latent_dim))

    @torch.no_grad()
    def init_linear_skip(self, images: torch.Tensor) -> float:
        """PCA warm start of the ``latent_skip`` paths from training images (N, 3, R, R); returns the
        explained variance fraction."""
        self.encoder.skip.fit_pca(images)
        return self.decoder.prior.fit_pca(images)

    @property
    def resolution(self) -> int:
        return self.config.model.resolution

    def check_images(self, images: torch.Tensor) -> None:
        r = self.resolution
        if not torch.is_tensor(images) or not images.is_floating_point():
            raise ValueError(f"images must be a float tensor in [-1, 1], got {type(images)}")
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (r, r):
            raise ValueError(f"images must have shape (B, 3, {r}, {r}), got {tuple(images.shape)}")

    def check_latents(self, z: torch.Tensor) -> None:
        want = (self.config.model.num_latents, self.config.model.latent_dim)
        if z.ndim != 3 or tuple(z.shape[1:]) != want:
            raise ValueError(f"latents must have shape (B, {want[0]}, {want[1]}), got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("latents contain NaN or inf")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, R, R) in [-1, 1] -> z (B, L, d)."""
        self.check_images(images)
        return self.encoder(images)

    def decode_steps(self, steps=None, total_steps: int | None = None) -> tuple[int, ...]:
        """Steps per stage: ``total_steps`` split over stages, else ``steps`` (int or per-stage list),
        else the config's default."""
        num_stages = len(self.stages)
        if total_steps is not None:
            return split_total_steps(total_steps, num_stages)
        return steps_per_stage(self.config.sample.steps if steps is None else steps, num_stages)

    def decode(
        self,
        z: torch.Tensor,
        *,
        steps=None,
        total_steps: int | None = None,
        guidance: float | None = None,
        seeds=None,
    ) -> torch.Tensor:
        """Latents (B, L, d) -> images (B, 3, R, R), coarse to fine with Euler steps per stage.

        Args:
            steps: Euler steps per stage (int, or one per stage); default from the config.
            total_steps: split this many steps over the stages instead.
            guidance: classifier-free guidance weight w (1 = none, one call per step).
            seeds: one int per image (default 0..B-1): the noise of image i depends on seeds[i] only.
        """
        self.check_latents(z)
        if self.config.model.decoder == "onepass":
            return self.decode_onepass(z, steps=steps, total_steps=total_steps, guidance=guidance)
        per_stage = self.decode_steps(steps, total_steps)
        w = self.config.sample.guidance if guidance is None else float(guidance)
        seeds = list(range(z.shape[0])) if seeds is None else list(seeds)
        if len(seeds) != z.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for {z.shape[0]} latents")
        noises = stage_noises(seeds, self.stages, device=z.device, dtype=z.dtype)

        def solve(stage, x):
            velocity = self.velocity_fn(z, stage, w)
            return euler_solve(velocity, x, euler_grid(per_stage[stage.index]).to(z.device))

        m = self.config.model
        return multiscale_sample(
            self.stages, solve, noises, gamma=m.gamma, published_sign=m.published_block_noise
        )

    def decode_onepass(self, z, *, steps=None, total_steps=None, guidance=None) -> torch.Tensor:
        """The deterministic decoder: one call on an all-zero input at t = 1, read as the clean image."""
        if (steps not in (None, 1, (1,))) or (total_steps not in (None, 1)) or (guidance not in (None, 1.0)):
            raise ValueError("a one-pass decoder takes no steps or guidance settings")
        r = self.resolution
        x = z.new_zeros(z.shape[0], 3, r, r)
        t = z.new_ones(z.shape[0])
        return self.decoder.predict(x, t, z, self.stages[0])[1]

    def velocity_fn(self, z: torch.Tensor, stage, guidance: float):
        """``v(x, t)`` for one stage with z bound; guidance runs cond and null in one batch."""
        if guidance == 1.0:
            return lambda x, t: self.decoder(x, t, z, stage)
        zz = torch.cat([z, self.z_null.expand_as(z)])  # (2B, L, d)

        def velocity(x, t):
            v_cond, v_null = self.decoder(torch.cat([x, x]), torch.cat([t, t]), zz, stage).chunk(2)
            return v_null + guidance * (v_cond - v_null)

        return velocity

    def nfe(self, steps=None, total_steps: int | None = None, guidance: float | None = None) -> int:
        """Network calls per image (a guided call counts twice)."""
        if self.config.model.decoder == "onepass":
            return 1
        w = self.config.sample.guidance if guidance is None else guidance
        return sum(self.decode_steps(steps, total_steps)) * (1 if w == 1.0 else 2)

    def save_pretrained(self, directory: str | Path, meta: dict | None = None) -> None:
        """Write ``config.json`` + ``model.safetensors``; ``meta`` records which weights these are."""
        payload = {"config": self.config.to_dict(), "meta": meta or {}}
        save_export(directory, self.state_dict(), payload)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path, device="cpu") -> "Tokenizer":
        """Load an export directory (or a bundled model name) with no pickle on the path."""
        from fastdec.hub import resolve_model

        tensors, payload = load_export(resolve_model(name_or_dir))
        model = cls(Config.from_dict(payload["config"]))
        model.meta = payload.get("meta", {})
        missing = set(model.state_dict()) - set(tensors)
        unexpected = set(tensors) - set(model.state_dict())
        if missing or unexpected:
            raise ValueError(
                f"weights in {name_or_dir} do not match its config: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        for key, value in model.state_dict().items():
            if tensors[key].shape != value.shape:
                raise ValueError(
                    f"weight {key} in {name_or_dir} has shape {tuple(tensors[key].shape)}, "
                    f"its config implies {tuple(value.shape)}"
                )
        model.load_state_dict({k: v.float() for k, v in tensors.items()})
        return model.to(device).eval()

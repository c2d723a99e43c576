"""The user-facing tokenizer: images -> latent tokens z -> images with a flow-matching decoder."""

from pathlib import Path

import torch
from torch import nn

from fastdec.bundled import resolve_model
from fastdec.checks import check_images
from fastdec.config import Config, validate
from fastdec.diffusion.pyramid import Pyramid
from fastdec.diffusion.timesteps import EulerSteps, euler_schedule
from fastdec.io import CONFIG_NAME, check_payload, load_export, restore_interrupted_export, save_export
from fastdec.models.build import build_networks
from fastdec.models.quantizer import VectorQuantizer
from fastdec.sampling.sampler import sample, stage_noises
from fastdec.sampling.settings import DecodeSettings
from fastdec.weights import check_weights, shared_prior_weights

# A one-pass decoder (docs/method.md §10) is the sampler's trivial case: one step from the noise mean.
ONEPASS = DecodeSettings(steps=(1,), guidance=1.0, temperature=0.0)


class Tokenizer(nn.Module):
    """Encoder + flow-matching decoder (single- or multi-resolution) + learned null latent.

    Args:
        config: the resolved :class:`fastdec.config.Config`; its model part sizes the networks, its
            sample part gives the default decode settings.
    """

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        validate(config)  # every field and the fields that must agree
        m = config.model
        self.pyramid = Pyramid(m.resolution, m.num_stages, m.gamma, m.published_block_noise)
        self.encoder, self.decoder = build_networks(m)
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

    @property
    def stages(self):
        """The pyramid's stages, coarsest first (read only: ``self.pyramid`` owns them)."""
        return self.pyramid.stages

    def check_images(self, images: torch.Tensor) -> None:
        """Refuse anything but finite float images (B, 3, R, R) in [-1, 1] of the model's dtype and
        device (see :func:`fastdec.checks.check_images` for the range rule)."""
        check_images(images, self.resolution, lambda x: self._check_placement("images", x))

    def check_latents(self, z: torch.Tensor) -> None:
        """Refuse anything but finite float latents (B, L, d) of this tokenizer's dtype and device."""
        m = self.config.model
        if not torch.is_tensor(z) or not z.is_floating_point():
            raise ValueError(
                f"latents must be a float tensor, got {z.dtype if torch.is_tensor(z) else type(z).__name__}"
            )
        if z.ndim != 3 or tuple(z.shape[1:]) != (m.num_latents, m.latent_dim):
            raise ValueError(
                f"latents must have shape (B, {m.num_latents}, {m.latent_dim}) for this tokenizer "
                f"(num_latents={m.num_latents}, latent_dim={m.latent_dim}), got {tuple(z.shape)}: "
                "latents of another tokenizer?"
            )
        if z.shape[0] == 0:
            raise ValueError(f"latents must hold at least one latent, got {tuple(z.shape)}")
        self._check_placement("latents", z)
        if not torch.isfinite(z).all():
            raise ValueError("latents contain NaN or inf")

    def _check_placement(self, name: str, x: torch.Tensor) -> None:
        weight = self.z_null
        if x.device != weight.device:
            raise ValueError(f"{name} are on {x.device} but the tokenizer is on {weight.device}")
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(
                f"{name} have dtype {x.dtype} but the tokenizer's weights are {weight.dtype}: "
                f"convert with .to({weight.dtype}) or run under torch.autocast"
            )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, R, R) in [-1, 1] -> z (B, L, d).

        Images past [-1, 1] (e.g. [0, 255] pixels) are a ValueError naming the range found; images in
        [0, 1] cannot be detected and encode as dark images: convert them with ``2 * x - 1``.
        """
        self.check_images(images)
        return self.encoder(images)

    def _quantizer(self) -> VectorQuantizer:
        if self.encoder.quantizer is None:
            raise ValueError("token indices need a VQ tokenizer (model.bottleneck='vq'); this one is not")
        return self.encoder.quantizer

    def encode_indices(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, R, R) in [-1, 1] -> discrete tokens (B, L), int64 in [0, codebook_size)."""
        self.check_images(images)
        return self._quantizer()(self.encoder.features(images)).indices

    def latents_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens (B, L) -> the latents z (B, L, d) their codes stand for (what :meth:`encode` gives)."""
        m = self.config.model
        if not torch.is_tensor(indices) or indices.ndim != 2 or indices.shape[1] != m.num_latents:
            raise ValueError(
                f"token indices must have shape (B, {m.num_latents}) for this tokenizer, got "
                f"{tuple(indices.shape) if torch.is_tensor(indices) else type(indices).__name__}"
            )
        return self._quantizer().lookup(indices.to(self.z_null.device)).to(self.z_null.dtype)

    def decode_indices(self, indices: torch.Tensor, **decode) -> torch.Tensor:
        """Tokens (B, L) -> images (B, 3, R, R); ``decode`` takes the keywords of :meth:`decode`."""
        return self.decode(self.latents_from_indices(indices), **decode)

    def settings(self, **settings) -> DecodeSettings:
        """The decode settings that keywords of :meth:`decode` ask for, with this model's defaults (its
        config's ``sample`` section) filled in and the steps as one count per stage.

        A one-pass decoder (``model.decoder="onepass"``) decodes with one step from zero and takes no
        steps, guidance or temperature other than their neutral values (1).
        """
        asked = DecodeSettings(**settings)
        if self.config.model.decoder == "onepass":
            neutral = {"steps": (1,), "total_steps": 1, "guidance": 1.0, "temperature": 1.0}
            if any(getattr(asked, key) not in (None, value) for key, value in neutral.items()):
                raise ValueError("a one-pass decoder takes no steps, guidance or temperature settings")
            return DecodeSettings(seeds=asked.seeds).resolve(ONEPASS, 1)
        d = self.config.sample
        defaults = DecodeSettings(steps=d.steps, guidance=d.guidance, temperature=d.temperature)
        return asked.resolve(defaults, len(self.pyramid))

    def decode(
        self,
        z: torch.Tensor,
        *,
        steps=None,
        total_steps: int | None = None,
        guidance: float | None = None,
        seeds=None,
        temperature: float | None = None,
    ) -> torch.Tensor:
        """Latents (B, L, d) -> images (B, 3, R, R), coarse to fine with Euler steps per stage.

        Args:
            steps: Euler steps per stage (int, or one per stage); default from the config.
            total_steps: split this many steps over the stages instead.
            guidance: classifier-free guidance weight w (1 = none, one call per step).
            seeds: one int per image (default 0..B-1): the noise of image i depends on seeds[i] only.
            temperature: scale of every Gaussian draw (initial noise and renoise), >= 0; 1 samples
                the trained distribution, 0 decodes deterministically; default from the config.

        The settings are checked as :class:`fastdec.sampling.settings.DecodeSettings` (a ValueError
        names a bad one).
        """
        self.check_latents(z)
        s = self.settings(steps=steps, total_steps=total_steps, guidance=guidance, seeds=seeds,
                          temperature=temperature)  # fmt: skip
        seeds = range(z.shape[0]) if s.seeds is None else s.seeds
        if len(seeds) != z.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for {z.shape[0]} latents")
        if s.temperature == 0:  # deterministic: no draws
            noises = [z.new_zeros(z.shape[0], 3, st.resolution, st.resolution) for st in self.pyramid]
        else:
            noises = [
                s.temperature * n for n in stage_noises(seeds, self.pyramid, device=z.device, dtype=z.dtype)
            ]
        return self.decode_noises(z, noises, euler_schedule(s.steps), s.guidance)

    def decode_noises(
        self, z: torch.Tensor, noises, schedule: tuple[EulerSteps, ...], guidance: float = 1.0
    ) -> torch.Tensor:
        """The images that the sampler makes from latents (B, L, d) and given noises, one (B, 3, r_s, r_s)
        per stage (the first is stage 0's start state), with the Euler steps of ``schedule``
        (:func:`fastdec.diffusion.timesteps.euler_schedule`) and guidance weight ``guidance``."""
        zz = z if guidance == 1.0 else torch.cat([z, self.z_null.expand_as(z)])  # (B or 2B, L, d)
        prior = self.decoder.prior_image(zz)  # depends on z only: once per decode
        x = sample(
            lambda stage: self.velocity_fn(z, stage, guidance, prior), self.pyramid, noises[0], noises[1:],
            schedule,
        )  # fmt: skip
        return self.decoder.to_image(x, None if prior is None else prior[: z.shape[0]])

    def velocity_fn(self, z: torch.Tensor, stage, guidance: float, prior: torch.Tensor | None = None):
        """``v(x, t)`` for one stage with z bound; guidance runs cond and null in one batch. ``prior``:
        ``self.decoder.prior_image`` of z (of z then the null latent when guided), if computed."""
        if guidance == 1.0:
            return lambda x, t: self.decoder(x, t, z, stage, prior)
        zz = torch.cat([z, self.z_null.expand_as(z)])  # (2B, L, d)

        def velocity(x, t):
            v_cond, v_null = self.decoder(torch.cat([x, x]), torch.cat([t, t]), zz, stage, prior).chunk(2)
            return v_null + guidance * (v_cond - v_null)

        return velocity

    def nfe(self, **settings) -> int:
        """Network calls per image for the keywords of :meth:`decode` (a guided call counts twice, a
        one-pass prior once per decode; the temperature changes nothing)."""
        s = self.settings(**settings)
        prior_calls = 1 if self.config.model.prior == "onepass" else 0
        return sum(s.steps) * (1 if s.guidance == 1.0 else 2) + prior_calls

    def save_pretrained(self, directory: str | Path, meta: dict | None = None) -> None:
        """Write ``config.json`` (the model and sample sections of the config: training settings stay in
        the run directory) + ``model.safetensors``; ``meta`` records which weights these are."""
        payload = {"config": self.config.to_dict(export=True), "meta": meta or {}}
        save_export(directory, self.state_dict(), payload)

    @classmethod
    def from_pretrained(cls, name_or_dir: str | Path, device="cpu") -> "Tokenizer":
        """Load an export directory (or a bundled model name) with no pickle on the path.

        Raises:
            FileNotFoundError: no such directory or bundled model, or a file of the export is missing.
            ValueError: a corrupt or foreign file, or a config that does not match the weights (unusable
                values, missing or unexpected weights, other shapes, non-float or non-finite weights);
                the message names the export and the mismatch.
        """
        if str(name_or_dir):  # an overwrite killed between its two renames: put the old export back
            restore_interrupted_export(name_or_dir)
        directory = resolve_model(name_or_dir)
        tensors, payload = load_export(directory)
        if "prior_export" in payload:
            tensors = {**tensors, **shared_prior_weights(directory, payload["prior_export"], set(tensors))}
        try:  # the config is untrusted input: any failure to build a model from it is the file's fault
            check_payload(payload, keys=("config", "meta", "prior_export"))
            config = Config.from_dict(payload["config"])
            with torch.device("meta"):  # shapes only: a config cannot allocate more than its weights hold
                expected = {k: v.shape for k, v in cls(config).state_dict().items()}
        except Exception as err:
            raise ValueError(
                f"{directory / CONFIG_NAME} holds no usable model config: {type(err).__name__}: {err}"
            ) from None
        check_weights(expected, tensors, directory)
        model = cls(config)
        model.meta = payload.get("meta", {})
        model.load_state_dict({k: v.float() for k, v in tensors.items()})
        return model.to(device).eval()

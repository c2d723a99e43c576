"""Frozen configuration dataclasses and named presets.

Modules never read these: the builders (:mod:`fastdec.tokenizer`, :mod:`fastdec.training`) unpack them
into plain arguments. The resolved config is written next to every checkpoint and inside every export.
"""

import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    resolution: int = 32
    latent_kind: str = "tokens"  # "tokens" (paper: 1-D register tokens) | "grid" (spatial latent grid)
    num_latents: int = 16  # L; for "grid" a square number (grid side = sqrt(L))
    latent_dim: int = 8  # d
    enc_patch: int = 4
    enc_width: int = 192
    enc_depth: int = 4
    enc_heads: int = 3
    enc_stem: str = "linear"  # "linear" | "conv"
    dec_patch: int = 4
    dec_width: int = 192
    dec_depth: int = 4
    dec_heads: int = 3
    dec_stem: str = "linear"
    spatial_cond: bool = False  # add grid latents to the image tokens at their location
    latent_skip: bool = False  # fixed PCA linear encoder/decoder paths (needs parameterization "x")
    skip_blend: bool = False  # with latent_skip: precondition with the least-squares blend of x_t and PCA
    mlp_ratio: float = 4.0
    parameterization: str = "v"  # network output read as velocity ("v") or clean stage end ("x")
    decoder: str = "flow"  # "flow" (diffusion decoder) | "onepass" (deterministic, one call: the speed floor)
    num_stages: int = 1  # S; 1 = single-resolution flow matching
    gamma: float = 1 / 3  # pyramid block-noise correlation (METHOD.md §3)
    published_block_noise: bool = False  # the +gamma sign of the paper's code (METHOD.md §7.1)
    cfg_dropout: float = 0.1  # probability that z is replaced by the learned null latent


@dataclass(frozen=True)
class TrainConfig:
    data: str = "photos"  # "photos" (embedded) or a folder of images
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.0
    beta2: float = 0.99
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    bf16: bool = False
    t_sampling: str = "logit_normal"  # "logit_normal" | "uniform"
    loss_space: str = "v"  # "v" (velocity error, METHOD.md §2) | "x" (clean-estimate error)
    sigmoid_bias: float | None = None  # sigmoid loss weighting bias (paper: -3); None = off
    perceptual: str = "none"  # "none" | "inception" | "lpips"
    perceptual_weight: float = 0.1
    perceptual_start_stage: int = -1  # first stage with a perceptual term; -1 = last stage only
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 250
    keep_states: int = 2
    max_nonfinite: int = 10  # stop after this many steps with a non-finite loss
    eval_every: int = 0  # held-out PSNR every N steps (0 = off)
    eval_images: int = 64
    eval_steps: int = 25


@dataclass(frozen=True)
class SampleConfig:
    steps: tuple[int, ...] = (50,)  # Euler steps per stage (one value = the same for every stage)
    guidance: float = 1.0


@dataclass(frozen=True)
class DistillConfig:
    """One-step-per-stage distillation (METHOD.md §4); used by ``fastdec distill`` only."""

    target: str = "trajectory"  # "trajectory" (GAN-free regression) | "stage_path" (ADD, paper)
    teacher_steps: int = 8  # teacher Euler steps per stage when building targets
    teacher_guidance: float = 1.0  # the student learns the guided teacher and runs unguided
    regression_weight: float = 1.0
    perceptual: str = "none"
    perceptual_weight: float = 0.0
    adversarial_weight: float = 0.0  # 0 = no discriminator is built
    disc_lr: float = 1e-4
    min_start: float = 0.25  # smallest teacher start time u on the stage path ("stage_path")
    train_encoder: bool = False  # the encoder stays frozen unless set


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        parts = {}
        for f in fields(cls):
            sub = dict(data.get(f.name, {}))
            sub_cls = f.default_factory
            known = {g.name for g in fields(sub_cls)}
            unknown = set(sub) - known
            if unknown:
                raise ValueError(f"unknown {f.name} config keys: {sorted(unknown)}")
            if "steps" in sub and f.name == "sample":
                sub["steps"] = tuple(sub["steps"])
            parts[f.name] = sub_cls(**sub)
        return cls(**parts)


PRESETS: dict[str, Config] = {
    # Seconds on a CPU: for tests.
    "tiny": Config(
        model=ModelConfig(
            resolution=16,
            num_latents=4,
            latent_dim=4,
            enc_patch=4,
            enc_width=32,
            enc_depth=1,
            enc_heads=2,
            dec_patch=4,
            dec_width=32,
            dec_depth=2,
            dec_heads=2,
        ),
        train=TrainConfig(steps=4, batch_size=4, warmup_steps=1, log_every=1, ckpt_every=2),
        sample=SampleConfig(steps=(4,)),
    ),
    # The paper's design shrunk to 32 px: 1-D register tokens, joint-attention decoder.
    "cpu32-paper": Config(),
    # The paper's scale (METHOD.md §1): 256 px, patch 8, 128 tokens x 32 dims, depth 12, width 768.
    "in1k256": Config(
        model=ModelConfig(
            resolution=256,
            num_latents=128,
            latent_dim=32,
            enc_patch=8,
            enc_width=768,
            enc_depth=12,
            enc_heads=12,
            dec_patch=8,
            dec_width=768,
            dec_depth=12,
            dec_heads=12,
        ),
        train=TrainConfig(
            data="imagenet/train",
            steps=400_000,
            batch_size=256,
            lr=1e-4,
            warmup_steps=5000,
            bf16=True,
            perceptual="lpips",
            ckpt_every=5000,
            ema_decay=0.9999,
        ),
        sample=SampleConfig(steps=(50,), guidance=1.5),
    ),
}
# The 32 px default, chosen by measurement on this CPU (see the README's recipe table): a 4 x 4 x 8
# latent grid added to the decoder's image tokens, x-prediction with an x-space loss, and a fixed PCA
# codec as the linear skip that the transformers correct.
PRESETS["cpu32"] = Config(
    model=ModelConfig(
        latent_kind="grid",
        enc_patch=8,
        spatial_cond=True,
        parameterization="x",
        latent_skip=True,
    ),
    train=TrainConfig(batch_size=32, lr=3e-4, warmup_steps=100, loss_space="x"),
)


def _parse_value(text: str, current: Any, name: str) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} expects a boolean, got {text!r}")
    if isinstance(current, tuple):
        return tuple(int(v) for v in text.split(","))
    if current is None or isinstance(current, float):
        if text.lower() == "none":
            return None
        return float(text)
    if isinstance(current, int):
        return int(text)
    return text


def resolve(preset: str | Config, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A named preset (or a given config) with ``section.key=value`` overrides applied.

    Example: ``resolve("cpu32", ["model.num_stages=3", "train.lr=1e-3"])``.
    """
    if isinstance(preset, Config):
        config = preset
    elif preset in PRESETS:
        config = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    for item in overrides:
        key, sep, text = item.partition("=")
        section, _, name = key.partition(".")
        if not sep or not name or section not in ("model", "train", "sample", "distill"):
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        sub = getattr(config, section)
        if name not in {f.name for f in fields(sub)}:
            raise ValueError(f"unknown config key {key!r}")
        value = _parse_value(text, getattr(sub, name), key)
        config = replace(config, **{section: replace(sub, **{name: value})})
    return config

"""Frozen configuration dataclasses, their JSON form and their checks (named presets: :mod:`fastdec.presets`).

Modules never read these: the builders (:mod:`fastdec.tokenizer`, :mod:`fastdec.training`) unpack them
into plain arguments. The resolved config is written next to every checkpoint and inside every export.
"""

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Literal


@dataclass(frozen=True)
class ModelConfig:
    resolution: int = 32
    latent_kind: Literal["tokens", "grid"] = "tokens"  # paper: 1-D register tokens | spatial latent grid
    num_latents: int = 16  # L; for "grid" a square number (grid side = sqrt(L))
    latent_dim: int = 8  # d
    enc_patch: int = 4
    enc_width: int = 192
    enc_depth: int = 4
    enc_heads: int = 3
    enc_stem: Literal["linear", "conv"] = "linear"
    dec_patch: int = 4
    dec_width: int = 192
    dec_depth: int = 4
    dec_heads: int = 3
    dec_stem: Literal["linear", "conv"] = "linear"
    # "transformer" (the paper's joint-attention decoder) | "unet" (models/unet.py: width
    # dec_width at the first of three levels, dec_depth residual blocks per level and direction)
    dec_backbone: Literal["transformer", "unet"] = "transformer"
    spatial_cond: bool = False  # add grid latents to the image tokens at their location
    latent_skip: bool = False  # fixed PCA linear encoder/decoder paths (needs parameterization "x")
    skip_blend: bool = False  # with latent_skip: precondition with the least-squares blend of x_t and PCA
    prior_cond: bool = False  # with latent_skip: the PCA decode of z is also an input image of the decoder
    # with latent_skip, what the x-prediction refines: "linear" (the PCA decode of z) or "onepass" (a
    # one-pass decoder of the same shape, models/prior.py; train it first, then train.prior_from)
    prior: Literal["linear", "onepass"] = "linear"
    # prior="onepass": the one-pass decoder's dec_width and dec_depth, 0 = the diffusion decoder's. A
    # narrower prior is decoded once per image, so it sets most of a one-step student's cost.
    prior_width: int = 0
    prior_depth: int = 0
    # what the diffusion runs on: the image, or the one-pass prior's residual scaled to unit variance,
    # with one scale or per axis of its colour eigenbasis (docs/method.md §11.5: the noise levels then
    # match the detail the prior leaves out)
    diffusion_space: Literal["image", "residual", "residual-whitened"] = "image"
    mlp_ratio: float = 4.0
    parameterization: Literal["v", "x"] = "v"  # network output read as velocity or clean stage end
    decoder: Literal["flow", "onepass"] = "flow"  # diffusion | deterministic, one call (the speed floor)
    num_stages: int = 1  # S; 1 = single-resolution flow matching
    gamma: float = 1 / 3  # pyramid block-noise correlation (docs/method.md §4)
    published_block_noise: bool = False  # the +gamma sign of the paper's code (docs/method.md §14.1)
    cfg_dropout: float = 0.1  # probability that z is replaced by the learned null latent
    bottleneck: Literal["continuous", "vq"] = "continuous"  # plain autoencoder | l2-normalised codebook
    codebook_size: int = 1024  # VQ: number of codes K
    vq_beta: float = 0.25  # VQ: commitment loss weight
    # The latent contract's normalisation, as diffusers' scaling_factor / shift_factor: encode and decode
    # use raw latents; a generative model sees (z - latent_shift) * latent_scaling.
    latent_scaling: float = 1.0
    latent_shift: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    data: str = "photos"  # "photos" (embedded) or a folder of images
    # model.prior="onepass": a one-pass export whose encoder and decoder become this run's encoder and
    # prior, frozen (the diffusion decoder then learns only what the one-pass decode misses)
    prior_from: str = ""
    # fine-tuning: start from a trained export of the same model (every model field equal): all its
    # weights and buffers; the optimiser, schedule and EMA start fresh (e.g. to add a loss term).
    # For `fastdec distill`: a trained student export to start from instead of the teacher's weights
    init_from: str = ""
    photos: int = 0  # data "photos": train on the first N train photos only (0 = all; data scaling)
    augment: Literal["flip", "dihedral", "dihedral-rgb"] = "flip"  # embedded photos (data/photos.py)
    crop_min_frac: float = 0.5  # embedded photos: smallest crop side / the photo's short side
    steps: int = 3000
    # wall-clock cap of one run of the training loop: after the step that crosses it, save the state,
    # export and stop (re-running the command trains on); 0 = none
    max_minutes: float = 0.0
    # end the run after this step (state saved, exported) with the lr schedule of `steps`; 0 = steps
    stop_at: int = 0
    batch_size: int = 64
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.0
    beta2: float = 0.99
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    bf16: bool = False
    grad_accum: int = 1  # micro-batches per step in each process; batch_size is the global batch
    compile: bool = False  # torch.compile the encoder and decoder networks (opt-in speed-up)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available, else CPU
    workers: int = 0  # DataLoader worker processes per training process
    verify_data: bool = True  # decode every image of a folder or shard set at start-up (False: on read)
    t_sampling: Literal["logit_normal", "uniform"] = "logit_normal"
    loss_space: Literal["v", "x"] = "v"  # velocity error | clean-estimate error; docs/method.md §6
    sigmoid_bias: float | None = None  # sigmoid loss weighting bias (paper: -3); None = off
    perceptual: Literal["none", "inception", "lpips"] = "none"
    perceptual_weight: float = 0.1
    perceptual_start_stage: int = -1  # first stage with perceptual/adversarial terms; -1 = last only
    # diffusion decoders: a hinge GAN term on the clean estimate (0 = no discriminator is built)
    adversarial_weight: float = 0.0
    disc_lr: float = 1e-4
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
    # Scales every Gaussian draw of the sampler (initial noise, each stage's renoise): 1 samples the
    # trained distribution, below 1 trades diversity for fidelity, 0 decodes deterministically.
    temperature: float = 1.0


@dataclass(frozen=True)
class DistillConfig:
    """One-step-per-stage distillation (docs/method.md §9); used by ``fastdec distill`` only."""

    target: Literal["trajectory", "stage_path"] = "trajectory"  # GAN-free regression | ADD (paper)
    teacher_steps: int = 8  # teacher Euler steps per stage when building targets
    teacher_guidance: float = 1.0  # the student learns the guided teacher and runs unguided
    regression_weight: float = 1.0
    perceptual: Literal["none", "inception", "lpips"] = "none"
    perceptual_weight: float = 0.0
    adversarial_weight: float = 0.0  # 0 = no discriminator is built
    disc_lr: float = 1e-4
    min_start: float = 0.25  # smallest teacher start time u on the stage path ("stage_path")
    path_noise: Literal["student", "fresh"] = "student"  # the stage-path noise: the student's own | new
    train_encoder: bool = False  # the encoder stays frozen unless set


# What an export (and an ONNX file) stores of its config: the networks and the default decode settings.
# The training and distillation settings stay in the run directory's config.json; a config without them
# loads with their defaults.
EXPORT_SECTIONS = ("model", "sample")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self, *, export: bool = False) -> dict:
        """All sections, or with ``export`` only those an export keeps (:data:`EXPORT_SECTIONS`)."""
        data = dataclasses.asdict(self)
        return {k: v for k, v in data.items() if k in EXPORT_SECTIONS} if export else data

    def to_json(self, *, export: bool = False) -> str:
        return json.dumps(self.to_dict(export=export), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """Inverse of :meth:`to_dict` (a parsed ``config.json``, untrusted): unknown keys, values of the
        wrong type (``"16"`` for an int, ``true`` for a float) and out-of-range values are an error
        naming the key and value; missing keys take defaults, so configs of older versions load. JSON
        lists become tuples and integers become floats where the field is a float."""
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        parts = {}
        for f in fields(cls):
            sub, sub_cls = data.get(f.name, {}), f.default_factory
            if not isinstance(sub, dict):
                raise ValueError(f"config section {f.name!r} must be a JSON object, got {sub!r:.80}")
            hints = typing.get_type_hints(sub_cls)
            unknown = set(sub) - set(hints)
            if unknown:
                raise ValueError(f"unknown {f.name} config keys: {sorted(unknown)}")
            for key, value in sub.items():
                if not _conforms(value, hints[key]):
                    raise ValueError(f"{f.name}.{key} must be {_wanted(hints[key])}, got {value!r:.80}")
            parts[f.name] = sub_cls(**{k: _converted(v, hints[k]) for k, v in sub.items()})
        config = cls(**parts)
        validate(config)
        return config


def _members(annotation) -> tuple:
    """The alternatives of ``X | Y`` (or of ``Optional[X]``), else ``(annotation,)``."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return typing.get_args(annotation)
    return (annotation,)


def _conforms(value, annotation) -> bool:
    """Whether ``value`` fits a field annotated ``annotation``; an int fits a float, a bool fits only a
    bool, a list or tuple of fitting items fits ``tuple[X, ...]``."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if member is float:  # an integer must convert to a float
            fits = number and (isinstance(value, float) or abs(value) < 2**63)
        elif member is int:
            fits = number and isinstance(value, int)
        elif origin is typing.Literal:
            fits = value in typing.get_args(member)
        elif origin is tuple:
            item = typing.get_args(member)[0]
            fits = isinstance(value, list | tuple) and all(_conforms(v, item) for v in value)
        else:  # None, bool, str, or any other plain class (or the class of a generic such as list[int])
            fits = isinstance(value, origin or member)
        if fits:
            return True
    return False


def _converted(value, annotation):
    """A conforming JSON value as the field stores it: lists as tuples, integers as floats."""
    members = _members(annotation)
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, int) and not isinstance(value, bool) and float in members and int not in members:
        return float(value)
    return value


def _wanted(annotation) -> str:
    """What a field annotated ``annotation`` takes, in words: ``of type int``, ``one of 'v', 'x'``."""
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(annotation))
    return "of type " + (annotation.__name__ if isinstance(annotation, type) else str(annotation))


@dataclass(frozen=True)
class _Range:
    """Bounds of a numeric field (None: unbounded); ``open`` bounds exclude their value."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def violation(self, v) -> str:
        """``""`` if ``v`` is in range, else the bound it breaks in words (``">= 1"``)."""
        if self.low is not None and (v <= self.low if self.open_low else v < self.low):
            return f"{'>' if self.open_low else '>='} {self.low}"
        if self.high is not None and (v >= self.high if self.open_high else v > self.high):
            return f"{'<' if self.open_high else '<='} {self.high}"
        return ""


# The range of every numeric field. Every size and count has an upper bound, so a config (config.json
# is untrusted input) cannot ask for a network, a sampler or a loop that no machine runs; ints without
# an entry must fit in 64 bits, floats must be finite. A tuple field's range applies to each item.
MAX_STEPS = 99_999_999  # training states are named by an 8-digit step
MAX_SAMPLE_STEPS = 10_000  # Euler steps per stage
_COUNT = _Range(1, MAX_STEPS)
_AT_LEAST_0 = _Range(0)
_POSITIVE = _Range(0, open_low=True)
_LIMITS = {
    "model.resolution": _Range(1, 4096),
    "model.num_latents": _Range(1, 65_536),
    "model.latent_dim": _Range(1, 4096),
    **dict.fromkeys(["model.enc_patch", "model.dec_patch"], _Range(1, 512)),
    **dict.fromkeys(["model.enc_width", "model.dec_width"], _Range(1, 16_384)),
    **dict.fromkeys(["model.enc_heads", "model.dec_heads"], _Range(1, 1024)),
    **dict.fromkeys(["model.enc_depth", "model.dec_depth", "model.prior_depth"], _Range(0, 512)),
    "model.prior_width": _Range(0, 16_384),
    "model.num_stages": _Range(1, 16),
    "model.codebook_size": _Range(2, 1 << 20),
    "model.mlp_ratio": _Range(0, 64, open_low=True),
    "model.gamma": _Range(0, 1 / 3, open_low=True),
    **dict.fromkeys("train.steps train.log_every train.ckpt_every train.max_nonfinite".split(), _COUNT),
    **dict.fromkeys(["train.warmup_steps", "train.eval_every", "train.stop_at"], _Range(0, MAX_STEPS)),
    **dict.fromkeys(["train.batch_size", "train.grad_accum", "train.eval_images"], _Range(1, 1 << 20)),
    "train.keep_states": _Range(1, 1000),
    "train.workers": _Range(0, 1024),
    "train.photos": _Range(0, 1 << 30),
    "train.seed": _Range(0, 2**63 - 1),
    "train.perceptual_start_stage": _Range(-1, 15),
    **dict.fromkeys(
        ["sample.steps", "distill.teacher_steps", "train.eval_steps"], _Range(1, MAX_SAMPLE_STEPS)
    ),
    **dict.fromkeys(["sample.guidance", "distill.teacher_guidance"], _Range(0, 100)),
    "sample.temperature": _Range(0, 100),
    **dict.fromkeys(
        """train.weight_decay train.perceptual_weight train.adversarial_weight distill.regression_weight
        distill.perceptual_weight distill.adversarial_weight model.vq_beta train.max_minutes""".split(),
        _AT_LEAST_0,
    ),
    **dict.fromkeys(
        ["train.lr", "train.grad_clip", "train.disc_lr", "distill.disc_lr", "model.latent_scaling"], _POSITIVE
    ),
    **dict.fromkeys(["train.min_lr_ratio", "train.ema_decay", "distill.min_start"], _Range(0, 1)),
    **dict.fromkeys(["model.cfg_dropout", "train.beta2"], _Range(0, 1, open_high=True)),
    "train.crop_min_frac": _Range(0, 1, open_low=True),
}
_INT64 = _Range(-(2**63), 2**63, open_high=True)


def check_value(key: str, value, name: str = "") -> None:
    """Check a number (or each item of a tuple) against the range of the config field ``key``
    (``"sample.steps"``); the ``ValueError`` names ``name`` (default: ``key``). Also used where a
    decode setting arrives as an argument rather than in a config."""
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{name or key} must be finite, got {value!r}")
        bounds = _LIMITS.get(key, _INT64 if isinstance(v, int) else None)
        broken = bounds.violation(v) if bounds is not None and isinstance(v, int | float) else ""
        if broken:
            raise ValueError(f"{name or key} must be {broken}, got {value!r:.80}")


def validate(config: Config) -> None:
    """Check every field of ``config`` for its type (a string option for its allowed values),
    finiteness and range (e.g. ``train.steps`` in [1, 99999999]), and the fields that must agree.

    Raises:
        ValueError: naming the first bad field and its value, e.g. ``train.lr must be > 0, got -1.0``.
    """
    for section in fields(config):
        sub = getattr(config, section.name)
        hints = typing.get_type_hints(type(sub))
        for f in fields(sub):
            key, value = f"{section.name}.{f.name}", getattr(sub, f.name)
            if not _conforms(value, hints[f.name]):
                raise ValueError(f"{key} must be {_wanted(hints[f.name])}, got {value!r:.80}")
            if isinstance(value, tuple) and not value:
                raise ValueError(f"{key} must not be empty")
            if not isinstance(value, bool | str):
                check_value(key, value)
    m, t, steps = config.model, config.train, config.sample.steps
    if len(steps) not in (1, m.num_stages):
        raise ValueError(
            f"sample.steps {steps} has {len(steps)} step counts for model.num_stages={m.num_stages}: "
            "give one count, or one per stage"
        )
    if t.batch_size % t.grad_accum:
        raise ValueError(
            f"train.batch_size {t.batch_size} must be a multiple of train.grad_accum {t.grad_accum} "
            "(and of the number of processes)"
        )
    _check_model(m)


def _check_model(m: ModelConfig) -> None:
    """The model fields that must agree (a tokenizer is built only from a config that passes)."""
    if m.latent_kind == "grid" and m.num_latents != (m.resolution // m.enc_patch) ** 2:
        raise ValueError(
            f"grid latents need num_latents = (resolution / enc_patch)^2 = "
            f"{(m.resolution // m.enc_patch) ** 2}, got {m.num_latents}"
        )
    if m.resolution % 2 ** (m.num_stages - 1):
        raise ValueError(
            f"model.resolution {m.resolution} is not a multiple of 2**(num_stages-1) = "
            f"{2 ** (m.num_stages - 1)}"
        )
    coarsest = m.resolution >> (m.num_stages - 1)
    if m.dec_backbone == "transformer" and coarsest % m.dec_patch:
        raise ValueError(f"the coarsest stage ({coarsest} px) is not a multiple of dec_patch {m.dec_patch}")
    if m.decoder == "onepass" and (m.num_stages != 1 or m.cfg_dropout != 0):
        raise ValueError("a one-pass decoder has one stage and no guidance (num_stages=1, cfg_dropout=0)")
    if m.bottleneck == "vq" and m.latent_skip:  # the PCA skip needs the latent norms VQ discards
        raise ValueError(
            "bottleneck='vq' cannot be combined with latent_skip=True: the fixed PCA decoder reads "
            "whitened PCA coefficients, and unit-norm codes discard their scale (set latent_skip=false)"
        )
    if m.prior_cond and not m.latent_skip:
        raise ValueError("prior_cond=True needs latent_skip=True: the prior is the skip's decode of z")
    if m.prior == "onepass" and (not m.latent_skip or m.decoder != "flow"):
        raise ValueError(
            "prior='onepass' needs latent_skip=True and decoder='flow': a diffusion decoder refining "
            "a one-pass decode, which itself refines the PCA decode"
        )
    if (m.prior_width or m.prior_depth) and m.prior != "onepass":
        raise ValueError(
            f"prior_width={m.prior_width}, prior_depth={m.prior_depth} set the shape of a one-pass prior; "
            f"they need prior='onepass', got prior={m.prior!r}"
        )
    if m.diffusion_space != "image" and m.prior != "onepass":
        raise ValueError(
            f"diffusion_space={m.diffusion_space!r} needs prior='onepass': the residual is taken from a "
            "frozen one-pass decode"
        )

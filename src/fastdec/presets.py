"""Named configs (``--preset``) and ``section.key=value`` overrides on top of them."""

import dataclasses
from dataclasses import fields, replace
from typing import Any

from fastdec.config import Config, ModelConfig, SampleConfig, TrainConfig, validate
from fastdec.sampling.settings import parse_steps

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
    # The paper's scale (docs/method.md §2): 256 px, patch 8, 128 tokens x 32 dims, depth 12, width 768.
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
            workers=8,
            verify_data=False,  # 1.28 M images: bad files are reported when read, not all decoded up front
        ),
        sample=SampleConfig(steps=(50,), guidance=1.5),
    ),
}
# The paper's scale at 512 px: patch 16 keeps in1k256's 32 x 32 token grid (and its cost per image) and
# its 128 x 32 latent; the same networks and training recipe.
PRESETS["in1k512"] = Config(
    model=dataclasses.replace(PRESETS["in1k256"].model, resolution=512, enc_patch=16, dec_patch=16),
    train=PRESETS["in1k256"].train,
    sample=PRESETS["in1k256"].sample,
)
# The 32 px default, chosen by measurement on this CPU (see the README's recipe table): a 4 x 4 x 8
# latent grid added to the decoder's image tokens, x-prediction with an x-space loss, and a fixed PCA
# codec as the linear skip that the transformers correct (docs/method.md §11). Width 144 keeps the four
# bundled models small (their sizes are in the README's model card); the recipe table was measured at
# width 192.
PRESETS["cpu32"] = Config(
    model=ModelConfig(
        latent_kind="grid",
        enc_patch=8,
        enc_width=144,
        dec_width=144,
        spatial_cond=True,
        parameterization="x",
        latent_skip=True,
    ),
    # The few training photos overfit: dihedral + colour permutations and crops down to a quarter of the
    # short side lift held-out PSNR (measured in docs/results.md).
    train=TrainConfig(
        batch_size=32, lr=3e-4, warmup_steps=100, loss_space="x", augment="dihedral-rgb", crop_min_frac=0.25
    ),
)
# The 32 px recipe on the photo corpus, chosen on its val split (docs/results.md): 16 x 8 latent tokens
# from the transformer encoder with a global PCA skip; a U-Net decoder that reads the PCA decode of z
# and corrects it. "photos32-onepass" is the deterministic decoder; "photos32" a diffusion decoder that
# refines a trained one-pass decode (set train.prior_from to its export; model.num_stages=3 for the
# multi-scale teacher). With 961 photos plain flips and crops of at least half the short side do.
PRESETS["photos32-onepass"] = Config(
    model=dataclasses.replace(
        PRESETS["cpu32"].model,
        latent_kind="tokens",
        spatial_cond=False,
        prior_cond=True,
        dec_backbone="unet",
        dec_width=48,
        dec_depth=2,
        decoder="onepass",
        cfg_dropout=0.0,
    ),
    train=dataclasses.replace(PRESETS["cpu32"].train, augment="flip", crop_min_frac=0.5, eval_images=128),
)
# The narrow one-pass decoder for diffusion decoders to refine (model.prior_width / prior_depth): its one
# call per decode is the cost that neither the pyramid nor distillation shrinks (docs/method.md §11.4).
PRESETS["photos32-prior"] = dataclasses.replace(
    PRESETS["photos32-onepass"], model=dataclasses.replace(PRESETS["photos32-onepass"].model, dec_width=16)
)
PRESETS["photos32"] = Config(
    model=dataclasses.replace(PRESETS["photos32-onepass"].model, decoder="flow", prior="onepass"),
    train=dataclasses.replace(PRESETS["photos32-onepass"].train, eval_steps=8),
)


def _photos_grid(base: str, side: int, **model_fields) -> Config:
    """``base`` at ``side`` px: a (side / 8)^2 x 8 latent grid, three residual blocks per U-Net level;
    ``model_fields`` override the model config on top."""
    model = (
        dict(resolution=side, latent_kind="grid", num_latents=(side // 8) ** 2, dec_depth=3) | model_fields
    )
    return dataclasses.replace(PRESETS[base], model=dataclasses.replace(PRESETS[base].model, **model))


# The corpus recipe at 64 and 128 px (scripts/train_bundled64.sh; scripts/gpu_train.sh on a GPU). The
# latent keeps the 32 px family's one number per 24 pixel values as an 8 x 8 (16 x 16) grid of 8 numbers,
# one per 8 x 8 encoder patch: its block-PCA skip is 192 x 8 numbers, where a global PCA of the 12288
# (49152) pixels into 512 (2048) numbers would put 12.6 M (201 M) fixed numbers into every export. The
# U-Net keeps the 32 px width and gets a third residual block per level (its three levels are fixed, so
# depth is what widens its view of the larger image): 3.1 M parameters, 1.0 M more in the encoder.
PRESETS["photos64-onepass"] = _photos_grid("photos32-onepass", 64)
# The diffusion decoders' prior is a narrow one-pass decoder ("photos64-prior", width 16, two blocks per
# level): it is decoded once per image, and a full-width one costs as much as the last stage's call, which
# would hold a one-step student far below the ideal FLOP saving (docs/results.md, "The 64 px family").
PRESETS["photos64-prior"] = _photos_grid("photos32-onepass", 64, dec_width=16, dec_depth=2)
PRESETS["photos64"] = _photos_grid("photos32", 64, prior_width=16, prior_depth=2)
PRESETS["photos128-onepass"] = _photos_grid("photos32-onepass", 128)
PRESETS["photos128"] = _photos_grid("photos32", 128)


def _parse_value(text: str, current: Any, name: str) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} expects a boolean, got {text!r}")
    if isinstance(current, str):
        return text
    if (current is None or isinstance(current, float)) and text.lower() == "none":
        return None
    if isinstance(current, tuple):  # sample.steps, in the syntax of every decode setting
        return parse_steps(text, name)
    kind, parse = "an integer", int
    if current is None or isinstance(current, float):
        kind, parse = "a number", float
    try:
        return parse(text)
    except ValueError:  # int('abc'), or more digits than int() converts
        raise ValueError(f"{name} expects {kind}, got {text!r:.80}") from None


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
    validate(config)
    return config

"""Train a tokenizer from a resolved config: data, model, loss and loop wired together."""

import dataclasses
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fastdec.config import Config, validate
from fastdec.data import build_dataset, validation_crops
from fastdec.eval.metrics import psnr, summarize_psnr
from fastdec.losses.flow_matching import FlowMatchingLoss
from fastdec.losses.perceptual import build_perceptual
from fastdec.losses.reconstruction import ReconstructionLoss
from fastdec.models.build import prior_model
from fastdec.models.discriminator import Discriminator
from fastdec.models.prior import onepass_weights
from fastdec.tokenizer import Tokenizer
from fastdec.training.loop import train_loop
from fastdec.training.steps import TokenizerStep

SHARED_WITH_PRIOR = (
    "resolution", "latent_kind", "num_latents", "latent_dim", "enc_patch", "enc_width", "enc_depth",
    "enc_heads", "enc_stem", "dec_patch", "dec_width", "dec_depth", "dec_heads", "dec_stem", "mlp_ratio",
    "spatial_cond", "prior_cond", "latent_skip", "bottleneck", "dec_backbone",
)  # fmt: skip  # the model fields a one-pass prior must share with the diffusion tokenizer
PCA_IMAGES = 4096  # training crops that warm-start ``latent_skip``
VQ_INIT_IMAGES = 256  # training crops whose encoder outputs seed the VQ codebook
RESIDUAL_IMAGES = 1024  # training crops that set the scale of a residual diffusion (diffusion_space)
LOOP_KEYS = (
    "steps", "batch_size", "lr", "warmup_steps", "min_lr_ratio", "weight_decay", "beta2",
    "grad_clip", "ema_decay", "bf16", "seed", "log_every", "ckpt_every", "keep_states", "eval_every",
    "max_nonfinite", "grad_accum", "workers", "device", "max_minutes", "stop_at",
)  # fmt: skip


def compiled_networks(model: Tokenizer, enabled: bool) -> tuple[torch.nn.Module, ...]:
    """The networks ``train.compile`` hands to ``torch.compile``: the encoder and the decoder's net."""
    return (model.encoder, model.decoder.net) if enabled else ()


def heldout_psnr_fn(resolution: int, n_images: int, steps: int, batch_size: int = 64):
    """``fn(model) -> {"psnr": dB}`` on fixed crops of the photo corpus's val split, seeds 0..N-1."""
    images = validation_crops(resolution, n_images, seed=0, split="val")

    @torch.no_grad()
    def evaluate(model: Tokenizer) -> dict:
        values = []
        for i in range(0, n_images, batch_size):
            x = images[i : i + batch_size].to(model.z_null.device)
            settings = {} if model.config.model.decoder == "onepass" else {"steps": steps}  # one call
            out = model.decode(model.encode(x), seeds=range(i, i + x.shape[0]), **settings)
            values.append(psnr(out.clamp(-1, 1), x))
        return {"psnr": summarize_psnr(torch.cat(values)), "steps": steps}

    return evaluate


def check_run(config: Config) -> None:
    """What a training run needs beyond :func:`fastdec.config.validate` (whose checks also hold for an
    export, which keeps no training settings): a one-pass prior comes from ``train.prior_from``, and
    only a one-pass prior does; a GAN term is for diffusion decoders.

    Raises:
        ValueError: naming the two fields.
    """
    onepass, source = config.model.prior == "onepass", config.train.prior_from
    if onepass and not source:
        raise ValueError("model.prior='onepass' needs train.prior_from=<a trained one-pass export>")
    if source and not onepass:
        raise ValueError("train.prior_from needs model.prior='onepass'")
    if config.train.adversarial_weight > 0 and config.model.decoder == "onepass":
        raise ValueError("train.adversarial_weight is for diffusion decoders, not model.decoder='onepass'")


def load_onepass_prior(model: Tokenizer, source: str) -> None:
    """Copy a trained one-pass export's encoder and decoder into ``model``'s encoder and one-pass prior
    (``model.prior="onepass"``) and freeze them: training then fits only the diffusion decoder."""
    onepass = Tokenizer.from_pretrained(source)
    if onepass.config.model.decoder != "onepass":
        raise ValueError(f"train.prior_from={source!r} is not a one-pass export (model.decoder='onepass')")
    ours = {
        k: v for k, v in dataclasses.asdict(prior_model(model.config.model)).items() if k in SHARED_WITH_PRIOR
    }
    theirs = {k: v for k, v in dataclasses.asdict(onepass.config.model).items() if k in SHARED_WITH_PRIOR}
    differ = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
    if differ:
        raise ValueError(f"train.prior_from={source!r} has another shape: (this run, that export) {differ}")
    missing, _ = model.load_state_dict(onepass_weights(onepass.state_dict()), strict=False)
    left = [k for k in missing if k.startswith(("encoder.", "decoder.prior."))]
    if left:
        raise ValueError(f"train.prior_from={source!r} lacks weights {left[:5]}")
    model.encoder.requires_grad_(False)
    model.decoder.prior.requires_grad_(False)


def load_initial_weights(model: Tokenizer, source: str) -> None:
    """``train.init_from``: copy every weight and buffer of a trained export of the same model into
    ``model`` (fine-tuning); frozen parts (a one-pass prior) stay frozen.

    Raises:
        ValueError: the export's model config differs from this run's, naming the fields.
    """
    init = Tokenizer.from_pretrained(source)
    ours, theirs = dataclasses.asdict(model.config.model), dataclasses.asdict(init.config.model)
    differ = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs.get(k)}
    if differ:
        raise ValueError(f"train.init_from={source!r} is another model: (this run, that export) {differ}")
    model.load_state_dict(init.state_dict())


def initial_tokenizer(config: Config) -> tuple[Tokenizer, Dataset]:
    """The tokenizer a fresh run starts from, and its training data: seeded initial weights, the PCA skip
    (``latent_skip``) and the VQ codes fitted on training crops, or the weights of ``train.init_from``.
    A resumed run loads its state over it."""
    t = config.train
    torch.manual_seed(t.seed)  # initial weights
    model = Tokenizer(config)
    dataset = build_dataset(
        t.data,
        config.model.resolution,
        split="train",
        seed=t.seed,
        augment=t.augment,
        min_frac=t.crop_min_frac,
        verify=t.verify_data,
        photos=t.photos,
    )
    if config.model.prior == "onepass":
        load_onepass_prior(model, t.prior_from)
        if config.model.diffusion_space != "image":
            crops = torch.stack([dataset[i] for i in range(min(len(dataset), RESIDUAL_IMAGES))])
            with torch.no_grad():
                model.decoder.fit_residual_scale(crops, model.encoder(crops))
    elif config.model.latent_skip:
        n = min(len(dataset), PCA_IMAGES)
        model.init_linear_skip(torch.stack([dataset[i] for i in range(n)]))
    if config.model.bottleneck == "vq":  # the codes start on encoder outputs of training crops
        crops = torch.stack([dataset[i] for i in range(min(len(dataset), VQ_INIT_IMAGES))])
        with torch.no_grad():
            model.encoder.quantizer.init_codes(model.encoder.features(crops))
    if t.init_from:
        load_initial_weights(model, t.init_from)
    return model, dataset


def train_tokenizer(config: Config, run_dir: str | Path, progress: bool = True) -> Path:
    """Train (or resume) a tokenizer; export the EMA weights to ``run_dir/export``. Returns that path.

    Raises:
        ValueError: a config field of the wrong type or out of range (e.g. ``train.steps=0``), checked
            before anything is built or written.
    """
    validate(config)
    check_run(config)
    t = config.train
    model, dataset = initial_tokenizer(config)
    perceptual = build_perceptual(t.perceptual)
    if config.model.decoder == "onepass":
        loss = ReconstructionLoss(model.pyramid[0], perceptual, t.perceptual_weight)
    else:
        loss = FlowMatchingLoss(
            model.pyramid,
            t_sampling=t.t_sampling,
            sigmoid_bias=t.sigmoid_bias,
            perceptual=perceptual,
            perceptual_weight=t.perceptual_weight,
            perceptual_start_stage=t.perceptual_start_stage,
            adversarial_weight=t.adversarial_weight,
            loss_space=t.loss_space,
        )
    discriminator = Discriminator() if t.adversarial_weight > 0 else None
    export_dir = Path(run_dir) / "export"

    def export(ema_model, step):
        meta = {
            "weights": "ema",
            "ema_decay": t.ema_decay,
            "steps": step,
            "kind": "tokenizer",
            "data": t.data,
        }
        ema_model.save_pretrained(export_dir, meta=meta)

    eval_fn = None
    if t.eval_every:
        eval_fn = heldout_psnr_fn(config.model.resolution, t.eval_images, t.eval_steps)
    train_loop(
        run_dir=run_dir,
        model=model,
        step_fn=TokenizerStep(loss, config.model.cfg_dropout, discriminator, t.disc_lr),
        dataset=dataset,
        config_json=config.to_json(),
        eval_fn=eval_fn,
        export_fn=export,
        progress=progress,
        compile_modules=compiled_networks(model, t.compile),
        **{k: getattr(t, k) for k in LOOP_KEYS},
    )
    return export_dir

"""Distil a trained multi-scale teacher into a one-step-per-stage student (docs/method.md §9)."""

import dataclasses
from pathlib import Path

import torch

from fastdec.config import Config, SampleConfig
from fastdec.data import build_dataset
from fastdec.losses.distillation import DistillationLoss
from fastdec.losses.perceptual import build_perceptual
from fastdec.models.discriminator import Discriminator
from fastdec.tokenizer import Tokenizer
from fastdec.training.loop import train_loop
from fastdec.training.steps import DistillStep
from fastdec.training.train import LOOP_KEYS, compiled_networks, heldout_psnr_fn, load_initial_weights


def student_config(config: Config) -> Config:
    """The student's config: the teacher's networks, one step per stage, no guidance, no CFG dropout."""
    model = dataclasses.replace(config.model, cfg_dropout=0.0)
    return dataclasses.replace(config, model=model, sample=SampleConfig(steps=(1,), guidance=1.0))


def build_student(teacher: Tokenizer, config: Config) -> Tokenizer:
    """A copy of the teacher with the student's config; encoder and null latent frozen by default, and a
    one-pass prior (``model.prior="onepass"``) always."""
    student = Tokenizer(student_config(config))
    student.load_state_dict(teacher.state_dict())
    student.z_null.requires_grad_(False)
    student.encoder.requires_grad_(config.distill.train_encoder)
    if config.model.prior == "onepass":  # the deterministic decode the student refines stays the teacher's
        student.decoder.prior.requires_grad_(False)
    return student.train()


def distill(teacher_dir: str | Path, config: Config, run_dir: str | Path, progress: bool = True) -> Path:
    """Train (or resume) a student from ``teacher_dir``; export its EMA weights to ``run_dir/export``.
    With ``train.init_from`` (a student export of the same model) it starts from those weights.

    ``config`` is the teacher's config with the run's ``train`` and ``distill`` settings.
    """
    d, t = config.distill, config.train
    teacher = Tokenizer.from_pretrained(teacher_dir).requires_grad_(False)
    if teacher.config.model != config.model:
        raise ValueError("the distillation config's model section must be the teacher's")
    torch.manual_seed(t.seed)
    student = build_student(teacher, config)
    if t.init_from:  # fine-tune a trained student (its discriminator heads start anew)
        load_initial_weights(student, t.init_from)
    loss = DistillationLoss(
        teacher,
        target=d.target,
        teacher_steps=d.teacher_steps,
        teacher_guidance=d.teacher_guidance,
        regression_weight=d.regression_weight,
        perceptual=build_perceptual(d.perceptual),
        perceptual_weight=d.perceptual_weight,
        adversarial_weight=d.adversarial_weight,
        min_start=d.min_start,
        path_noise=d.path_noise,
    )
    discriminator = Discriminator() if d.adversarial_weight > 0 else None
    export_dir = Path(run_dir) / "export"

    def export(ema_model, step):
        meta = {
            "kind": "student",
            "weights": "ema",
            "ema_decay": t.ema_decay,
            "steps": step,
            "data": t.data,
            "teacher": str(teacher_dir),  # as given: a bundled name stays a name
            "distill": dataclasses.asdict(d),
        }
        ema_model.save_pretrained(export_dir, meta=meta)

    eval_fn = heldout_psnr_fn(config.model.resolution, t.eval_images, 1) if t.eval_every else None
    train_loop(
        run_dir=run_dir,
        model=student,
        step_fn=DistillStep(loss, discriminator, d.disc_lr),
        dataset=build_dataset(
            t.data, config.model.resolution, split="train", seed=t.seed, verify=t.verify_data
        ),
        config_json=student_config(config).to_json(),
        eval_fn=eval_fn,
        export_fn=export,
        progress=progress,
        compile_modules=compiled_networks(student, t.compile),
        **{k: getattr(t, k) for k in LOOP_KEYS},
    )
    return export_dir

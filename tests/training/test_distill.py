import dataclasses

import pytest
import torch

from fastdec.diffusion.pyramid import downsample
from fastdec.losses.distillation import DistillationLoss
from fastdec.models.discriminator import Discriminator
from fastdec.presets import resolve
from fastdec.training.distill import build_student
from fastdec.training.steps import DistillStep
from tests.conftest import images, tiny_tokenizer

S2 = ("model.num_stages=2",)


def _setup(adversarial=0.0, target="trajectory"):
    teacher = tiny_tokenizer(*S2).requires_grad_(False)
    config = dataclasses.replace(
        teacher.config,
        distill=dataclasses.replace(teacher.config.distill, adversarial_weight=adversarial, target=target),
    )
    student = build_student(teacher, config)
    loss = DistillationLoss(
        teacher, target=target, teacher_steps=3, teacher_guidance=1.5, adversarial_weight=adversarial
    )
    return teacher, student, loss


def test_student_nfe_is_number_of_stages():
    _, student, _ = _setup()
    assert student.nfe() == 2
    calls = []
    net = student.decoder.net
    handle = net.register_forward_hook(lambda *a: calls.append(1))
    student.decode(student.encode(images(2)))
    handle.remove()
    assert len(calls) == 2


@pytest.mark.parametrize("target", ["trajectory", "stage_path"])
def test_gradients_reach_student_and_heads_only(target):
    teacher, student, loss = _setup(adversarial=0.5, target=target)
    disc = Discriminator()
    step = DistillStep(loss, disc, disc_lr=1e-3)
    heads_before = [p.clone() for p in disc.heads.parameters()]
    total, terms = step(student, images(2), torch.Generator().manual_seed(0))
    head_grads = [None if p.grad is None else p.grad.clone() for p in disc.heads.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in head_grads)  # its own hinge update
    total.mean().backward()
    assert {"regression", "gan", "d_loss", "adaptive_weight"} <= set(terms)
    decoder = [n for n, p in student.decoder.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not decoder, decoder
    assert all(p.grad is None for p in student.encoder.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    from fastdec.models.inception import load_inception

    assert all(p.grad is None and not p.requires_grad for p in load_inception().parameters())
    # the heads were updated by their own optimiser; the student's backward adds nothing to them
    assert any(not torch.equal(a, b) for a, b in zip(heads_before, disc.heads.parameters(), strict=True))
    for g, p in zip(head_grads, disc.heads.parameters(), strict=True):
        assert (g is None and p.grad is None) or torch.equal(g, p.grad)


@pytest.mark.parametrize("path_noise", ["fresh", "student"])
def test_teacher_starts_on_the_stage_path_it_is_told(path_noise):
    teacher, student, loss = _setup(target="stage_path")
    loss.path_noise = path_noise
    recorded = []
    original = teacher.decoder.net.forward

    def spy(x, tau, z):
        recorded.append((x.clone(), tau.clone()))
        return original(x, tau, z)

    teacher.decoder.net.forward = spy
    x = torch.zeros(64, 3, 16, 16) + torch.linspace(-0.5, 0.5, 16)  # a smooth image
    z = student.encode(x)
    noises = [torch.randn(64, 3, s.resolution, s.resolution) for s in student.stages]
    inputs = []
    outputs = loss.student_rollout(student, z, noises, inputs)
    for seed in range(4):
        recorded.clear()
        g = torch.Generator().manual_seed(seed)
        k, targets = loss.teacher_targets(z, outputs, noises, g, inputs)
        g = torch.Generator().manual_seed(seed)
        k_again = int(torch.randint(2, (1,), generator=g))
        u = loss.min_start + (1 - loss.min_start) * float(torch.rand(1, generator=g))
        assert k == k_again and len(targets) == 2 - k
        stage = teacher.stages[k]
        x_u, tau = recorded[0]
        x_u = x_u[:64]  # guided calls batch cond and null
        torch.testing.assert_close(tau[:64], stage.global_time(torch.full((64,), u)))
        x_end = downsample(outputs[-1].detach(), 2 ** (1 - k))
        project = stage.projection
        x_start = project(x_end) if project else x_end
        a, c, d = stage.coefficients(u)
        residual = (x_u - a * x_end - c * x_start) / d  # the path's noise
        if path_noise == "fresh":  # fresh N(0, 1) noise
            assert abs(residual.mean()) < 0.05 and abs(residual.std() - 1) < 0.05
        else:  # the noise of the student's own stage-k input: x_1 = (1 - b) x_start + b eps
            torch.testing.assert_close(inputs[k], (1 - stage.start) * x_start + stage.start * residual)


def test_no_discriminator_without_adversarial_weight(monkeypatch, tmp_path):
    import fastdec.training.distill as distill_module

    def boom(*a, **k):
        raise AssertionError("discriminator built")

    monkeypatch.setattr(distill_module, "Discriminator", boom)
    teacher = tiny_tokenizer(*S2)
    teacher.save_pretrained(tmp_path / "teacher")
    config = resolve(teacher.config, ["train.steps=2", "train.batch_size=2"])
    out = distill_module.distill(tmp_path / "teacher", config, tmp_path / "run", progress=False)
    assert (out / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="discriminator"):
        DistillStep(DistillationLoss(teacher, adversarial_weight=0.5), None)


def test_student_noise_targets_of_the_student_itself_are_its_own_outputs():
    """With the teacher = the student, one teacher step and u = 1, the stage-path input is the student's
    own stage input and the later transitions reuse its noises: the targets are its outputs exactly."""
    teacher = tiny_tokenizer("model.num_stages=3").requires_grad_(False)
    loss = DistillationLoss(teacher, target="stage_path", teacher_steps=1, min_start=1.0)
    z = teacher.encode(images(4))
    noises = [torch.randn(4, 3, s.resolution, s.resolution) for s in teacher.stages]
    inputs = []
    with torch.no_grad():
        outputs = loss.student_rollout(teacher, z, noises, inputs)
        for seed in range(6):
            k, targets = loss.teacher_targets(z, outputs, noises, torch.Generator().manual_seed(seed), inputs)
            for s, t in zip(outputs[k:], targets, strict=True):
                torch.testing.assert_close(s, t, atol=1e-5, rtol=1e-5)


def test_distill_trains_on_the_teachers_data_by_default(tmp_path, capsys):
    """The export's meta names its training data (it keeps no train section); an export of an older
    version names it in its train section."""
    import json

    from fastdec.cli.main import main

    teacher = tiny_tokenizer(*S2)
    teacher.save_pretrained(tmp_path / "new", meta={"data": "folder-a"})
    old = tiny_tokenizer(*S2, "train.data=folder-b")
    old.save_pretrained(tmp_path / "old")
    payload = json.loads((tmp_path / "old" / "config.json").read_text())
    payload["config"] = old.config.to_dict()  # every section, as exports used to be written
    (tmp_path / "old" / "config.json").write_text(json.dumps(payload))
    for name, data in (("new", "folder-a"), ("old", "folder-b")):
        capsys.readouterr()
        assert main(["distill", "--teacher", str(tmp_path / name), "--dry-run"]) == 0
        assert json.loads(capsys.readouterr().out)["train"]["data"] == data


def test_distill_fine_tunes_a_student_export_with_init_from(monkeypatch, tmp_path):
    """``train.init_from`` starts the student from a trained student's weights, not the teacher's; an
    export of another model is refused, naming the field."""
    import fastdec.training.distill as distill_module

    class Started(Exception):
        pass

    def capture(**kwargs):
        raise Started(kwargs["model"])

    monkeypatch.setattr(distill_module, "train_loop", capture)
    teacher = tiny_tokenizer(*S2)
    teacher.save_pretrained(tmp_path / "teacher")
    config = resolve(teacher.config, ["train.steps=2", "train.batch_size=2"])
    trained = build_student(teacher, config)
    with torch.no_grad():
        for p in trained.decoder.parameters():
            p.add_(0.01)
    trained.save_pretrained(tmp_path / "student")
    fine_tune = resolve(config, [f"train.init_from={tmp_path / 'student'}"])
    with pytest.raises(Started) as started:
        distill_module.distill(tmp_path / "teacher", fine_tune, tmp_path / "run", progress=False)
    for name, value in started.value.args[0].state_dict().items():
        torch.testing.assert_close(value, trained.state_dict()[name], msg=name)
    other = tiny_tokenizer("model.num_stages=3")
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="num_stages"):
        distill_module.distill(
            tmp_path / "teacher", resolve(config, [f"train.init_from={tmp_path / 'other'}"]), tmp_path / "r2"
        )

"""The one sampler: the decode, the distillation teacher (from the middle of a stage's path) and the
student's rollout all run through it, and each equals the per-stage Euler loop written out by hand."""

import dataclasses

import pytest
import torch

from fastdec.diffusion.pyramid import block_noise, upsample
from fastdec.diffusion.timesteps import euler_grid, euler_schedule
from fastdec.losses.distillation import DistillationLoss
from fastdec.sampling.sampler import sample, stage_noises
from fastdec.training.distill import build_student
from tests.conftest import images, tiny_tokenizer


def _euler_by_hand(velocity, x, steps, start=1.0):
    """Euler on the float32 grid from ``start`` to 0, as the sampler did before it had one home."""
    times = euler_grid(steps, start)
    for t_cur, t_next in zip(times[:-1], times[1:], strict=True):
        t = torch.full((x.shape[0],), float(t_cur), dtype=x.dtype)
        x = x + (t_next - t_cur).item() * velocity(x, t)
    return x


def _renoise_by_hand(model, x, stage, noise):
    m = model.config.model
    return stage.renoise_alpha * upsample(x) + stage.renoise_beta * block_noise(
        noise, m.gamma, m.published_block_noise
    )


def _decode_by_hand(model, z, noises, steps, first=0, start=1.0, guidance=1.0, prior=None):
    """Stages ``first..`` from ``noises[0]`` (a state at local time ``start`` of stage ``first``)."""
    outputs, x = [], noises[0]
    for i, stage in enumerate(model.stages[first:]):
        if i > 0:
            x = _renoise_by_hand(model, x, stage, noises[i])
        velocity = model.velocity_fn(z, stage, guidance, prior)
        x = _euler_by_hand(
            velocity, x, max(1, round(steps * start)) if i == 0 else steps, start if i == 0 else 1.0
        )
        outputs.append(x)
    return outputs


@pytest.mark.parametrize("published_sign", [False, True])
def test_decode_is_the_loop_by_hand(published_sign):
    model = tiny_tokenizer("model.num_stages=3", "model.parameterization=x", "model.resolution=32",
                           f"model.published_block_noise={published_sign}")  # fmt: skip
    z = model.encode(images(3, resolution=32))
    noises = [0.8 * n for n in stage_noises([4, 5, 6], model.stages)]
    with torch.no_grad():
        out = model.decode(z, steps=3, seeds=[4, 5, 6], temperature=0.8)
        assert torch.equal(out, _decode_by_hand(model, z, noises, 3)[-1])


def test_sampler_records_every_stage_and_checks_its_inputs():
    model = tiny_tokenizer("model.num_stages=3", "model.resolution=32")
    z = model.encode(images(2, resolution=32))
    noises = stage_noises([0, 1], model.stages)
    inputs, outputs = [], []
    with torch.no_grad():
        velocity = lambda stage: model.velocity_fn(z, stage, 1.0)
        last = sample(velocity, model.pyramid, noises[0], noises[1:], euler_schedule((2, 1, 1)),
                      inputs=inputs, outputs=outputs)  # fmt: skip
        assert [x.shape[-1] for x in inputs] == [x.shape[-1] for x in outputs] == [8, 16, 32]
        assert torch.equal(inputs[0], noises[0]) and torch.equal(outputs[-1], last)
        for s in (1, 2):  # each stage starts from the previous one's end, renoised
            assert torch.equal(inputs[s], model.pyramid.renoise(outputs[s - 1], model.stages[s], noises[s]))
        # from the middle: stage 1's start state and the rest of the noises give the same end
        again = sample(velocity, model.pyramid, inputs[1], noises[2:], euler_schedule((1, 1)), first=1)
        assert torch.equal(again, last)
    with pytest.raises(ValueError, match="need a schedule for each"):
        sample(velocity, model.pyramid, noises[0], noises[1:], euler_schedule((1, 1)))
    with pytest.raises(ValueError, match="transition noise for each"):
        sample(velocity, model.pyramid, noises[0], noises[2:], euler_schedule((1, 1, 1)))


def _distillation(target, path_noise="student", guidance=1.5):
    teacher = tiny_tokenizer("model.num_stages=3", "model.resolution=32").requires_grad_(False)
    distill = dataclasses.replace(teacher.config.distill, target=target)
    student = build_student(teacher, dataclasses.replace(teacher.config, distill=distill))
    loss = DistillationLoss(teacher, target=target, teacher_steps=3, teacher_guidance=guidance,
                            path_noise=path_noise)  # fmt: skip
    z = student.encode(images(4, resolution=32))
    g = torch.Generator().manual_seed(7)
    noises = [torch.randn(4, 3, s.resolution, s.resolution, generator=g) for s in student.stages]
    return teacher, student, loss, z, noises


def test_student_rollout_is_the_student_decode():
    _, student, loss, z, _ = _distillation("trajectory")
    noises = stage_noises([3, 4, 5, 6], student.stages)
    inputs = []
    with torch.no_grad():
        outputs = loss.student_rollout(student, z, noises, inputs)
        assert torch.equal(outputs[-1], student.decode(z, seeds=[3, 4, 5, 6], temperature=1.0))
        assert torch.equal(outputs[-1], _decode_by_hand(student, z, noises, 1)[-1])
    assert len(inputs) == len(outputs) == 3 and torch.equal(inputs[0], noises[0])


def test_trajectory_teacher_is_the_guided_multistep_decode_by_hand():
    teacher, student, loss, z, noises = _distillation("trajectory")
    with torch.no_grad():
        outputs = loss.student_rollout(student, z, noises)
        k, targets = loss.teacher_targets(z, outputs, noises, torch.Generator().manual_seed(0))
        prior = teacher.decoder.prior_image(torch.cat([z, teacher.z_null.expand_as(z)]))
        expected = _decode_by_hand(teacher, z, noises, 3, guidance=1.5, prior=prior)
    assert k == 0 and len(targets) == 3
    for got, want in zip(targets, expected, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("path_noise", ["student", "fresh"])
def test_teacher_from_the_middle_of_a_stage_path_is_the_loop_by_hand(path_noise):
    """The stage-path teacher: x_u on stage k's path at local time u, about teacher_steps * u Euler steps
    from u to 0 on stage k, then the later stages (renoised) with teacher_steps each."""
    teacher, student, loss, z, noises = _distillation("stage_path", path_noise)
    seen = set()
    with torch.no_grad():
        inputs = []
        outputs = loss.student_rollout(student, z, noises, inputs)
        for seed in range(8):
            k, targets = loss.teacher_targets(z, outputs, noises, torch.Generator().manual_seed(seed), inputs)
            g = torch.Generator().manual_seed(seed)  # the draws teacher_targets made: k, u, then noises
            assert k == int(torch.randint(3, (1,), generator=g))
            u = loss.min_start + (1 - loss.min_start) * float(torch.rand(1, generator=g))
            stage = teacher.stages[k]
            x_end, x_start = teacher.pyramid.targets(outputs[-1], stage)
            if path_noise == "student":
                _, c1, d1 = stage.coefficients(1.0)
                eps, later = (inputs[k] - c1 * x_start) / d1, noises[k + 1 :]
            else:
                from fastdec.losses.draws import as_draws

                draws = as_draws(torch.Generator().manual_seed(seed), 4)
                torch.randint(3, (1,), generator=draws.batch_generator)
                torch.rand(1, generator=draws.batch_generator)
                eps = draws.randn(*x_end.shape[1:])
                later = [draws.randn(*n.shape[1:]) for n in noises[k + 1 :]]
            a, c, d = stage.coefficients(u)
            x_u = a * x_end + c * x_start + d * eps
            prior = teacher.decoder.prior_image(torch.cat([z, teacher.z_null.expand_as(z)]))
            expected = _decode_by_hand(
                teacher, z, [x_u, *later], 3, first=k, start=u, guidance=1.5, prior=prior
            )
            assert len(targets) == 3 - k
            for got, want in zip(targets, expected, strict=True):
                assert torch.equal(got, want)
            seen.add(k)
    assert len(seen) > 1  # several stages k were drawn

"""One-step-per-stage distillation loss (docs/method.md §9): regression to the teacher, perceptual, GAN.

The student decodes from noise with one network call per stage (its stage transitions are the
teacher's). The teacher target is built on a stage path (fixing docs/method.md §14.4):

- ``target="trajectory"``: the teacher decodes from the student's own noises with its multi-step
  sampler; every student stage output regresses onto the teacher's (GAN-free regression).
- ``target="stage_path"`` (ADD, as the paper): pick a stage k and a local time u, put the
  downsampled final student image on stage k's path at u (exactly where the teacher is told it is),
  run the teacher from there to the end; stages k.. regress onto it. With ``path_noise="student"``
  the path's noise is the one in the student's own stage-k input and the later transitions reuse the
  student's transition noises, so a coarse stage's noisy end state is compared with a target that
  carries the same noise; with ``"fresh"`` both are drawn anew (docs/method.md §9.2).

The adversarial term (weight > 0) adds a hinge GAN loss from :class:`Discriminator` scaled by the
VQGAN adaptive weight on the decoder's last layer; with weight 0 no discriminator exists.

Random draws: the stage k and time u are shared by the batch (its batch generator); every noise is
drawn per sample (:mod:`fastdec.losses.draws`), so a batch split over processes draws what it draws whole.
"""

import torch

from fastdec.diffusion.timesteps import euler_schedule
from fastdec.losses.adversarial import add_generator_term, generator_hinge
from fastdec.losses.draws import as_draws
from fastdec.sampling.sampler import sample


class DistillationLoss:
    """Student loss for a batch; see the module docstring for the terms.

    Args:
        teacher: frozen multi-step :class:`~fastdec.tokenizer.Tokenizer`.
        target: ``"trajectory"`` or ``"stage_path"``.
        teacher_steps: teacher Euler steps per (full) stage.
        teacher_guidance: CFG weight of the teacher (the student learns the guided result).
        regression_weight, perceptual, perceptual_weight, adversarial_weight: term weights;
            ``perceptual`` is a per-sample distance or None.
        min_start: smallest local start time u for ``"stage_path"``.
        path_noise: ``"student"`` or ``"fresh"``: the noise of the ``"stage_path"`` targets.
    """

    def __init__(
        self,
        teacher,
        *,
        target: str = "trajectory",
        teacher_steps: int = 8,
        teacher_guidance: float = 1.0,
        regression_weight: float = 1.0,
        perceptual=None,
        perceptual_weight: float = 0.0,
        adversarial_weight: float = 0.0,
        min_start: float = 0.25,
        path_noise: str = "student",
    ):
        if target not in ("trajectory", "stage_path"):
            raise ValueError(f"unknown distillation target {target!r}")
        if path_noise not in ("student", "fresh"):
            raise ValueError(f"unknown stage-path noise {path_noise!r}")
        self.teacher = teacher
        self.target = target
        self.teacher_steps = teacher_steps
        self.teacher_guidance = teacher_guidance
        self.regression_weight = regression_weight
        self.perceptual = perceptual
        self.perceptual_weight = perceptual_weight
        self.adversarial_weight = adversarial_weight
        self.min_start = min_start
        self.path_noise = path_noise

    def student_rollout(self, student, z, noises, inputs: list | None = None, prior=None):
        """One call per stage; returns every stage's output (gradients through the whole chain) and
        appends every stage's input state to ``inputs`` if given. ``prior``: the student's
        ``decoder.prior_image(z)`` if computed."""
        outputs = []
        sample(
            lambda stage: student.velocity_fn(z, stage, 1.0, prior), student.pyramid, noises[0], noises[1:],
            euler_schedule((1,) * len(student.pyramid)), inputs=inputs, outputs=outputs,
        )  # fmt: skip
        return outputs

    def student_images(self, student, z, noises):
        """The student's decoded images (B, 3, R, R): its rollout mapped out of the diffusion space."""
        prior = student.decoder.prior_image(z)
        return student.decoder.to_image(self.student_rollout(student, z, noises, prior=prior)[-1], prior)

    def teacher_schedule(self, first: int, start: float = 1.0):
        """The teacher's Euler steps from local time ``start`` of stage ``first`` to the end: about
        ``teacher_steps * start`` on that stage, ``teacher_steps`` on each later one."""
        later = len(self.teacher.pyramid) - first - 1
        return euler_schedule(
            (max(1, round(self.teacher_steps * start)),) + (self.teacher_steps,) * later, start
        )

    @torch.no_grad()
    def teacher_targets(self, z, student_outputs, noises, generator, student_inputs=None):
        """(first stage k, teacher outputs of stages k..S-1); ``generator``: the batch's
        :class:`~fastdec.losses.draws.SampleDraws` or a plain generator; ``student_inputs``: the
        student's stage input states (needed by ``"stage_path"`` with ``path_noise="student"``)."""
        teacher = self.teacher
        pyramid = teacher.pyramid
        guided = self.teacher_guidance != 1.0
        prior = teacher.decoder.prior_image(torch.cat([z, teacher.z_null.expand_as(z)]) if guided else z)

        def teacher_from(k, u, x, later):  # the teacher's decode from x at local time u of stage k
            outputs = []
            sample(
                lambda stage: teacher.velocity_fn(z, stage, self.teacher_guidance, prior), pyramid, x, later,
                self.teacher_schedule(k, u), first=k, outputs=outputs,
            )  # fmt: skip
            return outputs

        if self.target == "trajectory":
            return 0, teacher_from(0, 1.0, noises[0], noises[1:])
        draws = as_draws(generator, z.shape[0])
        k = int(torch.randint(len(pyramid), (1,), generator=draws.batch_generator))
        u = self.min_start + (1 - self.min_start) * float(torch.rand(1, generator=draws.batch_generator))
        stage = pyramid[k]
        x_end, x_start = pyramid.targets(student_outputs[-1].detach(), stage)  # at stage k's resolution
        if self.path_noise == "fresh":
            eps = draws.randn(*x_end.shape[1:]).to(x_end)  # (B, 3, r, r)
            later = [draws.randn(*n.shape[1:]).to(n) for n in noises[k + 1 :]]
        else:
            if student_inputs is None:
                raise ValueError('path_noise="student" needs the student\'s stage inputs')
            eps = stage.noise(student_inputs[k].detach(), x_end, x_start, 1.0)  # the stage input is x_1
            later = list(noises[k + 1 :])
        x_u = stage.point(x_end, x_start, eps, u)  # on stage k's path at local time u
        return k, teacher_from(k, u, x_u, later)

    def __call__(self, student, images, z, noises, generator, discriminator=None):
        """Student loss for images (B, 3, H, W) with latents z and per-stage noises.

        Returns:
            (loss (B,), named per-sample terms). ``discriminator`` is needed iff adversarial weight > 0.
        """
        inputs = []
        prior = student.decoder.prior_image(z)  # (B, 3, R, R) or None: depends on z only
        outputs = self.student_rollout(student, z, noises, inputs, prior)
        k, targets = self.teacher_targets(z, outputs, noises, generator, inputs)
        regression = sum(
            (s - t).pow(2).mean(dim=(1, 2, 3)) for s, t in zip(outputs[k:], targets, strict=True)
        )
        loss = self.regression_weight * regression
        terms = {"regression": regression.detach()}
        final = student.decoder.to_image(outputs[-1], prior)  # the decoded images
        if self.perceptual is not None and self.perceptual_weight > 0:
            perc = self.perceptual(final, images)
            loss = loss + self.perceptual_weight * perc
            terms["perceptual"] = perc.detach()
        if self.adversarial_weight > 0:
            gan = generator_hinge(discriminator(final))
            last = student.decoder.net.last_layer.weight
            loss, more = add_generator_term(loss, gan, last, self.adversarial_weight)
            terms.update(more)
        return loss, terms

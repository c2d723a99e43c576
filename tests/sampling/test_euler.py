import math

import torch

from fastdec.diffusion import path
from fastdec.diffusion.pyramid import stage_specs
from fastdec.diffusion.timesteps import euler_grid, split_total_steps, steps_per_stage
from fastdec.sampling.euler import euler_solve
from fastdec.sampling.multiscale import multiscale_sample, stage_noises


def test_euler_on_linear_field_matches_closed_form():
    a = 0.7
    x1 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    for n in (1, 5, 50):
        out = euler_solve(lambda x, t: a * x, x1, euler_grid(n).double())
        # Each step from t to t - 1/n: x <- x - (1/n) a x.
        torch.testing.assert_close(out, x1 * (1 - a / n) ** n, rtol=1e-12, atol=0)
    fine = euler_solve(lambda x, t: a * x, x1, euler_grid(10_000).double())
    torch.testing.assert_close(fine, x1 * math.exp(-a), rtol=1e-4, atol=0)


def test_euler_with_true_velocity_of_a_point_is_exact_in_one_step():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 3, 4, 4, generator=g).double(), torch.randn(2, 3, 4, 4, generator=g).double()

    def velocity(x_t, t):  # the exact velocity field of the single data point x
        return (x_t - x) / t[:, None, None, None]

    for n in (1, 7):
        out = euler_solve(velocity, path.interpolate(x, eps, 1.0), euler_grid(n).double())
        torch.testing.assert_close(out, x, rtol=0, atol=1e-12)


def test_one_stage_multiscale_equals_plain_euler():
    stages = stage_specs(8, 1)
    noises = stage_noises([3, 4], stages)

    def velocity(x, t):
        return torch.sin(x) * t[:, None, None, None] - 0.3 * x

    plain = euler_solve(velocity, noises[0], euler_grid(6))
    multi = multiscale_sample(stages, lambda s, x: euler_solve(velocity, x, euler_grid(6)), noises)
    assert torch.equal(plain, multi)


def test_step_settings():
    assert steps_per_stage(4, 3) == (4, 4, 4)
    assert steps_per_stage((5, 2, 1), 3) == (5, 2, 1)
    assert split_total_steps(10, 3) == (4, 3, 3)
    assert sum(split_total_steps(50, 4)) == 50
    for bad in ((0,), (1, 2)):
        try:
            steps_per_stage(bad, 3)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_stage_noises_are_per_sample():
    stages = stage_specs(16, 3)
    both = stage_noises([11, 12], stages)
    alone = stage_noises([12], stages)
    for a, b in zip(both, alone, strict=True):
        assert torch.equal(a[1:], b)

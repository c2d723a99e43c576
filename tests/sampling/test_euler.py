import math

import torch

from fastdec.diffusion import path
from fastdec.diffusion.pyramid import Pyramid
from fastdec.diffusion.timesteps import euler_grid, euler_schedule, euler_steps
from fastdec.sampling.euler import euler_solve
from fastdec.sampling.sampler import sample, stage_noises


def test_euler_on_linear_field_matches_closed_form():
    a = 0.7
    x1 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    for n in (1, 5, 50):
        out = euler_solve(lambda x, t: a * x, x1, euler_steps(n))
        # Each step from t to t - 1/n: x <- x - (1/n) a x.
        torch.testing.assert_close(out, x1 * (1 - a / n) ** n, rtol=1e-12, atol=0)
    fine = euler_solve(lambda x, t: a * x, x1, euler_steps(10_000))
    torch.testing.assert_close(fine, x1 * math.exp(-a), rtol=1e-4, atol=0)


def test_euler_with_true_velocity_of_a_point_is_exact_in_one_step():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 3, 4, 4, generator=g).double(), torch.randn(2, 3, 4, 4, generator=g).double()

    def velocity(x_t, t):  # the exact velocity field of the single data point x
        return (x_t - x) / t[:, None, None, None]

    for n in (1, 7):
        out = euler_solve(velocity, path.interpolate(x, eps, 1.0), euler_steps(n))
        torch.testing.assert_close(out, x, rtol=0, atol=1e-7)  # float32 times


def test_euler_steps_are_the_grid_as_numbers():
    for n, start in [(1, 1.0), (4, 1.0), (9, 1.0), (50, 1.0), (3, 0.37)]:
        grid = euler_grid(n, start)
        steps = euler_steps(n, start)
        assert [t for t, _ in steps] == grid[:-1].tolist()
        assert [dt for _, dt in steps] == (grid[1:] - grid[:-1]).tolist()  # float32 differences
        assert all(isinstance(t, float) and isinstance(dt, float) for t, dt in steps)
    assert euler_steps(4) == ((1.0, -0.25), (0.75, -0.25), (0.5, -0.25), (0.25, -0.25))
    assert euler_schedule((2, 1, 3), start=0.5) == (euler_steps(2, 0.5), euler_steps(1), euler_steps(3))


def test_one_stage_sample_equals_plain_euler():
    pyramid = Pyramid(8, 1)
    noises = stage_noises([3, 4], pyramid)

    def velocity(x, t):
        return torch.sin(x) * t[:, None, None, None] - 0.3 * x

    plain = euler_solve(velocity, noises[0], euler_steps(6))
    assert torch.equal(plain, sample(lambda stage: velocity, pyramid, noises[0], [], euler_schedule((6,))))


def test_stage_noises_are_per_sample():
    stages = Pyramid(16, 3)
    both = stage_noises([11, 12], stages)
    alone = stage_noises([12], stages)
    for a, b in zip(both, alone, strict=True):
        assert torch.equal(a[1:], b)

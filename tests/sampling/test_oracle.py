"""End to end through the pyramid: a decoder whose network returns the true clean image must decode the
true image, whatever the number of stages and the steps per stage, and every stage must start where
training puts it, on its path with white noise (docs/method.md §3, §4, §5, §7)."""

import pytest
import torch
from torch import nn

from fastdec.diffusion.pyramid import downsample
from tests.conftest import images, tiny_tokenizer


class Oracle(nn.Module):
    """x-prediction network that knows the answer: the true image at the resolution it is asked for.
    It records the first state it sees at each resolution (a stage's start)."""

    def __init__(self, truth: torch.Tensor):
        super().__init__()
        self.truth = truth
        self.calls = 0
        self.starts = {}

    def forward(self, x_t, tau, z):
        self.calls += 1
        self.starts.setdefault(x_t.shape[-1], x_t.clone())
        return downsample(self.truth, self.truth.shape[-1] // x_t.shape[-1])


def _oracle_decode(stages, steps, n=3, published_sign=False):
    overrides = ("model.latent_skip=false", "model.parameterization=x", "model.resolution=32")
    tok = tiny_tokenizer(
        *overrides, f"model.num_stages={stages}", f"model.published_block_noise={published_sign}"
    )
    truth = images(n, resolution=32)
    tok.decoder.net = Oracle(truth)
    with torch.no_grad():
        out = tok.decode(tok.encode(truth), steps=steps, seeds=range(5, 5 + n))
    return tok, truth, out


@pytest.mark.parametrize("stages", [3, 4])
@pytest.mark.parametrize("steps", [(1,), (2,), (4, 2, 1), (3, 1, 2)])
def test_an_oracle_decodes_the_true_image(stages, steps):
    per_stage = steps if len(steps) == 1 else steps + (1,) * (stages - len(steps))
    tok, truth, out = _oracle_decode(stages, per_stage)
    torch.testing.assert_close(out, truth, atol=1e-5, rtol=0)
    assert tok.decoder.net.calls == sum(tok.settings(steps=per_stage).steps)


def _block_correlation(eps: torch.Tensor) -> float:
    """Correlation of horizontally adjacent pixels inside each 2x2 block."""
    left, right = eps[..., 0::2], eps[..., 1::2]
    return float(((left - left.mean()) * (right - right.mean())).mean() / (left.std() * right.std()))


@pytest.mark.parametrize("published_sign", [False, True])
def test_every_stage_starts_on_its_path_with_white_noise(published_sign):
    tok, truth, _ = _oracle_decode(3, (2,), n=48, published_sign=published_sign)
    starts = tok.decoder.net.starts
    for stage in tok.stages[1:]:
        x_end = downsample(truth, 32 // stage.resolution)
        b = stage.start
        eps = (starts[stage.resolution] - (1 - b) * stage.projection(x_end)) / b
        assert abs(float(eps.mean())) < 0.03 and abs(float(eps.std()) - 1) < 0.03
        correlation = _block_correlation(eps)
        if published_sign:  # the published code's sign: correlated noise that training never sees
            assert correlation > 0.3
        else:
            assert abs(correlation) < 0.03

"""The deterministic prediction a diffusion decoder refines: a linear (PCA) or a one-pass decode of z.

An x-predicting decoder with ``latent_skip`` outputs ``prior(z) + net(x_t, tau, z)``: the network learns
what the prior misses. The linear prior is the PCA codec of :mod:`fastdec.models.linear_skip`. The
one-pass prior (``model.prior="onepass"``) is a whole deterministic decoder, ``linear(z) + net_0(0, 1,
z)`` (with ``prior_cond`` its net also reads ``linear(z)``): exactly what a one-pass tokenizer returns
(docs/method.md §10), so its weights can be copied from a trained one-pass export and
frozen; the diffusion network then only adds the detail that a posterior-mean decode cannot hold,
instead of learning the whole image from noise.
"""

import torch
from torch import nn

from fastdec.models.linear_skip import LinearSkip


class OnePassPrior(nn.Module):
    """``x_det(z) = linear(z) + net(zeros, tau=1, z)`` at the full resolution, (B, 3, R, R).

    Args:
        linear: the decoder direction of the PCA codec.
        net: a backbone ``net(x, tau, z) -> (B, 3, H, W)`` with the one-pass decoder's shape.
        prior_input: the one-pass decoder was built with ``prior_cond``: its net also reads the linear
            decode, ``net(zeros, 1, z, prior=linear(z))``.
    """

    def __init__(self, linear: LinearSkip, net: nn.Module, prior_input: bool = False):
        super().__init__()
        self.linear = linear
        self.net = net
        self.prior_input = prior_input

    @property
    def residual_var(self) -> torch.Tensor:
        return self.linear.residual_var

    def fit_pca(self, images: torch.Tensor) -> float:
        return self.linear.fit_pca(images)

    def forward(self, z: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """z (B, L, d) -> (B, 3, height, width)."""
        x = z.new_zeros(z.shape[0], 3, height, width)
        linear = self.linear(z, height, width)  # (B, 3, H, W)
        cond = {"prior": linear} if self.prior_input else {}
        return linear + self.net(x, z.new_ones(z.shape[0]), z, **cond)


def onepass_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A one-pass tokenizer's encoder and decoder weights, renamed for a tokenizer whose decoder has a
    :class:`OnePassPrior`: ``decoder.net.*`` -> ``decoder.prior.net.*``, ``decoder.prior.*`` ->
    ``decoder.prior.linear.*``, ``encoder.*`` unchanged; nothing else is taken."""
    renamed = {}
    for key, value in tensors.items():
        if key.startswith("encoder."):
            renamed[key] = value
        elif key.startswith("decoder.net."):
            renamed["decoder.prior.net." + key.removeprefix("decoder.net.")] = value
        elif key.startswith("decoder.prior."):
            renamed["decoder.prior.linear." + key.removeprefix("decoder.prior.")] = value
    return renamed

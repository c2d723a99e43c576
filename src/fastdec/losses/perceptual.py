"""Perceptual distances between images, each a frozen feature network behind one interface.

A `PerceptualLoss` maps two (B, 3, H, W) batches in [-1, 1] to a (B,) per-sample distance; the
caller weights, reduces and backpropagates. Backbone weights are frozen and are not registered as
submodules: they never appear in `parameters()` or `state_dict()` of a model that holds the loss,
and they follow the device of the input.
"""

import copy
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from fastdec.models.inception import DEFAULT_TAPS, InceptionEarlyLayers

PERCEPTUAL_NAMES = ("inception", "lpips", "none")


class PerceptualLoss(nn.Module):
    """Base class: `forward(x, y)` checks the inputs and returns `distance(x, y)`, shape (B,)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample perceptual distance.

        Args:
            x: (B, 3, H, W) in [-1, 1], typically the reconstruction (gradients flow to it).
            y: (B, 3, H, W) in [-1, 1], typically the target.

        Returns:
            (B,) non-negative distances, 0 where x == y.
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape != y.shape:
            raise ValueError(
                f"expected two (B, 3, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        return self.distance(x, y)

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _unit_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # LPIPS normalises each spatial feature vector to unit length; eps inside the root keeps the
    # gradient finite where ReLU zeroes a whole vector.
    return f * torch.rsqrt(f.square().sum(dim=1, keepdim=True) + eps)


class InceptionPerceptual(PerceptualLoss):
    """LPIPS-style distance on the early layers of the FID Inception-v3 (no learned weights).

    For each tapped map, features are unit-normalised over channels, the squared difference is
    summed over channels and averaged over space; the result is averaged over layers:

        d(x, y) = 1/L sum_l mean_hw || f_l(x)_hw / |f_l(x)_hw| - f_l(y)_hw / |f_l(y)_hw| ||^2

    This is LPIPS (Zhang et al. 2018) with all linear weights equal to 1: it is not calibrated on
    human judgements and its values are not comparable to LPIPS-VGG numbers. Each term lies in
    [0, 4]. x and y go through the network as one batch.

    Args:
        taps: Inception stages used, see `fastdec.models.inception.STAGE_NAMES`.
        min_size: images with a smaller side are upsampled by an integer factor to reach it.
    """

    def __init__(self, taps: tuple[str, ...] = DEFAULT_TAPS, min_size: int = 128):
        super().__init__()
        self.features = InceptionEarlyLayers(taps=taps, min_size=min_size)  # holds no weights

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        maps = self.features(torch.cat([x, y]))  # L x (2B, C_l, H_l, W_l)
        per_layer = []
        for f in maps:
            fx, fy = _unit_channels(f).split(b)  # (B, C_l, H_l, W_l) each
            per_layer.append((fx - fy).square().sum(1).mean((1, 2)))  # (B,)
        return torch.stack(per_layer).mean(0)  # (B,)


def _torchvision_checkpoint(net: str) -> Path:
    from torchvision import models

    weights = {
        "vgg": models.VGG16_Weights,
        "alex": models.AlexNet_Weights,
        "squeeze": models.SqueezeNet1_1_Weights,
    }[net].IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


class LPIPSPerceptual(PerceptualLoss):
    """LPIPS (Zhang et al. 2018) from the optional `lpips` package, when the user has it.

    The LPIPS linear heads ship inside the `lpips` package, but its backbone comes from torchvision,
    which downloads the ImageNet weights into `torch.hub.get_dir()/checkpoints` on first use. We
    never download: if that file is not already there, construction raises FileNotFoundError
    naming the expected path.

    Args:
        net: LPIPS backbone, "vgg" (the one reported in papers), "alex" or "squeeze".

    Raises:
        ImportError: if `lpips` (or torchvision) is not installed.
        FileNotFoundError: if the torchvision backbone weights are not cached locally.
    """

    def __init__(self, net: str = "vgg"):
        super().__init__()
        if net not in ("vgg", "alex", "squeeze"):
            raise ValueError(f"net must be 'vgg', 'alex' or 'squeeze', got {net!r}")
        try:
            import lpips
        except ImportError as err:
            raise ImportError(
                "LPIPSPerceptual needs the optional `lpips` package (pip install lpips) and "
                "torchvision; or use build_perceptual('inception'), which needs neither"
            ) from err
        checkpoint = _torchvision_checkpoint(net)
        if not checkpoint.is_file():
            raise FileNotFoundError(
                f"LPIPS-{net} needs the torchvision ImageNet weights at {checkpoint}; fastdec "
                "does not download them: place the file there first"
            )
        model = lpips.LPIPS(net=net, pretrained=True, verbose=False).eval()
        for param in model.parameters():
            param.requires_grad_(False)
        self._models = {"cpu": model}  # device -> frozen copy, deliberately not a submodule

    def _model_on(self, device: torch.device) -> nn.Module:
        key = str(device)
        if key not in self._models:
            self._models[key] = copy.deepcopy(self._models["cpu"]).to(device)
        return self._models[key]

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._model_on(x.device)(x, y).reshape(x.shape[0])  # (B,)


def build_perceptual(name: str) -> PerceptualLoss | None:
    """Perceptual loss by name: "inception", "lpips" (LPIPS-VGG) or "none" (returns None)."""
    if name == "inception":
        return InceptionPerceptual()
    if name == "lpips":
        return LPIPSPerceptual()
    if name == "none":
        return None
    raise ValueError(f"unknown perceptual loss {name!r}; choose one of {PERCEPTUAL_NAMES}")

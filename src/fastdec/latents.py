"""The latent contract of a tokenizer, and latent files (what ``fastdec encode`` writes and
``fastdec decode`` reads).

A :class:`LatentContract` says what a decoder accepts: the per-sample latent shape in the public
layout, the bottleneck (continuous or VQ with K codes) and the normalisation a generative model should
see. The public layout follows diffusers: grid latents are channels-first images (d, h, w); 1-D
register tokens stay a sequence (L, d). Token indices are always (L,), row-major for grids.

Scaling is applied the diffusers way, by the user of the latents, never inside encode/decode:
``z_model = (z - shift_factor) * scaling_factor`` before a generative model, and
``z = z_model / scaling_factor + shift_factor`` before decoding. Latent files hold raw latents.
"""

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load

from fastdec.io import atomic_write, parse_json, save_safetensors

LATENTS_FORMAT = 1
# Fields that decide whether latents of one model can be decoded by another; the normalisation does
# not (files hold raw latents).
_BINDING = ("layout", "num_latents", "latent_channels", "sample_size", "bottleneck", "codebook_size")


@dataclass(frozen=True)
class LatentContract:
    """What a tokenizer's decoder accepts.

    Attributes:
        layout: ``"tokens"`` (per sample (L, d)) or ``"grid"`` (per sample (d, h, w), h = w = sqrt(L)).
        num_latents: L.
        latent_channels: d.
        sample_size: image side R in pixels.
        bottleneck: ``"continuous"`` or ``"vq"``.
        codebook_size: K for ``"vq"``, 0 for ``"continuous"``.
        scaling_factor, shift_factor: the normalisation for generative models (see the module doc).
    """

    layout: str
    num_latents: int
    latent_channels: int
    sample_size: int
    bottleneck: str
    codebook_size: int
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    @classmethod
    def from_model_config(cls, m) -> "LatentContract":
        """The contract of a :class:`fastdec.config.ModelConfig`."""
        return cls(
            layout=m.latent_kind,
            num_latents=m.num_latents,
            latent_channels=m.latent_dim,
            sample_size=m.resolution,
            bottleneck=m.bottleneck,
            codebook_size=m.codebook_size if m.bottleneck == "vq" else 0,
            scaling_factor=m.latent_scaling,
            shift_factor=m.latent_shift,
        )

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Per-sample latent shape in the public layout: (L, d) or (d, h, w)."""
        if self.layout == "grid":
            side = math.isqrt(self.num_latents)
            return (self.latent_channels, side, side)
        return (self.num_latents, self.latent_channels)

    def _shape_text(self) -> str:
        names = "(d, h, w)" if self.layout == "grid" else "(L, d)"
        return f"{names} = {self.latent_shape}"

    def check_latents(self, z) -> None:
        """Refuse anything but finite float latents (B, *latent_shape); the error names the mismatch."""
        if not torch.is_tensor(z) or not z.is_floating_point():
            kind = z.dtype if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"latents must be a float tensor, got {kind}")
        if z.ndim != 1 + len(self.latent_shape) or tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(
                f"latents of shape {tuple(z.shape)} do not match this tokenizer's {self._shape_text()} "
                f"(expected (B, {', '.join(map(str, self.latent_shape))}))"
            )
        if not torch.isfinite(z).all():
            raise ValueError("latents contain NaN or inf")

    def check_indices(self, indices) -> None:
        """Refuse anything but integer tokens (B, L) in [0, K) for a VQ contract."""
        if self.bottleneck != "vq":
            raise ValueError(f"token indices need a VQ tokenizer; this one is {self.bottleneck!r}")
        if not torch.is_tensor(indices) or indices.is_floating_point() or indices.is_complex():
            kind = indices.dtype if torch.is_tensor(indices) else type(indices).__name__
            raise ValueError(f"token indices must be an integer tensor, got {kind}")
        if indices.ndim != 2 or indices.shape[1] != self.num_latents:
            raise ValueError(
                f"token indices of shape {tuple(indices.shape)} do not match this tokenizer's "
                f"(B, L) = (B, {self.num_latents})"
            )
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(
                f"token indices must be in [0, {self.codebook_size}), "
                f"got values in [{int(indices.min())}, {int(indices.max())}]"
            )

    def to_public(self, z: torch.Tensor) -> torch.Tensor:
        """Tokenizer layout (B, L, d) -> public layout (B, *latent_shape)."""
        if self.layout == "grid":
            return z.transpose(1, 2).reshape(z.shape[0], *self.latent_shape)  # (B, d, h, w)
        return z

    def to_tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Public layout (B, *latent_shape) -> tokenizer layout (B, L, d)."""
        if self.layout == "grid":
            return z.flatten(2).transpose(1, 2)  # (B, L, d), row-major over the grid
        return z

    def mismatches(self, other: "LatentContract") -> list[str]:
        """``"name: mine vs other"`` for every binding field that differs."""
        return [
            f"{name}: {getattr(self, name)!r} vs {getattr(other, name)!r}"
            for name in _BINDING
            if getattr(self, name) != getattr(other, name)
        ]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LatentContract":
        data = parse_json(text, "a latent contract")
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != known:
            raise ValueError(f"a latent contract has the keys {sorted(known)}, got {data!r}")
        return cls(**data)


@dataclass
class LatentFile:
    """The contents of a latent file: ``kind`` is ``"latents"`` ((N, *latent_shape) float32) or
    ``"indices"`` ((N, L) int64); ``names`` name the N source images."""

    kind: str
    tensor: torch.Tensor
    names: list[str]
    contract: LatentContract


def save_latents(
    path: str | Path,
    contract: LatentContract,
    *,
    latents: torch.Tensor | None = None,
    indices: torch.Tensor | None = None,
    names: list[str] | None = None,
) -> None:
    """Write raw latents (N, *latent_shape) or token indices (N, L) as safetensors, atomically, with the
    contract and the image names (default ``"0"``, ``"1"``, ...) in the file's metadata."""
    if (latents is None) == (indices is None):
        raise ValueError("save_latents takes exactly one of latents= and indices=")
    if latents is not None:
        contract.check_latents(latents)
        kind, tensor = "latents", latents.detach().float().cpu().contiguous()
    else:
        contract.check_indices(indices)
        kind, tensor = "indices", indices.detach().long().cpu().contiguous()
    names = [str(i) for i in range(tensor.shape[0])] if names is None else [str(n) for n in names]
    if len(names) != tensor.shape[0]:
        raise ValueError(f"got {len(names)} names for {tensor.shape[0]} {kind}")
    metadata = {
        "fastdec_latents_format": str(LATENTS_FORMAT),
        "kind": kind,
        "contract": contract.to_json(),
        "names": json.dumps(names),
    }
    atomic_write(Path(path), lambda tmp: save_safetensors(tmp, {kind: tensor}, metadata))


def load_latents(path: str | Path) -> LatentFile:
    """Read a file written by :func:`save_latents`; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"latent file not found: {path}")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except Exception as err:  # the safetensors parser raises several types for a torn or foreign file
        raise ValueError(f"{path} is not a safetensors file: {type(err).__name__}: {err}") from None
    if metadata.get("fastdec_latents_format") != str(LATENTS_FORMAT):
        raise ValueError(
            f"{path} is not a fastdec latent file (format {metadata.get('fastdec_latents_format')!r}, "
            f"expected {LATENTS_FORMAT!r}); write one with fastdec encode or fastdec.latents.save_latents"
        )
    kind = metadata.get("kind")
    if kind not in ("latents", "indices") or set(tensors) != {kind}:
        raise ValueError(f"{path} should hold one tensor named 'latents' or 'indices', got {sorted(tensors)}")
    try:
        contract = LatentContract.from_json(metadata["contract"])
        names = json.loads(metadata["names"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} has an unreadable contract or name list: {err}") from None
    tensor = tensors[kind]
    if kind == "latents":
        contract.check_latents(tensor)
    else:
        contract.check_indices(tensor)
    if not isinstance(names, list) or len(names) != tensor.shape[0]:
        raise ValueError(f"{path} names {len(names)} images for {tensor.shape[0]} {kind}")
    return LatentFile(kind, tensor, [str(n) for n in names], contract)

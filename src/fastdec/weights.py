"""Reading an export's weights safely: the weights a config implies, checked against the file's."""

from pathlib import Path

import torch

from fastdec.io import CONFIG_NAME, load_export
from fastdec.models.prior import onepass_weights


def check_weights(expected: dict[str, torch.Size], tensors: dict[str, torch.Tensor], directory: Path) -> None:
    """Refuse weights that are missing, unexpected, of another shape than the config implies, or not
    finite floating point; the message names the export and the first mismatches."""
    missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
    if missing or unexpected:
        raise ValueError(
            f"weights in {directory} do not match its config: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    for key, shape in expected.items():
        weight = tensors[key]
        if weight.shape != shape:
            raise ValueError(
                f"weight {key} in {directory} has shape {tuple(weight.shape)}, "
                f"its config implies {tuple(shape)}"
            )
        if not weight.is_floating_point() or not torch.isfinite(weight).all():
            raise ValueError(f"weight {key} in {directory} is not finite floating point ({weight.dtype})")


def shared_prior_weights(directory: Path, reference, own: set[str]) -> dict[str, torch.Tensor]:
    """The encoder and one-pass prior weights that the export in ``directory`` keeps by reference.

    ``reference`` is its ``config.json`` entry ``prior_export`` (written by :func:`fastdec.hub.pack`):
    ``{"name": a sibling export directory, "weights_sha256": that export's weights checksum}``. The
    sibling's weights are renamed as a prior (:func:`fastdec.models.prior.onepass_weights`).

    Raises:
        ValueError: a malformed reference, a name that is not a plain sibling, a sibling whose weights
            changed since packing, or weights present in both files.
    """
    config = directory / CONFIG_NAME
    if not (isinstance(reference, dict) and set(reference) == {"name", "weights_sha256"}):
        raise ValueError(f"{config}: prior_export needs 'name' and 'weights_sha256': {reference!r:.200}")
    name = reference["name"]
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name:
        raise ValueError(f"{config}: prior_export name must be a sibling directory's name, got {name!r:.200}")
    tensors, payload = load_export(directory.parent / name)
    if payload.get("weights_sha256") != reference["weights_sha256"]:
        raise ValueError(
            f"{config} keeps its prior in {directory.parent / name}, whose weights changed since packing"
        )
    shared = onepass_weights(tensors)
    both = sorted(own & set(shared))
    if both:
        raise ValueError(f"{config}: weights both stored and kept by reference: {both[:5]}")
    return shared

"""Loading any model by name (bundled models, reference codecs, exports) and packing exports to ship."""

from pathlib import Path

import torch

from fastdec.bundled import BUNDLED_DIR, bundled_models, resolve_model

__all__ = ["BUNDLED_DIR", "bundled_models", "resolve_model", "load_model", "reference_check", "pack"]


def load_model(spec: str, *, resolution: int = 32, device="cpu"):
    """A trained tokenizer (export directory or bundled name), a baseline codec at ``resolution``
    (``thumbnail-6``; ``pca-128``: the global PCA codec, fitted once and kept in the user cache) or a
    PCA codec export (a directory of :meth:`fastdec.models.pca.PCACodec.save_pretrained`)."""
    from fastdec.io import restore_interrupted_export
    from fastdec.models.baselines import parse_baseline
    from fastdec.models.pca import PCACodec, is_pca_export, load_pca, parse_pca
    from fastdec.tokenizer import Tokenizer

    spec = str(spec)
    components = parse_pca(spec, resolution)
    if components is not None:
        return load_pca(components, resolution).to(device)
    baseline = parse_baseline(spec, resolution)
    if baseline is not None:
        return baseline.to(device)
    if spec:  # an overwrite killed between its two renames: put the old export back
        restore_interrupted_export(spec)
    try:
        directory = resolve_model(spec)
    except FileNotFoundError:
        directory = None  # Tokenizer.from_pretrained names the problem
    if directory is not None and is_pca_export(directory):
        return PCACodec.from_pretrained(directory, device=device)
    return Tokenizer.from_pretrained(spec, device=device)


CHECK_IMAGES = 8  # held-out crops of the model card's reproduction check


@torch.no_grad()
def _check_decode(model) -> tuple[torch.Tensor, torch.Tensor]:
    from fastdec.data.photos import validation_crops

    images = validation_crops(model.resolution, CHECK_IMAGES, seed=0)
    return images, model.decode(model.encode(images))  # seeds 0..B-1


def reference_check(model) -> dict:
    """Decode ``CHECK_IMAGES`` held-out photo crops with the model's default settings and seeds.

    Returns the PSNR that the model card records and a test reproduces (within 0.1 dB).
    """
    from fastdec.eval.metrics import psnr

    images, out = _check_decode(model)
    return {
        "images": f"validation_crops({model.resolution}, {CHECK_IMAGES}, seed=0)",
        "decode": "default settings, seeds 0..B-1",
        "psnr": round(float(psnr(out, images).mean()), 4),
    }


def pack(
    source: str | Path,
    output: str | Path,
    *,
    half: bool = True,
    meta: dict | None = None,
    sample: tuple[str, ...] = (),
    prior_export: str | Path | None = None,
) -> dict:
    """Copy a trained export to ``output`` for shipping, parameters stored in float16.

    Buffers (the fixed PCA codec) stay in float32: they are few numbers and the linear decode is the
    base every prediction adds to. Loading casts everything back to float32, so only storage changes.
    The export's meta gains ``meta`` and ``check`` (:func:`reference_check` of the stored weights,
    and the largest change of a decoded pixel, on [-1, 1], that float16 storage causes).

    ``sample``: ``sample.key=value`` overrides of the default decode settings that ship with the model
    (e.g. ``("sample.steps=4/4/4", "sample.temperature=0.8")``, chosen on the val split); the weights do
    not depend on them.

    ``prior_export``: a packed one-pass export in the same directory as ``output`` whose weights are
    this model's frozen encoder and one-pass prior (``model.prior="onepass"``): those are then stored
    once, there, and ``config.json`` names that export and its checksum
    (:func:`fastdec.weights.shared_prior_weights` reads them back).

    Returns:
        ``{"parameters", "bytes", "max_abs_weight_error", "check"}`` of the written export.
    """
    from fastdec.io import WEIGHTS_NAME, save_export
    from fastdec.presets import resolve
    from fastdec.tokenizer import Tokenizer

    model = Tokenizer.from_pretrained(source)
    if Path(output).resolve() == resolve_model(source).resolve():
        raise ValueError(f"pack output {output} is the model it packs: write the packed copy elsewhere")
    not_sample = [item for item in sample if not item.startswith("sample.")]
    if not_sample:
        raise ValueError(f"pack changes decode defaults only (sample.*), got {not_sample}")
    model.config = resolve(model.config, list(sample))
    error, decode_diff = 0.0, 0.0
    if half:
        _, before = _check_decode(model)
        for name, param in model.named_parameters():
            stored = param.data.half()
            if not torch.isfinite(stored).all():
                raise ValueError(f"weight {name} of {source} overflows float16; pack it with half=False")
            error = max(error, (stored.float() - param.data).abs().max().item())
            param.data.copy_(stored.float())  # the check sees exactly the weights that ship
        decode_diff = (_check_decode(model)[1] - before).abs().max().item()
    check = {**reference_check(model), "fp16_max_abs_decode_change": decode_diff}
    params = {name for name, _ in model.named_parameters()}
    tensors = {k: v.half() if half and k in params else v for k, v in model.state_dict().items()}
    # the config keeps the model and sample sections; the training data (for `fastdec distill`) goes to the
    # meta, where an export of an older version, which held the train section too, has not put it yet
    meta = {"data": model.config.train.data, **model.meta, **(meta or {}), "check": check}
    payload = {"config": model.config.to_dict(export=True), "meta": meta}
    if prior_export is not None:
        tensors, payload["prior_export"] = _by_reference(tensors, Path(prior_export), Path(output), source)
    save_export(output, tensors, payload)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "bytes": (Path(output) / WEIGHTS_NAME).stat().st_size,
        "max_abs_weight_error": error,
        "check": check,
    }


def _by_reference(tensors: dict, prior_export: Path, output: Path, source) -> tuple[dict, dict]:
    """``tensors`` without the weights that ``prior_export`` holds (bit for bit), and the reference."""
    from fastdec.io import load_export
    from fastdec.models.prior import onepass_weights

    if prior_export.resolve().parent != output.resolve().parent or prior_export.resolve() == output.resolve():
        raise ValueError(f"prior_export {prior_export} must be another directory beside the output {output}")
    stored, payload = load_export(prior_export)
    shared = onepass_weights(stored)
    if not shared or any(k not in tensors or not torch.equal(tensors[k], v) for k, v in shared.items()):
        raise ValueError(f"{source} does not hold the weights of {prior_export} as its encoder and prior")
    kept = {k: v for k, v in tensors.items() if k not in shared}
    return kept, {"name": prior_export.resolve().name, "weights_sha256": payload["weights_sha256"]}

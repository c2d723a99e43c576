"""The comparison table: several decoders and decode settings on the same images and latents.

Each setting is ``MODEL[:key=value,...]`` with the decode options of
:func:`fastdec.sampling.settings.parse_option` (``steps``: ``50``, or per stage ``4/2/1``;
``total_steps``, ``guidance``, ``temperature``), ``label``, and ``backend=onnx`` (decode a one-step
student through onnxruntime, exported on the fly) or ``onnx=FILE`` (through that file of
``fastdec export-onnx``).
Quality comes from one full reconstruction per setting (:func:`fastdec.eval.evaluate.evaluate`
without its timing); decode times are measured afterwards for all settings round-robin on one fixed
batch, so machine drift hits every setting alike (the quality pass is their warm-up). An onnx row
reports the FLOPs of the same decode counted in PyTorch. The real images' Inception features are
computed (or read from the disk cache) once per comparison and shared by every setting's rFID.
"""

import platform
from dataclasses import dataclass, field

import torch

from fastdec.eval.evaluate import evaluate, precision
from fastdec.eval.fid_cache import real_features
from fastdec.eval.flops import count_flops
from fastdec.eval.timing import cuda_sync_if_needed, fixed_threads, interleaved_timings
from fastdec.sampling.settings import OPTIONS, DecodeSettings


@dataclass
class Setting:
    model: str
    decode: dict = field(default_factory=dict)  # keywords of the model's decode
    label: str = ""
    backend: str = "torch"  # "torch" | "onnx"
    onnx_file: str | None = None  # with backend "onnx": a file of `fastdec export-onnx`, else export now


def parse_setting(spec: str) -> Setting:
    """``"runs/ms3/export:steps=4/2/1,guidance=1.5,label=ms 4-2-1"`` -> :class:`Setting`."""
    model, _, options = spec.partition(":")
    decode, label, backend, onnx_file = {}, "", "torch", None
    for item in filter(None, options.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"setting option {item!r} in {spec!r} is not key=value")
        if key in OPTIONS:
            decode[key] = value
        elif key == "label":
            label = value
        elif key == "backend":
            if value not in ("torch", "onnx"):
                raise ValueError(f"backend must be 'torch' or 'onnx', got {value!r} in {spec!r}")
            backend = value
        elif key == "onnx":
            backend, onnx_file = "onnx", value
        else:
            raise ValueError(
                f"unknown setting option {key!r} in {spec!r}: {', '.join(OPTIONS)}, label, backend, onnx"
            )
    try:
        decode = DecodeSettings.parse(decode).keywords()
    except ValueError as err:
        raise ValueError(f"{err} (in setting {spec!r})") from None
    return Setting(model, decode, label or spec, backend, onnx_file)


@torch.no_grad()
def compare(
    settings: list[Setting],
    models: dict,
    images: torch.Tensor,
    *,
    batch_size: int = 32,
    seed: int = 0,
    repeats: int = 5,
    threads: int | None = None,
    rfid: bool = True,
    progress=None,
    autocast: torch.dtype | None = None,
    fid_cache: bool = True,
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Rows of the comparison table (speed-ups against the first setting) and each setting's
    reconstructions. Models and images sit on the device to measure; ``autocast`` as in
    :func:`fastdec.eval.evaluate.evaluate`. Inception sees the real images at most once per call
    (never with a warm cache; ``fid_cache=False`` skips the disk cache)."""
    threads = threads or torch.get_num_threads()
    # The same CPU float32 images that evaluate() measures rFID on.
    real = real_features(images.float().cpu(), cache=fid_cache) if rfid else None
    rows, recons, fns = [], {}, {}
    x = images[:batch_size]
    sync = cuda_sync_if_needed(images.device)
    for s in settings:
        model = models[s.model]
        if s.backend == "onnx":
            from fastdec.export.onnx import OnnxTokenizer

            if autocast is not None:
                raise ValueError(
                    f"setting {s.label!r}: the onnxruntime decoder runs in float32, not {autocast}"
                )
            model = OnnxTokenizer.build(model, s.onnx_file, threads=threads)
        # quality and encode time here; the decode times come from the interleaved runs below
        result, recon = evaluate(
            model, images, batch_size=batch_size, seed=seed, rfid=rfid, timing_repeats=1, time_decode=False,
            threads=threads, progress=progress, autocast=autocast, fid_cache=fid_cache, real_features=real,
            **s.decode,
        )  # fmt: skip
        if s.backend == "onnx":  # the counter sees PyTorch ops only: count the same decode in PyTorch
            z1 = model.encode(x[:1])
            result["flops_per_image"] = count_flops(lambda model=model, z1=z1: model.tokenizer.decode(z1))
        rows.append({"label": s.label, "model": s.model, "backend": s.backend, **result})
        recons[s.label] = recon
        with precision(x.device, autocast):
            z = model.encode(x)
        fns[s.label] = lambda model=model, z=z, kw=s.decode: model.decode(z, **kw)
    with fixed_threads(threads), precision(x.device, autocast):
        # no warm-up round: each setting has just decoded every batch of this shape for its quality
        times = interleaved_timings(fns, warmup=0, repeats=repeats, sync=sync)
    for row in rows:
        t = times[row["label"]]
        row["decode_ms_per_image"] = t["median_ms"] / x.shape[0]
        row["decode_ms_all"] = [v / x.shape[0] for v in t["all_ms"]]
    base = rows[0]
    for row in rows:
        row["speedup"] = base["decode_ms_per_image"] / row["decode_ms_per_image"]
        row["flops_ratio"] = base["flops_per_image"] / max(1, row["flops_per_image"])
    return rows, recons


def environment(images: torch.Tensor, batch_size: int, threads: int, autocast=None) -> dict:
    return {
        "device": str(images.device),
        "dtype": str(autocast or images.dtype),
        "threads": threads,
        "batch_size": batch_size,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
    }


def markdown(rows: list[dict]) -> str:
    head = "| setting | NFE | PSNR | SSIM | rFID | GFLOPs/img | decode ms/img | speed-up | FLOPs ratio |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rfid = f"{r['rfid']:.1f}" if "rfid" in r else "-"
        network = r["nfe"] > 0  # a codec without a network (thumbnail) has no meaningful ratio
        speedup = f"{r['speedup']:.1f}x" if network else "-"
        ratio = f"{r['flops_ratio']:.1f}x" if network else "-"
        lines.append(
            f"| {r['label']} | {r['nfe']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {rfid} "
            f"| {r['flops_per_image'] / 1e9:.3f} | {r['decode_ms_per_image']:.2f} | {speedup} | {ratio} |"
        )
    n = rows[0]["n_images"]
    return "\n".join(lines) + f"\n\nrFID on {n} images (biased upward at small N; compare within a table)."

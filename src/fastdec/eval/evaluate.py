"""Reconstruct a set of images with one decode setting and measure it (docs/method.md §13)."""

import contextlib
import platform

import torch

from fastdec.eval.flops import count_flops
from fastdec.eval.metrics import FIDAccumulator, psnr, ssim, summarize_psnr
from fastdec.eval.timing import cuda_sync_if_needed, fixed_threads, measure_ms


def precision(device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` (e.g. torch.bfloat16) on ``device``; a no-op for None (fp32, the default)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


@torch.no_grad()
def reconstruct(
    model,
    images: torch.Tensor,
    *,
    batch_size: int = 32,
    seed: int = 0,
    progress=None,
    autocast=None,
    **decode,
):
    """Encode and decode ``images`` (N, 3, R, R) in batches on their device; image i uses noise seed
    ``seed + i``. ``autocast``: None (fp32) or a dtype such as torch.bfloat16.

    Returns:
        Reconstructions (N, 3, R, R), float32 on the CPU, clamped to [-1, 1].
    """
    outs = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size]
        seeds = range(seed + i, seed + i + x.shape[0])
        with precision(x.device, autocast):
            out = model.decode(model.encode(x), seeds=seeds, **decode)
        outs.append(out.float().clamp(-1, 1).cpu())
        if progress is not None:
            progress(x.shape[0])
    return torch.cat(outs)


@torch.no_grad()
def evaluate(
    model,
    images: torch.Tensor,
    *,
    batch_size: int = 32,
    seed: int = 0,
    rfid: bool = True,
    timing_repeats: int = 3,
    time_decode: bool = True,
    threads: int | None = None,
    progress=None,
    autocast: torch.dtype | None = None,
    fid_cache: bool = True,
    real_features: torch.Tensor | None = None,
    **decode,
) -> tuple[dict, torch.Tensor]:
    """Reconstruction quality and cost of one decode setting on ``images``.

    Quality: PSNR and SSIM on [0, 1] images (data range 1), rFID with the real Inception-v3 (biased
    upward at small N: compare only equal ``n_images``). Cost: network calls per image (guidance
    counted), decoder FLOPs per image (torch.utils.flop_counter, one image), and decode / encode time
    per image: median of ``timing_repeats`` timed runs of one batch after one warm-up, threads fixed,
    encoder timed apart from the decoder, CUDA synchronised (``time_decode=False``: the decode is not
    timed, for callers that time it themselves). ``images`` sit on the device to use;
    ``autocast`` (e.g. torch.bfloat16) runs encode and decode in that precision. The Inception
    features of the real images come from the disk cache of :func:`fastdec.eval.fid_cache.real_features`
    (``fid_cache=False``: computed afresh), or from ``real_features`` (N, 2048) when the caller has them.

    Returns:
        (metrics dict, reconstructions (N, 3, R, R)).
    """
    if rfid and real_features is not None and real_features.shape[0] != images.shape[0]:
        raise ValueError(f"real_features has {real_features.shape[0]} rows for {images.shape[0]} images")
    threads = threads or torch.get_num_threads()
    with fixed_threads(threads):
        recon = reconstruct(
            model, images, batch_size=batch_size, seed=seed, progress=progress, autocast=autocast, **decode
        )
        x = images[:batch_size]
        sync = cuda_sync_if_needed(images.device)
        with precision(images.device, autocast):
            z = model.encode(x)
            if time_decode:
                decode_t = measure_ms(
                    lambda: model.decode(z, **decode), warmup=1, repeats=timing_repeats, sync=sync
                )
            encode_t = measure_ms(lambda: model.encode(x), warmup=1, repeats=timing_repeats, sync=sync)
            flops = count_flops(lambda: model.decode(z[:1], **decode))
        images = images.float().cpu()
    result = {
        "n_images": int(images.shape[0]),
        "resolution": int(images.shape[-1]),
        "psnr": summarize_psnr(psnr(recon, images)),
        "ssim": float(ssim(recon, images).mean()),
        "nfe": int(model.nfe(**decode)),
        "flops_per_image": int(flops),
        "encode_ms_per_image": encode_t["median_ms"] / x.shape[0],
        "timing_batch_size": int(x.shape[0]),
        "threads": threads,
        "device": str(x.device),
        "dtype": str(autocast or torch.float32),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "decode": {k: (list(v) if isinstance(v, tuple) else v) for k, v in decode.items()},
        "seed": seed,
    }
    if time_decode:
        result["decode_ms_per_image"] = decode_t["median_ms"] / x.shape[0]
    if rfid:
        fid = FIDAccumulator()
        if real_features is None:
            fid.update_real_cached(images, cache=fid_cache)
        else:
            fid.update_real_features(real_features)
        for i in range(0, images.shape[0], 64):
            fid.update_fake(recon[i : i + 64])
        result["rfid"] = fid.compute()
        result["rfid_n_images"] = fid.n_real
    return result, recon

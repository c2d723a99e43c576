"""Reconstruct a set of images with one decode setting and measure it (METHOD.md §5)."""

import platform

import torch

from fastdec.eval.flops import count_flops
from fastdec.eval.metrics import FIDAccumulator, psnr, ssim, summarize_psnr
from fastdec.eval.timing import fixed_threads, measure_ms


@torch.no_grad()
def reconstruct(model, images: torch.Tensor, *, batch_size: int = 32, seed: int = 0, progress=None, **decode):
    """Encode and decode ``images`` (N, 3, R, R) in batches; image i uses noise seed ``seed + i``.

    Returns:
        (latents list, reconstructions (N, 3, R, R) clamped to [-1, 1]).
    """
    outs = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size]
        seeds = range(seed + i, seed + i + x.shape[0])
        z = model.encode(x)
        outs.append(model.decode(z, seeds=seeds, **decode).clamp(-1, 1))
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
    threads: int | None = None,
    progress=None,
    **decode,
) -> tuple[dict, torch.Tensor]:
    """Reconstruction quality and cost of one decode setting on ``images``.

    Quality: PSNR and SSIM on [0, 1] images (data range 1), rFID with the real Inception-v3 (biased
    upward at small N: compare only equal ``n_images``). Cost: network calls per image (guidance
    counted), decoder FLOPs per image (torch.utils.flop_counter, one image), and decode / encode time
    per image: median of ``timing_repeats`` timed runs of one batch after one warm-up, threads fixed,
    encoder timed apart from the decoder.

    Returns:
        (metrics dict, reconstructions (N, 3, R, R)).
    """
    threads = threads or torch.get_num_threads()
    with fixed_threads(threads):
        recon = reconstruct(model, images, batch_size=batch_size, seed=seed, progress=progress, **decode)
        x = images[:batch_size]
        z = model.encode(x)
        decode_t = measure_ms(lambda: model.decode(z, **decode), warmup=1, repeats=timing_repeats)
        encode_t = measure_ms(lambda: model.encode(x), warmup=1, repeats=timing_repeats)
        flops = count_flops(lambda: model.decode(z[:1], **decode))
    result = {
        "n_images": int(images.shape[0]),
        "resolution": int(images.shape[-1]),
        "psnr": summarize_psnr(psnr(recon, images)),
        "ssim": float(ssim(recon, images).mean()),
        "nfe": int(model.nfe(**decode)),
        "flops_per_image": int(flops),
        "decode_ms_per_image": decode_t["median_ms"] / x.shape[0],
        "encode_ms_per_image": encode_t["median_ms"] / x.shape[0],
        "timing_batch_size": int(x.shape[0]),
        "threads": threads,
        "device": str(images.device),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "decode": {k: (list(v) if isinstance(v, tuple) else v) for k, v in decode.items()},
        "seed": seed,
    }
    if rfid:
        fid = FIDAccumulator()
        for i in range(0, images.shape[0], 64):
            fid.update_real(images[i : i + 64])
            fid.update_fake(recon[i : i + 64])
        result["rfid"] = fid.compute()
        result["rfid_n_images"] = fid.n_real
    return result, recon

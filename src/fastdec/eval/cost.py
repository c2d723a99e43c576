"""The cost of coarse-to-fine decoding: FLOPs and decode time vs resolution and number of stages.

The measurement behind the paper's O(log n) claim (docs/method.md §8): T Euler steps at full resolution
against T steps split over S stages, and against one step per stage, for one randomly initialised
decoder (cost does not depend on the weights). Prediction for split-T: speed-up above (3/4) S, less
the fixed per-call cost of the latent tokens.
"""

import torch

from fastdec.config import Config, ModelConfig
from fastdec.eval.flops import count_flops
from fastdec.eval.timing import fixed_threads, interleaved_timings
from fastdec.tokenizer import Tokenizer


def max_stages(resolution: int, patch: int) -> int:
    """S such that the coarsest stage is one patch wide: log2(res / patch) + 1."""
    return (resolution // patch).bit_length()


def _model(resolution: int, num_stages: int, width: int, depth: int, patch: int, latents: int) -> Tokenizer:
    m = ModelConfig(
        resolution=resolution, num_latents=latents, latent_dim=16, enc_patch=patch, enc_width=64,
        enc_depth=1, enc_heads=1, dec_patch=patch, dec_width=width, dec_depth=depth,
        dec_heads=width // 64, num_stages=num_stages,
    )  # fmt: skip
    torch.manual_seed(0)
    return Tokenizer(Config(model=m)).eval()


@torch.no_grad()
def cost_table(
    resolutions=(32, 64, 128, 256),
    total_steps: int = 30,
    *,
    width: int = 256,
    depth: int = 4,
    patch: int = 8,
    latents: int = 32,
    batch_size: int = 1,
    repeats: int = 3,
    threads: int | None = None,
    progress=None,
) -> list[dict]:
    """One row per (resolution, S, setting): NFE, FLOPs per image, decode ms per image, speed-ups.

    Settings: ``full`` (T steps, S = 1), ``split`` (T steps split over S stages), ``one_step`` (one
    step per stage). Timings are interleaved across the settings of one resolution.
    """
    rows = []
    threads = threads or torch.get_num_threads()
    for res in resolutions:
        runs = {}
        for s in range(1, max_stages(res, patch) + 1):
            model = _model(res, s, width, depth, patch, latents)
            z = torch.randn(batch_size, latents, 16)
            settings = {"split": {"total_steps": total_steps}} if s > 1 else {"full": {"steps": total_steps}}
            settings["one_step"] = {"steps": 1}
            for name, kw in settings.items():
                runs[(s, name)] = (model, z, kw)
        fns = {key: (lambda m=m, z=z, kw=kw: m.decode(z, **kw)) for key, (m, z, kw) in runs.items()}
        with fixed_threads(threads):
            times = interleaved_timings(fns, warmup=1, repeats=repeats)
        base_flops = base_ms = None
        for (s, name), (model, z, kw) in runs.items():
            flops = count_flops(lambda model=model, z=z, kw=kw: model.decode(z[:1], **kw))
            ms = times[(s, name)]["median_ms"] / batch_size
            if name == "full":
                base_flops, base_ms = flops, ms
            rows.append({
                "resolution": res, "stages": s, "setting": name,
                "steps": list(model.settings(**kw).steps), "nfe": model.nfe(**kw),
                "gflops_per_image": flops / 1e9, "decode_ms_per_image": ms,
                "flops_speedup": base_flops / flops, "time_speedup": base_ms / ms,
                "predicted_min_speedup": 0.75 * s if name == "split" else 0.75 * total_steps,
            })  # fmt: skip
            if progress is not None:
                progress(1)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| res | S | setting | steps per stage | NFE | GFLOPs/img | ms/img | FLOP speed-up | time speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['resolution']} | {r['stages']} | {r['setting']} | {','.join(map(str, r['steps']))} "
            f"| {r['nfe']} | {r['gflops_per_image']:.3f} | {r['decode_ms_per_image']:.1f} "
            f"| {r['flops_speedup']:.2f}x | {r['time_speedup']:.2f}x |"
        )
    return "\n".join(lines)

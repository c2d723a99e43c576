"""Figures: the speed-quality plot and the reconstruction grid (PNG, matplotlib Agg)."""

import textwrap
from pathlib import Path

import numpy as np
import torch

from fastdec.io import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    """Write the figure atomically (format from the suffix, PNG by default) and close it."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120))
    finally:
        _pyplot().close(fig)


def speed_quality_plot(rows: list[dict], path: str | Path) -> None:
    """Decode time per image (log x) against PSNR and against rFID, one labelled point per setting."""
    plt = _pyplot()
    metrics = [("psnr", "PSNR (dB, higher is better)")]
    if all("rfid" in r for r in rows):
        metrics.append(("rfid", "rFID (lower is better)"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), squeeze=False)
    for ax, (key, title) in zip(axes[0], metrics, strict=True):
        for r in rows:
            ax.scatter(r["decode_ms_per_image"], r[key], s=40)
            ax.annotate(r["label"], (r["decode_ms_per_image"], r[key]), fontsize=8,
                        textcoords="offset points", xytext=(4, 4))  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("decode time per image (ms, log scale)")
        ax.set_ylabel(title)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def reconstruction_grid(
    originals: torch.Tensor, recons: dict[str, torch.Tensor], path: str | Path, rows: int = 6, zoom: int = 3
) -> None:
    """Rows: images; columns: the original, then each setting's reconstruction."""
    plt = _pyplot()
    columns = {"original": originals, **recons}
    n = min(rows, originals.shape[0])
    fig, axes = plt.subplots(n, len(columns), figsize=(1.1 * zoom * len(columns) / 2, 1.1 * zoom * n / 2),
                             squeeze=False)  # fmt: skip
    for j, (name, imgs) in enumerate(columns.items()):
        for i in range(n):
            ax = axes[i][j]
            ax.imshow(((imgs[i].permute(1, 2, 0).clamp(-1, 1) + 1) / 2).numpy().astype(np.float32))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("\n".join(textwrap.wrap(name, 24)), fontsize=7)  # long labels: 2-3 lines
    fig.tight_layout()
    _save(fig, path)


def learning_curve_plot(curves: dict[str, list[tuple[float, float]]], path: str | Path) -> None:
    """Held-out PSNR against training minutes, one line per run: ``{label: [(minutes, psnr), ...]}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in curves.items():
        minutes, psnr = zip(*points, strict=True)
        ax.plot(minutes, psnr, marker="o", markersize=3, label=label)
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)

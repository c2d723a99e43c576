"""Rotary position embeddings on 2-D positions (axial RoPE).

Half of each head's rotary pairs encode the row, half the column, so one network attends correctly at
any grid size: the image token grid of every pyramid stage, and latent tokens placed anywhere on the
same plane.
"""

import torch


def grid_positions(height: int, width: int, *, stride: float = 1.0, device=None) -> torch.Tensor:
    """Positions of an (height x width) token grid, row-major.

    Args:
        height: rows of the grid.
        width: columns of the grid.
        stride: distance between neighbouring tokens, in units of the finest grid. A coarse grid that
            covers the same image as a fine one uses ``stride > 1`` so both live on one plane.

    Returns:
        Tensor (height * width, 2) of (row, col) coordinates, token centres.
    """
    offset = (stride - 1.0) / 2.0
    rows = torch.arange(height, device=device, dtype=torch.float32) * stride + offset
    cols = torch.arange(width, device=device, dtype=torch.float32) * stride + offset
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # (H, W, 2)
    return grid.reshape(-1, 2)


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 100.0) -> torch.Tensor:
    """Rotation angles for axial 2-D RoPE.

    Args:
        positions: (N, 2) row/column coordinates.
        head_dim: attention head size, divisible by 4.
        base: frequency base; small grids want a small base so low frequencies still turn.

    Returns:
        Tensor (N, head_dim // 2) of angles: the first half of the pairs rotate with the row, the
        second half with the column.
    """
    if head_dim % 4:
        raise ValueError(f"axial 2-D RoPE needs head_dim divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    freqs = base ** (-torch.arange(quarter, device=positions.device, dtype=torch.float32) / quarter)
    rows = positions[:, :1] * freqs  # (N, D/4)
    cols = positions[:, 1:] * freqs  # (N, D/4)
    return torch.cat([rows, cols], dim=-1)  # (N, D/2)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of ``x`` (B, heads, N, D) by ``angles`` (N, D/2)."""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, h, N, D/2)
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, h, N, D/2, 2)
    return out.flatten(-2)

"""Tiled reconstruction of images larger than a tokenizer's resolution.

An image (H, W >= R, the model's resolution R) is cut into R x R tiles that overlap by at least
``overlap`` pixels, spaced evenly along each axis and covering it exactly. Each tile is encoded and
decoded on its own; the decoded tiles are blended with separable raised-cosine windows: along an
axis, a tile's weight ramps as ``sin^2(pi/2 (j + 1/2) / o)`` over the ``o`` pixels it shares with its
neighbour, and the neighbour's weight falls as ``cos^2`` of the same argument, so the two sum to one
and seams fade out. The blend divides by the summed weights, so it is a weighted mean even where
three tiles meet (windows of other spacings would also be exact).

Noise: tile ``k`` (row-major in the tile grid of T tiles) of the image with seed ``s`` decodes with
seed ``s * T + k``: deterministic, distinct for every (image, tile), and with one tile (H = W = R) the
seed is ``s``, so the result equals ``Tokenizer.decode(Tokenizer.encode(x), seeds=[s])`` exactly.

Memory: tiles go through the codec in chunks of at most ``batch_size``, and each chunk is blended into
the output before the next starts, so the working memory is one chunk of tiles plus the output and
weight buffers, whatever the image size.
"""

import math
from collections.abc import Callable, Sequence

import torch

from fastdec.sampling.settings import integers

# tiles (N, C, R, R), image index (N,), tile index (N,) -> decoded tiles (N, C, R, R)
TileCodec = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the fewest ``tile``-wide windows covering ``[0, size)`` with neighbours sharing
    at least ``overlap`` pixels, spread evenly (first at 0, last at ``size - tile``)."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile) = [0, {tile}), got {overlap}")
    if size < tile:
        raise ValueError(f"image side {size} is smaller than the tile ({tile} px)")
    # the fewest tiles with count * tile - (count - 1) * overlap >= size
    count = math.ceil((size - overlap) / (tile - overlap))
    if count == 1:
        return [0]
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def axis_windows(starts: Sequence[int], tile: int) -> list[torch.Tensor]:
    """One (tile,) float64 weight profile per tile: raised-cosine ramps over the pixels shared with
    the previous and the next tile, 1 elsewhere."""
    j = torch.arange(tile, dtype=torch.float64) + 0.5
    windows = []
    for i, start in enumerate(starts):
        w = torch.ones(tile, dtype=torch.float64)
        if i > 0:  # rises over the overlap with the previous tile
            shared = starts[i - 1] + tile - start
            w = w * torch.where(j < shared, torch.sin(0.5 * math.pi * j / shared) ** 2, 1.0)
        if i + 1 < len(starts):  # falls over the overlap with the next tile
            shared = start + tile - starts[i + 1]
            back = tile - j  # distance from the tile's far edge, pixel centres
            w = w * torch.where(back < shared, torch.sin(0.5 * math.pi * back / shared) ** 2, 1.0)
        windows.append(w)
    return windows


def tiled_apply(
    images: torch.Tensor, codec: TileCodec, *, tile: int, overlap: int, batch_size: int = 16
) -> torch.Tensor:
    """Run ``codec`` on overlapping tiles of ``images`` (B, C, H, W) and blend the results.

    Args:
        images: H, W >= ``tile``.
        codec: ``codec(tiles, image_index, tile_index)`` -> decoded tiles of the same shape.
        tile: tile side in pixels.
        overlap: minimum overlap of neighbouring tiles in pixels, in [0, tile).
        batch_size: at most this many tiles per ``codec`` call.

    Returns:
        Blended images (B, C, H, W), float32, on the images' device.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    b, c, h, w = images.shape
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    row_w, col_w = axis_windows(rows, tile), axis_windows(cols, tile)
    # The windows are outer products, so their sum is too: row_sum (H,) x col_sum (W,).
    row_sum, col_sum = torch.zeros(h, dtype=torch.float64), torch.zeros(w, dtype=torch.float64)
    for y, wy in zip(rows, row_w, strict=True):
        row_sum[y : y + tile] += wy
    for x, wx in zip(cols, col_w, strict=True):
        col_sum[x : x + tile] += wx
    grid = [(i, k) for i in range(len(rows)) for k in range(len(cols))]  # row-major tile index
    out = torch.zeros(b, c, h, w, device=images.device)  # (B, C, H, W): sum of window * decoded tile
    pairs = [(n, t) for n in range(b) for t in range(len(grid))]  # (image, tile), image-major
    for first in range(0, len(pairs), batch_size):
        chunk = pairs[first : first + batch_size]
        crops = []
        for n, t in chunk:
            y, x = rows[grid[t][0]], cols[grid[t][1]]
            crops.append(images[n, :, y : y + tile, x : x + tile])
        tiles = torch.stack(crops)  # (n, C, R, R)
        image_index, tile_index = torch.tensor([n for n, _ in chunk]), torch.tensor([t for _, t in chunk])
        decoded = codec(tiles, image_index, tile_index).float()  # (n, C, R, R)
        if decoded.shape != tiles.shape:
            raise ValueError(f"the tile codec returned shape {tuple(decoded.shape)} for {tuple(tiles.shape)}")
        for (n, t), d in zip(chunk, decoded, strict=True):
            i, k = grid[t]
            window = (row_w[i][:, None] * col_w[k][None]).to(device=images.device, dtype=torch.float32)
            out[n, :, rows[i] : rows[i] + tile, cols[k] : cols[k] + tile] += window * d
    out /= row_sum.to(device=images.device, dtype=torch.float32)[:, None]
    out /= col_sum.to(device=images.device, dtype=torch.float32)
    return out


@torch.no_grad()
def tiled_reconstruct(
    tokenizer,
    images: torch.Tensor,
    *,
    overlap: int | None = None,
    batch_size: int = 16,
    seeds=None,
    **decode,
) -> torch.Tensor:
    """Encode and decode images larger than the tokenizer's resolution R tile by tile.

    Args:
        tokenizer: a :class:`fastdec.tokenizer.Tokenizer` (anything with ``resolution``, ``encode``
            and ``decode(z, seeds=..., **decode)``).
        images: (B, 3, H, W) in [-1, 1], H, W >= R.
        overlap: minimum overlap of neighbouring tiles in pixels; default R // 4.
        batch_size: tiles per encode/decode call (bounds the working memory).
        seeds: one int per image (default 0..B-1); tile k of T uses seed ``seeds[i] * T + k``.
        **decode: decode settings (``steps``, ``total_steps``, ``guidance``).

    Returns:
        Reconstructions (B, 3, H, W), float32, not clamped (as ``Tokenizer.decode``).
    """
    r = tokenizer.resolution
    overlap = r // 4 if overlap is None else overlap
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must have shape (B, 3, H, W), got {shape}")
    seeds = list(range(images.shape[0])) if seeds is None else list(integers("seeds", seeds))
    if len(seeds) != images.shape[0]:
        raise ValueError(f"got {len(seeds)} seeds for {images.shape[0]} images")
    num_tiles = len(tile_starts(images.shape[2], r, overlap)) * len(tile_starts(images.shape[3], r, overlap))

    def codec(tiles, image_index, tile_index):
        pairs = zip(image_index.tolist(), tile_index.tolist(), strict=True)
        tile_seeds = [seeds[i] * num_tiles + k for i, k in pairs]
        return tokenizer.decode(tokenizer.encode(tiles), seeds=tile_seeds, **decode)

    return tiled_apply(images, codec, tile=r, overlap=overlap, batch_size=batch_size)

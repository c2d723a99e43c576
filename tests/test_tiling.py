import math
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from fastdec.tiling import axis_windows, tile_starts, tiled_apply, tiled_reconstruct
from tests.conftest import images, tiny_tokenizer


def student(stages: int = 2):
    return tiny_tokenizer(f"model.num_stages={stages}", "sample.steps=1")


@pytest.mark.parametrize(
    "size,tile,overlap", [(16, 16, 4), (17, 16, 4), (45, 16, 5), (64, 16, 0), (100, 32, 8)]
)
def test_tiles_cover_the_axis_evenly_with_at_least_the_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] == size - tile
    shared = [a + tile - b for a, b in zip(starts[:-1], starts[1:], strict=True)]
    assert all(s >= overlap for s in shared)
    assert len(starts) == max(1, math.ceil((size - overlap) / (tile - overlap)))  # the fewest that fit
    if shared:
        assert max(shared) - min(shared) <= 1  # evenly spread


def test_tile_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="smaller than the tile"):
        tile_starts(15, 16, 4)
    with pytest.raises(ValueError, match=r"overlap must be in \[0, tile\)"):
        tile_starts(40, 16, 16)


def test_windows_sum_to_one_for_evenly_spaced_tiles():
    starts = tile_starts(16 + 3 * 12, 16, 4)  # stride 12, overlaps of exactly 4
    total = torch.zeros(52, dtype=torch.float64)
    for start, w in zip(starts, axis_windows(starts, 16), strict=True):
        total[start : start + 16] += w
        assert (w > 0).all()
    torch.testing.assert_close(total, torch.ones(52, dtype=torch.float64), rtol=0, atol=1e-12)


def test_identity_codec_returns_the_image():
    # Stated tolerance 1e-6: the blend divides window-weighted sums by the summed weights in float32.
    x = images(2, 45).narrow(3, 0, 37)  # (2, 3, 45, 37): unequal sides, uneven overlaps
    out = tiled_apply(x, lambda tiles, i, k: tiles, tile=16, overlap=5, batch_size=3)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


def test_one_tile_equals_the_untiled_decode_exactly():
    model = student()
    x = images(3, 16)
    with torch.no_grad():
        plain = model.decode(model.encode(x), seeds=[4, 5, 6])
    tiled = tiled_reconstruct(model, x, overlap=4, batch_size=3, seeds=[4, 5, 6])
    assert torch.equal(tiled, plain)  # same seeds, same batch, window 1: bit for bit
    chunked = tiled_reconstruct(model, x, overlap=4, batch_size=2, seeds=[4, 5, 6])
    torch.testing.assert_close(chunked, plain, rtol=0, atol=1e-5)  # other batches: float rounding only


def test_single_cover_pixels_equal_their_own_tile_decode():
    # 28 px with 16 px tiles and overlap 4: tiles at 0 and 12, rows/cols 0..11 belong to tile 0 alone.
    model = student()
    x = images(1, 28, seed=3)
    out = tiled_reconstruct(model, x, overlap=4, seeds=[2])
    with torch.no_grad():
        first = model.decode(model.encode(x[:, :, :16, :16]), seeds=[2 * 4 + 0])  # seed * T + k, T = 4 tiles
    torch.testing.assert_close(out[:, :, :12, :12], first[:, :, :12, :12], rtol=0, atol=1e-6)
    assert not torch.allclose(out[:, :, 12:16, 12:16], first[:, :, 12:16, 12:16], atol=1e-4)  # blended


def test_tiled_image_alone_equals_it_in_a_batch_and_chunking_does_not_matter():
    model = student()
    x = images(2, 24, seed=1)
    batch = tiled_reconstruct(model, x, overlap=4, batch_size=3, seeds=[7, 9])
    alone = tiled_reconstruct(model, x[1:], overlap=4, batch_size=100, seeds=[9])
    torch.testing.assert_close(batch[1:], alone, rtol=0, atol=1e-5)


def test_tiled_reconstruct_refuses_bad_input():
    model = student()
    with pytest.raises(ValueError, match="smaller than the tile"):
        tiled_reconstruct(model, images(1, 8))
    with pytest.raises(ValueError, match="got 1 seeds for 2 images"):
        tiled_reconstruct(model, images(2, 20), seeds=[0])
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\)"):
        tiled_reconstruct(model, torch.zeros(3, 20, 20))


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storages allocated inside the block and still alive (a tracemalloc for
    torch tensors): every op output with a new storage counts until that storage is freed."""

    def __init__(self):
        super().__init__()
        self.live, self.current, self.peak = set(), 0, 0

    def _free(self, key, nbytes):
        self.live.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
        }
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if key in self.live or key in inputs:  # a view or an in-place result: nothing allocated
                continue
            self.live.add(key)
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key, nbytes)
        return out


def peak_bytes(model, x, batch_size):
    with LiveBytes() as meter:
        out = tiled_reconstruct(model, x, overlap=4, batch_size=batch_size)
    del out
    return meter.peak


def test_peak_memory_does_not_grow_with_image_size_beyond_the_output_buffers():
    model = student()
    small, large = images(1, 64), images(1, 256)  # 25 and 441 tiles of 16 px
    peak_small, peak_large = peak_bytes(model, small, 8), peak_bytes(model, large, 8)
    buffer = (large[0].numel() - small[0].numel()) * 4  # the float32 output must scale with the image
    assert peak_large - peak_small <= buffer + 64 * 1024, (peak_small, peak_large, buffer)
    unsliced = peak_bytes(model, large, 441)  # the meter does see working memory that grows
    assert unsliced > 4 * peak_large, (unsliced, peak_large)


def test_reconstruct_cli_tiles_images_at_their_own_size(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from fastdec.cli.main import main

    student().save_pretrained(tmp_path / "model")
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(tmp_path / "in" / "wide.png")
    args = ["reconstruct", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in")]
    assert (
        main([*args, "--output", str(tmp_path / "out"), "--tile", "--overlap", "4", "--batch-size", "3"]) == 0
    )
    with Image.open(tmp_path / "out" / "wide.png") as out:
        assert out.size == (40, 24)
    Image.fromarray(rng.integers(0, 256, (12, 40, 3), dtype=np.uint8)).save(tmp_path / "in" / "thin.png")
    assert main([*args, "--output", str(tmp_path / "out2"), "--tile"]) == 0  # reported, the rest goes on
    assert "thin.png: 40x12, smaller than the 16 px tile" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["wide.png"]

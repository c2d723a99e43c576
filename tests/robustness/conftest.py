"""Shared material of the robustness battery: a saved tiny export, sample image files, a fake bomb."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import tiny_tokenizer


def noise_image(width: int = 12, height: int = 10, mode: str = "RGB", seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height``: a decompression bomb costs nothing to make."""
    data = bytearray(encoded(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature, length, type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over type + data
    return bytes(data)


@pytest.fixture(scope="package")
def export_dir(tmp_path_factory):
    """A two-stage tiny tokenizer (16 px, 4 latents x 4 dims) saved with ``save_pretrained``."""
    path = tmp_path_factory.mktemp("export") / "export"
    tiny_tokenizer("model.num_stages=2").save_pretrained(path, meta={"kind": "test"})
    return path

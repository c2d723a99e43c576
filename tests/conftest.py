import pytest
import torch

from fastdec.presets import resolve
from fastdec.tokenizer import Tokenizer


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """What tests cache (Inception features, PCA codecs) goes to a fresh folder, never to ~/.cache."""
    monkeypatch.setenv("FASTDEC_CACHE", str(tmp_path / "cache"))


def tiny_tokenizer(*overrides: str, seed: int = 0) -> Tokenizer:
    """A tiny tokenizer with every zero-initialised weight nudged, so all paths carry signal."""
    torch.manual_seed(seed)
    model = Tokenizer(resolve("tiny", list(overrides)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


def images(n: int = 4, resolution: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, resolution, resolution, generator=g) * 2 - 1

import pytest


@pytest.fixture(autouse=True)
def _fid_cache_in_tmp(tmp_path, monkeypatch):
    """Cached Inception features of these tests go to a fresh folder, never to ~/.cache."""
    monkeypatch.setenv("FASTDEC_CACHE", str(tmp_path / "cache"))

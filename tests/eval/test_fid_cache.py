"""The disk cache of the real images' Inception features (fastdec.eval.fid_cache.real_features)."""

import multiprocessing
import warnings

import pytest
import torch

from fastdec.cache import cache_dir
from fastdec.eval import fid_cache, metrics
from fastdec.eval.bench import Setting, compare
from fastdec.eval.evaluate import evaluate
from fastdec.eval.fid_cache import _save_entry, feature_identity, real_features, real_features_key
from fastdec.eval.metrics import FIDAccumulator
from fastdec.models.inception import InceptionFeatures
from tests.conftest import images, tiny_tokenizer


class CountingFeatures:
    """A cheap stand-in for Inception: per-channel means and squares, and a count of images seen."""

    cache_id = "counting-v1"

    def __init__(self):
        self.images_seen = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.images_seen += x.shape[0]
        return torch.cat([x.mean((2, 3)), x.square().mean((2, 3)), x.flatten(1)[:, :10]], 1)  # (B, 16)


def _entries():
    return sorted(cache_dir("fid").glob("*.safetensors"))


def test_second_computation_is_a_cache_hit(tmp_path):
    x, feats = images(6, 8), CountingFeatures()
    first = real_features(x, feats, batch_size=4)
    assert feats.images_seen == 6 and first.shape == (6, 16) and first.dtype == torch.float32
    (entry,) = _entries()
    assert entry.parent == tmp_path / "cache" / "fid"  # $FASTDEC_CACHE, set by conftest
    second = real_features(x.clone(), feats, batch_size=4)
    assert feats.images_seen == 6  # not called again for the real images
    assert torch.equal(first, second)

    acc = FIDAccumulator(feats)
    acc.update_real_cached(x)
    assert feats.images_seen == 6 and acc.n_real == 6
    acc.update_fake(images(6, 8, seed=1))
    plain = FIDAccumulator(CountingFeatures())
    plain.update_real(x)
    plain.update_fake(images(6, 8, seed=1))
    assert acc.compute() == plain.compute()


def test_one_changed_pixel_or_resolution_or_extractor_misses():
    x, feats = images(4, 8), CountingFeatures()
    real_features(x, feats)
    y = x.clone()
    y[2, 1, 3, 5] += 1 / 127.5  # one 8-bit level of one pixel
    real_features(y, feats)
    assert feats.images_seen == 8
    z = torch.nn.functional.interpolate(x, size=(16, 16), mode="nearest")  # same content, 16 px
    real_features(z, feats)
    assert feats.images_seen == 12
    assert len({real_features_key(t, "counting-v1") for t in (x, y, z)}) == 3
    assert real_features_key(x, "counting-v1") != real_features_key(x, "counting-v2")
    real_features(x, feats, feature_id="counting-v2")
    assert feats.images_seen == 16 and len(_entries()) == 4
    real_features(x, feats)
    assert feats.images_seen == 16  # the first entry is still there


def test_no_cache_or_no_identity_always_computes():
    x, feats = images(3, 8), CountingFeatures()
    real_features(x, feats, cache=False)
    real_features(x, feats, cache=False)
    assert feats.images_seen == 6 and _entries() == []
    assert feature_identity(lambda t: t.flatten(1)) is None
    calls = []
    anonymous = lambda t: calls.append(len(t)) or t.flatten(1)  # noqa: E731
    real_features(x, anonymous)
    real_features(x, anonymous)
    assert calls == [3, 3] and _entries() == []


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip_last_byte(data: bytes) -> bytes:  # inside the feature data: only the checksum sees it
    return data[:-1] + bytes([data[-1] ^ 0x40])


@pytest.mark.parametrize("damage", [_truncate, _flip_last_byte, lambda data: b"", lambda data: b"\x00" * 64])
def test_damaged_entry_is_recomputed_with_a_warning(damage):
    x, feats = images(4, 8), CountingFeatures()
    good = real_features(x, feats)
    (entry,) = _entries()
    entry.write_bytes(damage(entry.read_bytes()))
    with pytest.warns(UserWarning, match="damaged FID cache entry"):
        again = real_features(x, feats)
    assert feats.images_seen == 8 and torch.equal(again, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(real_features(x, feats), good)  # rewritten: a clean hit
    assert feats.images_seen == 8


def test_entry_of_another_key_is_rejected():
    x, y, feats = images(4, 8), images(4, 8, seed=1), CountingFeatures()
    real_features(x, feats)
    entry_x = cache_dir("fid") / f"{real_features_key(x, feats.cache_id)}.safetensors"
    entry_y = cache_dir("fid") / f"{real_features_key(y, feats.cache_id)}.safetensors"
    entry_y.write_bytes(entry_x.read_bytes())  # a valid file of the same shape, for other images
    with pytest.warns(UserWarning, match="another entry"):
        out = real_features(y, feats)
    assert feats.images_seen == 8 and torch.equal(out, feats(y))


def test_unwritable_cache_only_warns(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("FASTDEC_CACHE", str(blocker))
    feats = CountingFeatures()
    with pytest.warns(UserWarning, match="FID cache is unavailable"):
        out = real_features(images(2, 8), feats)
    assert out.shape == (2, 16)


def _concurrent_writer(barrier, rounds: int) -> None:
    warnings.simplefilter("error")  # a damaged entry seen by a reader fails this process
    x, feats = images(16, 8), CountingFeatures()
    key = real_features_key(x, feats.cache_id)
    path = cache_dir("fid") / f"{key}.safetensors"
    expected = feats(x)
    barrier.wait(timeout=120)
    for _ in range(rounds):
        _save_entry(path, key, expected, feats.cache_id)
        assert torch.equal(real_features(x, feats), expected)


def test_concurrent_writers_leave_a_valid_entry():
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_concurrent_writer, args=(barrier, 40)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    x, feats = images(16, 8), CountingFeatures()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(real_features(x, feats), CountingFeatures()(x))
    assert feats.images_seen == 0
    (entry,) = _entries()
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".tmp")]


class _FakeInception(CountingFeatures):
    """Replaces InceptionFeatures inside evaluate() and compare(); counts every image it sees."""

    seen = 0

    def __init__(self):
        super().__init__()

    def __call__(self, x):
        _FakeInception.seen += x.shape[0]
        return super().__call__(x)


def test_evaluate_reuses_and_compare_shares_the_real_features(monkeypatch):
    for module in (metrics, fid_cache):  # the accumulator's features and the cache's
        monkeypatch.setattr(module, "InceptionFeatures", _FakeInception)
    monkeypatch.setattr(_FakeInception, "seen", 0)
    model, x = tiny_tokenizer(), images(4)
    kw = dict(batch_size=4, timing_repeats=1, steps=1)
    first, _ = evaluate(model, x, **kw)
    assert _FakeInception.seen == 8  # 4 real + 4 reconstructions
    second, _ = evaluate(model, x, **kw)
    assert _FakeInception.seen == 12  # reconstructions only
    assert second["rfid"] == first["rfid"] and second["rfid_n_images"] == 4

    _FakeInception.seen = 0
    settings = [Setting("m", {"steps": 1}, "a"), Setting("m", {"steps": 2}, "b")]
    rows, _ = compare(settings, {"m": model}, x, batch_size=4, repeats=1, fid_cache=False)
    assert _FakeInception.seen == 4 + 2 * 4  # the real images once, without the disk cache
    assert rows[0]["rfid"] == first["rfid"] and _entries() != []


def test_real_inception_features_are_cached(monkeypatch):
    x = images(4, 16)
    first = real_features(x)
    assert first.shape == (4, 2048)
    assert torch.equal(first, InceptionFeatures()(x).float())

    def boom(self, images):
        raise AssertionError("Inception ran on the cached real images")

    monkeypatch.setattr(InceptionFeatures, "forward", boom)
    assert torch.equal(real_features(x), first)
    assert real_features_key(x, feature_identity(InceptionFeatures())) in {p.stem for p in _entries()}
    assert feature_identity(InceptionFeatures(quantize=False)) != feature_identity(InceptionFeatures())

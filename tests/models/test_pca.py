"""The global PCA reference codec (``pca-K``): exactness, the closed-form error, exports, the cache."""

import math

import pytest
import torch

from fastdec.hub import load_model
from fastdec.models import pca
from fastdec.models.pca import PCACodec, fit_crops, is_pca_export

R, N = 8, 256  # 192 pixels; 256 crops give a full-rank covariance


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTDEC_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def crops():
    return fit_crops(R, N)


def covariance_eigenvalues(images: torch.Tensor) -> torch.Tensor:
    x = images.double().flatten(1)
    x = x - x.mean(0)
    return torch.linalg.eigvalsh(x.T @ x / x.shape[0]).flip(0)  # descending


def test_all_components_reconstruct_exactly(crops):
    codec = PCACodec.fit(crops, 3 * R * R)
    held_out = torch.rand(5, 3, R, R) * 2 - 1
    for x in (crops, held_out):
        z = codec.encode(x)
        assert z.shape == (x.shape[0], 3 * R * R)
        assert (codec.decode(z) - x).abs().max() < 1e-4


@pytest.mark.parametrize("k", [1, 10, 100])
def test_the_error_is_the_sum_of_the_discarded_eigenvalues(crops, k):
    codec = PCACodec.fit(crops, k)
    evals = covariance_eigenvalues(crops)
    z = codec.encode(crops)
    assert torch.allclose(z.double().var(0, correction=0), torch.ones(k, dtype=torch.float64), atol=1e-3)
    error = (codec.linear_decode(z).double() - crops.double()).pow(2).flatten(1).sum(1).mean()
    assert math.isclose(error, evals[k:].sum(), rel_tol=1e-3)
    clamped = (codec.decode(z).double() - crops.double()).pow(2).flatten(1).sum(1).mean()
    assert clamped <= error + 1e-9  # clamping to [-1, 1] only moves pixels towards the originals
    assert math.isclose(codec.meta["explained_variance"], evals[:k].sum() / evals.sum(), rel_tol=1e-6)


def test_fewer_crops_than_pixels_fit_the_same_codec(crops):
    """With fewer crops than pixel values the fit diagonalises the crops' Gram matrix instead of the
    covariance: the same components (up to sign), variances and reconstructions."""
    few = crops[:100]  # 100 crops, 192 pixel values
    gram = PCACodec.fit(few, 40)
    evals = covariance_eigenvalues(few)
    z = gram.encode(few)
    assert torch.allclose(z.double().var(0, correction=0), torch.ones(40, dtype=torch.float64), atol=1e-3)
    error = (gram.linear_decode(z).double() - few.double()).pow(2).flatten(1).sum(1).mean()
    assert math.isclose(error, evals[40:].sum(), rel_tol=1e-3)
    assert math.isclose(gram.meta["explained_variance"], evals[:40].sum() / evals.sum(), rel_tol=1e-6)
    assert math.isclose(gram.meta["residual_var_per_pixel"], evals[40:].sum() / (3 * R * R), rel_tol=1e-4)


def test_decode_ignores_settings_and_costs_no_network(crops):
    codec = PCACodec.fit(crops, 12)
    z = codec.encode(crops[:4])
    plain = codec.decode(z)
    assert torch.equal(codec.decode(z, steps=(4, 2), guidance=2.0, seeds=range(4), temperature=0.5), plain)
    assert plain.min() >= -1 and plain.max() <= 1 and codec.nfe(steps=50) == 0
    assert codec.resolution == R


def test_save_and_load_round_trip(crops, tmp_path):
    codec = PCACodec.fit(crops, 12, {"fit_images": N})
    codec.save_pretrained(tmp_path / "pca12")
    assert is_pca_export(tmp_path / "pca12")
    for loaded in (PCACodec.from_pretrained(tmp_path / "pca12"), load_model(str(tmp_path / "pca12"))):
        assert isinstance(loaded, PCACodec) and (loaded.resolution, loaded.components) == (R, 12)
        assert loaded.info["fit_images"] == N and loaded.meta == codec.meta
        z = codec.encode(crops[:8])
        assert torch.equal(loaded.encode(crops[:8]), z)
        assert torch.equal(loaded.decode(z), codec.decode(z))


def test_a_tokenizer_export_is_not_taken_for_a_pca_codec(tmp_path):
    (tmp_path / "config.json").write_text('{"config": {"model": {}}}')
    assert not is_pca_export(tmp_path) and not is_pca_export(tmp_path / "missing")


def test_load_model_fits_once_then_reads_the_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(pca, "DEFAULT_FIT_IMAGES", 64)
    first = load_model("pca-8", resolution=R)
    entries = list((tmp_path / "cache" / "pca").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("pca8-8px-n64-")

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted again instead of reading the cache")

    monkeypatch.setattr(PCACodec, "fit", no_fit)
    second = load_model("pca-8", resolution=R)
    assert isinstance(second, PCACodec) and second.info == first.info
    x = fit_crops(R, 4)
    assert torch.equal(second.decode(second.encode(x)), first.decode(first.encode(x)))
    with pytest.raises(AssertionError, match="fitted again"):  # another K is another entry
        load_model("pca-9", resolution=R)


def test_a_corrupt_cache_entry_is_fitted_again(monkeypatch, tmp_path):
    monkeypatch.setattr(pca, "DEFAULT_FIT_IMAGES", 32)
    load_model("pca-4", resolution=R)
    (entry,) = (tmp_path / "cache" / "pca").iterdir()
    (entry / "model.safetensors").write_bytes(b"torn")
    with pytest.warns(UserWarning, match="unusable cached PCA codec"):
        codec = load_model("pca-4", resolution=R)
    assert codec.components == 4 and PCACodec.from_pretrained(entry).components == 4


@pytest.mark.parametrize("name, value", [("pca-0", "got 0"), ("pca-x", "got 'x'"), ("pca-99999", "got 99999"),
                                         ("pca--3", "got '-3'"), ("pca-1.5", "got '1.5'")])  # fmt: skip
def test_bad_names_are_named(name, value):
    with pytest.raises(ValueError, match=rf"\[1, 192\].*{value}"):
        load_model(name, resolution=R)


BAD_IMAGES = {
    "uint8": (torch.zeros(2, 3, R, R, dtype=torch.uint8), "from_uint8"),
    "numpy": (torch.zeros(2, 3, R, R).numpy(), "ndarray"),
    "grayscale": (torch.zeros(2, 1, R, R), r"\(B, 3, 8, 8\)"),
    "channels last": (torch.zeros(2, R, R, 3), r"\(B, 3, 8, 8\)"),
    "another resolution": (torch.zeros(2, 3, 16, 16), r"got \(2, 3, 16, 16\)"),
    "NaN": (torch.full((2, 3, R, R), math.nan), "NaN or inf"),
    "pixels in [0, 255] as floats": (torch.full((2, 3, R, R), 200.0), r"\[-1, 1\].*pixels in \[0, 255\]"),
    "empty batch": (torch.zeros(0, 3, R, R), "at least one image"),
    "other device": (torch.zeros(2, 3, R, R, device="meta"), "on meta"),
}
BAD_COEFFICIENTS = {
    "another K": (torch.zeros(2, 6), r"\(B, 12\) for this codec, got \(2, 6\)"),
    "a thumbnail": (torch.zeros(2, 3, 4, 4), r"got \(2, 3, 4, 4\): latents of another codec"),
    "integer": (torch.zeros(2, 12, dtype=torch.long), "float tensor, got torch.int64"),
    "list": (torch.zeros(2, 12).tolist(), "float tensor, got list"),
    "NaN": (torch.full((2, 12), math.nan), "NaN or inf"),
    "empty batch": (torch.zeros(0, 12), r"got \(0, 12\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_refused(crops, case):
    bad, message = BAD_IMAGES[case]
    with pytest.raises(ValueError, match=message):
        PCACodec.fit(crops, 12).encode(bad)


@pytest.mark.parametrize("case", sorted(BAD_COEFFICIENTS))
def test_bad_coefficients_are_refused(crops, case):
    bad, message = BAD_COEFFICIENTS[case]
    with pytest.raises(ValueError, match=message):
        PCACodec.fit(crops, 12).decode(bad)

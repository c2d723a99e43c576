"""Bad inputs at the Python API: each one is a ValueError (or FileNotFoundError) naming the problem,
or a documented conversion."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fastdec.config import Config
from fastdec.data import build_dataset, load_eval_images
from fastdec.data.folder import ImageFolder, from_uint8, to_uint8
from fastdec.hub import load_model
from fastdec.models.baselines import ThumbnailCodec
from fastdec.presets import PRESETS, resolve
from fastdec.tokenizer import Tokenizer
from tests.conftest import images, tiny_tokenizer
from tests.robustness.conftest import encoded, noise_image, png_claiming_size


@pytest.fixture(scope="module")
def model():
    return tiny_tokenizer("model.num_stages=2")  # 16 px, stages at 8 and 16 px, patch 4, z (B, 4, 4)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def ramp(low: float, high: float) -> torch.Tensor:
    """Two 16 px images whose values run from ``low`` to ``high``."""
    return torch.linspace(low, high, 2 * 3 * 16 * 16).reshape(2, 3, 16, 16)


x = images(2)
BAD_IMAGES = {
    "uint8": (x.to(torch.uint8), "from_uint8"),
    "int64": (x.long(), "float tensor"),
    "numpy": (x.numpy(), "ndarray"),
    "float64": (x.double(), "torch.float64"),
    "bfloat16 without autocast": (x.bfloat16(), "torch.bfloat16"),
    "grayscale": (x[:, :1], r"\(B, 3, 16, 16\)"),
    "RGBA or CMYK (4 channels)": (torch.cat([x, x[:, :1]], 1), r"\(B, 3, 16, 16\)"),
    "channels last": (x.permute(0, 2, 3, 1), r"\(B, 3, 16, 16\)"),
    "unbatched": (x[0], r"\(B, 3, 16, 16\)"),
    "not a multiple of the patch": (x[..., :15, :15], r"got \(2, 3, 15, 15\)"),
    "coarsest-stage size": (x[..., :8, :8], r"got \(2, 3, 8, 8\)"),
    "smaller than the coarsest stage": (x[..., :2, :2], r"got \(2, 3, 2, 2\)"),
    "larger than the resolution": (torch.zeros(2, 3, 32, 32), r"got \(2, 3, 32, 32\)"),
    "NaN": (x.clone().index_fill_(2, torch.tensor([3]), math.nan), "NaN or inf"),
    "inf": (x.clone().index_fill_(3, torch.tensor([0]), math.inf), "NaN or inf"),
    "-inf": (torch.full_like(x, -math.inf), "NaN or inf"),
    "other device": (x.to("meta"), "on meta"),
    "pixels in [0, 255] as floats": ((x + 1) * 127.5, r"\[-1, 1\], got values in \[0\.\d+, 25\d.*\(pixels"),
    "unclamped decoder output": (ramp(-1.2, 1.2), r"\[-1, 1\], got values in \[-1.2, 1.2\] \(clamp them\)"),
    "below -1 only": (ramp(-1.5, 0.5), r"\[-1, 1\], got values in \[-1.5, 0.5\] \(clamp them\)"),
    "empty batch": (x[:0], "at least one image"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_named(model, case):
    bad, message = BAD_IMAGES[case]
    with pytest.raises(ValueError, match=message):
        model.encode(bad)


def test_documented_value_ranges(model):
    """[-1, 1] with rounding slack is accepted; [0, 1] images cannot be told from dark ones and encode
    as they are (the documented conversion is 2 * x - 1, done by the caller)."""
    edge = torch.full_like(x, 1.005)
    edge[:, :, 0] = -1.005
    assert model.encode(edge).shape == (2, 4, 4)
    zero_one = (x + 1) / 2
    assert torch.equal(model.encode(zero_one), model.encode(zero_one.clone()))
    assert not torch.allclose(model.encode(zero_one), model.encode(x))


def test_reduced_precision_is_accepted_under_autocast(model):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = model.encode(x.bfloat16())
        assert model.decode(z, steps=1).shape == (2, 3, 16, 16)


z = torch.randn(2, 4, 4)
BAD_LATENTS = {
    "more latents": (torch.randn(2, 5, 4), "num_latents=4"),
    "wider latents": (torch.randn(2, 4, 8), "latent_dim=4"),
    "unbatched": (torch.randn(4, 4), r"\(B, 4, 4\)"),
    "images instead of latents": (x, r"got \(2, 3, 16, 16\)"),
    "integer": (z.long(), "float tensor"),
    "bool": (z > 0, "float tensor"),
    "float64": (z.double(), "torch.float64"),
    "NaN": (z.clone().index_fill_(1, torch.tensor([2]), math.nan), "NaN or inf"),
    "inf": (torch.full_like(z, math.inf), "NaN or inf"),
    "list": (z.tolist(), "list"),
    "empty batch": (z[:0], r"at least one latent, got \(0, 4, 4\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_LATENTS))
def test_bad_latents_are_named(model, case):
    bad, message = BAD_LATENTS[case]
    with pytest.raises(ValueError, match=message):
        model.decode(bad, steps=1)


def test_latents_of_another_tokenizer_are_refused(model):
    other = tiny_tokenizer("model.latent_dim=8")
    with pytest.raises(ValueError, match="another tokenizer"):
        model.decode(other.encode(x), steps=1)


BAD_THUMBNAIL_IMAGES = ["uint8", "numpy", "grayscale", "RGBA or CMYK (4 channels)", "channels last",
                        "not a multiple of the patch", "larger than the resolution", "NaN", "inf",
                        "pixels in [0, 255] as floats", "empty batch"]  # fmt: skip
BAD_THUMBNAILS = {
    "another side": (torch.zeros(2, 3, 6, 6), r"\(B, 3, 4, 4\) for this codec, got \(2, 3, 6, 6\)"),
    "a tokenizer's latents": (z, r"got \(2, 4, 4\): latents of another codec"),
    "integer": (torch.zeros(2, 3, 4, 4, dtype=torch.long), "float tensor, got torch.int64"),
    "list": (torch.zeros(2, 3, 4, 4).tolist(), "float tensor, got list"),
    "NaN": (torch.full((2, 3, 4, 4), math.nan), "NaN or inf"),
    "empty batch": (torch.zeros(0, 3, 4, 4), r"got \(0, 3, 4, 4\)"),
}


@pytest.mark.parametrize("case", BAD_THUMBNAIL_IMAGES)
def test_the_thumbnail_baseline_checks_images_like_a_tokenizer(case):
    bad, message = BAD_IMAGES[case]
    with pytest.raises(ValueError, match=message):
        ThumbnailCodec(16, 4).encode(bad)


@pytest.mark.parametrize("case", sorted(BAD_THUMBNAILS))
def test_the_thumbnail_baseline_checks_its_latents(case):
    bad, message = BAD_THUMBNAILS[case]
    with pytest.raises(ValueError, match=message):
        ThumbnailCodec(16, 4).decode(bad)


def test_thumbnail_baseline_settings_and_round_trip():
    cases = [(16, 0, "side must be in"), (16, 17, "side must be in"), (0, 1, "resolution must be"),
             (16.0, 4, "resolution must be an integer"), (16, True, "side must be an integer")]  # fmt: skip
    for resolution, side, message in cases:
        with pytest.raises(ValueError, match=message):
            ThumbnailCodec(resolution, side)
    codec = ThumbnailCodec(16, 16)
    assert torch.allclose(codec.decode(codec.encode(x)), x, atol=1e-6)  # a full-size thumbnail is lossless


BAD_SETTINGS = {
    "zero steps": ({"steps": 0}, "at least one step"),
    "negative steps": ({"steps": -3}, "at least one step"),
    "a zero stage": ({"steps": (2, 0)}, "at least one step"),
    "steps for 3 stages": ({"steps": (1, 1, 1)}, "3 step counts for 2 stages"),
    "fractional steps": ({"steps": 2.5}, "steps must be an integer"),
    "steps as text": ({"steps": "4"}, "steps must be an integer"),
    "zero total steps": ({"total_steps": 0}, "total_steps must be >= 1, got 0"),
    "negative total steps": ({"total_steps": -4}, "total_steps must be >= 1, got -4"),
    "total steps below the stages": ({"total_steps": 1}, "fewer than the 2 stages"),
    "steps and total steps": ({"steps": 2, "total_steps": 4}, "not both"),
    "fractional total steps": ({"total_steps": 4.0}, "total_steps must be an integer"),
    "NaN guidance": ({"guidance": math.nan}, "guidance must be finite"),
    "inf guidance": ({"guidance": math.inf}, "guidance must be finite"),
    "too few seeds": ({"seeds": [0]}, "1 seeds for 2 latents"),
    "fractional seeds": ({"seeds": [0.5, 1.5]}, "seeds must be an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_decode_settings_are_named(model, case):
    kwargs, message = BAD_SETTINGS[case]
    with pytest.raises(ValueError, match=message):
        model.decode(z, **kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.num_stages=4"], r"coarsest stage \(2 px\)"),  # 16 px / 2**3 < dec_patch 4
        (["model.resolution=18"], "not a multiple of dec_patch 4"),
        (["model.num_stages=6"], "multiple of 2"),
        (["model.enc_patch=3"], "power of two"),
        (["model.dec_heads=3"], "not divisible by heads"),
        (["model.latent_kind=pixels"], "model.latent_kind must be one of 'tokens', 'grid', got 'pixels'"),
    ],
)
def test_configs_that_cannot_be_built_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        Tokenizer(resolve("tiny", overrides))


BAD_CONFIGS = {
    "a number as text": ({"model": {"num_latents": "16"}}, "model.num_latents must be of type int, got '16'"),
    "text for a float": ({"train": {"lr": "x"}}, "train.lr must be of type float, got 'x'"),
    "a float for an int": ({"train": {"steps": 2.5}}, "train.steps must be of type int, got 2.5"),
    "a number for a bool": ({"model": {"spatial_cond": 1}}, "model.spatial_cond must be of type bool, got 1"),
    "a bool for an int": ({"model": {"enc_depth": True}}, "model.enc_depth must be of type int, got True"),
    "null for an int": ({"model": {"resolution": None}}, "model.resolution must be of type int, got None"),
    "a list for a string": ({"model": {"latent_kind": ["grid"]}}, r"latent_kind must be one of .*\['grid'\]"),
    "text in the steps list": ({"sample": {"steps": [4, "2"]}}, r"sample.steps must be of type tuple\[int"),
    "a negative width": ({"model": {"enc_width": -8}}, "model.enc_width must be >= 1, got -8"),
    "zero heads": ({"model": {"dec_heads": 0}}, "model.dec_heads must be >= 1, got 0"),
    "zero training steps": ({"train": {"steps": 0}}, "train.steps must be >= 1, got 0"),
    "a negative batch": ({"train": {"batch_size": -4}}, "train.batch_size must be >= 1, got -4"),
    "a negative learning rate": ({"train": {"lr": -1e-3}}, "train.lr must be > 0, got -0.001"),
    "a NaN learning rate": ({"train": {"lr": math.nan}}, "train.lr must be finite, got nan"),
    "an infinite gamma": ({"model": {"gamma": math.inf}}, "model.gamma must be finite, got inf"),
    "an EMA decay above 1": ({"train": {"ema_decay": 1.5}}, "train.ema_decay must be <= 1, got 1.5"),
    "CFG dropout of 1": ({"model": {"cfg_dropout": 1}}, "model.cfg_dropout must be < 1, got 1.0"),
    "keep no states": ({"train": {"keep_states": 0}}, "train.keep_states must be >= 1, got 0"),
    "a zero sampling stage": ({"sample": {"steps": [2, 0]}}, r"sample.steps must be >= 1, got \(2, 0\)"),
    "no sampling steps": ({"sample": {"steps": []}}, "sample.steps must not be empty"),
    "an unknown key": ({"model": {"depth": 3}}, r"unknown model config keys: \['depth'\]"),
    "an unknown section": ({"optim": {}}, r"unknown config sections: \['optim'\]"),
    "a section that is a list": ({"train": [1]}, "config section 'train' must be a JSON object"),
    "not an object": ([], "a config must be a JSON object, got list"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_values_are_named_with_key_and_value(case):
    data, message = BAD_CONFIGS[case]
    with pytest.raises(ValueError, match=message):
        Config.from_dict(data)


def test_every_valid_config_still_loads():
    """Presets, their JSON round trip, partial configs of older versions (missing keys take defaults),
    integers for floats and lists for tuples."""
    for name, config in PRESETS.items():
        assert Config.from_dict(json.loads(config.to_json())) == config, name
    assert Config.from_dict({}) == Config()
    old = json.loads(PRESETS["tiny"].to_json())
    del old["model"]["gamma"], old["train"]["max_nonfinite"], old["distill"]
    assert Config.from_dict(old) == PRESETS["tiny"]
    loose = {"model": {"num_stages": 2}, "train": {"lr": 1, "sigmoid_bias": -3}, "sample": {"steps": [4, 2]}}
    loose = Config.from_dict(loose)
    assert loose.train.lr == 1.0 and isinstance(loose.train.lr, float) and loose.train.sigmoid_bias == -3.0
    assert loose.sample.steps == (4, 2)


def test_out_of_range_overrides_are_named():
    for override, message in [("train.lr=-1", "train.lr must be > 0, got -1.0"),
                              ("train.beta2=1", "train.beta2 must be < 1, got 1.0"),
                              ("sample.steps=2/0", r"sample.steps must be >= 1, got \(2, 0\)"),
                              ("train.grad_clip=nan", "train.grad_clip must be finite")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            resolve("tiny", [override])


def test_unknown_names_are_named():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        resolve("huge")
    with pytest.raises(ValueError, match="unknown config key 'model.depth'"):
        resolve("tiny", ["model.depth=3"])
    for name in ("no-such-model", "", "thumbnail-x"):
        with pytest.raises(FileNotFoundError, match="no model directory"):
            load_model(name)
    with pytest.raises(ValueError, match="thumbnail side"):
        load_model("thumbnail-0")


def test_images_from_arrays_are_checked():
    with pytest.raises(ValueError, match="uint8"):
        from_uint8(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(4, 4, 4\)"):
        from_uint8(np.zeros((4, 4, 4), np.uint8))  # RGBA or CMYK pixels: convert with PIL first
    with pytest.raises(ValueError, match="non-finite"):
        to_uint8(torch.full((3, 4, 4), math.nan))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Every kind of unusable file under an image extension, and files that are not candidates."""
    root = tmp_path_factory.mktemp("bad_files")
    (root / "random.png").write_bytes(np.random.default_rng(0).bytes(300))
    (root / "text.jpg").write_text("plain text")
    (root / "empty.webp").write_bytes(b"")
    (root / "truncated.png").write_bytes(encoded(noise_image(), "PNG")[:60])
    (root / "bomb.png").write_bytes(png_claiming_size(9000, 9000))  # 81 MP: over fastdec's 64 MP
    (root / "huge-bomb.png").write_bytes(png_claiming_size(20000, 20000))  # 400 MP: PIL refuses it
    (root / "folder.png").mkdir()  # a directory is not a file: reported, not read
    (root / "notes.txt").write_text("not a candidate")
    (root / "weights.safetensors").write_bytes(b"\0" * 16)
    return root


def test_folder_reports_every_unusable_file_and_refuses_to_be_empty(bad_files, tmp_path):
    names = {"random.png", "text.jpg", "empty.webp", "truncated.png", "bomb.png", "huge-bomb.png"}
    with pytest.raises(ValueError, match="no readable image .* 6 candidate file.*7 bad"):
        quiet(ImageFolder, bad_files, 16)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "good.png")
    for name in names:
        (tmp_path / name).write_bytes((bad_files / name).read_bytes())
    with pytest.warns(UserWarning, match="6 unreadable"):
        folder = ImageFolder(tmp_path, 16)
    reasons = {p.name: reason for p, reason in folder.bad_files}
    assert set(reasons) == names and folder.names == ["good.png"]
    assert "possible decompression bomb" in reasons["bomb.png"]
    assert "DecompressionBombError" in reasons["huge-bomb.png"]
    _, _, report = quiet(load_eval_images, str(tmp_path), 16)
    assert report["n_bad"] == 6 and report["n_used"] == 1


def test_missing_empty_and_non_folders_are_named(tmp_path, bad_files):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="0 candidate"):
        ImageFolder(tmp_path / "empty", 16)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing", 16)
    with pytest.raises(NotADirectoryError, match="notes.txt"):
        ImageFolder(bad_files / "notes.txt", 16)
    for source in ("", str(tmp_path / "missing")):
        with pytest.raises(FileNotFoundError, match="neither an embedded set"):
            build_dataset(source, 16)
    for resolution in (0, -16, 16.0, True):
        with pytest.raises(ValueError, match="resolution must be a positive int"):
            ImageFolder(tmp_path, resolution)


def test_other_modes_and_sizes_are_converted_as_documented(tmp_path):
    """Grayscale, 16-bit, palette, CMYK -> RGB; alpha composited on white; small images upsampled."""
    noise_image(mode="L").save(tmp_path / "gray.png")
    Image.fromarray(np.full((10, 12), 65535, np.uint16)).save(tmp_path / "gray16.png")
    noise_image(mode="P").save(tmp_path / "palette.png")
    noise_image(mode="CMYK").save(tmp_path / "cmyk.jpg")
    Image.new("RGBA", (12, 10), (0, 0, 0, 0)).save(tmp_path / "transparent.png")
    folder = ImageFolder(tmp_path, 16)
    assert len(folder) == 5 and folder.n_upsampled == 5 and not folder.bad_files
    for i, name in enumerate(folder.names):
        item = folder[i]
        assert item.shape == (3, 16, 16) and item.dtype == torch.float32, name
        assert item.min() >= -1 and item.max() <= 1
    assert (folder[folder.names.index("transparent.png")] == 1).all()  # white
    assert (folder[folder.names.index("gray16.png")] == 1).all()

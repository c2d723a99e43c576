import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fastdec.data import build_dataset, load_eval_images
from fastdec.data.folder import ImageFolder, from_uint8, save_images, to_uint8


def _noise(size=(40, 30), seed=0) -> np.ndarray:
    width, height = size
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _quiet_folder(*args, **kwargs) -> ImageFolder:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImageFolder(*args, **kwargs)


@pytest.fixture
def mixed_folder(tmp_path_factory):
    """One file per supported kind, nested, with mixed-case extensions."""
    tmp_path = tmp_path_factory.mktemp("mixed")
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    Image.fromarray(_noise(seed=1)).save(tmp_path / "rgb.png")
    Image.fromarray(_noise(seed=2)).save(tmp_path / "photo.jpg", quality=90)
    Image.fromarray(_noise(seed=3)).save(tmp_path / "lossless.webp", lossless=True)
    Image.fromarray(_noise(seed=4)[..., 0]).save(tmp_path / "gray.png")
    rgba = np.concatenate([_noise(seed=5), np.zeros((30, 40, 1), np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "sub" / "transparent.png")  # fully transparent
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(tmp_path / "sub" / "cmyk.JPG")
    Image.fromarray(_noise(seed=6)).convert("P").save(tmp_path / "sub" / "deep" / "pal.PNG")
    Image.fromarray(_noise(seed=7)).save(tmp_path / "sub" / "deep" / "x.bmp")
    Image.fromarray(np.full((30, 40), 65535, np.uint16)).save(tmp_path / "deep16.png")
    (tmp_path / "notes.txt").write_text("not an image and not a candidate")
    return tmp_path


@pytest.fixture
def bad_folder(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bad")
    Image.fromarray(_noise(seed=8)).save(tmp_path / "good.png")
    (tmp_path / "random.png").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "text.jpg").write_text("this is plain text with an image extension")
    Image.fromarray(_noise((64, 64), seed=9)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "truncated.jpeg").write_bytes(data[: len(data) // 2])
    (tmp_path / "full.jpg").unlink()
    return tmp_path


def test_reads_all_kinds_sorted_and_nested(mixed_folder):
    folder = ImageFolder(mixed_folder, resolution=30)
    assert folder.names == [
        "deep16.png",
        "gray.png",
        "lossless.webp",
        "photo.jpg",
        "rgb.png",
        "sub/cmyk.JPG",
        "sub/deep/pal.PNG",
        "sub/deep/x.bmp",
        "sub/transparent.png",
    ]
    report = folder.report()
    assert report["n_images"] == 9 and report["n_bad"] == 0 and report["bad"] == []
    assert report["skipped_extensions"] == {".txt": 1}
    for i in range(len(folder)):
        x = folder[i]
        assert x.shape == (3, 30, 30) and x.dtype == torch.float32, folder.names[i]
        assert x.min() >= -1 and x.max() <= 1
    by_name = dict(zip(folder.names, (folder[i] for i in range(len(folder))), strict=True))
    gray = by_name["gray.png"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert torch.equal(by_name["sub/transparent.png"], torch.ones(3, 30, 30))  # white backdrop
    assert torch.equal(by_name["deep16.png"], torch.ones(3, 30, 30))  # 65535 -> 255
    cmyk = by_name["sub/cmyk.JPG"].mean(dim=(1, 2))  # C=0, M=Y=255: red
    assert cmyk[0] > 0.9 and cmyk[1] < -0.9 and cmyk[2] < -0.9


def test_centre_crop_is_exact_when_short_side_matches(tmp_path):
    pixels = _noise((48, 32), seed=10)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    x = ImageFolder(tmp_path, resolution=32)[0]
    assert torch.equal(x, from_uint8(pixels[:, 8:40]))


def test_resize_is_antialiased_and_keeps_constant_colour(tmp_path):
    Image.new("RGB", (90, 60), (200, 100, 50)).save(tmp_path / "flat.png")
    x = ImageFolder(tmp_path, resolution=16)[0]
    assert x.shape == (3, 16, 16)
    assert torch.equal(x, from_uint8(np.full((16, 16, 3), (200, 100, 50), np.uint8)))
    assert ImageFolder(tmp_path, resolution=100).report()["n_upsampled"] == 1


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, 16:] = 255  # left black, right white
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: left half becomes the top
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    x = ImageFolder(tmp_path, resolution=32)[0]
    assert (x[:, :16] == -1).all() and (x[:, 16:] == 1).all()


def test_bad_files_are_reported_with_path_and_reason(bad_folder):
    with pytest.warns(UserWarning, match="3 unreadable") as record:
        folder = ImageFolder(bad_folder, resolution=16)
    message = str(record[0].message)
    for name in ("random.png", "text.jpg", "truncated.jpeg"):
        assert name in message
    assert folder.names == ["good.png"]
    report = folder.report()
    assert report["n_images"] == 1 and report["n_bad"] == 3
    bad = dict(report["bad"])
    assert set(bad) == {str(bad_folder / n) for n in ("random.png", "text.jpg", "truncated.jpeg")}
    assert "truncated" in bad[str(bad_folder / "truncated.jpeg")]
    assert all(reason for reason in bad.values())
    batches = list(DataLoader(folder, batch_size=4))  # iteration never meets a bad file
    assert batches[0].shape == (1, 3, 16, 16)


def test_pixel_limit_marks_files_bad(tmp_path):
    folder = tmp_path
    Image.fromarray(_noise((40, 30))).save(folder / "big.png")
    Image.fromarray(_noise((10, 10))).save(folder / "small.png")
    with pytest.warns(UserWarning, match="big.png"):
        images = ImageFolder(folder, resolution=8, max_pixels=500)
    assert images.names == ["small.png"]
    assert "exceeds the limit of 500" in images.report()["bad"][0][1]


def test_empty_missing_and_not_a_folder(tmp_path, bad_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    with pytest.raises(ValueError, match="empty"):
        ImageFolder(empty, resolution=16)
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageFolder(tmp_path / "missing", resolution=16)
    with pytest.raises(NotADirectoryError, match="readme.md"):
        ImageFolder(empty / "readme.md", resolution=16)
    (bad_folder / "good.png").unlink()
    with pytest.raises(ValueError, match="3 bad"), pytest.warns(UserWarning):
        ImageFolder(bad_folder, resolution=16)


def test_uint8_conversions_round_trip_and_validate():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    x = from_uint8(pixels)
    assert x.shape == (2, 3, 5, 6) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), pixels)
    assert np.array_equal(to_uint8(x[0]), pixels[0])
    assert to_uint8(torch.full((3, 1, 1), 1.5)).max() == 255  # overshoot is clipped at I/O
    with pytest.raises(ValueError, match="non-finite"):
        to_uint8(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        to_uint8(torch.zeros(4, 2, 2))
    with pytest.raises(ValueError, match="uint8"):
        from_uint8(pixels.astype(np.float32))


def test_save_then_read_round_trip(tmp_path):
    images = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0)) * 2 - 1
    paths = save_images(images, tmp_path / "out", ["a", "nested/b.jpg", "c.png"])
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths] == [
        "a.png",
        "nested/b.png",
        "c.png",
    ]
    folder = ImageFolder(tmp_path / "out", resolution=20)
    assert folder.names == ["a.png", "c.png", "nested/b.png"]
    read = torch.stack([folder[i] for i in (0, 2, 1)])
    assert (read - images).abs().max() <= 1 / 255 + 1e-6  # half a quantisation step of 2/255
    assert torch.equal(read, from_uint8(to_uint8(images)))


@pytest.mark.parametrize("names", [["a"], ["a", "a.png"], ["../a", "b"], ["/abs", "b"]])
def test_save_images_rejects_bad_names(tmp_path, names):
    with pytest.raises(ValueError):
        save_images(torch.zeros(2, 3, 4, 4), tmp_path, names)


def test_build_dataset_and_eval_images_from_folder(bad_folder, mixed_folder):
    folder = _quiet_folder(mixed_folder, 8)
    dataset = build_dataset(str(mixed_folder), 8)
    assert isinstance(dataset, ImageFolder) and dataset.names == folder.names
    with pytest.raises(ValueError, match="length"):
        build_dataset(str(mixed_folder), 8, length=10)
    images, names, report = load_eval_images(str(mixed_folder), 8, limit=4)
    assert images.shape == (4, 3, 8, 8) and names == folder.names[:4]
    assert report["n_used"] == 4 and report["n_images"] == 9
    with pytest.warns(UserWarning):
        images, names, report = load_eval_images(str(bad_folder), 8, limit=10)
    assert images.shape == (1, 3, 8, 8) and report["n_bad"] == 3 and len(report["bad"]) == 3


def test_unknown_source_names_the_choices(tmp_path):
    with pytest.raises(FileNotFoundError, match="photos"):
        build_dataset(str(tmp_path / "nowhere"), 8)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_eval_images(str(tmp_path / "nowhere"), 8)

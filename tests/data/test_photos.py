import socket

import numpy as np
import pytest
import torch
from PIL import Image

from fastdec.data import build_dataset, load_eval_images, photo_ids
from fastdec.data.corpus import clear_caches, read_manifest
from fastdec.data.photos import PhotoCrops, load_photo, validation_crops

TRAIN = "train"


def test_photos_load_offline_as_read_only_rgb(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    clear_caches()
    for entry in read_manifest()[::40]:
        photo = load_photo(entry.id)
        assert photo.dtype == np.uint8 and photo.shape == (entry.height, entry.width, 3), entry.id
        assert 0 < min(photo.shape[:2]) <= 256, entry.id
        assert not photo.flags.writeable
        assert photo.std() > 5, entry.id  # a real picture, not a blank
        assert load_photo(entry) is photo  # cached


def test_unknown_photo_raises_naming_it():
    with pytest.raises(ValueError, match="nosuchphoto"):
        load_photo("nosuchphoto")


def test_crops_are_deterministic_in_range_and_shaped():
    a = PhotoCrops(TRAIN, resolution=32, length=50, seed=3)
    b = PhotoCrops(TRAIN, resolution=32, length=50, seed=3)
    assert len(a) == 50
    for i in (0, 7, 49):
        x = a[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert x.min() >= -1.0 and x.max() <= 1.0
        assert torch.equal(x, b[i])
        assert torch.equal(x, a[i])  # order of access does not matter


def test_different_items_and_seeds_differ():
    crops = PhotoCrops(TRAIN, resolution=32, length=20, seed=0)
    items = torch.stack([crops[i] for i in range(20)])
    flat = items.flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(20) * 1e9
    assert distances.min() > 0  # no two items identical
    other = PhotoCrops(TRAIN, resolution=32, length=20, seed=1)
    assert not torch.equal(crops[0], other[0])


def test_crop_params_are_valid_and_not_smaller_than_resolution():
    crops = PhotoCrops(TRAIN, resolution=128, length=200, seed=0, min_frac=0.2)
    flips = []
    for i in range(200):
        p = crops.crop_params(i)
        height, width, _ = load_photo(p.name).shape
        assert min(128, height, width) <= p.side <= min(height, width)
        assert 0 <= p.top <= height - p.side and 0 <= p.left <= width - p.side
        flips.append(p.flip)
    assert 0.3 < np.mean(flips) < 0.7
    names = {crops.crop_params(i).name for i in range(200)}
    assert len(names) > 150 and names <= set(photo_ids(TRAIN))  # uniform over ~960 photos


def test_item_equals_manual_crop_from_its_params():
    crops = PhotoCrops(("python3-skimage/chelsea",), resolution=24, length=10, seed=5)
    for i in range(10):
        p = crops.crop_params(i)
        square = load_photo(p.name)[p.top : p.top + p.side, p.left : p.left + p.side]
        image = Image.fromarray(np.ascontiguousarray(square)).resize((24, 24), Image.Resampling.LANCZOS)
        pixels = np.asarray(image)[:, ::-1] if p.flip else np.asarray(image)
        expected = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 127.5 - 1
        # PhotoCrops box-reduces before Lanczos (reducing_gap, ~10x faster) and Lanczos reads a few
        # pixels beyond the box: close to the exact crop-then-resize, not equal.
        assert (crops[i] - expected).abs().mean() < 3 / 255
        assert (crops[i][:, 4:-4, 4:-4] - expected[:, 4:-4, 4:-4]).abs().max() < 24 / 255


@pytest.mark.parametrize(
    "kwargs",
    [
        {"photos": ()},
        {"photos": ("nosuchphoto",)},
        {"photos": "training"},
        {"resolution": 0},
        {"length": 0},
        {"seed": -1},
        {"min_frac": 0.0},
        {"min_frac": 1.5},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        PhotoCrops(**{"photos": TRAIN, "resolution": 16, **kwargs})


def test_index_out_of_range_raises():
    with pytest.raises(IndexError):
        PhotoCrops(TRAIN, resolution=16, length=3)[3]


def test_validation_crops_are_fixed_and_held_out():
    a = validation_crops(resolution=16, n=6)
    assert a.shape == (6, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, validation_crops(resolution=16, n=6))
    assert torch.equal(a[:3], validation_crops(resolution=16, n=3))  # a prefix is stable
    assert not torch.equal(a, validation_crops(resolution=16, n=6, seed=1))
    val = PhotoCrops("val", resolution=16, length=6)
    assert {val.crop_params(i).name for i in range(6)} <= set(photo_ids("val"))
    test = validation_crops(resolution=16, n=6, split="test")
    assert torch.equal(test, torch.stack([PhotoCrops("test", 16, length=6)[i] for i in range(6)]))
    assert not torch.equal(test, a)


def test_build_dataset_photos_splits():
    train = build_dataset("photos", 16, seed=2, length=10)
    assert isinstance(train, PhotoCrops) and len(train) == 10 and train.names == photo_ids(TRAIN)
    assert len(build_dataset("photos", 16)) == 100_000
    val = build_dataset("photos", 16, split="val", length=4)
    assert torch.equal(torch.stack([val[i] for i in range(4)]), validation_crops(16, 4))
    with pytest.raises(ValueError, match="split"):
        build_dataset("photos", 16, split="test")


def test_load_eval_images_photos_val():
    images, names, report = load_eval_images("photos-val", 16, limit=5)
    assert images.shape == (5, 3, 16, 16)
    assert torch.equal(images, validation_crops(16, 5))
    assert len(names) == len(set(names)) == 5
    assert report["n_used"] == 5 and report["n_bad"] == 0
    assert torch.equal(load_eval_images("photos", 16, limit=5)[0], images)
    assert report["split"] == "val" and set(report["photos"]) <= set(photo_ids("val"))


def test_load_eval_images_photos_test():
    images, names, report = load_eval_images("photos-test", 16, limit=5)
    assert torch.equal(images, validation_crops(16, 5, split="test"))
    assert names[0] == "photos-test-0000" and report["source"] == "photos-test"
    assert report["n_photos"] == len(photo_ids("test")) >= 100
    assert set(report["photos"]) <= set(photo_ids("test"))


def test_augment_transforms_the_same_crop():
    plain = PhotoCrops(TRAIN, 16, length=20, seed=3)
    for augment in ("dihedral", "dihedral-rgb"):
        aug = PhotoCrops(TRAIN, 16, length=20, seed=3, augment=augment)
        for i in range(20):
            p = aug.crop_params(i)
            assert p[:5] == plain.crop_params(i)[:5]  # the crop and its flip do not depend on augment
            expected = torch.rot90(plain[i], p.rotations, dims=(1, 2))[list(p.channels)]
            assert torch.equal(aug[i], expected)
        if augment == "dihedral":
            assert {aug.crop_params(i).channels for i in range(20)} == {(0, 1, 2)}
            assert len({aug.crop_params(i).rotations for i in range(20)}) == 4
        else:
            assert len({aug.crop_params(i).channels for i in range(20)}) > 1


def test_unknown_augment_raises():
    with pytest.raises(ValueError, match="augment"):
        PhotoCrops(TRAIN, 16, augment="mixup")

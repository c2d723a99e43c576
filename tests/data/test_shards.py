import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from fastdec.cli.main import main
from fastdec.data import ImageFolder, ShardDataset, build_dataset, load_eval_images, write_shards
from fastdec.data.shards import expand_braces, shard_paths
from fastdec.presets import resolve
from fastdec.training.train import train_tokenizer


@pytest.fixture
def imagenet_folder(tmp_path):
    """Two class folders (ImageNet layout) with PNG, JPEG (upper-case suffix), BMP and WebP files,
    one file that is not an image, and a dotted file name."""
    rng = np.random.default_rng(0)
    root = tmp_path / "train"
    files = {
        "n01/a.png": "PNG", "n01/b.JPEG": "JPEG", "n01/c.bmp": "BMP",
        "n02/d.webp": "WEBP", "n02/e.v2.png": "PNG", "n02/f.jpg": "JPEG",
    }  # fmt: skip
    for i, (name, fmt) in enumerate(files.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name, format=fmt)
    (root / "n02" / "broken.png").write_bytes(b"not a png")
    return root


def _shard_items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def test_shards_yield_the_images_of_the_folder(imagenet_folder, tmp_path):
    with pytest.warns(UserWarning, match="broken.png"):
        folder = ImageFolder(imagenet_folder, 16)
    report = write_shards(imagenet_folder, tmp_path / "shards", 4, prefix="train")
    assert [p.rsplit("/", 1)[1] for p in report["shards"]] == ["train-000000.tar", "train-000001.tar"]
    assert report["n_images"] == 6 and report["n_bad"] == 1 and report["classes"] == ["n01", "n02"]
    shards = ShardDataset(shard_paths(str(tmp_path / "shards")), 16)
    assert len(shards) == len(folder) == 6
    for a, b in zip(_shard_items(shards), _shard_items(folder), strict=True):
        assert torch.equal(a, b)
    assert shards.labels == [0, 0, 0, 1, 1, 1]
    assert shards.names[4] == "train-000001.tar/n02/e_v2.png"  # WebDataset key: no dot in the base name
    assert shards.report()["n_bad"] == 0


def test_writing_is_deterministic_and_refuses_to_mix_with_old_shards(imagenet_folder, tmp_path):
    with pytest.warns(UserWarning):
        ImageFolder(imagenet_folder, 16)  # (the same bad file; written shards skip it silently)
    first = write_shards(imagenet_folder, tmp_path / "a", 5)
    second = write_shards(imagenet_folder, tmp_path / "b", 5)
    for x, y in zip(first["shards"], second["shards"], strict=True):
        assert open(x, "rb").read() == open(y, "rb").read()
    with pytest.raises(ValueError, match="already holds"):
        write_shards(imagenet_folder, tmp_path / "a", 5)
    with pytest.raises(ValueError, match="shard_size"):
        write_shards(imagenet_folder, tmp_path / "c", 0)


def _corrupt_member(shard, member_name):
    with tarfile.open(shard) as tar:
        info = tar.getmember(member_name)
    with open(shard, "r+b") as f:
        f.seek(info.offset_data + 8)  # keep the PNG signature, wreck the chunks
        f.write(b"\0" * (info.size - 8))


def test_a_corrupt_member_is_reported_not_fatal(imagenet_folder, tmp_path):
    write_shards(imagenet_folder, tmp_path / "s", 3)
    shard = tmp_path / "s" / "shard-000000.tar"
    _corrupt_member(shard, "n01/a.png")
    with pytest.warns(UserWarning, match=r"shard-000000\.tar:n01/a\.png"):
        verified = ShardDataset([shard, tmp_path / "s" / "shard-000001.tar"], 16)
    assert len(verified) == 5 and verified.report()["n_bad"] == 1
    assert verified.report()["bad"][0][0] == f"{shard}:n01/a.png"

    lazy = ShardDataset(shard_paths(str(tmp_path / "s")), 16, verify=False)
    assert len(lazy) == 6 and lazy.report()["n_bad"] == 0
    with pytest.warns(UserWarning, match=r"n01/a\.png"):
        stand_in = lazy[0]
    assert torch.equal(stand_in, lazy[1])  # the next readable member stands in
    assert lazy.report()["n_bad"] == 1

    intact = tmp_path / "s" / "shard-000001.tar"
    with tarfile.open(intact) as tar:
        first, second = [m for m in tar.getmembers() if not m.name.endswith(".cls")][:2]
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(intact.read_bytes()[: second.offset_data + 100])  # ends inside the second
    with pytest.warns(UserWarning, match="truncated"):
        survivors = ShardDataset([truncated], 16)
    assert survivors.names == [f"truncated.tar/{first.name}"] and survivors.report()["n_bad"] >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no readable image"):
            ShardDataset([tmp_path / "s" / "shard-000000.tar"], 16, max_pixels=10)


def test_an_unverified_folder_reports_bad_files_when_read(imagenet_folder):
    folder = ImageFolder(imagenet_folder, 16, verify=False)
    assert len(folder) == 7 and folder.report()["n_bad"] == 0
    index = folder.names.index("n02/broken.png")
    with pytest.warns(UserWarning, match="broken.png"):
        item = folder[index]
    assert torch.equal(item, folder[(index + 1) % 7]) and folder.report()["n_bad"] == 1


def test_data_sources_that_name_shards(imagenet_folder, tmp_path):
    write_shards(imagenet_folder, tmp_path / "s", 2, prefix="train")
    assert expand_braces("x-{08..10}.tar") == ["x-08.tar", "x-09.tar", "x-10.tar"]
    for source in (f"{tmp_path}/s/train-{{000000..000002}}.tar", f"{tmp_path}/s/*.tar", str(tmp_path / "s")):
        assert len(build_dataset(source, 16)) == 6
    assert len(build_dataset(f"{tmp_path}/s/train-000001.tar", 16)) == 2
    with pytest.raises(FileNotFoundError, match="do not exist"):
        build_dataset(f"{tmp_path}/s/train-{{000000..000009}}.tar", 16)
    images, names, report = load_eval_images(str(tmp_path / "s"), 16, limit=3)
    assert images.shape == (3, 3, 16, 16) and names[0] == "train-000000.tar/n01/a.png"


def test_shard_command_and_training_from_shards(imagenet_folder, tmp_path, capsys):
    out = tmp_path / "shards"
    args = ["shard", "--input", str(imagenet_folder), "--output", str(out), "--shard-size", "4"]
    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out and len(list(out.glob("*.tar"))) == 2
    assert main(args) == 2  # the shards exist: refused, not overwritten
    assert "already holds" in capsys.readouterr().err
    config = resolve("tiny", [f"train.data={out}/shard-{{000000..000001}}.tar", "train.steps=1"])
    assert (train_tokenizer(config, tmp_path / "run", progress=False) / "model.safetensors").is_file()
